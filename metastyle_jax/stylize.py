"""Stylize images with a MetaStyle network (an adapted model, or theta for the style-neutral image).

    python -m metastyle_jax.stylize --model CKPT|--style NAME --content IMAGE_OR_DIR --out PATH [--max-side N]
        [--preserve-color] [--tile auto|off|N] [--overlap 128] [--stats-side 1024] [--phases N]

A folder is processed recursively, images of the same size batched through one compiled function;
the outputs mirror the folder's layout under --out as PNG files. Images over TILE_ABOVE_PIXELS pixels
(or over --tile N px on a side) are stylized in overlapping tiles in bounded memory (see `tiling`).
--preserve-color keeps the content's colours, taking only the stylized luminance (see `color`). --phases averages
each output over shifts against the network's 4-pixel grid, which cancels the lattice locked to it (`transformer`).

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

from metastyle_jax import checkpoints, checks, color, data, images, tiling, transformer
from metastyle_jax.errors import UserError

MAX_SIDE = checks.MAX_SIDE  # hard cap on an output's longer side
TILE_ABOVE_PIXELS = 2048 * 2048  # --tile auto: whole images up to this many pixels, tiles above


def stylize(params, pictures, batch_size=8, preserve_color=False, dtype="float32", resampling="nearest",
            stats_side=None, phases=None):
    """Stylize a list of (H_i, W_i, 3) images; images of equal shape share batches. Returns a list.

    preserve_color: keep each picture's colours, take only the stylized luminance (`color.preserve_color`).
    dtype: the convolutions' compute dtype ("float32", or "bfloat16": `onednn.resolve_dtype` chooses).
    resampling: the model's (`checkpoints.resampling`). stats_side: the instance norms of a picture larger
    than that (longer side) take their statistics from its copy downscaled to it (`tiling.shared_stats`);
    None: from the picture itself. phases: average each output over that many shifts of the picture against the
    network's 4-pixel grid (`transformer.PHASES`: 1, 2, 4 or 16), which removes the lattice locked to it; None:
    `transformer.DEFAULT_PHASES` of the network; 1: the network alone.
    """
    phases = transformer.phases_for(resampling, phases)
    by_shape = defaultdict(list)
    for i, img in enumerate(pictures):
        by_shape[img.shape].append(i)
    out = [None] * len(pictures)
    for idx in by_shape.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            batch = jnp.stack([pictures[i] for i in chunk])
            if stats_side is not None and max(batch.shape[1:3]) > stats_side:
                stats = jax.tree_util.tree_map(lambda *s: jnp.concatenate(s), *[
                    tiling.shared_stats(params, pictures[i], stats_side, resampling) for i in chunk])
                result = tiling.apply_with_stats(params, batch, stats, resampling, dtype, phases)
            else:
                result = transformer.stylize_batch(params, batch, dtype, resampling, phases)
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


def check_tiling(tile, overlap, stats_side, resampling="nearest"):
    """One-line errors for a tile (px, "auto" or "off") or overlap too small for the model's resampling, a bad
    statistics side."""
    radius = tiling.receptive_radius(resampling)
    if overlap < 2 * radius:
        raise UserError(f"--overlap {overlap} is under twice the network's receptive radius "
                        f"({radius} px): tiles would show seams; use at least {2 * radius}")
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


def stylize_files(params, plan, max_side=None, *, tile="auto", overlap=tiling.DEFAULT_OVERLAP,
                  stats_side=tiling.DEFAULT_STATS_SIDE, whole_stats_side=None, batch_size=8, preserve_color=False,
                  dtype="float32", on_start=None, resampling="nearest", phases=None):
    """Stylize each (source, destination) path pair of `plan` (`plan_outputs`) and write the destinations.

    Sources are downscaled to `max_side`; images that `tile_size(shape, tile)` sends to tiles go through
    `tiling.stylize_tiled` (float32), sharing the instance-norm statistics of the image downscaled to
    `stats_side`, the rest through `stylize` in batches, in `dtype`, with statistics from the image downscaled
    to `whole_stats_side` where it is larger (None: their own), both averaged over `phases` (as in `stylize`);
    `on_start()` is called once the sources are read, before stylization; `resampling` is the model's. An
    unreadable source is skipped unless it is the only one (then its UserError is raised). Returns (destinations
    written, skipped "source: reason" lines, number stylized in tiles, seconds of stylization, compilation
    included)."""
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
    phases = transformer.phases_for(resampling, phases)
    pictures = [img for img, _ in loaded]
    tiles = [tile_size(img.shape, tile) for img in pictures]
    whole = [i for i, t in enumerate(tiles) if t is None]
    results = dict(zip(whole, stylize(params, [pictures[i] for i in whole], batch_size, preserve_color, dtype,
                                      resampling, whole_stats_side, phases)))
    for i, side in enumerate(tiles):
        if side is not None:
            styled = tiling.stylize_tiled(params, pictures[i], side, overlap, stats_side, progress=True,
                                          resampling=resampling, phases=phases)
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


if __name__ == "__main__":  # python -m metastyle_jax.stylize: the command line's `stylize`
    from metastyle_jax import commands

    commands.run("stylize")
