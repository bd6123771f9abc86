"""VGG16 feature extractor (Simonyan and Zisserman 2014), frozen, in Flax linen, NHWC.

Only the first four blocks are built: they give relu1_2, relu2_2, relu3_3 and relu4_3, all the perceptual
loss needs. Parameters are named `conv{block}_{index}` with `kernel` (HWIO) and `bias`.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import conv as convolution

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512))
CONV_NAMES = tuple(f"conv{b + 1}_{i + 1}" for b, widths in enumerate(BLOCKS) for i in range(len(widths)))


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How one weight source wants its input: x' = (x * scale, in `order`) - mean) / std, per channel.

    `feature_scale` divides every returned feature map: the calibration that makes one source's
    losses comparable to torchvision's ImageNet VGG16, on which the paper's alpha and beta were tuned.
    `layer_weights` multiply the four style terms (eq. 2, in LAYERS order): the calibration of a source
    whose layers are out of balance (all 1 for ImageNet VGG16, as the paper). `pool` is the 2x2 pooling between
    blocks: "max" (VGG16, the paper) or "avg" (Gatys et al. 2016's choice for synthesis). The style term sees
    images averaged over `style_block` x `style_block` pixel blocks (1: full resolution, the paper), so that no
    pattern finer than a block can lower it (`losses.style_features`); `style_window` (0: the block) widens the
    averaging window at the same stride: a window of 2 x style_block also hides the period of 2 blocks.
    """

    order: str  # "RGB" or "BGR"
    scale: float
    mean: tuple
    std: tuple = (1.0, 1.0, 1.0)
    feature_scale: float = 1.0
    layer_weights: tuple = (1.0, 1.0, 1.0, 1.0)
    pool: str = "max"
    style_block: int = 1
    style_window: int = 0


# torchvision's ImageNet normalization, the input of the paper's VGG16
IMAGENET_SPEC = InputSpec("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class VGG(flax.struct.PyTreeNode):
    """VGG16 as one value: `params` as `param_shapes()` (traced under jit, never differentiated) and the
    weight source's input `spec` (static)."""

    params: Any
    spec: InputSpec = flax.struct.field(pytree_node=False)


def normalize(images, spec):
    """RGB images in [0, 1], (B, H, W, 3) -> the network input the source expects, same shape."""
    x = images.astype(jnp.float32) * spec.scale
    if spec.order == "BGR":
        x = x[..., ::-1]
    return (x - jnp.asarray(spec.mean, jnp.float32)) / jnp.asarray(spec.std, jnp.float32)


class VGG16Features(nn.Module):
    """Normalized input (B, H, W, 3) -> {relu1_2: (B,H,W,64), relu2_2: (B,H/2,W/2,128),
    relu3_3: (B,H/4,W/4,256), relu4_3: (B,H/8,W/8,512)}.

    3x3 convolutions with zero padding 1 and 2x2 `pool` ("max" or "avg") pooling with stride 2 (floor, as
    torchvision).
    """

    dtype: jnp.dtype = jnp.float32
    pool: str = "max"

    @nn.compact
    def __call__(self, x):
        feats = {}
        x = x.astype(self.dtype)
        conv = convolution.for_backend(dtype=self.dtype)
        for b, widths in enumerate(BLOCKS):
            if b:
                x = (nn.avg_pool if self.pool == "avg" else nn.max_pool)(x, (2, 2), (2, 2), padding="VALID")
            for i, width in enumerate(widths):
                x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                                    conv_general_dilated=conv, name=f"conv{b + 1}_{i + 1}")(x))
            feats[f"relu{b + 1}_{len(widths)}"] = x
        return feats


def features(vgg, images, dtype=jnp.float32):
    """Perceptual features by `vgg` (a `VGG`) of RGB images (B, H, W, 3) in [0, 1]: dict layer -> (B, h, w, C)
    float32, gradients flow to the images only (the VGG parameters are constants)."""
    params = jax.lax.stop_gradient(vgg.params)
    feats = VGG16Features(dtype=dtype, pool=vgg.spec.pool).apply({"params": params}, normalize(images, vgg.spec))
    return {k: v.astype(jnp.float32) / vgg.spec.feature_scale for k, v in feats.items()}


def random_params(key):
    """VGG16 parameters at Flax's default random initialization: for tests and speed benchmarks only."""
    params = VGG16Features().init(key, jnp.zeros((1, 16, 16, 3)))["params"]
    return jax.tree_util.tree_map(np.asarray, params)


def random(key, spec=IMAGENET_SPEC):
    """A `VGG` at Flax's default random initialization (`random_params`) with input `spec`."""
    return VGG(random_params(key), spec)


def param_shapes():
    """{conv name: {kernel: (3, 3, in, out), bias: (out,)}} for the four blocks."""
    shapes, c_in = {}, 3
    for name, width in zip(CONV_NAMES, (w for ws in BLOCKS for w in ws)):
        shapes[name] = {"kernel": (3, 3, c_in, width), "bias": (width,)}
        c_in = width
    return shapes
