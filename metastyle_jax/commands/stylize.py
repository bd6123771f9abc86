"""`python -m metastyle_jax.stylize`: stylize images, a folder or a video (`metastyle_jax.stylize`, `video`)."""

import argparse
import sys
import time
from pathlib import Path

from metastyle_jax import checkpoints, checks, data, onednn, outputs, stylize, tiling, transformer
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError


def parse_tile(value):
    """--tile: "auto", "off" or a positive int."""
    if value in ("auto", "off"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a number of pixels, got {value!r}") from None


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.stylize", description=stylize.__doc__.splitlines()[0])
    network = p.add_mutually_exclusive_group()
    network.add_argument("--model", help="model checkpoint (adapted, or theta for the style-neutral image) or a "
                         "shipped model's name; none: an untrained network")
    network.add_argument("--style", choices=data.PAINTINGS, help="a shipped style: the model adapted to that "
                         "painting, shipped in the package")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--content", help="an image, a folder of images, embedded:NAME, or embedded (the "
                        "embedded photos)")
    source.add_argument("--video", help="a video file, or a folder of frames, to stylize frame by frame")
    p.add_argument("--out", required=True, help="output image (.png/.jpg), or a folder for a folder; with --video "
                   "a video file (.mp4, .mkv, .mov, .avi) or a folder of frames")
    p.add_argument("--fps", type=float, help="with --video: the output frame rate (default: the input video's, "
                   "25 for a folder of frames)")
    p.add_argument("--size", "--max-side", dest="size", type=int, metavar="N", help="downscale so the longer "
                   f"side is at most N px (default: keep the size; at most {checks.MAX_SIDE})")
    p.add_argument("--preserve-color", action="store_true",
                   help="keep the content's colours: take only the stylized luminance (YCbCr, BT.601)")
    p.add_argument("--tile", type=parse_tile, help=f"auto (default: tiles of {tiling.DEFAULT_TILE} px above "
                   f"{stylize.TILE_ABOVE_PIXELS:,} pixels), off (whole images), or N: tiles of N px")
    p.add_argument("--overlap", type=int, help=f"pixels neighbouring tiles share (default {tiling.DEFAULT_OVERLAP}, "
                   f"at least twice the model's receptive radius: {2 * tiling.receptive_radius()}, "
                   f"{2 * tiling.receptive_radius('antialiased')} antialiased)")
    p.add_argument("--stats-side", type=int, help="tiles share the instance-norm statistics of the image "
                   f"downscaled to this longer side (default {tiling.DEFAULT_STATS_SIDE}); given, whole images "
                   "larger than it take theirs from that copy too (default: their own)")
    p.add_argument("--phases", type=int, choices=sorted(transformer.PHASES),
                   help="average each output over this many shifts of the image against the network's 4-pixel "
                   "grid, which removes the fine lattice locked to it, at as many times the time (default: "
                   + ", ".join(f"{n} for {r} networks" for r, n in transformer.DEFAULT_PHASES.items())
                   + "; 1: the network alone)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="images per compiled call (default 8; tiles go one at a time)")
    p.add_argument("--dtype", choices=onednn.DTYPES, default="auto", help="the convolutions of whole images: "
                   "float32, bfloat16 (float32 accumulation, oneDNN on the CPU) or auto (default: bfloat16 on CPUs "
                   "with AMX); tiles and video frames stay float32")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = p.parse_args(argv)
    if args.size is not None:
        checks.check_side("--max-side/--size", args.size)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.video is not None and any(v is not None for v in (args.tile, args.overlap, args.stats_side)):
        raise UserError("--tile, --overlap and --stats-side apply to images, not to --video")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.video is not None:
        return _video(args)
    tile = "auto" if args.tile is None else args.tile
    overlap = tiling.DEFAULT_OVERLAP if args.overlap is None else args.overlap
    stats_side = tiling.DEFAULT_STATS_SIDE if args.stats_side is None else args.stats_side
    model = stylize.model_path(args.style, args.model)
    resampling = checkpoints.resampling(checkpoints.read_meta(model)) if model else "nearest"
    stylize.check_tiling(tile, overlap, stats_side, resampling)
    phases = transformer.phases_for(resampling, args.phases)

    plan = stylize.plan_outputs(args.content, args.out)
    outputs.check([dst for _, dst in plan], [src for src, _ in plan] + [model], args.force)
    params, meta = stylize.load_params(model)
    dtype, note = onednn.resolve_dtype(args.dtype)
    written, skipped, tiled, seconds = stylize.stylize_files(
        params, plan, args.size, tile=tile, overlap=overlap, stats_side=stats_side,
        whole_stats_side=args.stats_side, batch_size=args.batch_size, preserve_color=args.preserve_color, dtype=dtype,
        on_start=lambda: note and print(note, file=sys.stderr), resampling=resampling, phases=phases)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    where = written[0] if len(written) == 1 else args.out
    print(f"stylized {len(written)} image(s)" + (f" ({tiled} in tiles)" if tiled else "") +
          f" with the {meta.get('kind')} network" + (f" averaged over {phases} grid phases" if phases > 1 else "") +
          f" in {seconds:.2f} s "
          f"(compilation included) -> {where}" + (f"; skipped {len(skipped)}" if skipped else ""))


def _video(args):
    """--video: frames through one compiled function (`video.stylize_video`), then a temporal-consistency line."""
    from metastyle_jax import video

    if args.fps is not None and not args.fps > 0:
        raise UserError("--fps must be positive")
    video.output_kind(args.out)
    if not Path(args.video).exists():
        raise UserError(f"video not found: {args.video}")
    model = stylize.model_path(args.style, args.model)
    outputs.check([args.out], [args.video, model], args.force)
    params, meta = stylize.load_params(model)
    t0 = time.perf_counter()
    stats = video.stylize_video(params, args.video, args.out, args.size, args.batch_size, args.fps, args.force,
                                preserve_color=args.preserve_color, resampling=checkpoints.resampling(meta),
                                phases=args.phases)
    seconds = time.perf_counter() - t0
    print(f"stylized {stats['frames']} frames ({stats['size'][0]}x{stats['size'][1]}, {stats['fps']:g} fps) with "
          f"the {meta.get('kind')} network in {seconds:.1f} s ({stats['frames'] / seconds:.1f} frames/s, "
          f"compilation included) -> {args.out}")
    print(video.summary(stats))
