"""Peak memory and wall time of `stylize --max-side N`, tiled and whole-image, at 1024, 2048 and 4096 px.

    python -m benchmarks.highres [--model runs/the_scream_128] [--sizes 1024 2048 4096] [--whole-max 2048]
        [--figure docs/highres_tiles.png]

The content is scikit-image's astronaut (512 x 512) upscaled (Lanczos) to the largest size and saved as a
PNG; every run is a fresh `python -m metastyle_jax.stylize --content BIG.png --max-side N --tile 512|off`
subprocess, whose peak resident memory comes from os.wait4 (ru_maxrss) and whose wall time covers the whole
command (start-up, loading, compilation, stylization, saving). Whole-image runs go up to --whole-max, and
further only while the memory extrapolated from the last one (x4 per doubling) stays under half the free
memory. Where both exist, the tiled output is compared with the whole-image one. Above --full-max the tiled
run is measured on its first --tiles tiles only (`python -m benchmarks.highres --partial ...`: the same
loading, statistics and tile loop as the CLI, with every image-sized array allocated), and its total time
extrapolated from the per-tile time; the peak memory is measured, since every tile has the same working
set. The load average is recorded: the machine may be shared. --figure writes a crop at a tile corner: the whole image, tiles with
shared statistics, tiles with their own statistics (stylized photos only). Writes
benchmarks/results/highres_<platform>.json.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import checkpoints, data, images, tiling

REPO = Path(__file__).resolve().parents[1]


def run_stylize(args_list):
    """Run the stylize CLI in a fresh process: (wall seconds, peak RSS in MiB, its stdout's last line)."""
    cmd = [sys.executable, "-m", "metastyle_jax.stylize"] + args_list
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, out.strip().splitlines()[-1]


def partial(src, model, side, tile, count):
    """In this (fresh) process: what `stylize --max-side side --tile tile` does, for its first `count` tiles.
    Prints one JSON line: load and statistics seconds, per-tile seconds (first includes compilation), tiles."""
    import json

    params, _ = checkpoints.load_model(model)
    t0 = time.perf_counter()
    image = images.load_image(src, max_side=side)
    th, tw, origins = tiling.plan(image.shape, tile, tiling.DEFAULT_OVERLAP)
    stats = jax.block_until_ready(tiling.shared_stats(params, image))
    padded = tiling.pad_to_multiple(image)
    out, total = np.zeros(padded.shape, np.float32), np.zeros(padded.shape[:2] + (1,), np.float32)
    setup = time.perf_counter() - t0
    seconds = []
    for y, x in origins[:count]:
        t1 = time.perf_counter()
        styled = np.asarray(tiling.apply_with_stats(params, padded[None, y:y + th, x:x + tw], stats))[0]
        out[y:y + th, x:x + tw] += styled
        total[y:y + th, x:x + tw] += 1.0
        seconds.append(time.perf_counter() - t1)
    print(json.dumps({"setup_s": setup, "tile_s": seconds, "tiles": len(origins)}))


def run_partial(src, model, side, tile, count):
    """`partial` in a fresh process: (its JSON result, peak RSS in MiB)."""
    import json

    cmd = [sys.executable, "-m", "benchmarks.highres", "--partial", str(src), "--model", model, "--sizes",
           str(side), "--tile", str(tile), "--tiles", str(count)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def free_mib():
    """MemAvailable from /proc/meminfo, MiB."""
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 1024


def figure(model, src, whole_png, tiled_png, path, tile, crop=256):
    """Crops around a tile corner: whole image | shared-statistics tiles | own-statistics tiles."""
    params, _ = checkpoints.load_model(model)
    whole, tiled = images.load_image(whole_png), images.load_image(tiled_png)
    own = tiling.own_stats_tiles(params, images.load_image(src, max_side=whole.shape[0])[:2 * tile, :2 * tile], tile)
    c = tile  # the corner of four own-statistics tiles; the blended tiles' first overlap is [tile - 128, tile)
    cut = lambda im: im[c - crop // 2:c + crop // 2, c - crop // 2:c + crop // 2]
    images.save_image(path, images.hstack([cut(whole), cut(tiled), cut(own)], pad=4))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "runs" / "the_scream_128"), help="an adapted checkpoint")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--tile", type=int, default=tiling.DEFAULT_TILE)
    p.add_argument("--whole-max", type=int, default=2048, help="largest size always tried whole")
    p.add_argument("--work", default=str(REPO / "runs" / "highres"), help="folder for the images")
    p.add_argument("--figure", help="write the crop comparison PNG here (needs a whole and a tiled run)")
    p.add_argument("--full-max", type=int, default=2048, help="largest size run in full when tiled")
    p.add_argument("--tiles", type=int, default=6, help="tiles timed above --full-max")
    p.add_argument("--partial", help=argparse.SUPPRESS)
    p.add_argument("--name", help="result file name (default highres_<platform>)")
    args = p.parse_args()
    if args.partial:
        return partial(args.partial, args.model, args.sizes[0], args.tile, args.tiles)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    top = max(args.sizes)
    src = work / f"astronaut_{top}.png"
    if not src.exists():
        big = images.resize(images.as_float_rgb(data.skimage_image("astronaut")), size=(top, top))
        images.save_image(src, big)
    runs, predicted = [], None
    for n in sorted(args.sizes):
        for mode in ("tiled", "whole"):
            row = {"max_side": n, "mode": mode, "pixels": n * n}
            fits = predicted is not None and predicted < free_mib() / 2
            if mode == "whole" and n > args.whole_max and (not fits or n > args.full_max):
                row["skipped"] = (f"over --whole-max {args.whole_max}" + (f" and --full-max {args.full_max}"
                                  if n > args.full_max else "") + (f"; predicted peak {predicted:.0f} MiB (x4 the "
                                  f"last whole run), available {free_mib():.0f} MiB" if predicted else ""))
                runs.append(row)
                print(row, flush=True)
                continue
            if mode == "tiled" and n > args.full_max:
                load_before = os.getloadavg()[0]
                t0 = time.perf_counter()
                result, rss = run_partial(src, args.model, n, args.tile, args.tiles)
                per_tile = float(np.median(result["tile_s"][1:]))
                row.update(extrapolated=True, tiles_timed=len(result["tile_s"]), tiles=result["tiles"],
                           peak_rss_mib=rss, process_wall_s=time.perf_counter() - t0, setup_s=result["setup_s"],
                           first_tile_incl_compilation_s=result["tile_s"][0], per_tile_median_s=per_tile,
                           stylize_s_extrapolated=result["setup_s"] + result["tile_s"][0]
                           + per_tile * (result["tiles"] - 1),
                           load_1min_before=load_before, load_1min_after=os.getloadavg()[0], tile=args.tile,
                           overlap=tiling.DEFAULT_OVERLAP, stats_side=tiling.DEFAULT_STATS_SIDE)
                runs.append(row)
                print(row, flush=True)
                continue
            out = work / f"{mode}_{n}.png"
            flags = ["--tile", str(args.tile)] if mode == "tiled" else ["--tile", "off"]
            load_before = os.getloadavg()[0]
            wall, rss, line = run_stylize(["--model", args.model, "--content", str(src), "--out", str(out),
                                           "--max-side", str(n), "--force"] + flags)
            row.update(wall_s=wall, peak_rss_mib=rss, cli=line, load_1min_before=load_before,
                       load_1min_after=os.getloadavg()[0])
            if mode == "tiled":
                origins = tiling.plan((n, n), args.tile, tiling.DEFAULT_OVERLAP)[2]
                row.update(tiles=len(origins), tile=args.tile, overlap=tiling.DEFAULT_OVERLAP,
                           stats_side=tiling.DEFAULT_STATS_SIDE)
            else:
                predicted = rss * 4
                tiled = images.load_image(work / f"tiled_{n}.png")
                diff = np.abs(tiled - images.load_image(out))
                row.update(tiled_vs_whole_mean_abs=float(diff.mean()), tiled_vs_whole_max_abs=float(diff.max()),
                           tiled_vs_whole_p99_abs=float(np.quantile(diff, 0.99)))
            runs.append(row)
            print(row, flush=True)
    if args.figure:
        n = max(r["max_side"] for r in runs if r["mode"] == "whole" and "skipped" not in r)
        figure(args.model, src, work / f"whole_{n}.png", work / f"tiled_{n}.png", args.figure, args.tile)
    figures = {
        "what": "python -m metastyle_jax.stylize --max-side N --tile 512|off in a fresh process per run; peak RSS "
                "(os.wait4 ru_maxrss) and wall time of the whole command (start-up, checkpoint and image loading, "
                "compilation, stylization, PNG saving)",
        "model": args.model, "content": f"scikit-image astronaut 512x512 upscaled (Lanczos) to {top} px, PNG",
        "receptive_radius_px": tiling.receptive_radius(), "figure": args.figure, "runs": runs,
        "note": "tiled_vs_whole compares the saved 8-bit PNGs (values in [0, 1]); tiles share the instance-norm "
                f"statistics of the image at {tiling.DEFAULT_STATS_SIDE} px, so at {tiling.DEFAULT_STATS_SIDE} px "
                "and below the difference is rounding only",
    }
    path = write_result(args.name or f"highres_{jax.devices()[0].platform}", figures)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
