"""The perceptual loss (eq. 1-4) as pure functions of VGG16 features.

Reduction follows the official implementation rather than the letter of eq. 2: each style term is the
MEAN squared difference of Gram entries (over the batch and the C x C entries), i.e. eq. 2's squared
Frobenius norm divided by C_i^2 (and averaged over the batch), and the content term is the mean over
B x H x W x C (eq. 1's 1/N_i, averaged over the batch). The 1/C_i^2 factor weighs relu1_2 (C=64) 64 times
more than relu4_3 (C=512) relative to eq. 2 as printed; alpha=1, beta=1e5 were tuned with this reduction.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from metastyle_jax import vgg16

STYLE_LAYERS = vgg16.LAYERS
CONTENT_LAYER = "relu2_2"
SATURATION_LIMIT = 4.0  # |logit| of the sigmoid output beyond which `saturation` counts: outputs 0.018-0.982


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """alpha, beta and the layers of eq. 4 (paper section 5.1 values by default)."""

    alpha: float = 1.0
    beta: float = 1e5
    content_layer: str = CONTENT_LAYER
    style_layers: tuple = STYLE_LAYERS
    tv: float = 0.0             # total-variation weight (0: none, as the paper's eq. 4)
    saturation: float = 0.0     # weight of `saturation` (0: none, as the paper's eq. 4)


def weights_of(cfg):
    """LossWeights from a flat adapt/gatys config (alpha, beta, tv) or a meta-training one (loss.alpha, ...)."""
    c = cfg.loss if "loss" in cfg else cfg
    return LossWeights(alpha=c.alpha, beta=c.beta, tv=c.get("tv", 0.0), saturation=c.get("saturation", 0.0))


def gram(feat):
    """Gram matrix of eq. 3: (B, H, W, C) -> (B, C, C), psi psi^T / (C H W), in float32."""
    b, h, w, c = feat.shape
    psi = feat.reshape(b, h * w, c).astype(jnp.float32)
    return jnp.einsum("bnc,bnd->bcd", psi, psi, precision="highest") / (c * h * w)


def content_loss(feat_x, feat_c):
    """Eq. 1 averaged over the batch: mean squared difference of two (B, H, W, C) feature maps."""
    return jnp.mean(jnp.square(feat_x - feat_c))


def style_terms(feats_x, style_grams, layers=STYLE_LAYERS):
    """The per-layer terms of eq. 2 with the official reduction: layer -> mean squared Gram difference.

    feats_x: layer -> (B, H, W, C); style_grams: layer -> (1 or B, C, C) (broadcast over the batch).
    """
    return {k: jnp.mean(jnp.square(gram(feats_x[k]) - style_grams[k])) for k in layers}


def style_loss(feats_x, style_grams, layers=STYLE_LAYERS, layer_weights=()):
    """Eq. 2: the sum over `layers` of `style_terms`, each times its factor in `layer_weights` (default 1)."""
    terms = style_terms(feats_x, style_grams, layers)
    factors = layer_weights or (1.0,) * len(layers)
    return sum(f * terms[k] for k, f in zip(layers, factors))


def layer_factors(vgg, layers=STYLE_LAYERS):
    """The factors of `vgg`'s input spec (`vgg16.InputSpec.layer_weights`) for the style `layers`."""
    return tuple(vgg.spec.layer_weights[vgg16.LAYERS.index(k)] for k in layers)


def equal_share_weights(vgg, outputs, style_grams, layers=STYLE_LAYERS):
    """`vgg`'s layer factors (vgg16.LAYERS order) rescaled so that each of `layers` carries an equal share of the
    style term of `outputs` (B, H, W, 3) against `style_grams`, their weighted total unchanged: a tuple of floats.
    The per-painting balance of adaptation (configs/adapt.py, loss.layer_balance = "step0"); the factors as they
    are where a weighted term is not a positive finite number."""
    terms = jax.device_get(style_terms(style_features(vgg, outputs), style_grams, layers))
    factors = dict(zip(vgg16.LAYERS, vgg.spec.layer_weights))
    weighted = {k: factors[k] * float(terms[k]) for k in layers}
    if not all(math.isfinite(v) and v > 0 for v in weighted.values()):  # no balance (e.g. a layer's map too small)
        return tuple(float(f) for f in vgg.spec.layer_weights)
    total = sum(weighted.values())
    return tuple(float(factors[k] * total / (len(layers) * weighted[k])) if k in weighted else float(factors[k])
                 for k in vgg16.LAYERS)


def total_variation(images):
    """Mean squared difference of neighbouring pixels, both axes, of (B, H, W, C) images: a scalar."""
    dy = jnp.mean(jnp.square(images[:, 1:] - images[:, :-1]))
    dx = jnp.mean(jnp.square(images[:, :, 1:] - images[:, :, :-1]))
    return dx + dy


