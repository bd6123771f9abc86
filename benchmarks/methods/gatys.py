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


def setup(key, content, style):
    """A random VGG16 (`vgg16.random`) and everything `gatys.run_steps` takes: (x, opt_state, vgg,
    content_feat, grams) for content (H, W, 3) and style (Hs, Ws, 3)."""
    vgg = vgg16.random(key)
    content_feat, grams = gatys.targets(vgg, content, style, losses.LossWeights())
    x = jnp.asarray(content, jnp.float32)
    return x, optax.adam(LR).init(x), vgg, content_feat, grams


def chunk(steps):
    """f(x, opt_state, vgg, content_feat, grams) running `steps` Adam steps of gatys.run_steps."""
    def f(*args):
        return gatys.run_steps(*args, weights=losses.LossWeights(), lr=LR, steps=steps)
    return f


def targets_fn():
    """f(vgg, content, style): the content features and style Grams Gatys needs once per image."""
    return lambda vgg, content, style: gatys.targets(vgg, content, style, losses.LossWeights())
