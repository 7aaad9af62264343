"""Fitting captures that are not clean frontal renders, next to the clean frontal fit of the same
body and motion: a body turning up to the full circle, oblique and elevated cameras, Kinect-like
noise and holes, and unsegmented scenes (floor, wall, a second object, the subject off the origin).

Every capture is made here from the body model (held-out identities doing the held-out motions)
and ray-cast with the project's depth camera; the `fast` fit runs on each with no extra settings,
and IoU / Chamfer-L2 / EPE (metrics.py) are taken against the true meshes. The issue's targets
compare each kind with the clean frontal fit of the same body and motion (the scene with the
segmented noisy fit). --reported-only sequences are never used to choose settings: their rows are
listed apart.

    python benchmarks/bench_captures.py                                           # body-v2, all kinds, hours on 2 cores
    python benchmarks/bench_captures.py --noise-study                             # the noise-handling comparison
    python benchmarks/bench_captures.py --overhead 8                              # cost of the rotation per iteration
    python benchmarks/bench_captures.py --table-from run1.log run2.log                  # one table from split runs
    python benchmarks/bench_captures.py --smoke --frames 4 --resolution 64 --sequences s0-00031:kick --reported-only --out /tmp/c.md
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from npm_core import bodies, config, fit, layout, metrics, space
from npm_core.data import depth, sensor
from npm_core.models import checkpoint

KINDS = ("frontal", "turning", "oblique", "noisy", "scene")
TARGETS = {
    "turning": "IoU within 0.03, EPE within 0.3 cm",
    "oblique": "IoU within 0.02",
    "noisy": "IoU within 0.04",
    "scene": "IoU within 0.04 of the noisy (segmented) fit",
}
OBLIQUE = [(35.0, 1.0), (60.0, 1.5), (30.0, 0.5), (45.0, 1.2)]  # (degrees to the side, metres higher) per sequence
SCENE_OFFSET = np.array([0.5, 0.0, -0.3])  # where the subject stands in the scene (world metres)


# ------------------------------------------------------------------------- captures


def look_at(cam: depth.Camera, eye, target) -> depth.Camera:
    """cam posed at eye (world metres), looking at target, image up towards world +y."""
    f = np.subtract(target, eye, dtype=float)
    f /= np.linalg.norm(f)
    right = np.cross(f, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(f, right), f], 1)
    pose[:3, 3] = eye
    return replace(cam, world_from_camera=pose.tolist())


def bodies_in_world(phenotypes, motion: str, frames: int, extra_yaw_deg=None, offset=(0.0, 0.0, 0.0)):
    """(vertices [T, V, 3] world metres, faces) of an identity doing a motion, turned by
    extra_yaw_deg [T] about the vertical through the pelvis, moved by offset (metres)."""
    m = bodies.motion(motion)
    idx = np.arange(frames) % m.num_frames
    yaw = m.root_yaw[idx] + (0.0 if extra_yaw_deg is None else np.asarray(extra_yaw_deg))
    ph = np.repeat(bodies.check_phenotypes(phenotypes), frames, 0)
    v = space.model_to_metres(bodies.body_meshes(ph, m.angles[idx], root_yaw_deg=yaw))
    return (v + m.translation[idx, None, :] + np.asarray(offset)).astype(np.float32), bodies.faces()


def scene_meshes(gt_vertices: np.ndarray):
    """Floor under the lowest foot, a wall 1.5 m behind the subject and a ball beside it (world metres)."""
    import trimesh

    floor_y = float(gt_vertices[..., 1].min()) - 0.005
    c = gt_vertices.reshape(-1, 3).mean(0)
    wall_z = c[2] - 1.5

    def quad(corners):
        return trimesh.Trimesh(np.array(corners, float), [[0, 1, 2], [0, 2, 3]], process=False)

    floor = quad([[-6, floor_y, wall_z], [6, floor_y, wall_z], [6, floor_y, 6], [-6, floor_y, 6]])
    wall = quad([[-6, floor_y, wall_z], [6, floor_y, wall_z], [6, 4, wall_z], [-6, 4, wall_z]])
    ball = trimesh.creation.icosphere(3, 0.2)
    ball.apply_translation([c[0] - 1.0, floor_y + 0.2, c[2] + 0.3])
    return trimesh.util.concatenate([floor, wall, ball])


def make_capture(kind: str, out: Path, phenotypes, motion: str, frames: int, width: int, index: int, seed: int = 0):
    """Write one capture of `kind` (KINDS) to out; returns (sequence, offset of the subject in metres)."""
    cam = depth.Camera.looking_at_subject(width, width * 3 // 4)
    cam.fps = bodies.motion(motion).fps
    rng = np.random.default_rng(seed + index)
    yaw, offset = None, np.zeros(3)
    if kind == "turning":  # a full turn per 40 frames (9 degrees a frame), alternating direction per sequence
        yaw = (1 if index % 2 == 0 else -1) * 9.0 * np.arange(frames)
    if kind == "scene":
        offset = SCENE_OFFSET
    gt, faces = bodies_in_world(phenotypes, motion, frames, yaw, offset)
    if kind == "oblique":
        side, up = OBLIQUE[index % len(OBLIQUE)]
        a = np.deg2rad(side) * (1 if index % 2 == 0 else -1)
        cam = look_at(cam, [2.8 * np.sin(a), up, 2.8 * np.cos(a)], [0.0, -0.1, 0.0])
    extra = scene_meshes(gt) if kind == "scene" else None
    depths = []
    for v in gt:
        if extra is not None:
            v, f = np.concatenate([v, extra.vertices]), np.concatenate([faces, extra.faces + len(v)])
        else:
            f = faces
        d = depth.render_depth(cam, v, f)
        depths.append(sensor.simulate(d, rng) if kind in ("noisy", "scene") else d)
    depth.write_sequence(out, cam, np.stack(depths), gt, faces, compact=True)
    return depth.read_sequence(out), offset


# ------------------------------------------------------------------------- fitting


def fit_and_score(model, seq, cfg, iou_points: int, offset=None, resolution: int | None = None) -> dict:
    """Fit seq with cfg and score the posed meshes against the truth (both moved by -offset, so a
    subject placed off the origin is scored inside the metrics' cube). A refused capture gives
    {"refused": message}."""
    t = time.time()
    try:
        res = fit.fit(model, seq, cfg)
    except ValueError as e:
        return {"refused": str(e).splitlines()[0]}
    fit_s = time.time() - t
    with tempfile.TemporaryDirectory() as tmp:
        out = fit.write_result(Path(tmp) / "fit", res, model, cfg, "bench", seq.path, resolution)
        _, posed, faces = layout.read_fit(out).meshes()
    off = np.zeros(3, np.float32) if offset is None else np.asarray(offset, np.float32)
    m = metrics.evaluate_sequence(posed - off, faces, seq.gt_vertices - off, seq.gt_faces, iou_points)
    yaw = np.degrees(np.arctan2(res.rotations()[:, 0, 2], res.rotations()[:, 2, 2])).tolist()
    return {"frames": len(seq), "fit_s": fit_s, **m["mean"], "yaw_deg": yaw}


def identities(model) -> dict:
    """The checkpoint's identities by id (body-v2's include the tail set, never trained on)."""
    ic = config.from_dict(config.DataConfig, model.sections.get("data")).identities
    return {i.id: i for i in bodies.identities_of(ic)}


def parse_pairs(items):
    """['s0-00031:kick', ...] -> [(identity, motion), ...]."""
    out = []
    for it in items:
        ident, _, motion = it.partition(":")
        if not motion:
            raise SystemExit(f"{it!r}: expected IDENTITY:MOTION")
        out.append((ident, motion))
    return out


# ------------------------------------------------------------------------- modes


def fast_config(args, **kw):
    """The `fast` schedule's settings, or with --smoke a few steps of everything (figures meaningless)."""
    cfg = fit.fast_config(**kw)
    if args.smoke:
        cfg.canonical_samples, cfg.init_resolution, cfg.init_candidates = 20_000, 64, 8
        cfg.first_frame_iters, cfg.frame_iters, cfg.refine_steps, cfg.yaw_trial_iters = 20, 5, 5, 5
    return cfg


