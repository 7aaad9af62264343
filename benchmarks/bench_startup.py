"""Start-up benchmark: what a start spends before the first body is on screen.

Measures, on the shipped checkpoint (or --checkpoint), with the mesh worker's thread count
(cores - 1):
  import torch                     a fresh interpreter, `import torch` only
  read the shape codes             torch.load of shape.pt alone (all a cache hit needs)
  parse meta.yaml                  yaml.safe_load of the checkpoint's metadata
  load the checkpoint              npm_core.models.checkpoint.load_model (decoders, codes, meta.yaml)
  cache key                        npm_core.mesh.cache.key_for (the first call hashes shape.pt)
  extraction                       npm_core.mesh.extract at each --resolution (narrow band, --lipschitz)
  cache write / read               MeshCache.put, and MeshCache.get with the entry dropped from the
                                   OS page cache (as after a reboot) and with it in memory
The cache lives in a temporary directory; nothing under $NPM_CACHE_DIR is touched.

Then the app itself (--app-runs N, 0 to skip): `npm-viewer --checkpoint DIR --screenshot ...` headless
(EGL) with $NPM_VIEWER_TIMES, timed from the launch to the first frame drawn, the first body shown
(the coarse one on a cold cache) and the full-resolution body; cold: an empty cache root (mesh and
checkpoint-info caches), warm: the same root again. --app-only measures only the app and replaces
that section of --out.

    nice -n 5 python benchmarks/bench_startup.py [--checkpoint DIR] [--resolution 128 256] [--repeats 5]
        [--app-runs 3] [--app-only] [--out benchmarks/results/startup_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages (clean pages: no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


APP_SECTION = "## The app: launch to body"
APP_EVENTS = ("first_frame", "first_body", "full_body")


def launch_app(checkpoint: str, cache_root: Path, timeout: float = 300.0) -> dict:
    """Seconds from launching npm-viewer to each APP_EVENTS event (stopped once the full body is shown)."""
    with tempfile.TemporaryDirectory() as tmp:
        times = Path(tmp) / "times.jsonl"
        env = {**os.environ, "NPM_CACHE_DIR": str(cache_root), "NPM_VIEWER_TIMES": str(times)}
        env.pop("DISPLAY", None)
        cmd = [
            sys.executable,
            "-m",
            "npm_viewer.launch",
            "--checkpoint",
            checkpoint,
            "--screenshot",
            str(Path(tmp) / "shot.png"),
        ]
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        got: dict = {}
        while time.time() - t0 < timeout and "full_body" not in got and proc.poll() is None:
            time.sleep(0.05)
            if times.exists():
                for line in times.read_text().splitlines():
                    e = json.loads(line)
                    got[e["event"]] = e["t"] - t0
        proc.send_signal(signal.SIGINT)  # the app closes its mesh worker on the way out
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if "full_body" not in got:
            raise RuntimeError(
                f"npm-viewer showed no full body in {timeout:.0f} s: {got}; "
                f"stderr: {proc.stderr.read().decode()[-2000:]}"
            )
        return got


def app_section(checkpoint: str, runs: int) -> str:
    rows = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as root:
            cold = launch_app(checkpoint, Path(root))
            warm = launch_app(checkpoint, Path(root))
        rows.append((cold, warm))
        print("cold", cold, "warm", warm, flush=True)

    def med(kind: int, event: str) -> str:
        vals = [r[kind][event] for r in rows]
        return f"{statistics.median(vals):.1f} s ({', '.join(f'{v:.1f}' for v in vals)})"

    load = os.getloadavg()[0]
    return (
        f"{APP_SECTION}\n\n`npm-viewer --checkpoint {Path(checkpoint).name} --screenshot ...` under EGL (Mesa "
        f"software GL), {os.cpu_count()} CPU cores, load avg {load:.1f} at the end; medians of {runs} launches "
        "(each launch in brackets). Cold: empty mesh and checkpoint-info caches; warm: the same caches after a "
        "cold start.\n\n| cache | first frame drawn | first body on screen | full-resolution body |\n"
        "|---|---|---|---|\n"
        + "".join(
            f"| {name} | " + " | ".join(med(k, e) for e in APP_EVENTS) + " |\n"
            for k, name in ((0, "cold"), (1, "warm"))
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "body-v2"))
    p.add_argument("--shape", type=int, default=0, help="shape code index")
    p.add_argument("--resolution", type=int, nargs="+", default=[128, 256])
    p.add_argument("--lipschitz", type=float, default=1.0, help="narrow band L (the viewer's meshes use 1.0)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("--app-runs", type=int, default=3, help="cold + warm launches of the app (0: none)")
    p.add_argument("--app-only", action="store_true", help="measure the app only; replace its section in --out")
    args = p.parse_args()
    if args.app_only:
        section = app_section(args.checkpoint, args.app_runs)
        print(section)
        if args.out:
            old = Path(args.out).read_text() if Path(args.out).exists() else ""
            Path(args.out).write_text(old.split(APP_SECTION)[0].rstrip() + "\n\n" + section)
        return

    out = subprocess.run(
        [sys.executable, "-c", ("import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)")],
        capture_output=True,
        text=True,
        check=True,
    )
    import_torch = float(out.stdout.strip())
    import torch
    import yaml

    from npm_core import layout
    from npm_core.mesh.cache import MeshCache, key_for
    from npm_core.mesh.extract import extract
    from npm_core.models.checkpoint import load_model

    threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    t = time.perf_counter()
    torch.load(layout.checkpoint_stage_path(args.checkpoint, "shape"), weights_only=True)
    codes_s = time.perf_counter() - t
    meta = layout.checkpoint_meta_path(args.checkpoint)
    t = time.perf_counter()
    yaml.safe_load(meta.read_text())
    meta_s = time.perf_counter() - t
    t = time.perf_counter()
    model = load_model(args.checkpoint)
    load_s = time.perf_counter() - t
    code = model.shape_codes[args.shape]
    rows = [
        ("import torch (fresh interpreter)", ms(import_torch), ""),
        ("read the shape codes (torch.load shape.pt)", ms(codes_s), f"{len(model.shape_codes)} shape codes"),
        ("parse meta.yaml (yaml.safe_load)", ms(meta_s), f"{meta.stat().st_size / 1e6:.1f} MB"),
        ("load the checkpoint (load_model)", ms(load_s), "decoders, codes, meta.yaml"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cache = MeshCache(Path(tmp) / "meshes")
        for res in args.resolution:
            t = time.perf_counter()
            key = key_for(args.checkpoint, code.numpy(), res, lipschitz=args.lipschitz, bound=0.5)
            key_s = time.perf_counter() - t
            t = time.perf_counter()
            mesh = extract(model.shape_decoder.sdf_fn(code), res, lipschitz=args.lipschitz)
            extract_s = time.perf_counter() - t
            v, f = mesh.vertices.numpy(), mesh.faces.numpy()
            t = time.perf_counter()
            path = cache.put(key, v, f)
            put_s = time.perf_counter() - t
            cold, warm = [], []
            for _ in range(args.repeats):
                drop_from_page_cache(path)
                t = time.perf_counter()
                got = cache.get(key)
                cold.append(time.perf_counter() - t)
                t = time.perf_counter()
                cache.get(key)
                warm.append(time.perf_counter() - t)
            assert got is not None and (got[0] == v).all() and (got[1] == f).all()
            size = f"{len(v)} verts, {len(f)} faces"
            rows += [
                (f"cache key {res}^3" + (" (hashes shape.pt)" if res == args.resolution[0] else ""), ms(key_s), ""),
                (f"extract {res}^3 (L={args.lipschitz:g}, {mesh.method})", ms(extract_s), size),
                (f"cache write {res}^3", ms(put_s), f"{path.stat().st_size / 1e6:.2f} MB"),
                (f"cache read {res}^3, not in page cache", ms(statistics.median(cold)), size),
                (f"cache read {res}^3, in page cache", ms(statistics.median(warm)), size),
                (f"extract / cache read {res}^3", f"{extract_s / statistics.median(cold):.0f}x", ""),
            ]
    load = os.getloadavg()[0]
    rel = Path(args.checkpoint).resolve()
    what = rel.relative_to(ROOT) if rel.is_relative_to(ROOT) else rel
    text = (
        f"`nice -n 5 python benchmarks/bench_startup.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + "\n\n"
        f"checkpoint: {what}, shape code {args.shape}\n\n"
        f"torch {torch.__version__}, {threads} torch thread(s), {os.cpu_count()} CPU cores, "
        f"load avg {load:.1f} at the end; cache reads: medians of {args.repeats}\n\n"
        "| what | measured | size |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    )
    if args.app_runs:
        text += "\n" + app_section(args.checkpoint, args.app_runs)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
