"""Sheng et al. (CVPR 2018), Avatar-Net: multi-scale zero-shot style transfer by feature decoration.

Architecture of the official code (LucasSheng/avatar-net, models/avatar_net.py and vgg_decoder.py):
VGG19 encoder to relu4_1 (3,505,728 parameters, no preprocessing conv: TF-slim subtracts the mean);
style decorator at relu4_1: ZCA-whiten content and style features (SVD of their covariances), swap
3x3 patches (normalized style patches as convolution filters, argmax, paste back, overlaps averaged),
colour with the style's ZCA kernel and mean; decoder from conv4_1 with AdaIN of the style's relu3_1,
relu2_1, relu1_1 features fused before conv3_1, conv2_1 and conv1_1: conv 512->256, up+conv 256->256,
256->256 x2, 256->128, up+conv 128->128, 128->64, up+conv 64->64, 64->64, then a 7x7 conv 64->3
(3,549,827). Encoder + decoder = 7,055,555; the paper's 147.22M is the full VGG19 with its ImageNet
classifier (143,667,240) + decoder = 147,217,067.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.methods import vgg19
from benchmarks.methods.adain import adain
from benchmarks.methods.style_swap import swap
from metastyle_jax import conv as convolution
from metastyle_jax.transformer import reflect_pad, upsample_nearest

NAME = "Sheng et al. (Avatar-Net)"
PAPER = {"params_m": 147.22, 256: 0.5089, 512: 0.6088}
ZCA_EPS = 1e-5
# (name, output channels, upsample first, AdaIN with the style's feature at this layer first)
DECODER = (("conv4_1", 256, False, None), ("conv3_4", 256, True, None), ("conv3_3", 256, False, None),
           ("conv3_2", 256, False, None), ("conv3_1", 128, False, "relu3_1"), ("conv2_2", 128, True, None),
           ("conv2_1", 64, False, "relu2_1"), ("conv1_2", 64, True, None), ("conv1_1", 64, False, "relu1_1"))


def zca(f, eps=ZCA_EPS):
    """ZCA of features f (N, C): (whitened (N, C), colouring kernel (C, C), mean (C,)); covariance / N."""
    mean = f.mean(axis=0)
    x = f - mean
    e, v = jnp.linalg.eigh(x.T @ x / f.shape[0])
    keep = e > eps
    e = jnp.maximum(e, eps)
    whiten = (v * jnp.where(keep, jax.lax.rsqrt(e), 0.0)) @ v.T
    colour = (v * jnp.where(keep, jnp.sqrt(e), 0.0)) @ v.T
    return x @ whiten, colour, mean


def style_decorator(fc, fs):
    """Content (H, W, C) and style (Hs, Ws, C) features -> decorated content features (H, W, C)."""
    h, w, c = fc.shape
    wc, _, _ = zca(fc.reshape(-1, c))
    ws, colour, ms = zca(fs.reshape(-1, c))
    swapped = swap(wc.reshape(h, w, c), ws.reshape(fs.shape), pad=True)
    return (swapped.reshape(-1, c) @ colour + ms).reshape(h, w, c)


class AvatarDecoder(nn.Module):
    """Decorated relu4_1 features (1, h, w, 512) and the style's {relu1_1, relu2_1, relu3_1} -> (1, 8h, 8w, 3)."""

    @nn.compact
    def __call__(self, x, style_feats):
        for name, width, up, fuse in DECODER:
            if fuse:
                x = adain(x, style_feats[fuse])
            if up:
                x = upsample_nearest(x)
            x = nn.relu(nn.Conv(width, (3, 3), padding="VALID", conv_general_dilated=convolution.for_backend(),
                                name=name)(reflect_pad(x, 1)))
        return nn.Conv(3, (7, 7), padding="VALID", conv_general_dilated=convolution.for_backend(),
                       name="output")(reflect_pad(x, 3))


def init(key, size=32):
    """{"encoder", "decoder"} Flax variables at random initialization."""
    k1, k2 = jax.random.split(key)
    enc = vgg19.Encoder("relu4_1")
    feats = jax.eval_shape(enc.init_with_output, k1, jnp.zeros((1, size, size, 3)))[0]
    zeros = {k: jnp.zeros(v.shape) for k, v in feats.items()}
    return {"encoder": enc.init(k1, jnp.zeros((1, size, size, 3))),
            "decoder": AvatarDecoder().init(k2, zeros["relu4_1"], zeros)}


def decoder_count():
    """Hand-computed decoder count from the official layer list."""
    c_in, total = 512, 0
    for _, width, _, _ in DECODER:
        total += vgg19.conv_count(c_in, width)
        c_in = width
    return total + vgg19.conv_count(64, 3, k=7)


def paper_count():
    """The paper's convention: the whole VGG19 (classifier included) plus the decoder."""
    return vgg19.full_vgg19_count() + decoder_count()


def stylize(variables, content, style):
    """content (1, H, W, 3), style (1, Hs, Ws, 3) in [0, 1], sides multiples of 8 -> (1, H, W, 3)."""
    enc = vgg19.Encoder("relu4_1")
    fc = enc.apply(variables["encoder"], content)["relu4_1"][0]
    fs = enc.apply(variables["encoder"], style)
    decorated = style_decorator(fc, fs["relu4_1"][0])
    return AvatarDecoder().apply(variables["decoder"], decorated[None], fs)


def count_candidates():
    """Counts under the conventions one might read the paper's 147.22M with: {label: count}."""
    return {"encoder to relu4_1 + decoder (what runs)": vgg19.encoder_count("relu4_1") + decoder_count(),
            "all VGG19 convolutions + decoder": vgg19.full_vgg19_count() - sum(
                i * o + o for i, o in vgg19.FC_LAYERS) + decoder_count(),
            "whole VGG19 with classifier + decoder": paper_count()}
