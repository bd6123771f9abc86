"""Stylize images with a MetaStyle network (an adapted model, or theta for the style-neutral image).

    python -m metastyle_jax.stylize --model CKPT|--style NAME --content IMAGE_OR_DIR --out PATH [--max-side N]
        [--preserve-color] [--tile auto|off|N] [--overlap 128] [--stats-side 1024]

A folder is processed recursively, images of the same size batched through one compiled function;
the outputs mirror the folder's layout under --out as PNG files. Images over TILE_ABOVE_PIXELS pixels
(or over --tile N px on a side) are stylized in overlapping tiles in bounded memory (see `tiling`).
--preserve-color keeps the content's colours, taking only the stylized luminance (see `color`).

    python -m metastyle_jax.stylize --model CKPT --video IN.mp4|FRAMES_DIR --out OUT.mp4|FRAMES_DIR

stylizes a video frame by frame (see `video`).
"""

import sys
import time
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import checkpoints, checks, cli, color, data, images, onednn, outputs, tiling, transformer
from metastyle_jax.errors import UserError

MAX_SIDE = checks.MAX_SIDE  # hard cap on an output's longer side
TILE_ABOVE_PIXELS = 2048 * 2048  # --tile auto: whole images up to this many pixels, tiles above


def stylize(params, pictures, batch_size=8, preserve_color=False, dtype="float32"):
    """Stylize a list of (H_i, W_i, 3) images; images of equal shape share batches. Returns a list.

    preserve_color: keep each picture's colours, take only the stylized luminance (`color.preserve_color`).
    dtype: the convolutions' compute dtype ("float32", or "bfloat16": `onednn.resolve_dtype` chooses).
    """
    by_shape = defaultdict(list)
    for i, img in enumerate(pictures):
        by_shape[img.shape].append(i)
    out = [None] * len(pictures)
    for idx in by_shape.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            batch = jnp.stack([pictures[i] for i in chunk])
            result = transformer.stylize_batch(params, batch, dtype)
            result = np.asarray(color.preserve_color(result, batch) if preserve_color else result)
            for i, r in zip(chunk, result):
                out[i] = r
    return out


def tile_size(shape, tile="auto"):
    """The tile side to stylize an (H, W, 3) image with, or None for the whole image at once.

    tile: "auto" (tiles of `tiling.DEFAULT_TILE` above TILE_ABOVE_PIXELS pixels), "off", or a side N (tiles
    whenever the image does not fit in one N x N tile).
    """
    if tile == "off":
        return None
    if tile == "auto":
        return tiling.DEFAULT_TILE if shape[0] * shape[1] > TILE_ABOVE_PIXELS else None
    return tile if max(shape[:2]) > tile else None


def parse_tile(value):
    """--tile: "auto", "off" or a positive int."""
    if value in ("auto", "off"):
        return value
    try:
        return int(value)
    except ValueError:
        raise cli.argparse.ArgumentTypeError(f"expected auto, off or a number of pixels, got {value!r}") from None


def check_tiling(tile, overlap, stats_side):
    """One-line errors for a tile (px, "auto" or "off") or overlap too small, a bad statistics side."""
    min_overlap = 2 * tiling.RECEPTIVE_RADIUS
    if overlap < min_overlap:
        raise UserError(f"--overlap {overlap} is under twice the network's receptive radius "
                        f"({tiling.RECEPTIVE_RADIUS} px): tiles would show seams; use at least {min_overlap}")
    if isinstance(tile, int) and (tile < 2 * overlap or tile % tiling.ALIGN):
        raise UserError(f"--tile {tile} must be a multiple of {tiling.ALIGN} and at least twice the "
                        f"overlap ({2 * overlap} px)")
    if not 16 <= stats_side <= MAX_SIDE:
        raise UserError(f"--stats-side must be between 16 and {MAX_SIDE} px")


def shipped_style(name):
    """The directory of the adapted model shipped for painting `name` (one of data.PAINTINGS); a UserError
    naming the shipped styles if there is none."""
    shipped = [n for n in data.PAINTINGS if n in checkpoints.shipped_models()]
    if name in shipped:
        return checkpoints.MODELS_DIR / name
    how = (f"the shipped styles are {', '.join(shipped)}" if shipped else "this version ships no adapted styles")
    raise UserError(f"--style {name}: {how}; adapt one with `python -m metastyle_jax.adapt --style "
                    f"embedded:{name if name in data.PAINTINGS else 'NAME'} --out DIR` and pass --model DIR")


