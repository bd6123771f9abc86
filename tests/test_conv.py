"""metastyle_jax.conv: the CPU convolution equals lax.conv_general_dilated in value and in derivatives of
first, second and third order (float64), for every stride, kernel, padding and channel ratio the
networks use (both branches of weight_grad: fewer input or fewer output channels)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec

from metastyle_jax import conv

DN = ("NHWC", "HWIO", "NHWC")
CASES = [  # stride, kernel, in, out, padding
    (1, 3, 3, 4, "SAME"),
    (2, 3, 3, 4, "SAME"),
    (1, 9, 3, 4, "VALID"),
    (1, 9, 4, 3, "VALID"),
    (2, 3, 4, 3, "VALID"),
    (1, 3, 5, 2, ((2, 0), (1, 3))),
    (2, 3, 5, 2, ((2, -1), (1, 3))),
]


def _derivatives(fn, x, w, stride, padding):
    """Value, gradient, a scalar of the gradient differentiated again (the meta-gradient's second order)
    w.r.t. x and w, and a third-order derivative w.r.t. w."""
    loss = lambda x, w: jnp.sum(jnp.sin(fn(x, w, (stride, stride), padding, dimension_numbers=DN)))
    grad = jax.grad(loss, argnums=(0, 1))
    probe = [jnp.cos(3.0 * g) for g in grad(x, w)]
    second = jax.grad(lambda x, w: sum(jnp.vdot(g, p) for g, p in zip(grad(x, w), probe)), argnums=(0, 1))
    third = jax.grad(lambda w: jnp.sum(jnp.sin(second(x, w)[0])))
    return loss(x, w), grad(x, w), second(x, w), third(w)


@pytest.mark.parametrize("stride,kernel,c_in,c_out,padding", CASES)
def test_matches_lax_to_third_order(stride, kernel, c_in, c_out, padding):
    with jax.enable_x64():
        r = np.random.default_rng(stride * 100 + kernel * 10 + c_in)
        x = jnp.asarray(r.normal(size=(2, 11, 10, c_in)))
        w = jnp.asarray(r.normal(size=(kernel, kernel, c_in, c_out)))
        ours = _derivatives(conv.conv_general_dilated, x, w, stride, padding)
        ref = _derivatives(jax.lax.conv_general_dilated, x, w, stride, padding)
        for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_unpadded_axis_gets_no_extra_output():
    """spatial_conv's extra zero row on an unpadded axis is cropped back: output shape and values of VALID."""
    r = np.random.default_rng(0)
    x, w = r.normal(size=(1, 12, 9, 3)).astype(np.float32), r.normal(size=(3, 3, 3, 2)).astype(np.float32)
    for strides in ((1, 1), (2, 2), (2, 1)):
        ours = conv.spatial_conv(x, w, strides, ((0, 0), (0, 0)))
        ref = jax.lax.conv_general_dilated(x, w, strides, "VALID", dimension_numbers=DN)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_gradients_inside_shard_map():
    """A replicated kernel with a device-varying input (parallel.data_parallel's case): the kernel gradient is
    summed over the mesh as with lax's convolution."""
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    r = np.random.default_rng(1)
    x, w = r.normal(size=(2, 8, 8, 3)).astype(np.float32), r.normal(size=(3, 3, 3, 4)).astype(np.float32)

    def make(fn):
        def per_device(w, x):
            loss = lambda w: jnp.sum(fn(x, w, (1, 1), "SAME", dimension_numbers=DN) ** 2)
            return jax.lax.psum(jax.grad(loss)(w), "data")
        return jax.shard_map(per_device, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec("data")),
                             out_specs=PartitionSpec())(w, x)

    np.testing.assert_allclose(make(conv.conv_general_dilated), make(jax.lax.conv_general_dilated),
                               rtol=1e-4, atol=1e-4)


def test_rejects_what_it_does_not_implement():
    x, w = jnp.zeros((1, 8, 8, 2)), jnp.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="without dilation"):
        conv.conv_general_dilated(x, w, (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=DN)
    with pytest.raises(ValueError, match="without dilation"):
        conv.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=2, dimension_numbers=DN)
