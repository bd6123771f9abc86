"""High resolution in bounded memory: stylize an image in overlapping tiles and blend them without seams.

The network's instance norms normalize each image by its own statistics, so tiles run on their own would
each be normalized differently and differ in tone. Instead every instance norm's mean and variance are
computed ONCE, on the whole image downscaled so its longer side is at most `stats_side` (at full resolution
when it is smaller), and every tile is normalized with these fixed statistics (`transformer.apply(...,
stats=...)`). With statistics from the full-resolution image, a tile then computes exactly what the whole
image computes, except within the network's receptive radius of a tile edge (where the tile's reflection
padding replaces the neighbouring pixels); statistics from a downscaled copy are an approximation whose
error grows with the downscaling (the features' statistics depend on the scale of the details; figures in
benchmarks/results/highres_cpu.json).

Tiles start on multiples of 4 (the network's two stride-2 convolutions), so their feature grids coincide
with the whole image's; the image is first reflection-padded to multiples of 4, as the network itself does,
and the last tile of a row or column is shifted back to end at the image's edge (no invented pixels).
Neighbouring tiles overlap by at least `overlap` pixels. At a tile's inner edge its weight is 0 over a
margin of up to the receptive radius (`receptive_radius`: 57 px, 63 antialiased), where its padding reaches,
then rises as a raised cosine; the weighted sum is divided by the summed weights. With the default overlap
(128 px = 2 margins of 56 px + a 16 px ramp) the result equals the whole image run with the same statistics
to float rounding (measured: max 1.8e-6; the outermost, 57th pixel of the receptive field weighs nothing
measurable), so no seam can appear. Memory is bounded by the tile size: tiles go `batch` at a time
through one compiled function of the tile shape; only the image-sized input, output and weight arrays
grow with the image.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import images, transformer

ALIGN = 4  # tiles start on multiples of it: the network's two stride-2 convolutions (checked by `layers`)
DEFAULT_TILE = 512
DEFAULT_STATS_SIDE = 1024


@functools.cache
def layers(resampling="nearest"):
    """The network's layers, input to output: ("up", factor) (nearest upsampling) or ("conv", kernel, stride)
    (a binomial blur is a ("conv", 3, 1)), read off the network itself (`transformer.conv_layers`)."""
    found = []
    for kernel, stride, up, blurred in transformer.conv_layers(resampling):
        found += [("up", up)] if up > 1 else []
        found += [("conv", 3, 1)] if blurred else []
        found += [("conv", kernel, stride)]
    assert int(np.prod([layer[2] for layer in found if layer[0] == "conv"])) == ALIGN
    return tuple(found)


@functools.cache
def receptive_radius(resampling="nearest"):
    """The most input pixels, to one side, that can influence an output pixel (along one axis), over all
    output positions (the strided and upsampling layers make it depend on the position modulo 4)."""
    radius = 0
    for u in range(64, 64 + 4 * ALIGN):
        lo, hi = u, u
        for layer in reversed(layers(resampling)):
            if layer[0] == "up":
                lo, hi = lo // layer[1], hi // layer[1]
            else:
                _, kernel, stride = layer
                lo, hi = stride * lo - kernel // 2, stride * hi + kernel // 2
        radius = max(radius, u - lo, hi - u)
    return radius


DEFAULT_OVERLAP = 128


def tile_starts(length, tile, overlap):
    """Start offsets along one axis of `length` (a multiple of 4) for tiles of `tile` px overlapping by at
    least `overlap`: multiples of 4, the last one `length - tile`. One tile of `length` if it fits."""
    if length <= tile:
        return [0]
    stride = max(ALIGN, (tile - overlap) // ALIGN * ALIGN)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(n):
    """Raised-cosine weights rising over n pixels, sin^2(pi/2 (d + 1/2) / n) for d = 0..n-1: in (0, 1), and
    ramp(n) + ramp(n)[::-1] == 1, so two opposite ramps over the same pixels blend to a constant."""
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


def window_1d(size, overlap, rise, fall, margin=0):
    """Weights (size,) of one tile along one axis: at each side that has a neighbour (`rise` at the start,
    `fall` at the end), 0 over the `margin` px nearest the edge, then a `ramp` over the rest of the first
    `overlap` px; 1 elsewhere."""
    w = np.ones(size)
    n = min(overlap, size // 2)
    m = min(margin, n // 2)
    edge = np.concatenate([np.zeros(m), ramp(n - 2 * m), np.ones(m)]) if n else np.zeros(0)
    if rise:
        w[:n] = np.minimum(w[:n], edge)
    if fall:
        w[size - n:] = np.minimum(w[size - n:], edge[::-1])
    return w


def default_margin(overlap, resampling="nearest"):
    """Zero-weight pixels at each inner tile edge: up to the receptive radius, leaving at least an eighth of
    the overlap to the ramp (56 px for the default 128). Pixels that count are then computed (almost) only
    from real neighbours, not from a tile's reflection padding, so tiles agree with one another."""
    return min(receptive_radius(resampling), (overlap - overlap // 8) // 2)


def pad_to_multiple(image, multiple=ALIGN):
    """Reflection-pad an (H, W, 3) image at the bottom and right up to multiples of `multiple`."""
    h, w = image.shape[:2]
    return np.pad(image, ((0, (-h) % multiple), (0, (-w) % multiple), (0, 0)), mode="reflect")


_stats = jax.jit(transformer.instance_norm_stats, static_argnames=("dtype", "resampling"))


def shared_stats(params, image, stats_side=DEFAULT_STATS_SIDE, resampling="nearest"):
    """The instance-norm statistics (see `transformer.instance_norm_stats`, leaves (1, 1, 1, C)) of an
    (H, W, 3) image, downscaled first so its longer side is at most `stats_side` (None: full resolution)."""
    if stats_side is not None and max(image.shape[:2]) > stats_side:
        image = images.resize(image, max_side=stats_side)
    return _stats(params, np.asarray(image, np.float32)[None], resampling=resampling)


@functools.partial(jax.jit, static_argnames=("resampling", "dtype", "phases"))
def apply_with_stats(params, tiles, stats, resampling="nearest", dtype="float32", phases=1):
    """The network on a batch (B, H, W, 3) of tiles or whole images with fixed instance-norm statistics (leaves
    (B or 1, 1, 1, C)) -> (B, H, W, 3), the convolutions in `dtype`, averaged over `phases` (`transformer.PHASES`)."""
    return transformer.apply(params, tiles, jnp.dtype(dtype), stats, resampling, phases)


def plan(shape, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP):
    """The tiling of an (H, W[, C]) image: (tile height, tile width, [(y, x) tile origins]), on the image
    reflection-padded to multiples of 4. Raises ValueError for a tile that is not a multiple of 4 or is
    smaller than twice the overlap (the rising and falling ramps would overlap)."""
    if tile % ALIGN or tile < ALIGN:
        raise ValueError(f"tile must be a positive multiple of {ALIGN}, got {tile}")
    if overlap < 0 or 2 * overlap > tile:
        raise ValueError(f"tile ({tile}) must be at least twice the overlap ({overlap})")
    hp, wp = -(-shape[0] // ALIGN) * ALIGN, -(-shape[1] // ALIGN) * ALIGN
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, overlap), tile_starts(wp, tw, overlap)
    return th, tw, [(y, x) for y in ys for x in xs]


def stylize_tiled(params, image, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP, stats_side=DEFAULT_STATS_SIDE,
                  stats=None, batch=1, progress=False, margin=None, resampling="nearest", phases=1):
    """Stylize one (H, W, 3) float image in [0, 1] tile by tile -> float32 (H, W, 3) in [0, 1].

    stats: instance-norm statistics to share (default: `shared_stats(params, image, stats_side)`);
    batch: tiles per compiled call; progress: show a tqdm bar over the tiles; margin: zero-weight pixels at
    a tile's inner edges (default `default_margin(overlap, resampling)`); resampling: the model's; phases: the
    shifts each tile's output is averaged over (`transformer.PHASES`).
    """
    image = np.asarray(image, np.float32)
    th, tw, origins = plan(image.shape, tile, overlap)
    margin = default_margin(overlap, resampling) if margin is None else margin
    if stats is None:
        stats = shared_stats(params, image, stats_side, resampling)
    padded = pad_to_multiple(image)
    hp, wp = padded.shape[:2]
    out = np.zeros(padded.shape, np.float32)
    total = np.zeros((hp, wp, 1), np.float32)
    from tqdm import tqdm

    bar = tqdm(total=len(origins), desc=f"stylize {len(origins)} tiles of {tw}x{th}", unit="tile", disable=not progress)
    try:
        for first in range(0, len(origins), batch):
            chunk = origins[first:first + batch]
            tiles = [padded[y:y + th, x:x + tw] for y, x in chunk]
            tiles += [tiles[-1]] * (batch - len(tiles))
            result = np.asarray(apply_with_stats(params, np.stack(tiles), stats, resampling, phases=phases))
            for (y, x), styled in zip(chunk, result):
                wy = window_1d(th, overlap, y > 0, y + th < hp, margin)
                wx = window_1d(tw, overlap, x > 0, x + tw < wp, margin)
                weight = (wy[:, None] * wx[None, :]).astype(np.float32)[:, :, None]
                out[y:y + th, x:x + tw] += styled * weight
                total[y:y + th, x:x + tw] += weight
            bar.update(len(chunk))
    finally:
        bar.close()
    out /= total
    return np.clip(out[:image.shape[0], :image.shape[1]], 0.0, 1.0)


def own_stats_tiles(params, image, tile=DEFAULT_TILE, resampling="nearest"):
    """For comparison only: side-by-side (non-overlapping) tiles of `tile` px, each normalized by its own
    instance-norm statistics, as naive tiling would do -> float32 (H, W, 3). Shows tone steps at the seams."""
    image = np.asarray(image, np.float32)
    out = np.empty_like(image)
    for y in range(0, image.shape[0], tile):
        for x in range(0, image.shape[1], tile):
            tile_in = image[None, y:y + tile, x:x + tile]
            out[y:y + tile, x:x + tile] = np.asarray(transformer.stylize_batch(params, tile_in, resampling=resampling))[0]
    return out
