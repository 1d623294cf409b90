"""Tiled prediction memory benchmark (issue 4): peak RSS of predicting a 16384 x 16384 raster.

1. Generates (seeded, once; cached outside the repository) a 16384 x 16384 single-band float32
   GeoTIFF: tiled 512, DEFLATE, EPSG:3577 at 100 m, a smooth field of random plane waves with
   three nodata discs.
2. Runs :func:`stgeo_kd.raster.tiling.predict_tiled` of a ``DSCNNStudent`` (history 1, channels
   value + observed flag, horizon 3, residual; random weights) over all of it in a *subprocess*
   that reads input windows from the GeoTIFF with rasterio, and takes that subprocess's peak RSS
   from ``os.wait4`` (the kernel's ``ru_maxrss`` of exactly that child), its wall time and its
   throughput in megapixels per second.
3. Checks the output's CRS, transform and shape against the input's and spot-checks four
   windows (one at a corner) against the model run untiled on the window plus its receptive
   radius (equal to the whole-raster prediction there).
4. Does the same for the ``STCNN`` teacher on the top ``--teacher-rows`` rows at full width
   (memory depends on the width, time on the area), unless ``--teacher-rows 0``.

Writes ``benchmarks/results/tiled_memory.json``. Run it niced, one thread::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/tiled_memory.py --threads 1

The input is cached in ``$STGEO_KD_BENCH_CACHE`` (default ``~/.cache/stgeo_kd/bench``, ~0.7 GB);
predictions go to a temporary folder there and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tiled_memory.json"
LIMIT_BYTES = 1.5e9
CRS = "EPSG:3577"  # GDA94 / Australian Albers, like the Melbourne radar stack
PIXEL_M = 100.0
ORIGIN = (1_000_000.0, -3_500_000.0)
NODATA = -9999.0
HORIZON = 3


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stgeo_kd" / "bench"
    return Path(os.environ.get("STGEO_KD_BENCH_CACHE", default))


# ------------------------------------------------------------------------------------ input


def generate(path: Path, size: int, seed: int) -> None:
    """A smooth, seeded field (8 plane waves) with three nodata discs, written 512 rows at a time."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from stgeo_kd._atomic import atomic_path

    rng = np.random.default_rng(seed)
    waves = 8
    wavelength = rng.uniform(size / 32, size / 2, waves)
    angle = rng.uniform(0, np.pi, waves)
    fx, fy = 2 * np.pi * np.cos(angle) / wavelength, 2 * np.pi * np.sin(angle) / wavelength
    phase, amp = rng.uniform(0, 2 * np.pi, waves), rng.uniform(0.5, 1.5, waves)
    discs = [(rng.uniform(0, size), rng.uniform(0, size), size / 24) for _ in range(3)]
    cols = np.arange(size, dtype=np.float64)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32", "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL_M, PIXEL_M), "nodata": NODATA,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate", "bigtiff": "IF_SAFER",
    }  # fmt: skip
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            rows = np.arange(r0, min(r0 + 512, size), dtype=np.float64)
            value = np.zeros((rows.size, size), dtype=np.float32)
            for k in range(waves):  # sin(fx x + fy y + p) = sin(fy y + p) cos(fx x) + cos(fy y + p) sin(fx x)
                a, b = fy[k] * rows + phase[k], fx[k] * cols
                value += (amp[k] * (np.outer(np.sin(a), np.cos(b)) + np.outer(np.cos(a), np.sin(b)))).astype(
                    np.float32
                )
            for cy, cx, radius in discs:
                if rows[0] - radius <= cy <= rows[-1] + radius:
                    inside = (rows[:, None] - cy) ** 2 + (cols[None, :] - cx) ** 2 < radius**2
                    value[inside] = NODATA
            dst.write(value[None], window=Window(0, r0, size, rows.size))
        dst.update_tags(seed=str(seed), generator="benchmarks/tiled_memory.py")


# ------------------------------------------------------------------------------------ child


def build_model(name: str):
    import torch

    from stgeo_kd.models.raster import STCNN, DSCNNStudent

    torch.manual_seed(0)
    make = {"ds_cnn": DSCNNStudent, "st_cnn": STCNN}[name]
    return make(history=1, channels=2, horizon=HORIZON, residual=True).eval()


def geotiff_reader(src, height: int, width: int):
    """``read`` for predict_tiled: (1, 2, h, w) = value (0 where nodata) and observed flag."""
    from rasterio.windows import Window

    def read(row0: int, col0: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((1, 2, h, w), dtype=np.float32)
        r0, r1, c0, c1 = max(row0, 0), min(row0 + h, height), max(col0, 0), min(col0 + w, width)
        if r0 < r1 and c0 < c1:
            data = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
            observed = ~np.ma.getmaskarray(data)
            inner = (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0))
            out[0, 0][inner] = np.where(observed, data.data, 0.0)
            out[0, 1][inner] = observed
        return out

    return read


def vm_hwm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return -1


