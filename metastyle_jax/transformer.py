"""The image transformation network of MetaStyle (supplementary Table 1), in Flax linen, NHWC.

Module names follow the official PyTorch `TransformerNet` (conv1, in1, res1.conv1, deconv1, ...), so
that instance-norm parameters are found by name (`in<k>`) and PyTorch checkpoints map one to one.
"""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from metastyle_jax import conv as convolution

IN_NAME = re.compile(r"^in\d+$")
# How the network changes resolution. "nearest": the official code's nearest-neighbour x2 upsampling and plain
# stride-2 convolutions. "antialiased" (deviation, docs/deviations.md): a [1, 2, 1] binomial blur after each
# nearest upsampling (together: bilinear upsampling) and before each stride-2 convolution (Zhang, ICML 2019).
# It adds no parameters; it keeps the network from drawing a lattice locked to the pixel grid (issue 22).
RESAMPLING = ("nearest", "antialiased")
GRID = 4  # the network's stride: two stride-2 convolutions in, two x2 upsamplings out
# Shifts (dy, dx) of the input against that grid which `apply` averages the output over (`phases`). Averaging
# over a set S multiplies the output's part of frequency (a, b) / GRID cycles a pixel by the mean over S of
# i^(a dy + b dx): 2 and the 4 diagonal shifts cancel every axial 4-pixel period, 16 every part locked to the grid.
PHASES = {1: ((0, 0),), 2: ((0, 0), (2, 2)), 4: tuple((s, s) for s in range(GRID)),
          16: tuple((a, b) for a in range(GRID) for b in range(GRID))}
# The phases stylization averages over unless told (`stylize --phases`), by network. Deviation (docs/deviations.md):
# the official code runs the network once. An antialiased network's lattice is a 4-pixel period along the axes,
# which the 4 diagonal shifts cancel; a nearest one's also has the 2-pixel checkerboard, which only all 16 cancel.
DEFAULT_PHASES = {"nearest": 16, "antialiased": 4}


def phases_for(resampling, phases=None):
    """The number of grid shifts to average over: `phases`, or None for DEFAULT_PHASES of the `resampling`."""
    return DEFAULT_PHASES[resampling] if phases is None else phases


def reflect_pad(x, pad):
    """Reflection-pad the two spatial axes of an NHWC batch by `pad` pixels."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def upsample_nearest(x, factor=2):
    """Nearest-neighbour upsampling of an NHWC batch: (B, H, W, C) -> (B, fH, fW, C)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def binomial_blur(x):
    """The separable [1, 2, 1] / 4 blur of an NHWC batch along H and W, reflection-padded: same shape."""
    x = reflect_pad(x, 1)
    x = 0.25 * x[:, :-2] + 0.5 * x[:, 1:-1] + 0.25 * x[:, 2:]
    return 0.25 * x[:, :, :-2] + 0.5 * x[:, :, 1:-1] + 0.25 * x[:, :, 2:]


class ConvLayer(nn.Module):
    """Reflection padding then a convolution (stride `stride`, kernel `kernel`), optionally upsampled first;
    with `resampling` "antialiased", a binomial blur follows the upsampling or precedes a strided convolution."""

    features: int
    kernel: int
    stride: int = 1
    upsample: int = 1
    dtype: jnp.dtype = jnp.float32
    resampling: str = "nearest"

    @nn.compact
    def __call__(self, x):
        if self.upsample > 1:
            x = upsample_nearest(x, self.upsample)
        if self.resampling == "antialiased" and (self.upsample > 1 or self.stride > 1):
            x = binomial_blur(x)
        x = reflect_pad(x, self.kernel // 2)
        return nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                       padding="VALID", dtype=self.dtype, conv_general_dilated=convolution.for_backend(dtype=self.dtype),
                       name="conv2d")(x)


class InstanceNorm(nn.Module):
    """Instance normalization with a learnable per-channel scale and shift (PyTorch's affine InstanceNorm2d).

    Statistics are taken over H and W of each image, in float32 whatever the compute dtype. `stats`, a
    {"mean", "var"} dict of (B or 1, 1, 1, C) arrays, replaces them (tiled stylization uses one image's
    statistics for all its tiles); the statistics used are sown into the "intermediates" collection.
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, stats=None):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        x32 = x.astype(jnp.float32)
        if stats is None:
            stats = {"mean": x32.mean(axis=(1, 2), keepdims=True), "var": x32.var(axis=(1, 2), keepdims=True)}
        self.sow("intermediates", "stats", stats)
        y = (x32 - stats["mean"]) * jax.lax.rsqrt(stats["var"] + self.epsilon) * scale + bias
        return y.astype(x.dtype)


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the identity (Table 1, bottom)."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, stats=None):
        c = x.shape[-1]
        stats = stats or {}
        y = nn.relu(InstanceNorm(name="in1")(ConvLayer(c, 3, dtype=self.dtype, name="conv1")(x), stats.get("in1")))
        y = InstanceNorm(name="in2")(ConvLayer(c, 3, dtype=self.dtype, name="conv2")(y), stats.get("in2"))
        return x + y


class TransformerNet(nn.Module):
    """M(I_c; theta): RGB images in [0, 1], (B, H, W, 3) -> stylized RGB in [0, 1], same shape.

    H and W may be any size >= 4; sizes that are not multiples of 4 are handled by reflection-padding
    the input up to one and cropping the output back. `stats` (see `instance_norm_stats`) fixes every
    instance norm's statistics instead of taking them from `x`. `resampling`: one of RESAMPLING.
    """

    dtype: jnp.dtype = jnp.float32
    resampling: str = "nearest"

    @nn.compact
    def __call__(self, x, stats=None):
        if self.resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {RESAMPLING}, not {self.resampling!r}")
        h, w = x.shape[1], x.shape[2]
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
        x = x.astype(self.dtype)
        stats = stats or {}
        conv = lambda f, k, s=1, u=1, name=None: ConvLayer(f, k, s, u, self.dtype, self.resampling, name=name)
        norm = lambda y, name: InstanceNorm(name=name)(y, stats.get(name))
        y = nn.relu(norm(conv(32, 9, name="conv1")(x), "in1"))
        y = nn.relu(norm(conv(64, 3, 2, name="conv2")(y), "in2"))
        y = nn.relu(norm(conv(128, 3, 2, name="conv3")(y), "in3"))
        for i in range(1, 6):
            y = ResidualBlock(dtype=self.dtype, name=f"res{i}")(y, stats.get(f"res{i}"))
        y = nn.relu(norm(conv(64, 3, 1, 2, name="deconv1")(y), "in4"))
        y = nn.relu(norm(conv(32, 3, 1, 2, name="deconv2")(y), "in5"))
        y = conv(3, 9, name="deconv3")(y)
        y = jax.nn.sigmoid(y.astype(jnp.float32))
        return y[:, :h, :w, :]


def init_params(key, size=64):
    """Random theta: a params pytree. Flax's default init (LeCun-normal kernels, zero biases, unit IN
    scale); the official PyTorch code uses PyTorch's default (Kaiming-uniform kernels and biases)."""
    return TransformerNet().init(key, jnp.zeros((1, size, size, 3), jnp.float32))["params"]


