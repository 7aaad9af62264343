"""`npms` with small fit schedules and a pause after each tracked frame, for the app's live-fit
tests: run as `python small_fit.py fit ...` in place of `python -m npm_core.cli fit ...`.
SMALL_FIT_PAUSE: seconds to wait after each frame is logged (default 0.4). SMALL_FIT_ACK: a folder;
after logging frame t, wait (up to 60 s) for a file named t there: the test saw the frame."""

import os
import sys
import time

from npm_core import cli, fit


def small(cfg):
    cfg.canonical_samples, cfg.init_resolution, cfg.final_resolution = 5000, 32, 32
    cfg.points_per_frame, cfg.icp_points, cfg.init_candidates = 500, 200, 4
    cfg.first_frame_iters, cfg.frame_iters, cfg.refine_steps, cfg.iterations = 15, 5, 3, 6
    return cfg


def slow_log(out_dir, frame_log=fit.frame_log):
    write, pause = frame_log(out_dir), float(os.environ.get("SMALL_FIT_PAUSE", "0.4"))

    ack = os.environ.get("SMALL_FIT_ACK")

    def logged(u):
        write(u)
        t = time.time()
        while ack and not os.path.exists(os.path.join(ack, str(u.frame))) and time.time() - t < 60:
            time.sleep(0.05)
        time.sleep(0 if ack else pause)

    return logged


if __name__ == "__main__":
    for name, schedule in list(fit.SCHEDULES.items()):
        fit.SCHEDULES[name] = fit.Schedule(lambda c=schedule.config, **kw: small(c(**kw)), schedule.run)
    fit.frame_log = slow_log
    sys.exit(cli.main(sys.argv[1:]))
