"""Chen and Schmidt (2016), fast patch-based style transfer: VGG19 to relu3_1, style swap, inverse network.

Architecture of the official code (rtqichen/style-swap, train-vgg-decoder.lua and style-swap.lua):
the encoder is VGG19 (with the 1x1 preprocessing conv) cut at relu3_1 (555,340 parameters); style swap
with 3x3 patches: every style patch, divided by its norm, is a filter of one convolution over the content
features, the argmax channel picks each location's best patch, a transposed convolution pastes the
chosen (unnormalized) patches back and overlaps are averaged. The inverse network ("fast approximation",
the paper's choice) mirrors the encoder with a batch norm after each convolution but the last (conv
256->128, up, 128->128, 128->64, up, 64->64, 64->3; 555,843). Total 1,111,183; the paper lists 1.48M.
"""

import jax
import jax.numpy as jnp

from benchmarks.methods import vgg19
from metastyle_jax import conv as convolution

NAME = "Chen et al. (style swap, inverse net)"
PAPER = {"params_m": 1.48, 256: 0.2679, 512: 1.0890}
PATCH = 3


def patches(x, k=PATCH):
    """All k x k patches of x (H, W, C), VALID: (H-k+1, W-k+1, k, k, C)."""
    h, w, _ = x.shape
    rows = jnp.stack([x[i:i + h - k + 1] for i in range(k)], axis=2)           # (H', W, k, C)
    return jnp.stack([rows[:, j:j + w - k + 1] for j in range(k)], axis=3)      # (H', W', k, k, C)


def best_patches(content, style, k=PATCH):
    """Index (into the flattened VALID style patches) of each VALID content patch's best match: the
    style patch q maximizing <p, q> / |q|, computed as one convolution. content (H, W, C), style
    (Hs, Ws, C) -> (H-k+1, W-k+1) int32."""
    sp = patches(style, k)
    n = sp.shape[0] * sp.shape[1]
    kernels = sp.reshape(n, k, k, -1)
    kernels = kernels / (jnp.sqrt(jnp.sum(jnp.square(kernels), axis=(1, 2, 3), keepdims=True)) + 1e-8)
    scores = convolution.for_backend()(content[None], jnp.transpose(kernels, (1, 2, 3, 0)), (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def swap(content, style, k=PATCH, pad=False):
    """Style swap: content features (H, W, C) rebuilt from best-matching style patches, overlaps
    averaged -> (H, W, C). pad=False (Chen): VALID patches of both; pad=True (Avatar-Net): the content
    reflection-padded and the style zero-padded by k//2, so that every location has its own patch."""
    if pad:
        p = k // 2
        content = jnp.pad(content, ((p, p), (p, p), (0, 0)), mode="reflect")
        style = jnp.pad(style, ((p, p), (p, p), (0, 0)))
    idx = best_patches(content, style, k)
    sp = patches(style, k)
    chosen = sp.reshape(-1, k, k, sp.shape[-1])[idx]                       # (H', W', k, k, C)
    h, w, c = content.shape
    out = jnp.zeros((h, w, c), chosen.dtype)
    count = jnp.zeros((h, w, 1), chosen.dtype)
    hh, ww = idx.shape
    for i in range(k):
        for j in range(k):
            out = out.at[i:i + hh, j:j + ww].add(chosen[:, :, i, j])
            count = count.at[i:i + hh, j:j + ww].add(1.0)
    out = out / count
    return out[k // 2:-(k // 2), k // 2:-(k // 2)] if pad else out


def init(key, size=32):
    """{"encoder", "decoder"} Flax variables (decoder with batch-norm statistics) at random initialization."""
    k1, k2 = jax.random.split(key)
    enc = vgg19.Encoder("relu3_1", preprocess=True)
    return {"encoder": enc.init(k1, jnp.zeros((1, size, size, 3))),
            "decoder": vgg19.Decoder("relu3_1", norm="batch").init(k2, jnp.zeros((1, size // 4, size // 4, 256)))}


def paper_count():
    """Hand-computed count: encoder to relu3_1 (with the 1x1 conv) plus the inverse network with batch norm."""
    return vgg19.encoder_count("relu3_1", preprocess=True) + vgg19.decoder_count("relu3_1", norm=True)


def stylize(variables, content, style):
    """content (1, H, W, 3), style (1, Hs, Ws, 3) in [0, 1], sides multiples of 4 -> (1, H, W, 3)."""
    enc = vgg19.Encoder("relu3_1", preprocess=True)
    fc = enc.apply(variables["encoder"], content)["relu3_1"][0]
    fs = enc.apply(variables["encoder"], style)["relu3_1"][0]
    return vgg19.Decoder("relu3_1", norm="batch").apply(variables["decoder"], swap(fc, fs)[None])


def count_candidates():
    """Counts under the conventions one might read the paper's 1.48M with: {label: count}."""
    enc, dec = vgg19.encoder_count("relu3_1", preprocess=True), vgg19.decoder_count("relu3_1", norm=True)
    return {"encoder + inverse network (ours)": enc + dec,
            "without the 1x1 conv": enc - 12 + dec,
            "without the batch norms": enc + vgg19.decoder_count("relu3_1"),
            "inverse network only": dec,
            "two encoders (content, style) + inverse network": 2 * enc + dec,
            "inverse network with an extra 256->256 conv + BN": enc + dec + vgg19.conv_count(256, 256) + 512}
