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

    nice -n 5 python benchmarks/bench_startup.py [--checkpoint DIR] [--resolution 128 256] [--repeats 5]
        [--out benchmarks/results/startup_cpu.md]
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "body-v1"))
    p.add_argument("--shape", type=int, default=0, help="shape code index")
    p.add_argument("--resolution", type=int, nargs="+", default=[128, 256])
    p.add_argument("--lipschitz", type=float, default=1.0, help="narrow band L (the viewer's meshes use 1.0)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args()

    out = subprocess.run([sys.executable, "-c", ("import time; t = time.perf_counter(); import torch; "
                                                 "print(time.perf_counter() - t)")], capture_output=True, text=True, check=True)
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
    rows = [("import torch (fresh interpreter)", ms(import_torch), ""),
            ("read the shape codes (torch.load shape.pt)", ms(codes_s), f"{len(model.shape_codes)} shape codes"),
            ("parse meta.yaml (yaml.safe_load)", ms(meta_s), f"{meta.stat().st_size / 1e6:.1f} MB"),
            ("load the checkpoint (load_model)", ms(load_s), "decoders, codes, meta.yaml")]
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
    text = (f"`nice -n 5 python benchmarks/bench_startup.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + "\n\n"
            f"checkpoint: {what}, shape code {args.shape}\n\n"
            f"torch {torch.__version__}, {threads} torch thread(s), {os.cpu_count()} CPU cores, "
            f"load avg {load:.1f} at the end; cache reads: medians of {args.repeats}\n\n"
            "| what | measured | size |\n|---|---|---|\n"
            + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
