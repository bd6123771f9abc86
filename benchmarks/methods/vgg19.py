"""VGG19 encoders cut at relu{k}_1 and their mirror-image decoders, shared by the arbitrary-style methods.

Layer list of VGG19 (Simonyan and Zisserman 2014, configuration E): 3x3 convolutions of widths
64,64 | 128,128 | 256 x4 | 512 x4 | 512 x4, 2x2 max pooling between blocks. An encoder cut at relu{k}_1
holds every convolution up to conv{k}_1. Its decoder mirrors it (as in the official WCT, AdaIN and
style-swap code): each convolution c_in -> c_out becomes c_out -> c_in with a ReLU, each pooling a 2x
nearest upsampling, the last convolution (64 -> 3) has no ReLU. Convolutions use reflection padding 1.
The Torch-era models (WCT, AdaIN, style swap) start with a 1x1 convolution 3 -> 3 that converts RGB in
[0, 1] to mean-subtracted BGR in [0, 255]: `preprocess=True` adds it (12 parameters).
"""

import flax.linen as nn
import jax.numpy as jnp

from metastyle_jax import conv as convolution
from metastyle_jax.transformer import reflect_pad, upsample_nearest

BLOCKS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)
FC_LAYERS = ((7 * 7 * 512, 4096), (4096, 4096), (4096, 1000))  # the ImageNet classifier, never run here


def conv_layers(upto):
    """[(name, c_in, c_out)] of the VGG19 convolutions up to conv{k}_1 for upto='relu{k}_1', in order."""
    level = int(upto[4])
    if upto != f"relu{level}_1" or not 1 <= level <= 5:
        raise ValueError(f"encoders end at relu1_1 ... relu5_1, not {upto!r}")
    layers, c_in = [], 3
    for b, widths in enumerate(BLOCKS[:level]):
        for i, width in enumerate(widths[:1] if b == level - 1 else widths):
            layers.append((f"conv{b + 1}_{i + 1}", c_in, width))
            c_in = width
    return layers


def conv_count(c_in, c_out, k=3):
    """Parameters of one k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def encoder_count(upto, preprocess=False):
    """Hand-computed parameter count of the encoder cut at `upto` (+12 for the 1x1 preprocessing conv)."""
    return sum(conv_count(i, o) for _, i, o in conv_layers(upto)) + (12 if preprocess else 0)


def decoder_count(start, norm=False):
    """Hand-computed parameter count of the mirror decoder from `start` (+2C per normalized layer)."""
    layers = conv_layers(start)
    convs = sum(conv_count(o, i) for _, i, o in layers)
    return convs + (2 * sum(i for _, i, _ in layers[1:]) if norm else 0)


def full_vgg19_count():
    """All of VGG19 with its ImageNet classifier (143,667,240), as released by Caffe/TF-slim/torchvision."""
    convs = sum(conv_count(i, o) for _, i, o in conv_layers("relu5_1")) + \
        sum(conv_count(512, 512) for _ in range(3))
    return convs + sum(i * o + o for i, o in FC_LAYERS)


def conv3(x, features, name, relu=True, dtype=jnp.float32):
    """Reflection pad 1, 3x3 convolution, optional ReLU: (B, H, W, C) -> (B, H, W, features)."""
    y = nn.Conv(features, (3, 3), padding="VALID", dtype=dtype, conv_general_dilated=convolution.for_backend(),
                name=name)(reflect_pad(x, 1))
    return nn.relu(y) if relu else y


class Encoder(nn.Module):
    """Images (B, H, W, 3) in [0, 1] -> {relu{j}_1: (B, H/2^(j-1), W/2^(j-1), C_j)} for j up to `upto`.

    H and W must be multiples of 2^(k-1) for upto='relu{k}_1'.
    """

    upto: str = "relu4_1"
    preprocess: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = x.astype(self.dtype)
        if self.preprocess:
            x = nn.Conv(3, (1, 1), dtype=self.dtype, name="preprocess")(x)
        feats = {}
        for name, _, c_out in conv_layers(self.upto):
            if name.endswith("_1") and name != "conv1_1":
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = conv3(x, c_out, name, dtype=self.dtype)
            if name.endswith("_1"):
                feats["relu" + name[4:]] = x
        return feats


class Decoder(nn.Module):
    """Mirror decoder: features (B, h, w, C) at `start` -> images (B, h * 2^(k-1), w * 2^(k-1), 3).

    `norm`: 'batch' puts an inference-mode batch norm after every convolution but the last (the
    style-swap inverse network); None: no normalization (WCT, AdaIN).
    """

    start: str = "relu4_1"
    norm: str = None
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        layers = conv_layers(self.start)[::-1]
        for n, (name, c_in, _) in enumerate(layers):
            last = n == len(layers) - 1
            x = conv3(x, c_in, f"inv_{name}", relu=False, dtype=self.dtype)
            if not last:
                if self.norm == "batch":
                    x = nn.BatchNorm(use_running_average=True, name=f"bn_{name}")(x)
                x = nn.relu(x)
            if name.endswith("_1") and name != "conv1_1":
                x = upsample_nearest(x)
        return x
