"""Gatys et al. (CVPR 2016): optimize the pixels on the perceptual loss, 800 steps (paper section 5.2).

Reuses metastyle_jax.gatys (Adam on the pixels, VGG16 relu1_2 ... relu4_3 as in this repository's loss);
no network parameters of its own (paper: N/A).
"""

import jax.numpy as jnp
import optax

from metastyle_jax import gatys, losses, vgg16

NAME = "Gatys et al. (800 steps)"
PAPER = {"params_m": None, 256: 7.7428, 512: 27.0517}
STEPS = 800
LR = 0.02
IMAGENET_SPEC = vgg16.InputSpec("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def setup(key, content, style, spec=IMAGENET_SPEC):
    """Random VGG16 weights and everything `gatys.run_steps` takes: (x, opt_state, vgg_params,
    content_feat, grams) for content (H, W, 3) and style (Hs, Ws, 3)."""
    vgg_params = vgg16.random_params(key)
    content_feat, grams = gatys.targets(vgg_params, spec, content, style, losses.LossWeights())
    x = jnp.asarray(content, jnp.float32)
    return x, optax.adam(LR).init(x), vgg_params, content_feat, grams


def chunk(steps, spec=IMAGENET_SPEC):
    """f(x, opt_state, vgg_params, content_feat, grams) running `steps` Adam steps of gatys.run_steps."""
    def f(*args):
        return gatys.run_steps(*args, spec=spec, weights=losses.LossWeights(), lr=LR, steps=steps)
    return f


def targets_fn(spec=IMAGENET_SPEC):
    """f(vgg_params, content, style): the content features and style Grams Gatys needs once per image."""
    return lambda vgg_params, content, style: gatys.targets(vgg_params, spec, content, style, losses.LossWeights())