def run_captures(args, model, ids):
    cfg = fast_config(args)
    sequences = [(p, False) for p in parse_pairs(args.sequences)] + [(p, True) for p in parse_pairs(args.reported_only)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, ((ident, motion), reported_only) in enumerate(sequences):
            if ids[ident].split not in ("test", "tail"):
                print(f"warning: {ident} is a training identity", file=sys.stderr)
            for kind in args.kinds:
                seq, offset = make_capture(
                    kind,
                    Path(tmp) / f"{ident}-{motion}-{kind}",
                    ids[ident].phenotypes,
                    motion,
                    args.frames,
                    args.resolution,
                    k,
                )
                r = fit_and_score(model, seq, cfg, args.iou_points, offset, args.mesh_resolution)
                r.update(identity=ident, motion=motion, kind=kind, reported_only=reported_only)
                rows.append(r)
                print(json.dumps(r), flush=True)  # one line per capture: --table-from reads these back
    return rows


def read_rows(paths, reported_only) -> list[dict]:
    """Capture rows from files of this script's output (its printed JSON lines, or a results
    .json), so runs split over processes or machines make one table; reported_only: the
    IDENTITY:MOTION pairs to list apart."""
    apart = set(parse_pairs(reported_only))
    rows = []
    for path in paths:
        text = Path(path).read_text()
        if text.lstrip().startswith("["):
            rows += json.loads(text)
        else:
            rows += [json.loads(line) for line in text.splitlines() if line.startswith('{"frames"')]
    for r in rows:
        r["reported_only"] = (r["identity"], r["motion"]) in apart
    return rows


def capture_table(args, rows) -> list[str]:
    lines = [
        f"`python {' '.join(sys.argv)}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; `fast` schedule with its defaults; "
        f"{args.frames} frames per sequence, {args.resolution}x{args.resolution * 3 // 4} camera 2.8 m away; "
        "turning: 9 degrees a frame (a full turn in 40 frames); oblique: camera 30-60 degrees to the side and "
        "0.5-1.5 m higher, looking at the pelvis; noisy: Kinect-like axial noise, 1 mm steps, silhouette pixels "
        "dropped; scene: the noisy capture with a floor, a wall and a ball, the subject 0.58 m off the origin, "
        "nothing segmented beforehand",
        "",
    ]
    for reported in (False, True):
        sub = [r for r in rows if r["reported_only"] == reported]
        if not sub:
            continue
        lines += [
            f"### {'reported only (not used to choose any setting)' if reported else 'sequences'}: "
            + ", ".join(sorted({r["identity"] + " " + r["motion"] for r in sub})),
            "",
            "| capture | IoU | Chamfer-L2 | EPE (cm) | fit time s | clean frontal IoU / EPE (cm) | difference IoU / EPE | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for kind in args.kinds:
            got = [r for r in sub if r["kind"] == kind]
            ok = [r for r in got if "refused" not in r]
            if not ok:
                lines.append(f"| {kind} | {'refused: ' + got[0]['refused'] if got else 'not run'} | | | | | | |")
                continue
            ref_kind = "noisy" if kind == "scene" else "frontal"
            ref = [
                next(
                    q
                    for q in sub
                    if q["identity"] == r["identity"] and q["motion"] == r["motion"] and q["kind"] == ref_kind
                )
                for r in ok
            ]

            def mean(rs, key):
                return float(np.mean([r[key] for r in rs if "refused" not in r]))

            d_iou, d_epe = mean(ok, "iou") - mean(ref, "iou"), mean(ok, "epe_cm") - mean(ref, "epe_cm")
            lines.append(
                f"| {kind} ({len(ok)}) | {mean(ok, 'iou'):.4f} | {mean(ok, 'chamfer_l2'):.2e} | {mean(ok, 'epe_cm'):.2f} | "
                f"{mean(ok, 'fit_s'):.0f} | {mean(ref, 'iou'):.4f} / {mean(ref, 'epe_cm'):.2f} ({ref_kind}) | "
                f"{d_iou:+.4f} / {d_epe:+.2f} | {TARGETS.get(kind, '')} |"
            )
        lines += [
            "",
            "| sequence | capture | IoU | EPE (cm) | fit s | fitted yaw, first / last frame |",
            "|---|---|---|---|---|---|",
        ]
        for r in sub:
            if "refused" in r:
                lines.append(f"| {r['identity']} {r['motion']} | {r['kind']} | refused: {r['refused']} | | | |")
            else:
                yaw = f"{r['yaw_deg'][0]:.0f} / {r['yaw_deg'][-1]:.0f}" if "yaw_deg" in r else "-"
                lines.append(
                    f"| {r['identity']} {r['motion']} | {r['kind']} | {r['iou']:.4f} | {r['epe_cm']:.2f} | {r['fit_s']:.0f} | "
                    f"{yaw} |"
                )
        lines.append("")
    return lines


NOISE_OFF = {
    "noise_fill": False,
    "noise_smooth": False,
    "noise_truncation": 0.0,
    "noise_huber": False,
    "noise_edges": False,
}
NOISE_VARIANTS = {  # name -> FitConfig overrides
    "none (frames as measured)": {"noise_floor_m": float("inf")},
    "fill dropped silhouette pixels": {**NOISE_OFF, "noise_fill": True},
    "edge-aware smoothing": {**NOISE_OFF, "noise_smooth": True},
    "truncation >= 3 sigma": {**NOISE_OFF, "noise_truncation": 3.0},
    "Huber L_r (delta = sigma)": {**NOISE_OFF, "noise_huber": True},
    "depth edges and silhouette ring unobserved": {**NOISE_OFF, "noise_edges": True},
    "fill + smoothing + truncation": {**NOISE_OFF, "noise_fill": True, "noise_smooth": True, "noise_truncation": 3.0},
    "fill + smoothing + truncation + Huber": {
        **NOISE_OFF,
        "noise_fill": True,
        "noise_smooth": True,
        "noise_truncation": 3.0,
        "noise_huber": True,
    },
    "fill + smoothing + truncation + edges": {
        **NOISE_OFF,
        "noise_fill": True,
        "noise_smooth": True,
        "noise_truncation": 3.0,
        "noise_edges": True,
    },
    "all five": {
        "noise_fill": True,
        "noise_smooth": True,
        "noise_truncation": 3.0,
        "noise_huber": True,
        "noise_edges": True,
    },
}


def run_noise_study(args, model, ids):
    """Each noise handling on its own and combined, on the noisy captures' first frames, with the
    clean frontal fit of the same frames as the reference."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (ident, motion) in enumerate(parse_pairs(args.sequences)):
            clean, _ = make_capture(
                "frontal", Path(tmp) / f"{k}-clean", ids[ident].phenotypes, motion, args.frames, args.resolution, k
            )
            noisy, _ = make_capture(
                "noisy", Path(tmp) / f"{k}-noisy", ids[ident].phenotypes, motion, args.frames, args.resolution, k
            )
            sig = [sensor.estimate_sigma(d) * 1000 for d in noisy.depths]
            for name, kw in [("clean frames, defaults", {})] + list(NOISE_VARIANTS.items()):
                seq = clean if name.startswith("clean") else noisy
                r = fit_and_score(model, seq, fast_config(args, **kw), args.iou_points, resolution=args.mesh_resolution)
                r.update(sequence=f"{ident} {motion}", variant=name, sigma_mm=float(np.mean(sig)))
                rows.append(r)
                print(json.dumps({k2: v for k2, v in r.items() if k2 != "yaw_deg"}), flush=True)
    lines = [
        f"`python {' '.join(sys.argv)}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; `fast` schedule; first {args.frames} frames of "
        f"{len(args.sequences)} sequences ({', '.join(args.sequences)}), {args.resolution}x{args.resolution * 3 // 4} camera 2.8 m away; "
        f"noise: Kinect-like axial sigma 1.2 mm + 1.9 mm (z - 0.4)^2, 1 mm steps, silhouette pixels dropped "
        f"(estimated sigma {np.mean([r['sigma_mm'] for r in rows]):.1f} mm)",
        "",
        "| frames | noise handling | IoU | Chamfer-L2 | EPE (cm) | IoU vs clean |",
        "|---|---|---|---|---|---|",
    ]
    clean_iou = np.mean([r["iou"] for r in rows if r["variant"].startswith("clean")])
    for name in ["clean frames, defaults"] + list(NOISE_VARIANTS):
        rs = [r for r in rows if r["variant"] == name]
        lines.append(
            f"| {'clean' if name.startswith('clean') else 'noisy'} | {name} | {np.mean([r['iou'] for r in rs]):.4f} | "
            f"{np.mean([r['chamfer_l2'] for r in rs]):.2e} | {np.mean([r['epe_cm'] for r in rs]):.2f} | "
            f"{np.mean([r['iou'] for r in rs]) - clean_iou:+.4f} |"
        )
    return rows, lines


def run_overhead(args, model, ids):
    """What the rotation costs the `fast` fit, from the first N frames of a clean frontal capture:
    a tracking step with and without it (alternated, so drifting load hits both alike), the
    first frame's yaw search and trials (once per sequence), and whole fits with and without."""
    from npm_core.fit import problem, schedules

    ident, motion = parse_pairs(args.sequences)[0]
    rows = {"step_ms": {True: [], False: []}, "fit_s": {True: [], False: []}}
    with tempfile.TemporaryDirectory() as tmp:
        seq, _ = make_capture(
            "frontal", Path(tmp) / "seq", ids[ident].phenotypes, motion, args.overhead, args.resolution, 0
        )
        probs = {rot: fit.Problem(model, seq, fast_config(args, use_rotation=rot)) for rot in (False, True)}
        for p in list(model.shape_decoder.parameters()) + list(model.pose_decoder.parameters()):
            p.requires_grad_(False)
        t = time.time()
        s, p0, tau0, r0 = problem.initial_codes(probs[False])
        init_s = {False: time.time() - t}
        t = time.time()
        s, p0, tau0, r0 = problem.initial_codes(probs[True])
        init_s[True] = time.time() - t
        for prob in probs.values():
            prob.canonical_samples(s, 128, 100_000)
        x = probs[True].draw(4000)
        with torch.no_grad():
            sdf_c = probs[True].shape_sdf(s[None], x[None]).clamp(-0.1, 0.1)[0]
            prev = probs[True].displacement(s[None], p0[None], x[None])[0]
        steps = 30
        for _ in range(4):
            for rot, prob in probs.items():
                p, tau, r = (
                    p0[None].clone().requires_grad_(True),
                    tau0[None].clone().requires_grad_(True),
                    r0[None].clone().requires_grad_(rot),
                )
                t = time.time()
                schedules.track_steps(prob, s[None], p, tau, r, 1, steps, x, sdf_c, prev, schedules.Reporter())
                rows["step_ms"][rot].append(1000 * (time.time() - t) / steps)
        t = time.time()
        schedules.turn_trials(
            probs[True],
            s[None],
            p0[None].clone(),
            tau0[None].clone().requires_grad_(True),
            r0[None].clone(),
            schedules.Reporter(),
        )
        trials_s = time.time() - t
        for rot in (False, True, False, True):
            t = time.time()
            fit.fit(model, seq, fast_config(args, use_rotation=rot))
            rows["fit_s"][rot].append(time.time() - t)
            print(rot, rows["fit_s"][rot][-1], flush=True)
    step = {rot: float(np.median(v)) for rot, v in rows["step_ms"].items()}
    fits = {rot: float(np.mean(v)) for rot, v in rows["fit_s"].items()}
    cfg = fit.fast_config()
    iters100 = cfg.first_frame_iters + 99 * cfg.frame_iters + cfg.refine_steps
    lines = [
        f"`python {' '.join(sys.argv)}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
        f"`fast` defaults; first {args.overhead} frames of {ident} {motion} (clean, frontal, "
        f"{args.resolution}x{args.resolution * 3 // 4})",
        "",
        "| | without rotation | with rotation | difference |",
        "|---|---|---|---|",
        f"| tracking step (4000 points, L_r + L_icp + L_c, backward, Adam; median of 4 x {steps}) | {step[False]:.1f} ms | "
        f"{step[True]:.1f} ms | {100 * (step[True] / step[False] - 1):+.1f}% |",
        f"| initial codes (with rotation: the yaw search) | {init_s[False]:.1f} s | {init_s[True]:.1f} s | "
        f"{init_s[True] - init_s[False]:+.1f} s |",
        f"| first frame's turn trials (2 x {cfg.yaw_trial_iters} steps, once per sequence) | - | {trials_s:.1f} s | {trials_s:+.1f} s |",
        f"| whole fit of {args.overhead} frames (mean of 2) | {fits[False]:.1f} s | {fits[True]:.1f} s | "
        f"{100 * (fits[True] / fits[False] - 1):+.1f}% |",
        "",
        f"A 100-frame fit has {iters100} tracking and refinement steps: at this step overhead the rotation adds about "
        f"{(step[True] - step[False]) * iters100 / 1000 + trials_s + init_s[True] - init_s[False]:.0f} s to it on this machine.",
    ]
    return rows, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/body-v2")
    ap.add_argument(
        "--sequences",
        nargs="+",
        default=["tail-muscle-hi-m:wave", "tail-muscle-lo-f:kick"],
        help="IDENTITY:MOTION pairs (held-out identities and motions)",
    )
    ap.add_argument(
        "--reported-only",
        nargs="*",
        default=["tail-age-lo-m:jumping_jack"],
        help="IDENTITY:MOTION pairs listed apart, never used to choose settings",
    )
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--frames", type=int, help="frames per sequence (default 40; 8 for --noise-study)")
    ap.add_argument("--resolution", type=int, default=320, help="camera width in pixels (height 3/4 of it)")
    ap.add_argument("--mesh-resolution", type=int, default=256, help="output mesh resolution for scoring")
    ap.add_argument("--iou-points", type=int, default=1_000_000)
    ap.add_argument(
        "--noise-study", action="store_true", help="compare the noise handlings instead (--frames default 8)"
    )
    ap.add_argument("--overhead", type=int, metavar="N", help="time the rotation's cost on the first N frames instead")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a few fitting steps per capture, to check the script runs (its figures mean nothing; needs --out)",
    )
    ap.add_argument(
        "--table-from",
        nargs="+",
        metavar="FILE",
        help="make the table from earlier runs' output (printed JSON lines or results .json) instead of fitting",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--out",
        help="results file (default benchmarks/results/captures_cpu.md, "
        "captures_noise_cpu.md or captures_overhead_cpu.md)",
    )
    args = ap.parse_args()
    args.frames = args.frames or (8 if args.noise_study else 40)
    if args.smoke and not args.out:
        ap.error("--smoke needs --out (its figures do not belong in benchmarks/results)")
    torch.set_num_threads(args.threads)
    model = checkpoint.load_model(args.checkpoint)
    ids = identities(model)
    for ident, _ in parse_pairs(args.sequences + args.reported_only):
        if ident not in ids:
            ap.error(f"unknown identity {ident!r} for {args.checkpoint}")
    if args.noise_study:
        rows, lines = run_noise_study(args, model, ids)
        out = args.out or "benchmarks/results/captures_noise_cpu.md"
    elif args.overhead:
        rows, lines = run_overhead(args, model, ids)
        out = args.out or "benchmarks/results/captures_overhead_cpu.md"
    else:
        rows = read_rows(args.table_from, args.reported_only) if args.table_from else run_captures(args, model, ids)
        lines = capture_table(args, rows)
        out = args.out or "benchmarks/results/captures_cpu.md"
    text = "\n".join(lines)
    print(text)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text + "\n")
    Path(out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
