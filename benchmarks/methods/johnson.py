"""Johnson et al. (ECCV 2016), a feed-forward network per style: the image transformation network.

The same network as MetaStyle's (metastyle_jax.transformer, supplementary Table 1): 9x9 conv 3->32,
3x3 stride-2 convs 32->64->128, five residual blocks of 128, two upsample+conv 128->64->32, 9x9 conv
32->3, instance norm after every conv but the last. 1,679,235 parameters (paper: 1.68M).
"""

import jax.numpy as jnp

from metastyle_jax import transformer

NAME = "Johnson et al."
PAPER = {"params_m": 1.68, 256: 0.0044, 512: 0.0146}


def init(key, size=32):
    """The transformer's params pytree at random initialization."""
    return transformer.init_params(key, size)


def transformer_count(base=32):
    """Hand-computed count of the transformer with widths base, 2 base, 4 base (official layer list)."""
    convs = [(3, base, 9), (base, 2 * base, 3), (2 * base, 4 * base, 3)] + [(4 * base, 4 * base, 3)] * 10 + \
        [(4 * base, 2 * base, 3), (2 * base, base, 3), (base, 3, 9)]
    norms = 2 * (base + 2 * base + 4 * base + 10 * 4 * base + 2 * base + base)
    return sum(k * k * i * o + o for i, o, k in convs) + norms


def paper_count():
    return transformer_count(32)


def stylize(params, content, style):
    """content (1, H, W, 3) in [0, 1] -> (1, H, W, 3); the style is baked into the weights (unused)."""
    del style
    return transformer.apply(params, content, jnp.float32)