def model_path(style=None, model=None):
    """The checkpoint directory of shipped style `style` or of `model` (a path or a shipped model's name); None
    for an untrained network."""
    if style:
        return shipped_style(style)
    return checkpoints.resolve_model(model) if model else None


def load_params(model, seed=0):
    """Params and meta from a model checkpoint; with no model, an untrained network (with a warning)."""
    if model is None:
        print("warning: no --model given: using an UNTRAINED network (random weights); its output is "
              "not a stylization. Adapt one with `python -m metastyle_jax.adapt`.", file=sys.stderr)
        return transformer.init_params(jax.random.key(seed)), {"kind": "untrained"}
    return checkpoints.load_model(model)


def plan_outputs(content, out):
    """[(input, output path)] for a file, a folder of images, `embedded:NAME` (one embedded image) or
    `embedded` (the embedded photos, into folder `out` as NAME.png)."""
    if content == data.EMBEDDED:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} must be a folder for --content embedded")
        return [(f"{data.EMBEDDED_PREFIX}{name}", out / f"{name}.png") for name in data.EMBEDDED_PHOTOS]
    if content.startswith(data.EMBEDDED_PREFIX):
        checks.check_image_suffix(out)
        return [(content, Path(out))]
    content, out = Path(content), Path(out)
    if not content.exists():
        raise UserError(f"content not found: {content}")
    if content.is_dir():
        files = images.list_images(content)
        if not files:
            raise UserError(f"no images found in {content}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} must be a folder when --content is a folder")
        targets = [(out / Path(f).relative_to(content)).with_suffix(".png") for f in files]
        clash = {t for t in targets if targets.count(t) > 1}  # x.png, x.jpg: each keeps its suffix, x.jpg.png
        return [(f, t.with_name(Path(f).name + ".png") if t in clash else t) for f, t in zip(files, targets)]
    checks.check_image_suffix(out)
    return [(content, out)]


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.stylize", description=__doc__.splitlines()[0])
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
    p.add_argument("--size", "--max-side", dest="size", type=int, metavar="N",
                   help=f"downscale so the longer side is at most N px (default: keep the size; at most {MAX_SIDE})")
    p.add_argument("--preserve-color", action="store_true",
                   help="keep the content's colours: take only the stylized luminance (YCbCr, BT.601)")
    p.add_argument("--tile", type=parse_tile, help=f"auto (default: tiles of {tiling.DEFAULT_TILE} px above "
                   f"{TILE_ABOVE_PIXELS:,} pixels), off (whole images), or N: tiles of N px")
    p.add_argument("--overlap", type=int, help=f"pixels neighbouring tiles share (default {tiling.DEFAULT_OVERLAP}, "
                   f"at least {2 * tiling.RECEPTIVE_RADIUS})")
    p.add_argument("--stats-side", type=int, help="tiles share the instance-norm statistics of the image "
                   f"downscaled to this longer side (default {tiling.DEFAULT_STATS_SIDE})")
    p.add_argument("--batch-size", type=int, default=8, help="images per compiled call (default 8; tiles go one at a time)")
    p.add_argument("--dtype", choices=onednn.DTYPES, default="auto", help="the convolutions of whole images: "
                   "float32, bfloat16 (float32 accumulation, oneDNN on the CPU) or auto (default: bfloat16 on CPUs "
                   "with AMX); tiles and video frames stay float32")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = p.parse_args(argv)
    if args.size is not None:
        checks.check_side("--max-side/--size", args.size)
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.video is not None:
        if any(v is not None for v in (args.tile, args.overlap, args.stats_side)):
            raise UserError("--tile, --overlap and --stats-side apply to images, not to --video")
        return stylize_video(args)
    tile = "auto" if args.tile is None else args.tile
    overlap = tiling.DEFAULT_OVERLAP if args.overlap is None else args.overlap
    stats_side = tiling.DEFAULT_STATS_SIDE if args.stats_side is None else args.stats_side
    check_tiling(tile, overlap, stats_side)

    plan = plan_outputs(args.content, args.out)
    model = model_path(args.style, args.model)
    outputs.check([dst for _, dst in plan], [src for src, _ in plan] + [model], args.force)
    params, meta = load_params(model)
    dtype, note = onednn.resolve_dtype(args.dtype)

    written, skipped, tiled, seconds = stylize_files(
        params, plan, args.size, tile=tile, overlap=overlap, stats_side=stats_side,
        batch_size=args.batch_size, preserve_color=args.preserve_color, dtype=dtype,
        on_start=lambda: note and print(note, file=sys.stderr))
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    where = written[0] if len(written) == 1 else args.out
    print(f"stylized {len(written)} image(s)" + (f" ({tiled} in tiles)" if tiled else "") +
          f" with the {meta.get('kind')} network in {seconds:.2f} s "
          f"(compilation included) -> {where}" + (f"; skipped {len(skipped)}" if skipped else ""))


