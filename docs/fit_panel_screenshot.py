"""docs/screenshots/fit_panel.png: the Fit tab during a fit of the example sequence with body-v2,
once six frames are tracked (`python docs/fit_panel_screenshot.py`, headless, ~2 min; the
unfinished result in fits/example is removed)."""

import contextlib
import os
import shutil
import time


def main():
    import polyscope as ps

    from npm_viewer.app import App, init_polyscope
    from npm_viewer.panels import fit as fit_panel
    from npm_viewer.render import save_png
    from npm_viewer.workers import MeshWorker

    worker = MeshWorker()
    init_polyscope("openGL3_egl", (1280, 800))
    ps.set_frame_tick_limit_fps_mode("ignore_limits")
    app = App(None, None, worker=worker)
    app.attach()
    app.open_checkpoint("checkpoints/body-v2")
    app.select_panel("fit")
    app.settle()
    st = app.state
    shutil.rmtree("fits/example", ignore_errors=True)
    st.fit_sequence, st.fit_out = "assets/example_sequence", "fits/example"
    assert fit_panel.start(app)
    run = app.fit_run
    t = time.time()
    while len(run.frames) < 6 and time.time() - t < 900:
        app.tick()
        time.sleep(0.05)
    print("frames", len(run.frames), "after", round(time.time() - t), "s", flush=True)
    app.settle(frames=6)
    save_png("docs/screenshots/fit_panel.png", app.capture(True))
    print("wrote docs/screenshots/fit_panel.png", flush=True)
    fit_panel.stop(app)
    app.close()
    shutil.rmtree("fits/example", ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir("fits")  # only when the script made it and nothing else is in it


if __name__ == "__main__":
    main()
