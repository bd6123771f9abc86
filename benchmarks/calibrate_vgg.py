"""Calibration of the default (HED) VGG16 features against the paper's alpha=1, beta=1e5.

    python -m benchmarks.calibrate_vgg [--size 128] [--steps 150]

The paper tuned alpha and beta for torchvision's ImageNet VGG16, whose input is (x - mean) / std with x in
[0, 1]. The HED and Keras weights take Caffe-style input, 255 x - 255 mean (BGR): the same pixels 255 * std
~ 57.6 times larger. Conv + ReLU + max-pool is positively homogeneous, so (biases aside) every feature map
scales by that factor, Gram matrices and content MSE by its square. `feature_scale` divides the features by
it. This script records the evidence: per-layer feature RMS on the embedded photos, and the content/style
balance that Gatys et al. reaches with alpha=1, beta=1e5 at the chosen scale and at half and twice it.
"""

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import cli, gatys, losses, vgg16, vgg_weights

IMAGENET_STD = (0.229, 0.224, 0.225)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def feature_rms(w, size):
    """Per-layer RMS of the scaled features over the embedded photos at `size` px."""
    rms = {k: [] for k in vgg16.LAYERS}
    for name in PHOTOS:
        img = cli.load_image_arg(f"embedded:{name}", max_side=size)
        feats = vgg16.features(w, jnp.asarray(img)[None])
        for k in vgg16.LAYERS:
            rms[k].append(float(jnp.sqrt(jnp.mean(feats[k] ** 2))))
    return {k: float(np.mean(v)) for k, v in rms.items()}


def gatys_balance(w, scale, size, steps):
    """Weighted content and style loss of Gatys et al. from the content image, at feature scale `scale`."""
    scaled = w.replace(spec=dataclasses.replace(w.spec, feature_scale=scale))
    content = cli.load_image_arg("embedded:astronaut", max_side=size)
    style = cli.load_image_arg("embedded:starry_night", max_side=size)
    weights = losses.LossWeights()
    _, hist = gatys.optimize(scaled, content, style, content, steps, 0.02, weights, chunk=50)
    c, s = weights.alpha * hist["content"], weights.beta * hist["style"]
    return {"feature_scale": scale, "initial_beta_style": float(s[0]), "final_alpha_content": float(c[-1]),
            "final_beta_style": float(s[-1]), "style_reduction": float(s[0] / s[-1]),
            "final_style_share": float(s[-1] / (s[-1] + c[-1]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    w = vgg_weights.load_vgg("hed")
    derived = 255.0 * float(np.mean(IMAGENET_STD))
    figures = {"source": w.source, "sha256": w.sha256, "derived_scale": derived,
               "feature_scale": w.spec.feature_scale, "size": args.size, "steps": args.steps,
               "feature_rms": feature_rms(w, 256),
               "gatys": [gatys_balance(w, w.spec.feature_scale * f, args.size, args.steps) for f in (0.5, 1, 2)]}
    print(write_result("vgg_calibration_cpu", figures))
    for g in figures["gatys"]:
        print(g)


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")
    main()
