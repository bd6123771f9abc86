"""Image I/O: every Pillow mode to float RGB, 16-bit precision, EXIF orientation, bad files, saving, previews."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from metastyle_jax import images
from metastyle_jax.errors import UserError


def _gradient(h=40, w=48):
    """A deterministic uint8 RGB test picture (H, W, 3) with distinct rows and columns."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 5) % 256, (y * 6) % 256, (x * 3 + y * 2) % 256], axis=2).astype(np.uint8)


def _png_filter_row(row, prev, bpp, ftype):
    """PNG-filter one row of bytes against the previous row (PNG spec section 9), written plainly per byte."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b
        elif ftype == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - pred) % 256)
    return bytes(out)


def _write_png16(path, pixels, colour_type, exif=None):
    """Write uint16 (H, W, C) as a 16-bit PNG whose rows use filter types 0..4 in turn (all five exercised)."""
    h, w = pixels.shape[:2]
    bpp = 2 * pixels.shape[2]
    raw, prev = b"", bytes(w * bpp)
    for r in range(h):
        row = pixels[r].astype(">u2").tobytes()
        raw += bytes([r % 5]) + _png_filter_row(row, prev, bpp, r % 5)
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + (chunk(b"eXIf", exif) if exif else b"") + chunk(b"IDAT", zlib.compress(raw))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))


def _check(image, shape):
    assert image.dtype == np.float32 and image.shape == shape
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_rgb_png_exact(tmp_path):
    pic = _gradient()
    Image.fromarray(pic).save(tmp_path / "a.png")
    out = images.load_image(tmp_path / "a.png")
    _check(out, (40, 48, 3))
    np.testing.assert_allclose(out, pic / 255.0, atol=1e-6)


def test_grayscale_and_bilevel(tmp_path):
    pic = _gradient()[:, :, 0]
    Image.fromarray(pic).save(tmp_path / "l.png")
    out = images.load_image(tmp_path / "l.png")
    _check(out, (40, 48, 3))
    for k in range(3):
        np.testing.assert_allclose(out[:, :, k], pic / 255.0, atol=1e-6)
    Image.fromarray(pic > 100).save(tmp_path / "one.png")
    np.testing.assert_array_equal(images.load_image(tmp_path / "one.png")[:, :, 1], (pic > 100).astype(np.float32))


def test_la_composited_over_white(tmp_path):
    la = np.zeros((20, 20, 2), np.uint8)
    la[:, :, 0] = 0
    la[:, :10, 1] = 255
    la[:, 10:, 1] = 0
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = images.load_image(tmp_path / "la.png")
    np.testing.assert_allclose(out[:, :10], 0.0)
    np.testing.assert_allclose(out[:, 10:], 1.0)


def test_rgba_composited_over_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    rgba[:5, :, 3] = 255
    rgba[5:10, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = images.load_image(tmp_path / "rgba.png")
    alpha = 128 / 255
    np.testing.assert_allclose(out[:5, :, 0], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(out[:5, :, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[5:10], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[10:, :, 0], 200 / 255 * alpha + 1 - alpha, atol=1e-6)
    np.testing.assert_allclose(out[10:, :, 1], 1 - alpha, atol=1e-6)


def test_palette_with_and_without_transparency(tmp_path):
    pic = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pic.save(tmp_path / "p.png")
    expected = np.asarray(pic.convert("RGB")) / 255.0
    np.testing.assert_allclose(images.load_image(tmp_path / "p.png"), expected, atol=1e-6)
    transparent_index = int(np.asarray(pic)[0, 0])
    pic.save(tmp_path / "pt.png", transparency=transparent_index)
    pic.save(tmp_path / "pt.gif", transparency=transparent_index)
    for name in ("pt.png", "pt.gif"):
        out = images.load_image(tmp_path / name)
        hole = np.asarray(pic) == transparent_index
        np.testing.assert_allclose(out[hole], 1.0)
        np.testing.assert_allclose(out[~hole], expected[~hole], atol=1e-6)


def test_cmyk(tmp_path):
    cmyk = Image.fromarray(_gradient()).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    cmyk.save(tmp_path / "c.tif")
    expected = np.asarray(cmyk.convert("RGB")) / 255.0
    np.testing.assert_allclose(images.load_image(tmp_path / "c.tif"), expected, atol=1e-6)
    jpeg = images.load_image(tmp_path / "c.jpg")
    _check(jpeg, (40, 48, 3))
    assert np.abs(jpeg - expected).mean() < 0.03


def test_gray16_png_keeps_16_bits(tmp_path):
    values = (np.arange(20 * 20).reshape(20, 20) * 163 + 257).astype(np.uint16)
    values[0, 0] = 257
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    out = images.load_image(tmp_path / "g16.png")
    assert out[0, 0, 0] == np.float32(257 / 65535)
    np.testing.assert_array_equal(out[:, :, 2], (values / 65535).astype(np.float32))


def test_gray16_big_endian_tiff_and_int32(tmp_path):
    values = (np.arange(20 * 20).reshape(20, 20) * 160 + 1).astype(np.uint16)
    Image.frombytes("I;16B", (20, 20), values.astype(">u2").tobytes()).save(tmp_path / "g16b.tif")
    np.testing.assert_allclose(images.load_image(tmp_path / "g16b.tif")[:, :, 0], values / 65535, atol=1e-7)
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i32.tif").mode == "I"
    np.testing.assert_allclose(images.load_image(tmp_path / "i32.tif")[:, :, 1], values / 65535, atol=1e-7)


def test_float_tiff(tmp_path):
    values = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    Image.fromarray(values).save(tmp_path / "f.tif")
    np.testing.assert_allclose(images.load_image(tmp_path / "f.tif")[:, :, 0], values, atol=1e-7)
    Image.fromarray(values * 255).save(tmp_path / "f255.tif")
    np.testing.assert_allclose(images.load_image(tmp_path / "f255.tif")[:, :, 0], values, atol=1e-6)


@pytest.mark.parametrize("channels,colour_type", [(3, 2), (4, 6), (2, 4)])
def test_png16_colour_keeps_16_bits(tmp_path, channels, colour_type):
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 65536, (17, 23, channels)).astype(np.uint16)
    pixels[..., -1] = 65535 if channels != 3 else pixels[..., -1]
    pixels[0, 0, 0] = 257
    _write_png16(tmp_path / "c16.png", pixels, colour_type)
    decoded, _ = images.read_png16(tmp_path / "c16.png")
    np.testing.assert_array_equal(decoded, pixels)
    out = images.load_image(tmp_path / "c16.png")
    colour = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    np.testing.assert_allclose(out, colour / 65535, atol=1e-7)
    assert out[0, 0, 0] == np.float32(257 / 65535)


def test_png16_alpha_and_colour_key(tmp_path):
    pixels = np.full((16, 16, 4), 30000, np.uint16)
    pixels[..., 3] = 0
    pixels[8:, :, 3] = 65535
    _write_png16(tmp_path / "a16.png", pixels, 6)
    out = images.load_image(tmp_path / "a16.png")
    np.testing.assert_allclose(out[:8], 1.0)
    np.testing.assert_allclose(out[8:], 30000 / 65535, atol=1e-7)


def test_png16_reader_matches_pillow_filters(tmp_path):
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(60) * 150, np.arange(50) * 90) + rng.integers(0, 3000, (60, 50))
    Image.fromarray(ramp.astype(np.uint16)).save(tmp_path / "g.png")
    decoded, _ = images.read_png16(tmp_path / "g.png")
    np.testing.assert_array_equal(decoded[:, :, 0], np.asarray(Image.open(tmp_path / "g.png")))


def test_png16_exif_orientation(tmp_path):
    pixels = np.zeros((16, 24, 3), np.uint16)
    pixels[0, 0] = 65535
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    _write_png16(tmp_path / "o16.png", pixels, 2, exif=exif.tobytes())
    out = images.load_image(tmp_path / "o16.png")
    assert out.shape == (24, 16, 3)
    assert out[0, -1, 0] == 1.0 and out.sum() == 3.0


def _jpeg_with_orientation(path, pic, orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(pic).save(path, quality=100, subsampling=0, exif=exif.tobytes())


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    pic = np.zeros((32, 48, 3), np.uint8)
    pic[:16, :16] = (255, 0, 0)
    _jpeg_with_orientation(tmp_path / "o6.jpg", pic, 6)
    out = images.load_image(tmp_path / "o6.jpg")
    assert out.shape == (48, 32, 3)
    assert out[4, 28, 0] > 0.9 and out[4, 28, 1] < 0.1
    assert out[4, 4].max() < 0.1 and out[44, 4].max() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    _jpeg_with_orientation(path, _gradient(32, 48), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")) / 255.0
    np.testing.assert_allclose(images.load_image(path), expected, atol=1e-6)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_text("hello, I am not a picture"), "not an image"),
        (lambda p: p.write_bytes(b""), "not an image"),
    ],
)
def test_bad_paths_are_user_errors(tmp_path, make, match):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(UserError, match=match) as e:
        images.load_image(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fmt", ["png", "jpg", "gif", "tif", "webp", "bmp"])
def test_truncated_files_are_user_errors(tmp_path, fmt):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noise.save(buf, format=Image.registered_extensions()[f".{fmt}"])
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UserError, match="corrupt or truncated|not an image") as e:
        images.load_image(path)
    assert str(path) in str(e.value)


def test_truncated_png16_is_user_error(tmp_path):
    _write_png16(tmp_path / "c16.png", np.ones((20, 20, 3), np.uint16), 2)
    data = (tmp_path / "c16.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(UserError, match="cut16.png"):
        images.load_image(tmp_path / "cut16.png")


def test_tiny_image(tmp_path):
    Image.new("RGB", (40, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="too small"):
        images.load_image(tmp_path / "tiny.png")
    assert images.load_image(tmp_path / "tiny.png", min_side=8).shape == (8, 40, 3)


def test_decompression_bomb_limit(tmp_path):
    Image.new("RGB", (100, 80)).save(tmp_path / "bomb.png")
    with pytest.raises(UserError, match="over the limit of 7,999"):
        images.load_image(tmp_path / "bomb.png", max_pixels=7999)
    assert images.load_image(tmp_path / "bomb.png", max_pixels=8000).shape == (80, 100, 3)


def test_huge_header_is_refused_before_decoding(tmp_path, recwarn):
    def header_only_png(path, w, h):
        def chunk(kind, body):
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b""))

    header_only_png(tmp_path / "big.png", 13000, 13000)
    with pytest.raises(UserError, match="169,000,000 pixels, over the limit of 150,000,000"):
        images.load_image(tmp_path / "big.png")
    header_only_png(tmp_path / "bigger.png", 30000, 30000)
    with pytest.raises(UserError, match="bigger.png: too many pixels"):
        images.load_image(tmp_path / "bigger.png")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_rgb16_tiff_keeps_16_bits(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    pixels = np.random.default_rng(3).integers(0, 65536, (18, 20, 3)).astype(np.uint16)
    pixels[0, 0, 0] = 257
    tifffile.imwrite(tmp_path / "c16.tif", pixels, photometric="rgb")
    out = images.load_image(tmp_path / "c16.tif")
    np.testing.assert_allclose(out, pixels / 65535, atol=1e-7)
    assert out[0, 0, 0] == np.float32(257 / 65535)


def test_max_side_and_short_side(tmp_path):
    pic = np.full((300, 200, 3), 128, np.uint8)
    Image.fromarray(pic).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(pic).save(tmp_path / "big.png")
    for name in ("big.jpg", "big.png"):
        small = images.load_image(tmp_path / name, max_side=64)
        assert small.shape == (64, 43, 3)
        assert abs(small.mean() - 128 / 255) < 0.01
        assert images.load_image(tmp_path / name, short_side=100).shape == (150, 100, 3)
        assert images.load_image(tmp_path / name, max_side=1000).shape == (300, 200, 3)


def test_resize():
    x = np.random.default_rng(0).random((60, 90, 3)).astype(np.float32)
    assert images.resize(x, 30).shape == (30, 45, 3)
    assert images.resize(x, (10, 20)).shape == (10, 20, 3)
    assert images.resize(x, max_side=45).shape == (30, 45, 3)
    assert images.resize(x, max_side=200).shape == (60, 90, 3)
    assert images.resize(x[:, :, 0], 30).shape == (30, 45)
    y = images.resize(x, 120)
    assert y.dtype == np.float32 and y.min() >= 0 and y.max() <= 1
    flat = np.full((60, 90, 3), 0.25, np.float32)
    np.testing.assert_allclose(images.resize(flat, 17), 0.25, atol=1e-5)
    np.testing.assert_allclose(images.resize(np.full((8, 8, 3), 255, np.uint8), 4), 1.0, atol=1e-6)


def test_save_round_trip(tmp_path):
    pic = _gradient()
    target = tmp_path / "new" / "deeper" / "out.png"
    images.save_image(target, pic / 255.0)
    np.testing.assert_array_equal(np.asarray(Image.open(target)), pic)
    images.save_image(tmp_path / "u8.png", pic)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "u8.png")), pic)
    images.save_image(tmp_path / "out.JPG", pic / 255.0)
    assert Image.open(tmp_path / "out.JPG").format == "JPEG"
    assert np.abs(images.load_image(tmp_path / "out.JPG") - pic / 255.0).mean() < 0.02
    images.save_image(tmp_path / "gray.png", np.full((10, 12), 2.0))
    assert np.asarray(Image.open(tmp_path / "gray.png")).min() == 255


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    images.save_image(tmp_path / "a.png", np.zeros((8, 8, 3)))
    images.save_image(tmp_path / "a.png", np.ones((8, 8, 3)))
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
    assert np.asarray(Image.open(tmp_path / "a.png")).min() == 255
    mode = os.stat(tmp_path / "a.png").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    with pytest.raises(ValueError):
        images.save_image(tmp_path / "b.png", np.zeros((8, 8, 5)))
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_save_errors(tmp_path):
    with pytest.raises(UserError, match="unknown image extension"):
        images.save_image(tmp_path / "out.xyz", np.zeros((8, 8, 3)))
    with pytest.raises(UserError, match="unknown image extension"):
        images.save_image(tmp_path / "noext", np.zeros((8, 8, 3)))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        images.save_image(tmp_path / "file" / "out.png", np.zeros((8, 8, 3)))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        images.save_image(tmp_path / "dir.png", np.zeros((8, 8, 3)))


def test_list_images_recursive_sorted(tmp_path):
    for rel in ["b.JPG", "a/c.png", "a/b/d.webp", "z.TIFF", "notes.txt", ".hidden.jpg", ".git/e.png", "a/f.Jpeg"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    found = [os.path.relpath(p, tmp_path) for p in images.list_images(tmp_path)]
    assert found == ["a/b/d.webp", "a/c.png", "a/f.Jpeg", "b.JPG", "z.TIFF"]
    with pytest.raises(UserError, match="no such folder"):
        images.list_images(tmp_path / "missing")
    with pytest.raises(UserError, match="not a folder"):
        images.list_images(tmp_path / "b.JPG")


def test_hstack_and_grid():
    a = np.zeros((20, 30, 3), np.float32)
    b = np.full((40, 40), 255, np.uint8)
    c = np.ones((10, 10, 4), np.float32)
    row = images.hstack([a, b, c], pad=2)
    assert row.shape == (10, 15 + 2 + 10 + 2 + 10, 3)
    np.testing.assert_allclose(row[:, 15:17], 1.0)
    np.testing.assert_allclose(row[:, :15], 0.0)
    assert images.hstack([a, b], height=40).shape == (40, 60 + 2 + 40, 3)
    g = images.grid([a, a, a, b, c], nrow=2, pad=1)
    assert g.shape == (10 * 3 + 2, 15 + 1 + 15, 3)
    np.testing.assert_allclose(g[21:, 11:], 1.0)
    assert images.grid([a, b], nrow=1, pad=0, height=20).shape == (40, 30, 3)
    assert g.dtype == np.float32 and g.min() >= 0 and g.max() <= 1
