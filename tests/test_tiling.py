import itertools
import subprocess
import sys

import jax
import numpy as np
import pytest

from metastyle_jax import data, images, stylize, tiling, transformer
from metastyle_jax.errors import UserError
from metastyle_jax.commands import stylize as stylize_cmd

H, W = 260, 392  # tiles of 256 overlapping by 128: 2 rows x 3 columns


@pytest.fixture(scope="module")
def photo():
    """chelsea resized to (H, W): a real photo with smooth areas and edges."""
    return images.resize(images.as_float_rgb(data.skimage_image("chelsea")), size=(H, W))


@pytest.fixture(scope="module")
def whole(theta, photo):
    """The whole image through the network at once (its own instance-norm statistics)."""
    return np.asarray(transformer.stylize_batch(theta, photo[None]))[0]


@pytest.fixture(scope="module")
def small(photo):
    """A 96 x 128 crop of the photo."""
    return np.ascontiguousarray(photo[:96, :128])


@pytest.fixture(scope="module")
def small_whole(theta, small):
    return np.asarray(transformer.stylize_batch(theta, small[None]))[0]


@pytest.fixture(scope="module")
def tiled_exact(theta, photo):
    """Tiles of 256 overlapping by 128, sharing the full-resolution statistics."""
    return tiling.stylize_tiled(theta, photo, 256, 128, stats_side=None)


@pytest.fixture(scope="module")
def tiled_half(theta, photo):
    """Tiles of 256 overlapping by 128, sharing the statistics of the photo at half size (196 px)."""
    return tiling.stylize_tiled(theta, photo, 256, 128, stats_side=196)


@pytest.mark.parametrize("resampling, radius", [("nearest", 57), ("antialiased", 63)])
def test_receptive_radius_is_the_measured_support_of_one_output_pixel(theta, resampling, radius):
    assert tiling.receptive_radius(resampling) == radius
    x = jax.random.uniform(jax.random.key(1), (1, 160, 160, 3))
    stats = transformer.instance_norm_stats(theta, x, resampling=resampling)  # fixed: no image-wide coupling
    grad = jax.jit(jax.grad(lambda im, c, p, s: transformer.apply(p, im, stats=s, resampling=resampling)[0, c, c, 0]))
    reach = 0
    for c in range(80, 84):  # the four phases of the two stride-2 layers
        support = np.argwhere(np.abs(np.asarray(grad(x, c, theta, stats)[0])).sum(-1) > 0)
        reach = max(reach, *(c - support.min(0)), *(support.max(0) - c))
    assert reach == radius


def test_antialiased_tiles_match_the_whole_image(theta, photo):
    """With the antialiased network too, tiles sharing the full-resolution statistics reproduce the whole image
    run with those statistics (its receptive radius, 63 px, is wider than the default margin of 56 px)."""
    stats = tiling.shared_stats(theta, photo, None, "antialiased")
    whole = np.asarray(transformer.apply(theta, photo[None], stats=stats, resampling="antialiased"))[0]
    tiled = tiling.stylize_tiled(theta, photo, 256, 128, stats_side=None, resampling="antialiased")
    assert np.abs(tiled - np.clip(whole, 0, 1)).max() < 1e-4


def test_tiles_averaged_over_grid_phases_match_the_whole_image_averaged(theta, photo):
    """Averaged over the 4 diagonal grid shifts (`phases`), tiles reproduce the whole image averaged the same way:
    every tile origin is on the 4-pixel grid, so each shift meets the same phase in every tile."""
    stats = tiling.shared_stats(theta, photo, None, "antialiased")
    whole = np.asarray(tiling.apply_with_stats(theta, photo[None], stats, "antialiased", phases=4))[0]
    tiled = tiling.stylize_tiled(theta, photo, 256, 128, stats_side=None, resampling="antialiased", phases=4)
    assert np.abs(tiled - np.clip(whole, 0, 1)).max() < 1e-4
    assert np.abs(whole - np.asarray(tiling.apply_with_stats(theta, photo[None], stats, "antialiased"))[0]).max() > 1e-3


def test_fixed_statistics_of_the_image_itself_change_nothing(theta, small, small_whole):
    stats = transformer.instance_norm_stats(theta, small[None])
    assert set(stats) == {"in1", "in2", "in3", "in4", "in5", "res1", "res2", "res3", "res4", "res5"}
    assert stats["res1"]["in2"]["var"].shape == (1, 1, 1, 128)
    fixed = np.asarray(jax.jit(transformer.apply)(theta, small[None], stats=stats))[0]
    np.testing.assert_allclose(fixed, small_whole, atol=1e-5)  # the same arithmetic, compiled apart