def block_average(images, factor, window=0):
    """(B, H, W, C) images averaged over `window` x `window` pixel windows at a stride of `factor` (window 0: the
    `factor` x `factor` blocks themselves): (B, (H - window) // factor + 1, (W - window) // factor + 1, C), which is
    (B, H // factor, W // factor, C) for blocks (the last H % factor rows and W % factor columns dropped)."""
    window = window or factor
    if window == factor == 1:
        return images
    if window == factor:
        b, h, w, c = images.shape
        h, w = h // factor * factor, w // factor * factor
        return images[:, :h, :w].reshape(b, h // factor, factor, w // factor, factor, c).mean((2, 4))
    dims, strides = (1, window, window, 1), (1, factor, factor, 1)
    return jax.lax.reduce_window(images, 0.0, jax.lax.add, dims, strides, "VALID") / (window * window)


def style_features(vgg, images, dtype=jnp.float32):
    """The features the style term sees: `vgg16.features` of (B, H, W, 3) images averaged over the source's
    `style_window` x `style_window` windows at a stride of `style_block` (`vgg16.InputSpec`; 1, full resolution,
    for ImageNet VGG16)."""
    return vgg16.features(vgg, block_average(images, vgg.spec.style_block, vgg.spec.style_window), dtype)


def saturation(images, limit=SATURATION_LIMIT):
    """Mean squared excess of |logit| over `limit` of sigmoid outputs (B, H, W, C) in (0, 1): a scalar whose
    gradient reaches saturated pixels at full strength (the sigmoid's own slope there is near 0)."""
    y = jnp.clip(images.astype(jnp.float32), 1e-6, 1 - 1e-6)
    return jnp.mean(jnp.square(jax.nn.relu(jnp.abs(jnp.log(y) - jnp.log1p(-y)) - limit)))


def style_grams(vgg, style_images, layers=STYLE_LAYERS):
    """Gram targets by `vgg` (a `vgg16.VGG`) of style images: (S, H, W, 3) in [0, 1] -> layer -> (S, C, C)."""
    feats = style_features(vgg, style_images)
    return {k: gram(feats[k]) for k in layers}


def content_features(vgg, contents, layer=CONTENT_LAYER, dtype=jnp.float32):
    """The content targets of eq. 1, phi_layer(I_c) of contents (B, H, W, 3): constants (no gradient)."""
    return jax.lax.stop_gradient(vgg16.features(vgg, contents, dtype)[layer])


def perceptual_loss(vgg, outputs, grams, *, content_feat=None, contents=None, weights=LossWeights(),
                    dtype=jnp.float32):
    """Eq. 4 through `vgg` (a `vgg16.VGG`): alpha * content + beta * style of stylized `outputs` (B, H, W, 3)
    against style Grams (layer -> (1 or B, C, C)) and content targets given as one of: `content_feat`,
    precomputed by `content_features` (VGG16 then runs on the outputs only), or `contents` (B, H, W, 3), whose
    features come from the same VGG16 pass as the outputs' (one pass over [outputs, contents], the targets held
    constant).

    The style terms are weighted by the VGG source's `layer_weights` and see `style_features` (with a
    `style_block` above 1, a second, coarser VGG16 pass over the outputs); weights.tv adds total variation of the
    outputs and weights.saturation `saturation`. weights.alpha, beta, tv and saturation may be traced values.
    Returns (scalar loss, {"content", "style"} unweighted). The one perceptual loss of meta-training, adaptation, Gatys et al. and the benchmarks."""
    if (content_feat is None) == (contents is None):
        raise ValueError("perceptual_loss: give exactly one of content_feat and contents")
    b = outputs.shape[0]
    feats = vgg16.features(vgg, outputs if contents is None else
                           jnp.concatenate([outputs, contents.astype(outputs.dtype)], axis=0), dtype)
    if contents is not None:
        content_feat = jax.lax.stop_gradient(feats[weights.content_layer][b:])
        feats = {k: v[:b] for k, v in feats.items()}
    lc = content_loss(feats[weights.content_layer], content_feat)
    if vgg.spec.style_block > 1 or vgg.spec.style_window > 1:  # the full-resolution pass: content layer only
        feats = style_features(vgg, outputs, dtype)
    ls = style_loss(feats, grams, weights.style_layers, layer_factors(vgg, weights.style_layers))
    total = weights.alpha * lc + weights.beta * ls
    if not isinstance(weights.tv, (int, float)) or weights.tv:  # a static 0 leaves the program as it was
        total = total + weights.tv * total_variation(outputs.astype(jnp.float32))
    if not isinstance(weights.saturation, (int, float)) or weights.saturation:
        total = total + weights.saturation * saturation(outputs)
    return total, {"content": lc, "style": ls}