def child(args: argparse.Namespace) -> None:
    import rasterio
    import torch

    from stgeo_kd.evaluate.cost import count_macs
    from stgeo_kd.raster.tiling import predict_tiled, receptive_radius

    torch.set_num_threads(args.threads)
    model = build_model(args.model)
    macs_per_pixel = count_macs(model, torch.zeros(1, 1, 2, 64, 64)) / 64**2
    radius = receptive_radius(model, (1, 2, 33, 33))
    marks: dict[str, float] = {}

    def progress(fraction: float) -> None:
        if fraction >= 0.95 and "predicted" not in marks:
            marks["predicted"] = time.perf_counter()

    with rasterio.open(args.input) as src:
        height, width = args.rows or src.height, src.width
        read = geotiff_reader(src, height, width)
        t0 = time.perf_counter()
        predict_tiled(
            model, read, height, width, args.output, crs=src.crs, transform=src.transform, nodata=src.nodata,
            band_descriptions=[f"+{k} step" for k in range(1, HORIZON + 1)], units="scaled value",
            tile=args.tile, batch_tiles=args.batch_tiles, progress=progress,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        hwm_after_predict = vm_hwm_bytes()
        # spot checks: the model on a window plus its receptive radius, clipped at the raster's
        # edges, equals the whole-raster prediction on the window
        worst, n = 0.0, 200
        with rasterio.open(args.output) as out:
            for r, c in [(0, 0), (height // 2, width // 3), (height - n - 7, width // 2 + 11), (123, width - n)]:
                r0, c0 = max(r - radius, 0), max(c - radius, 0)
                r1, c1 = min(r + n + radius, height), min(c + n + radius, width)
                with torch.inference_mode():
                    pred = model(torch.from_numpy(read(r0, c0, r1 - r0, c1 - c0))[None])[0].numpy()
                want = pred[:, r - r0 : r - r0 + n, c - c0 : c - c0 + n]
                got = out.read(window=rasterio.windows.Window(c, r, n, n))
                worst = max(worst, float(np.abs(got - want).max()))
    report = {
        "model": args.model,
        "height": height,
        "width": width,
        "megapixels": height * width / 1e6,
        "tile": args.tile,
        "batch_tiles": args.batch_tiles,
        "receptive_radius": radius,
        "macs_per_pixel": macs_per_pixel,
        "blend": 16,
        "wall_seconds": wall,
        "predict_seconds": marks.get("predicted", t0) - t0,
        "cog_seconds": wall - (marks.get("predicted", t0) - t0),
        "megapixels_per_second": height * width / 1e6 / wall,
        "vm_hwm_bytes_after_predict": hwm_after_predict,
        "spot_check_max_abs_diff": worst,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.report).write_text(json.dumps(report, indent=2))


# ------------------------------------------------------------------------------------ parent


def run_child(model: str, input_path: Path, work: Path, args: argparse.Namespace, rows: int) -> dict:
    import rasterio

    out, report = work / f"{model}.tif", work / f"{model}.json"
    cmd = [
        sys.executable, __file__, "--child", "--model", model, "--input", str(input_path), "--output", str(out),
        "--report", str(report), "--threads", str(args.threads), "--tile", str(args.tile),
        "--batch-tiles", str(args.batch_tiles), "--rows", str(rows),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print(f"[tiled_memory] {model}: {' '.join(cmd[1:])}", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{model} run failed with exit code {proc.returncode}")
    result = json.loads(report.read_text())
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux: kilobytes
    result["peak_rss_mib"] = round(result["peak_rss_bytes"] / 2**20, 1)
    result["under_limit"] = result["peak_rss_bytes"] < LIMIT_BYTES
    with rasterio.open(input_path) as src, rasterio.open(out) as dst:
        result["output"] = {
            "crs_equal": dst.crs == src.crs,
            "transform_equal": dst.transform == src.transform,
            "shape": [dst.count, dst.height, dst.width],
            "shape_equal": (dst.height, dst.width) == (rows or src.height, src.width),
            "nodata": dst.nodata,
            "block_shapes": [list(b) for b in dst.block_shapes],
            "compression": dst.compression.name if dst.compression else None,
            "layout": dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT"),
            "overviews": dst.overviews(1),
            "descriptions": list(dst.descriptions),
            "file_bytes": out.stat().st_size,
        }
    result["output"]["grid_equal"] = all(result["output"][k] for k in ("crs_equal", "transform_equal", "shape_equal"))
    out.unlink()
    print(f"[tiled_memory] {model}: {json.dumps(result)}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=16384, help="raster side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the prediction subprocess")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch-tiles", type=int, default=4)
    parser.add_argument("--teacher-rows", type=int, default=1024, help="rows for the STCNN run (0: skip)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the generated input")
    parser.add_argument("--results", type=Path, default=RESULTS)
    # child mode (internal)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    import rasterio

    cache = args.cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    input_path = cache / f"smooth_{args.size}_seed{args.seed}.tif"
    generated_seconds = None
    if not input_path.exists():
        print(f"[tiled_memory] generating {input_path}", flush=True)
        t0 = time.perf_counter()
        generate(input_path, args.size, args.seed)
        generated_seconds = time.perf_counter() - t0
    runs = {}
    work = Path(tempfile.mkdtemp(prefix="tiled_memory_", dir=cache))
    try:
        runs["ds_cnn"] = run_child("ds_cnn", input_path, work, args, 0)
        if args.teacher_rows:
            runs["st_cnn"] = run_child("st_cnn", input_path, work, args, min(args.teacher_rows, args.size))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with rasterio.open(input_path) as src:
        input_info = {
            "path": str(input_path),
            "shape": [src.count, src.height, src.width],
            "crs": src.crs.to_string(),
            "transform": list(src.transform)[:6],
            "block_shapes": [list(b) for b in src.block_shapes],
            "compression": src.compression.name if src.compression else None,
            "file_bytes": input_path.stat().st_size,
            "generated_seconds": generated_seconds,
        }
    summary = {
        "command": "OMP_NUM_THREADS={t} nice -n 15 .venv/bin/python benchmarks/tiled_memory.py {a}".format(
            t=args.threads, a=" ".join(sys.argv[1:])
        ).strip(),
        "limit_bytes": LIMIT_BYTES,
        "passed": all(r["under_limit"] and r["output"]["grid_equal"] for r in runs.values()),
        "input": input_info,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if not summary["passed"]:
        raise SystemExit("tiled memory benchmark: a check failed (see above)")


if __name__ == "__main__":
    main()