@pytest.mark.parametrize("length,tile,overlap", [(392, 256, 128), (260, 256, 128), (128, 48, 16), (100, 48, 8),
                                                 (40, 48, 16)])
def test_tile_starts_are_aligned_cover_and_overlap(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert all(s % tiling.ALIGN == 0 for s in starts) and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in itertools.pairwise(starts))  # neighbours overlap enough


def test_window_ramps_are_complementary_and_zero_in_the_margin():
    r = tiling.ramp(16)
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-12)
    assert np.all(np.diff(r) > 0) and 0 < r[0] < 0.01
    w = tiling.window_1d(256, 128, rise=True, fall=False, margin=56)
    assert np.all(w[:56] == 0) and np.all(w[128 - 56:] == 1) and np.all(np.diff(w[56:72]) > 0)
    assert np.all(tiling.window_1d(256, 128, rise=False, fall=False, margin=56) == 1)


def test_tiles_equal_the_whole_image_when_the_overlap_covers_the_receptive_field(photo, whole, tiled_exact):
    assert len(tiling.plan(photo.shape, 256, 128)[2]) == 6
    # every counted pixel is >= 56 px from its tile's inner edges: only float rounding differs (measured 1.8e-6)
    assert np.abs(tiled_exact - whole).max() < 1e-5


def test_error_grows_as_the_overlap_shrinks_below_the_receptive_field(theta, small, small_whole):
    stats = tiling.shared_stats(theta, small, stats_side=None)  # 96 x 128: the receptive radius exceeds the overlaps
    errors = [np.abs(tiling.stylize_tiled(theta, small, tile, overlap, stats=stats) - small_whole).mean()
              for tile, overlap in [(48, 16), (64, 32), (96, 48)]]
    # measured on this random theta: 0.048, 0.014, 0.00054 (max 0.53, 0.22, 0.022): reflection padding at a
    # tile's edge reaches 57 px into it, so 16 px overlaps do not agree closely; 2 x 57 + a ramp do (above)
    assert errors[0] > errors[1] > errors[2] and errors[2] < 2e-3


def test_downscaled_statistics_are_close_but_looser(whole, tiled_exact, tiled_half):
    err_exact, err_half = np.abs(tiled_exact - whole).mean(), np.abs(tiled_half - whole).mean()
    # the statistics of a network's features depend on the scale of the details: measured 0.044 mean on this
    # random theta (0.034 for the Scream model of an earlier session at 512 px, statistics at 256)
    assert err_exact < 1e-6 < err_half < 0.08


def _spikes(image, axis):
    """How much the step between lines k and k+1 (columns for axis 1, rows for axis 0) stands out: its mean
    |difference| over the mean of the 12 neighbouring steps. A seam is a spike; ~1 elsewhere."""
    steps = np.abs(np.diff(image, axis=axis)).mean(axis=(1 - axis, 2))
    out = np.full(steps.shape, np.nan)
    for k in range(6, len(steps) - 6):
        out[k] = steps[k] / np.r_[steps[k - 6:k], steps[k + 1:k + 7]].mean()
    return out


def test_no_seam_where_tiles_meet_unlike_tiles_with_their_own_statistics(theta, photo, tiled_half):
    th, tw, origins = tiling.plan(photo.shape, 256, 128)
    tiled = tiled_half  # downscaled statistics
    own = tiling.own_stats_tiles(theta, photo, tile=128)
    for axis, size, n, starts in [(1, W, tw, {x for _, x in origins}), (0, H, th, {y for y, _ in origins})]:
        # every step where a tile starts or ends, or inside an overlap, against all the others
        near = sorted({k for s in starts for k in range(s - 1, s + 128)} | {s + n - 1 for s in starts})
        near = [k for k in near if 6 <= k < size - 7]
        spikes = _spikes(tiled, axis)
        others = np.delete(spikes, near)
        # measured: tiled 0.86-1.17 everywhere; own-statistics tiles 2.4-4.3 at their seams
        assert np.nanmax(spikes[near]) < 1.5 and np.nanmax(spikes[near]) <= np.nanmax(others) + 0.1
        seams = [k - 1 for k in range(128, size - 7, 128)]
        assert _spikes(own, axis)[seams].min() > 2.0  # the same check finds the seams of naive tiles