def stylize_files(params, plan, max_side=None, *, tile="auto", overlap=tiling.DEFAULT_OVERLAP,
                  stats_side=tiling.DEFAULT_STATS_SIDE, batch_size=8, preserve_color=False, dtype="float32",
                  on_start=None):
    """Stylize each (source, destination) path pair of `plan` (`plan_outputs`) and write the destinations.

    Sources are downscaled to `max_side`; images that `tile_size(shape, tile)` sends to tiles go through
    `tiling.stylize_tiled` (float32), the rest through `stylize` in batches, in `dtype`; `on_start()` is called
    once the sources are read, before stylization. An unreadable source is skipped unless it is
    the only one (then its UserError is raised). Returns (destinations written, skipped "source: reason" lines,
    number stylized in tiles, seconds of stylization, compilation included)."""
    loaded, skipped = [], []
    for src, dst in plan:
        try:
            loaded.append((load_content(src, max_side), dst))
        except UserError as e:
            if len(plan) == 1:
                raise
            skipped.append(f"{src}: {e}")
    if not loaded:
        raise UserError(f"none of the {len(plan)} images could be read")
    if on_start is not None:
        on_start()
    t0 = time.perf_counter()
    pictures = [img for img, _ in loaded]
    tiles = [tile_size(img.shape, tile) for img in pictures]
    whole = [i for i, t in enumerate(tiles) if t is None]
    results = dict(zip(whole, stylize(params, [pictures[i] for i in whole], batch_size, preserve_color, dtype)))
    for i, side in enumerate(tiles):
        if side is not None:
            styled = tiling.stylize_tiled(params, pictures[i], side, overlap, stats_side, progress=True)
            results[i] = color.preserve_color(styled, pictures[i]) if preserve_color else styled
    seconds = time.perf_counter() - t0
    for i, (_, dst) in enumerate(loaded):
        images.save_image(dst, results[i])
    return [dst for _, dst in loaded], skipped, len(pictures) - len(whole), seconds


def load_content(path, max_side):
    """A content image, downscaled to `max_side`; a UserError if its longer side is then over MAX_SIDE."""
    image = data.load_image_spec(str(path), max_side=max_side)
    if max(image.shape[:2]) > MAX_SIDE:
        raise UserError(f"{path}: {image.shape[1]}x{image.shape[0]} is over {MAX_SIDE} px on a side: "
                        f"pass --max-side {MAX_SIDE} or less")
    return image


def stylize_video(args):
    """The --video path of `main`: frames through one compiled function, then a temporal-consistency line."""
    from metastyle_jax import video

    if args.fps is not None and not args.fps > 0:
        raise UserError("--fps must be positive")
    video.output_kind(args.out)
    if not Path(args.video).exists():
        raise UserError(f"video not found: {args.video}")
    model = model_path(args.style, args.model)
    outputs.check([args.out], [args.video, model], args.force)
    params, meta = load_params(model)
    t0 = time.perf_counter()
    stats = video.stylize_video(params, args.video, args.out, args.size, args.batch_size, args.fps, args.force,
                                preserve_color=args.preserve_color)
    seconds = time.perf_counter() - t0
    print(f"stylized {stats['frames']} frames ({stats['size'][0]}x{stats['size'][1]}, {stats['fps']:g} fps) with "
          f"the {meta.get('kind')} network in {seconds:.1f} s ({stats['frames'] / seconds:.1f} frames/s, "
          f"compilation included) -> {args.out}")
    print(video.summary(stats))


if __name__ == "__main__":
    cli.run(main)
