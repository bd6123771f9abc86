import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from metastyle_jax import color, data, images, transformer, video
from metastyle_jax.commands import stylize as stylize_cmd


def _rgb_samples():
    """Random colours and the 8 corners of the RGB cube: float32 (N, 3)."""
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    return np.concatenate([np.random.default_rng(0).random((4096, 3)), corners]).astype(np.float32)


@pytest.mark.parametrize("xp", [np, jnp])
def test_round_trip_is_the_identity(xp):
    rgb = xp.asarray(_rgb_samples())
    back = color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb))
    assert back.dtype == rgb.dtype
    assert float(xp.abs(back - rgb).max()) < 1e-6


def test_bt601_full_range_as_pillow_and_jpeg():
    ycc = color.rgb_to_ycbcr(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(ycc[:2], [[1.0, 0.5, 0.5], [0.0, 0.5, 0.5]], atol=1e-12)  # no colour: Cb = Cr = 0.5
    np.testing.assert_allclose(ycc[2], [0.299, 0.5 - 0.299 / 1.772, 1.0], atol=1e-12)  # red: Cr at its maximum
    np.testing.assert_allclose(ycc[3], [0.114, 1.0, 0.5 - 0.114 / 1.402], atol=1e-12)  # blue: Cb at its maximum
    u8 = (_rgb_samples()[:, None, :] * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(u8).convert("YCbCr"), np.float32) / 255
    assert np.abs(color.rgb_to_ycbcr(u8 / np.float32(255)) - pil).max() <= 1.01 / 255  # Pillow rounds to uint8


def test_preserve_color_takes_luminance_from_the_stylized_and_chroma_from_the_content():
    rng = np.random.default_rng(1)
    stylized = (0.3 + 0.4 * rng.random((2, 24, 32, 3))).astype(np.float32)  # mid-range: nothing is clipped
    content = (0.3 + 0.4 * rng.random((2, 24, 32, 3))).astype(np.float32)
    out = color.preserve_color(stylized, content)
    assert out.shape == stylized.shape and out.dtype == np.float32
    got, s, c = color.rgb_to_ycbcr(out), color.rgb_to_ycbcr(stylized), color.rgb_to_ycbcr(content)
    np.testing.assert_allclose(got[..., 0], s[..., 0], atol=1e-6)
    np.testing.assert_allclose(got[..., 1:], c[..., 1:], atol=1e-6)
    assert np.abs(out - stylized).max() > 0.1  # the colours did change
    jax_out = color.preserve_color(jnp.asarray(stylized), jnp.asarray(content))
    np.testing.assert_allclose(np.asarray(jax_out), out, atol=1e-6)


def test_preserve_color_clips_and_resizes_the_content():
    stylized = np.ones((16, 24, 3), np.float32)  # white luminance with a saturated red: out of gamut
    content = np.zeros((32, 48, 3), np.float32)
    content[..., 0] = 1.0
    out = color.preserve_color(stylized, content)
    assert out.shape == (16, 24, 3) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[0, 0], [1.0, 0.701, 0.701], atol=1e-3)  # Y = 1 with red's Cb, Cr, clipped
    with pytest.raises(ValueError, match="differ in size"):
        color.preserve_color(np.zeros((2, 8, 8, 3)), np.zeros((2, 4, 4, 3)))


def test_cli_preserve_color_on_a_real_photo(tmp_path, model):
    src = tmp_path / "astronaut.png"
    images.save_image(src, images.resize(images.as_float_rgb(data.skimage_image("astronaut")), 48))
    plain, kept = tmp_path / "plain.png", tmp_path / "kept.png"
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(plain)])
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(kept), "--preserve-color"])
    content, styled, out = (color.rgb_to_ycbcr(images.load_image(p)) for p in (src, plain, kept))
    unclipped = color.ycbcr_to_rgb(np.concatenate([styled[..., :1], content[..., 1:]], -1))
    inside = np.all((unclipped > 0.01) & (unclipped < 0.99), axis=-1)
    assert inside.mean() > 0.5
    # 8-bit files: each value is off by up to half a level, a little more after the colour transforms
    assert np.abs(out[..., 0] - styled[..., 0])[inside].max() < 2.5 / 255
    assert np.abs(out[..., 1:] - content[..., 1:])[inside].max() < 2.5 / 255
    assert np.abs(styled[..., 1:] - content[..., 1:])[inside].mean() > 5 / 255  # without the flag: restyled colours


def test_video_frames_keep_their_colours(tmp_path, model, theta):
    frames = [(np.random.default_rng(i).random((32, 48, 3)) * 0.4 + 0.3).astype(np.float32) for i in range(3)]
    pairs = list(video.stylize_frames(theta, frames, batch_size=2, preserve_color=True, phases=1))
    for frame, (content, styled) in zip(frames, pairs):
        plain = np.asarray(transformer.stylize_batch(theta, frame[None]))[0]
        expected = color.preserve_color(plain, frame)
        np.testing.assert_allclose(styled, expected, atol=1e-5)
    for i, f in enumerate(frames, start=1):
        images.save_image(tmp_path / "in" / f"frame_{i}.png", f)
    stylize_cmd.main(["--model", str(model), "--video", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                  "--preserve-color", "--batch-size", "2"])
    for i in range(1, 4):  # the CLI gets 8-bit frames back from the PNGs: half a level each way
        frame = images.load_image(tmp_path / "in" / f"frame_{i}.png")
        expected = color.preserve_color(np.asarray(transformer.stylize_batch(theta, frame[None],
                                                                           phases=transformer.DEFAULT_PHASES["nearest"]))[0], frame)
        got = images.load_image(tmp_path / "out" / f"frame_{i:06d}.png")
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-5