def abstract_params():
    """theta's structure as ShapeDtypeStructs, without computing an initialization (jax.eval_shape)."""
    return jax.eval_shape(lambda: init_params(jax.random.key(0), 16))


def apply(params, images, dtype=jnp.float32, stats=None, resampling="nearest", phases=1):
    """Run the network: params pytree, images (B, H, W, 3) in [0, 1] -> (B, H, W, 3) in [0, 1].

    `stats` (from `instance_norm_stats`) replaces the instance norms' own per-image statistics; `resampling`
    is the model's (`checkpoints.resampling(meta)`); `phases` (a key of PHASES) averages the output over that
    many shifts of the input against the network's grid (`phase_average`).
    """
    net = TransformerNet(dtype=dtype, resampling=resampling)
    run = lambda x: net.apply({"params": params}, x, stats)
    return run(images) if phases == 1 else phase_average(run, images, PHASES[phases])


def phase_average(run, images, shifts):
    """The mean over `shifts` (dy, dx) of `run` on `images` (B, H, W, C) shifted by (dy, dx) against the
    network's GRID: each shift runs on the batch reflection-padded by GRID px, in a window where image pixel
    (y, x) sits at (y + dy, x + dx), and crops the output back -> (B, H, W, C). One compiled `run` (a lax.map)."""
    b, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (GRID, GRID), (GRID, GRID), (0, 0)), mode="reflect")

    def one(shift):
        window = jax.lax.dynamic_slice(padded, (0, GRID - shift[0], GRID - shift[1], 0), (b, h + GRID, w + GRID, c))
        return jax.lax.dynamic_slice(run(window), (0, shift[0], shift[1], 0), (b, h, w, c))

    return jax.lax.map(one, jnp.asarray(shifts, jnp.int32)).mean(axis=0)


@functools.partial(jax.jit, static_argnames=("dtype", "resampling", "phases"))
def stylize_batch(params, images, dtype="float32", resampling="nearest", phases=1):
    """`apply` compiled (once per shape): M(images; params), (B, H, W, 3) in [0, 1] -> (B, H, W, 3) in [0, 1],
    the convolutions in `dtype` ("float32", or "bfloat16": `onednn` on the CPU), averaged over `phases`."""
    return apply(params, images, jnp.dtype(dtype), resampling=resampling, phases=phases)


def instance_norm_stats(params, images, dtype=jnp.float32, resampling="nearest"):
    """Every instance norm's statistics on `images` (B, H, W, 3): a pytree named like the modules,
    {"in1": {"mean", "var"}, ..., "res1": {"in1": ..., "in2": ...}, ...}, leaves (B, 1, 1, C) float32."""
    _, state = TransformerNet(dtype=dtype, resampling=resampling).apply({"params": params}, images,
                                                                         mutable=["intermediates"])

    def unwrap(tree):  # sow stores {"stats": (value,)} under each instance norm
        return tree["stats"][0] if "stats" in tree else {k: unwrap(v) for k, v in tree.items()}

    return unwrap(state["intermediates"])


def instance_norm_mask(params):
    """Pytree of bools, True exactly at instance-norm scale/shift leaves (for optax.masked and friends)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(IN_NAME.match(getattr(k, "key", "")) for k in path), params)


def conv_layers(resampling="nearest"):
    """The network's convolutions, input to output, as (kernel, stride, upsample, blurred) tuples (blurred: a
    binomial blur after the upsampling or before the strided convolution), read off a trace of TransformerNet
    (`nn.intercept_methods` over `jax.eval_shape`), so that what is derived from the architecture (tiling's
    receptive radius) follows any change to it."""
    found = []

    def record(call, args, kwargs, context):
        m = context.module
        if isinstance(m, ConvLayer) and context.method_name == "__call__":
            found.append((m.kernel, m.stride, m.upsample,
                          m.resampling == "antialiased" and (m.upsample > 1 or m.stride > 1)))
        return call(*args, **kwargs)

    params = abstract_params()
    with nn.intercept_methods(record):
        jax.eval_shape(lambda p: TransformerNet(resampling=resampling).apply({"params": p},
                                                                            jnp.zeros((1, 16, 16, 3))), params)
    return tuple(found)


def count_params(params):
    """Total number of scalars in a params pytree."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
