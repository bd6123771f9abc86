"""Huang and Belongie (ICCV 2017), AdaIN: VGG19 encoder to relu4_1, adaptive instance normalization, decoder.

Architecture of the official PyTorch code (naoto0804/pytorch-AdaIN, net.py): `vgg` truncated to relu4_1
(1x1 preprocessing conv 3->3, conv1_1 ... conv4_1, 3,505,740 parameters) and `decoder`, its mirror
(conv 512->256, up, 256->256 x3, 256->128, up, 128->128, 128->64, up, 64->64, 64->3; 3,505,219).
Total 7,010,959 = the paper's 7.01M (encoder and decoder both counted).
"""

import jax
import jax.numpy as jnp

from benchmarks.methods import vgg19

NAME = "Huang et al. (AdaIN)"
PAPER = {"params_m": 7.01, 256: 0.0165, 512: 0.0320}
EPS = 1e-5


def adain(content, style, eps=EPS):
    """AdaIN: content (B, H, W, C) normalized per channel then given the channel mean/std of style
    (B, Hs, Ws, C). Std is the unbiased one of the official code, sqrt(var + eps)."""
    def stats(x):
        n = x.shape[1] * x.shape[2]
        mean = x.mean(axis=(1, 2), keepdims=True)
        var = jnp.square(x - mean).sum(axis=(1, 2), keepdims=True) / (n - 1)
        return mean, jnp.sqrt(var + eps)
    mc, sc = stats(content)
    ms, ss = stats(style)
    return (content - mc) / sc * ss + ms


def init(key, size=32):
    """{"encoder", "decoder"} Flax variables at random initialization."""
    k1, k2 = jax.random.split(key)
    x = jnp.zeros((1, size, size, 3))
    enc = vgg19.Encoder("relu4_1", preprocess=True)
    return {"encoder": enc.init(k1, x),
            "decoder": vgg19.Decoder("relu4_1").init(k2, jnp.zeros((1, size // 8, size // 8, 512)))}


def paper_count():
    """Hand-computed count under the paper's convention: encoder to relu4_1 plus decoder."""
    return vgg19.encoder_count("relu4_1", preprocess=True) + vgg19.decoder_count("relu4_1")


def stylize(variables, content, style):
    """content (1, H, W, 3), style (1, Hs, Ws, 3) in [0, 1], H, W multiples of 8 -> (1, H, W, 3)."""
    enc = vgg19.Encoder("relu4_1", preprocess=True)
    fc = enc.apply(variables["encoder"], content)["relu4_1"]
    fs = enc.apply(variables["encoder"], style)["relu4_1"]
    return vgg19.Decoder("relu4_1").apply(variables["decoder"], adain(fc, fs))