def test_one_compiled_function_for_all_tiles(theta, photo):
    apply_with_stats = tiling.apply_with_stats
    before = apply_with_stats._cache_size()
    tiling.stylize_tiled(theta, photo[:, :300], 128, 60, stats_side=64)  # 3 x 3 tiles of 128 x 128
    assert apply_with_stats._cache_size() == before + 1


def test_plan_refuses_bad_tiles():
    with pytest.raises(ValueError, match="multiple of 4"):
        tiling.plan((100, 100), 50, 16)
    with pytest.raises(ValueError, match="twice the overlap"):
        tiling.plan((100, 100), 48, 32)


def test_cli_tiles_match_the_library_and_say_so(tmp_path, model, theta, capsys):
    src = tmp_path / "in.png"
    photo = images.resize(images.as_float_rgb(data.skimage_image("chelsea")), size=(240, 300))
    images.save_image(src, photo)
    photo = images.load_image(src)
    out = tmp_path / "o.png"
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(out), "--tile", "232",
                  "--overlap", "116", "--stats-side", "120", "--phases", "2"])  # 2: the cheapest averaging
    assert "(1 in tiles)" in capsys.readouterr().out
    expected = tiling.stylize_tiled(theta, photo, 232, 116, stats_side=120, phases=2)
    assert np.abs(images.load_image(out) - expected).max() <= 0.5 / 255 + 1e-6


def test_auto_tiles_only_above_the_pixel_threshold():
    big = int(np.sqrt(stylize.TILE_ABOVE_PIXELS)) + 4
    assert stylize.tile_size((big, big, 3)) == tiling.DEFAULT_TILE
    assert stylize.tile_size((512, 512, 3)) is None
    assert stylize.tile_size((big, big, 3), "off") is None
    assert stylize.tile_size((300, 200, 3), 256) == 256 and stylize.tile_size((200, 200, 3), 256) is None


@pytest.mark.parametrize("extra,match", [
    (["--max-side", "9000"], "between 16 and 8192 px"),
    (["--overlap", "16"], "receptive radius"),
    (["--tile", "200"], "twice the overlap"),
    (["--tile", "258", "--overlap", "120"], "multiple of 4"),
    (["--stats-side", "8"], "--stats-side"),
])
def test_cli_bad_tiling_flags(tmp_path, extra, match):
    src = tmp_path / "in.png"
    images.save_image(src, np.zeros((20, 20, 3)))
    with pytest.raises(UserError, match=match):
        stylize_cmd.main(["--content", str(src), "--out", str(tmp_path / "o.png")] + extra)


def test_cli_image_over_the_cap_and_tile_flags_with_video_are_one_line_errors(tmp_path):
    wide = tmp_path / "wide.png"
    images.save_image(wide, np.zeros((16, stylize.MAX_SIDE + 8), np.uint8))
    with pytest.raises(UserError, match=f"over {stylize.MAX_SIDE} px"):
        stylize_cmd.main(["--content", str(wide), "--out", str(tmp_path / "o.png")])
    with pytest.raises(UserError, match="not to --video"):
        stylize_cmd.main(["--video", str(tmp_path), "--out", str(tmp_path / "v.mp4"), "--tile", "512"])
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.stylize", "--content", str(wide), "--out",
                        str(tmp_path / "o.png"), "--tile", "big"], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--tile" in r.stderr


def test_the_layers_are_read_off_the_network():
    """tiling.layers() comes from tracing TransformerNet: one entry per convolution of the parameter tree, with
    its kernel size, and the strides and upsampling that make tiles align on multiples of 4."""
    layers = transformer.conv_layers()
    kernels = [x.shape[0] for path, x in jax.tree_util.tree_leaves_with_path(transformer.abstract_params())
               if "kernel" in jax.tree_util.keystr(path)]
    assert len(layers) == len(kernels) == 16 and sorted(k for k, _, _, _ in layers) == sorted(kernels)
    assert [s for _, s, _, _ in layers].count(2) == 2 and [u for _, _, u, _ in layers].count(2) == 2
    assert not any(blurred for *_, blurred in layers)
    assert sum(blurred for *_, blurred in transformer.conv_layers("antialiased")) == 4  # 2 strided, 2 upsampled
    assert tiling.ALIGN == 4 and sum(layer[0] == "up" for layer in tiling.layers()) == 2
    assert len(tiling.layers("antialiased")) == len(tiling.layers()) + 4
