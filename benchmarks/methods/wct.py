"""Li et al. (NeurIPS 2017), universal style transfer via whitening-colouring transforms (WCT).

Architecture of the official code (Yijunmaverick/UniversalStyleTransfer, Torch; PytorchWCT's
modelsNIPS.py): five independent encoder/decoder pairs, encoder k = VGG19 (with the 1x1 preprocessing
conv) cut at relu{k}_1, decoder k its mirror. Multi-level stylization runs coarse to fine, k = 5 ... 1:
encode the current image and the style with encoder k, WCT, blend with alpha, decode with decoder k.
Parameters: encoders 17,120,444 + decoders 17,118,927 = 34,239,371 (paper: 34.23M, all five pairs).
"""

import jax
import jax.numpy as jnp

from benchmarks.methods import vgg19

NAME = "Li et al. (WCT, 5 levels)"
PAPER = {"params_m": 34.23, 256: 0.6887, 512: 1.2335}
LEVELS = tuple(f"relu{k}_1" for k in range(5, 0, -1))
EIG_EPS = 1e-5  # official: eigenvalues below 1e-5 are dropped
ALPHA = 0.6     # official default blend of the transformed and the content features


def wct(fc, fs, eps=EIG_EPS):
    """Whitening-colouring transform: content features fc (N, C), style features fs (M, C) -> (N, C)
    whose mean and covariance (1/(N-1) normalization) are the style's. Eigendecomposition (eigh) of
    both covariances; eigen-directions with eigenvalue <= eps are dropped, as in the official code.
    Deviation: the official code adds the identity to the content covariance; we do not, so that the
    transform is exact."""
    def centered_cov(f):
        mean = f.mean(axis=0)
        x = f - mean
        return x, mean, x.T @ x / (f.shape[0] - 1)
    xc, _, cc = centered_cov(fc.astype(jnp.float32))
    _xs, ms, cs = centered_cov(fs.astype(jnp.float32))
    ec, vc = jnp.linalg.eigh(cc)
    es, vs = jnp.linalg.eigh(cs)
    white = jnp.where(ec > eps, jax.lax.rsqrt(jnp.maximum(ec, eps)), 0.0)
    colour = jnp.where(es > eps, jnp.sqrt(jnp.maximum(es, eps)), 0.0)
    whitened = xc @ (vc * white) @ vc.T
    return whitened @ (vs * colour) @ vs.T + ms


def init(key, size=32):
    """{relu{k}_1: {"encoder", "decoder"}} Flax variables of the five pairs at random initialization."""
    keys = jax.random.split(key, 2 * len(LEVELS))
    out = {}
    for n, level in enumerate(LEVELS):
        k = int(level[4])
        enc = vgg19.Encoder(level, preprocess=True)
        c = vgg19.conv_layers(level)[-1][2]
        out[level] = {"encoder": enc.init(keys[2 * n], jnp.zeros((1, size, size, 3))),
                      "decoder": vgg19.Decoder(level).init(
                          keys[2 * n + 1], jnp.zeros((1, size >> (k - 1), size >> (k - 1), c)))}
    return out


def paper_count():
    """Hand-computed count: the five encoders (with the 1x1 conv) and the five decoders."""
    return sum(vgg19.encoder_count(level, preprocess=True) + vgg19.decoder_count(level) for level in LEVELS)


def stylize(variables, content, style, alpha=ALPHA):
    """content (1, H, W, 3), style (1, Hs, Ws, 3) in [0, 1], sides multiples of 16 -> (1, H, W, 3)."""
    x = content
    for level in LEVELS:
        enc = vgg19.Encoder(level, preprocess=True)
        fc = enc.apply(variables[level]["encoder"], x)[level][0]
        fs = enc.apply(variables[level]["encoder"], style)[level][0]
        h, w, c = fc.shape
        t = wct(fc.reshape(-1, c), fs.reshape(-1, c)).reshape(h, w, c)
        t = alpha * t + (1 - alpha) * fc
        x = vgg19.Decoder(level).apply(variables[level]["decoder"], t[None])
    return x


def count_candidates():
    """Counts under the conventions one might read the paper's 34.23M with: {label: count}."""
    return {"five encoders + five decoders": paper_count(),
            "without the 1x1 preprocessing convs": paper_count() - 12 * len(LEVELS),
            "decoders only": sum(vgg19.decoder_count(level) for level in LEVELS),
            "one relu5_1 encoder shared + five decoders": vgg19.encoder_count("relu5_1", preprocess=True)
            + sum(vgg19.decoder_count(level) for level in LEVELS)}
