"""A 2-D convolution for XLA's CPU backend: the value and every derivative of `lax.conv_general_dilated`,
computed the ways that backend runs fast.

Slow paths of XLA:CPU that it avoids (`benchmarks/xla_cpu_slow_paths.py` and `benchmarks/profile_meta.py`
measure them; benchmarks/results/cpu_speed.md has the figures):
- a convolution with no padding on a spatial axis (`padding="VALID"`) is much slower than the same one given
  one row of zero padding: `spatial_conv` pads one zero row on the high side of such an axis and crops the
  extra output row (exact: that output row is the only one that reads the zero);
- weight-gradient convolutions (kernel-sized outputs) run far below the forward convolutions: `weight_grad`
  computes them as matrix products of shifted copies of the operand with fewer channels;
- in the meta-gradient's second order, `lax.rev` of a kernel becomes reversed-window convolutions run as
  naive loops: `_flip` reverses by a product with an anti-identity matrix.
`conv` is a `jax.custom_vjp` whose backward pass is made of `conv` itself (input gradient), `weight_grad`
(kernel gradient, plain products and slices) and `_flip`, so derivatives of any order (the meta-gradient's
second order) stay on the fast paths. NHWC inputs, HWIO kernels, no kernel dilation, one feature group.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import manual_axes, onednn

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _flip(kernel):
    """An HWIO kernel reversed along H and W, as products with anti-identity matrices (exact: one 1 per row)."""
    for axis in (0, 1):
        anti = jnp.asarray(np.eye(kernel.shape[axis])[::-1], kernel.dtype)
        kernel = jnp.moveaxis(jnp.tensordot(anti, kernel, axes=[[1], [axis]],
                                            precision=jax.lax.Precision.HIGHEST), 0, axis)
    return kernel


def output_size(size, kernel, stride, lo, hi):
    """The output length of a convolution along one axis of `size`, padded by (lo, hi)."""
    return (size + lo + hi - kernel) // stride + 1


def spatial_conv(x, w, strides, padding, precision=None):
    """`lax.conv_general_dilated(x, w, strides, padding)` for x (B, H, W, I), w (Kh, Kw, I, O) and explicit
    `padding` ((lo, hi), (lo, hi)) of any sign -> (B, Ho, Wo, O); no derivative rule of its own.

    Negative padding crops x first; an axis with no padding gets one zero row on the high side and the
    output is cropped back (XLA:CPU's unpadded convolutions take a slow path)."""
    sizes = [output_size(x.shape[1 + d], w.shape[d], strides[d], *padding[d]) for d in range(2)]
    crop = [(max(-lo, 0), max(-hi, 0)) for lo, hi in padding]
    if any(c for pair in crop for c in pair):
        x = x[:, crop[0][0]:x.shape[1] - crop[0][1], crop[1][0]:x.shape[2] - crop[1][1]]
    pads = [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    pads = [(lo, hi) if lo or hi else (0, 1) for lo, hi in pads]
    y = jax.lax.conv_general_dilated(x, w, tuple(strides), pads, dimension_numbers=DIMENSION_NUMBERS,
                                     precision=precision)
    return y[:, :sizes[0], :sizes[1]]


def weight_grad(x, g, kernel_shape, strides, padding, precision=None):
    """The kernel gradient of `spatial_conv`: dW[i, j, c, d] = sum_{b, p, q} x_pad[b, p s0 + i, q s1 + j, c]
    g[b, p, q, d] for x (B, H, W, I), the output gradient g (B, Ho, Wo, O) -> (Kh, Kw, I, O).

    Computed as Kh matrix products over the B Ho Wo (or B H W) positions of Kw shifted copies of the operand
    with fewer channels: x's windows (strided), or, for stride 1 with O < I, g shifted the other way."""
    kh, kw = kernel_shape[:2]
    (ho, wo), (c_in, c_out) = g.shape[1:3], (x.shape[3], g.shape[3])
    zero = jnp.zeros((), x.dtype)
    x = jax.lax.pad(x, zero, [(0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)])
    dot = functools.partial(jnp.einsum, precision=precision)
    xt = jnp.transpose(x, (3, 0, 1, 2))  # (I, B, Hp, Wp): positions minor, as the products want
    gt = jnp.transpose(g, (3, 0, 1, 2))  # (O, B, Ho, Wo)
    if tuple(strides) != (1, 1) or c_in <= c_out:
        rows = []
        for i in range(kh):
            shifted = jnp.stack([xt[:, :, i:i + (ho - 1) * strides[0] + 1:strides[0],
                                    j:j + (wo - 1) * strides[1] + 1:strides[1]] for j in range(kw)])
            rows.append(dot("jcbpq,dbpq->jcd", shifted, gt))
        return jnp.stack(rows)
    # stride 1, fewer output channels: dW[i, j] = sum_n x_pad[n] g_ext[n - (i, j)], g shifted by (i, j)
    hp, wp = ho + kh - 1, wo + kw - 1
    xt = xt[:, :, :hp, :wp]
    gfull = jax.lax.pad(gt, zero, [(0, 0, 0), (0, 0, 0), (kh - 1, kh - 1, 0), (kw - 1, kw - 1, 0)])
    rows = []
    for i in range(kh):
        shifted = jnp.stack([gfull[:, :, kh - 1 - i:kh - 1 - i + hp, kw - 1 - j:kw - 1 - j + wp] for j in range(kw)])
        rows.append(dot("jdbpq,cbpq->jcd", shifted, xt))
    return jnp.stack(rows)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv(x, w, strides, padding, precision=None):
    """`spatial_conv` with derivatives of every order on XLA:CPU's fast paths (module docstring).

    x (B, H, W, I), w (Kh, Kw, I, O), strides (s0, s1), padding ((lo, hi), (lo, hi)) -> (B, Ho, Wo, O)."""
    return spatial_conv(x, w, strides, padding, precision)


def _conv_fwd(x, w, strides, padding, precision):
    return spatial_conv(x, w, strides, padding, precision), (x, w)


def _conv_bwd(strides, padding, precision, res, g):
    x, w = res
    # input gradient: g dilated by the stride (interior zeros, a lax.pad) and padded to the full correlation,
    # convolved with the flipped, in/out-swapped kernel
    full = tuple((w.shape[d] - 1 - padding[d][0],
                  x.shape[1 + d] + padding[d][0] - 1 - (g.shape[1 + d] - 1) * strides[d]) for d in range(2))
    dilated = g if tuple(strides) == (1, 1) else jax.lax.pad(
        g, jnp.zeros((), g.dtype), [(0, 0, 0), (0, 0, strides[0] - 1), (0, 0, strides[1] - 1), (0, 0, 0)])
    dx = conv(dilated, jnp.swapaxes(_flip(w), 2, 3), (1, 1), full, precision)
    return dx, weight_grad(x, g, w.shape, strides, padding, precision)


conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, *, engine=None, **_):
    """A drop-in for `lax.conv_general_dilated` (as `flax.linen.Conv(conv_general_dilated=...)` calls it)
    that runs `conv`, or `onednn.conv` (bfloat16 operands, float32 result) with engine="onednn": 2-D,
    NHWC/HWIO, no dilation, one feature group; padding a string or explicit pairs."""
    dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if (dn != jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, DIMENSION_NUMBERS) or lhs.ndim != 4
            or tuple(lhs_dilation or (1, 1)) != (1, 1) or tuple(rhs_dilation or (1, 1)) != (1, 1)
            or feature_group_count != 1):
        raise ValueError("conv.conv_general_dilated: 2-D NHWC/HWIO convolutions without dilation or groups only")
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    padding = tuple(tuple(int(p) for p in pair) for pair in padding)
    lhs, rhs = manual_axes.same_variance(lhs, rhs)
    strides = tuple(int(s) for s in window_strides)
    if engine == "onednn":
        return onednn.conv(lhs, rhs, strides, padding)
    return conv(lhs, rhs, strides, padding, precision)


def for_backend(backend=None, dtype=jnp.float32):
    """The convolution for `flax.linen.Conv(conv_general_dilated=...)` on `backend` (default: JAX's) in the
    compute `dtype`: on the CPU, `conv_general_dilated` of this module, through oneDNN for bfloat16 (whose
    availability `onednn.resolve_dtype` checks first); `lax.conv_general_dilated` (cuDNN's path) elsewhere."""
    if (backend or jax.default_backend()) != "cpu":
        return jax.lax.conv_general_dilated
    if jnp.dtype(dtype) == jnp.bfloat16:
        return functools.partial(conv_general_dilated, engine="onednn")
    return conv_general_dilated
