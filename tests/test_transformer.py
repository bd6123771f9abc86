import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metastyle_jax import onednn, transformer


def test_parameter_count_is_the_papers_1_68m(theta):
    assert transformer.count_params(theta) == 1_679_235


def test_layer_shapes_follow_supplementary_table_1(theta):
    shapes = {k: v["conv2d"]["kernel"].shape for k, v in theta.items() if k.startswith(("conv", "deconv"))}
    assert shapes == {"conv1": (9, 9, 3, 32), "conv2": (3, 3, 32, 64), "conv3": (3, 3, 64, 128),
                      "deconv1": (3, 3, 128, 64), "deconv2": (3, 3, 64, 32), "deconv3": (9, 9, 32, 3)}
    assert sorted(k for k in theta if k.startswith("res")) == [f"res{i}" for i in range(1, 6)]
    for i in range(1, 6):
        assert theta[f"res{i}"]["conv1"]["conv2d"]["kernel"].shape == (3, 3, 128, 128)


def test_instance_norm_mask_selects_exactly_the_in_scale_and_shift(theta):
    mask = transformer.instance_norm_mask(theta)
    selected = [jax.tree_util.keystr(path) for path, m in jax.tree_util.tree_leaves_with_path(mask) if m]
    # in1..in5 at the top, in1/in2 in each of 5 residual blocks: 15 layers, scale and bias each.
    assert len(selected) == 30
    assert all(("'scale'" in s or "'bias'" in s) and "conv2d" not in s for s in selected)
    n_in = sum(x.size for x, m in zip(jax.tree_util.tree_leaves(theta), jax.tree_util.tree_leaves(mask)) if m)
    assert n_in == 2 * (32 + 64 + 128 + 10 * 128 + 64 + 32)


@pytest.mark.parametrize("shape", [(2, 32, 32), (1, 37, 50), (1, 20, 64)])
def test_any_size_maps_to_same_size_in_unit_range(theta, shape):
    x = jax.random.uniform(jax.random.key(2), shape + (3,))
    y = transformer.apply(theta, x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_instance_norm_normalizes_each_image_and_channel():
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 4)) * 3 + 5
    y = transformer.InstanceNorm().apply({"params": {"scale": jnp.ones(4), "bias": jnp.zeros(4)}}, x)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, atol=1e-3)


def test_reflection_padding_and_nearest_upsampling():
    x = jnp.arange(9.0).reshape(1, 3, 3, 1)
    p = transformer.reflect_pad(x, 1)[0, :, :, 0]
    np.testing.assert_array_equal(p[0], [4, 3, 4, 5, 4])
    u = transformer.upsample_nearest(x)[0, :, :, 0]
    np.testing.assert_array_equal(u[:2, :2], [[0, 0], [0, 0]])
    np.testing.assert_array_equal(u[5, 4:], [8, 8])


def test_antialiased_upsampling_is_bilinear():
    """A binomial blur after nearest x2 upsampling is bilinear upsampling at half-pixel centres (the edges
    clamped), which has no response at the 2-pixel period: a constant stays constant."""
    x = jax.random.uniform(jax.random.key(5), (1, 6, 7, 2))
    ours = transformer.binomial_blur(transformer.upsample_nearest(x))
    bilinear = jax.image.resize(x, (1, 12, 14, 2), "bilinear", antialias=False)
    np.testing.assert_allclose(ours, bilinear, atol=1e-6)


def test_antialiased_network_has_the_same_parameters_and_differs(theta):
    """The antialiased network takes theta as it is (no parameters of its own) and computes something else;
    on a constant image both give a constant image (no lattice from a flat input)."""
    x = jax.random.uniform(jax.random.key(6), (1, 32, 32, 3))
    aa = transformer.apply(theta, x, resampling="antialiased")
    assert aa.shape == x.shape and float(jnp.abs(aa - transformer.apply(theta, x)).max()) > 1e-3
    flat = transformer.apply(theta, jnp.full((1, 32, 32, 3), 0.4), resampling="antialiased")
    assert float(jnp.ptp(flat[:, 8:-8, 8:-8], axis=(1, 2)).max()) < 1e-5
    with pytest.raises(ValueError, match="resampling"):
        transformer.apply(theta, x, resampling="bicubic")


@pytest.mark.skipif(jax.default_backend() == "cpu" and onednn.status() is not None,
                    reason="bfloat16 convolutions on the CPU need oneDNN, which is not installed here")
def test_bf16_compute_is_close_to_f32(theta):
    x = jax.random.uniform(jax.random.key(4), (1, 32, 32, 3))
    y32 = transformer.apply(theta, x)
    y16 = transformer.apply(theta, x, dtype=jnp.bfloat16)
    assert y16.dtype == jnp.float32
    assert float(jnp.abs(y32 - y16).max()) < 0.05


def test_phase_average_aligns_every_shift_and_cancels_a_grid_locked_lattice():
    """Averaging over shifts against the 4-pixel grid: an operation that commutes with shifts (here the identity)
    comes back unchanged, pixel for pixel, so every shifted window is cropped back where it came from; a pattern
    locked to the grid (added at the same grid phase whatever the input) is removed by all 16 shifts, and its axial
    4-pixel periods by the 2 and 4 diagonal ones, while its 2-pixel checkerboard survives those."""
    x = jax.random.uniform(jax.random.key(7), (2, 13, 18, 3))
    for phases, shifts in transformer.PHASES.items():
        np.testing.assert_allclose(transformer.phase_average(lambda v: v, x, shifts), x, atol=1e-6,
                                   err_msg=f"phases {phases}")
    yy, xx = np.mgrid[:17, :22]
    axial = np.cos(np.pi / 2 * yy) + np.sin(np.pi / 2 * xx)    # periods of 4 pixels along each axis
    checker = np.cos(np.pi * (yy + xx))                        # the 2-pixel checkerboard
    for lattice, kept in ((axial, {1: 1.0, 2: 0.0, 4: 0.0, 16: 0.0}), (checker, {1: 1.0, 2: 1.0, 4: 1.0, 16: 0.0})):
        grid_locked = lambda v: v + jnp.asarray(lattice, jnp.float32)[None, :, :, None]  # windows are 17 x 22
        for phases, shifts in transformer.PHASES.items():
            residue = transformer.phase_average(grid_locked, x, shifts) - x
            expected = kept[phases] * lattice[:13, :18]  # the window of shift (0, 0) starts at image pixel (0, 0)
            np.testing.assert_allclose(residue[0, :, :, 0], expected, atol=1e-5, err_msg=f"phases {phases}")


def test_phases_one_is_the_network_and_more_phases_run_it_shifted(theta):
    x = jax.random.uniform(jax.random.key(8), (1, 24, 20, 3))
    np.testing.assert_allclose(transformer.stylize_batch(theta, x), transformer.apply(theta, x), atol=1e-5)
    net = lambda v: transformer.apply(theta, v, resampling="antialiased")
    averaged = transformer.stylize_batch(theta, x, resampling="antialiased", phases=4)
    np.testing.assert_allclose(averaged, transformer.phase_average(net, x, transformer.PHASES[4]), atol=1e-5)
    assert averaged.shape == x.shape and float(jnp.abs(averaged - net(x)).max()) > 1e-4
