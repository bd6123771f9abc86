"""Image files in and out: any image as float32 RGB (H, W, 3) in [0, 1], resizing, atomic saving, previews.

Every mistake a user can make with a file (missing, a folder, not an image, truncated, too small, too
large, unknown extension) raises `UserError` with one line naming the file and the fix.
"""

import os
import struct
import sys
import threading
import uuid
import warnings
import zlib

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from metastyle_jax import outputs
from metastyle_jax.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SAVE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
DEFAULT_MAX_PIXELS = 150_000_000
DEFAULT_MIN_SIDE = 16
JPEG_QUALITY = 95

# Image.open reads the process-wide warning filters; serialise our brief override of them.
_OPEN_LOCK = threading.Lock()

# The numpy equivalent of each EXIF orientation (what ImageOps.exif_transpose does), on (H, W, ...) arrays.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, 1),
}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG16_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def as_float_rgb(array):
    """Any image array -> float32 (H, W, 3) in [0, 1].

    Accepts (H, W) or (H, W, C) with C in 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); uint8 is scaled
    by 255, uint16 by 65535, bool to {0, 1}, floats are clipped. Alpha is composited over white.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 1|2|3|4), got {a.shape}")
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    elif a.dtype == np.bool_:
        x = a.astype(np.float32)
    else:
        x = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    if x.shape[2] in (2, 4):
        alpha = x[:, :, -1:]
        x = x[:, :, :-1] * alpha + (1.0 - alpha)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _pil_to_float_rgb(im, path):
    """A loaded Pillow image of any mode -> float32 (H, W, 3) in [0, 1]; 16-bit and float modes keep precision."""
    mode = im.mode
    if mode.startswith("I;16"):
        return as_float_rgb(np.asarray(im).astype(np.uint16))
    if mode == "I":
        return as_float_rgb(np.asarray(im).astype(np.float32) / 65535.0)
    if mode == "F":
        x = np.nan_to_num(np.asarray(im, dtype=np.float32))
        if x.size and x.max() > 1.0:
            x = x / 255.0
        return as_float_rgb(x)
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        return as_float_rgb(np.asarray(im.convert("RGBA")))
    if mode in ("1", "L"):
        return as_float_rgb(np.asarray(im.convert("L")))
    try:
        rgb = im.convert("RGB")
    except ValueError:
        raise UserError(f"{path}: Pillow cannot convert its colour mode {mode} to RGB: re-save it as RGB") from None
    return as_float_rgb(np.asarray(rgb))


def _png_unfilter(rows, bpp):
    """Undo PNG row filtering (PNG spec, section 9) of byte-aligned pixels.

    rows: uint8 (H, 1 + W * bpp), each row its filter type then its filtered bytes; returns uint8 (H, W, bpp).
    The Sub, Average and Paeth predictors depend on the reconstructed left, upper and upper-left pixels, so
    pixels are reconstructed one anti-diagonal at a time, each diagonal in one vectorised step.
    """
    h = rows.shape[0]
    w = (rows.shape[1] - 1) // bpp
    ftype = rows[:, 0].astype(np.int16)
    if np.any(ftype > 4):
        raise ValueError("bad PNG filter type")
    x = rows[:, 1:].reshape(h, w, bpp).astype(np.int16)
    out = np.zeros((h + 1, w + 1, bpp), np.int16)
    for t in range(h + w - 1):
        r = np.arange(max(0, t - w + 1), min(h, t + 1))
        c = t - r
        a, b, d = out[r + 1, c], out[r, c + 1], out[r, c]
        p = a + b - d
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - d)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, d))
        f = ftype[r][:, None]
        pred = np.select([f == 1, f == 2, f == 3, f == 4], [a, b, (a + b) // 2, paeth], 0)
        out[r + 1, c + 1] = (x[r, c] + pred) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def read_png16(path):
    """Decode a non-interlaced 16-bit PNG at full precision: uint16 (H, W, C), C = 1, 2, 3 or 4 samples.

    Pillow reads 16-bit RGB, RGBA and gray+alpha PNGs as 8 bits per channel; this reads them whole.
    A colour-key transparency (tRNS) is returned as a fourth, alpha channel. Returns (array, exif bytes or None).
    """
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, header, idat, trns, exif = len(_PNG_SIGNATURE), None, [], None, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ValueError("PNG file is truncated")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            trns = body
        elif kind == b"eXIf":
            exif = body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError("PNG file has no image data")
    w, h, depth, colour, _, _, interlace = header
    if depth != 16 or colour not in _PNG16_CHANNELS or interlace:
        raise ValueError("not a non-interlaced 16-bit PNG")
    channels = _PNG16_CHANNELS[colour]
    raw = zlib.decompressobj().decompress(b"".join(idat), h * (1 + w * 2 * channels))
    if len(raw) != h * (1 + w * 2 * channels):
        raise ValueError("PNG image data is truncated")
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * 2 * channels)
    pixels = _png_unfilter(rows, 2 * channels).reshape(h, w, 2 * channels)
    image = pixels.view(">u2").astype(np.uint16)
    if trns is not None and colour in (0, 2) and len(trns) == 2 * channels:
        key = np.frombuffer(trns, ">u2").astype(np.uint16)
        opaque = np.any(image != key, axis=2, keepdims=True)
        image = np.concatenate([image, np.where(opaque, 65535, 0).astype(np.uint16)], axis=2)
    return image, exif


def _read_tiff16(path):
    """Decode the first page of a 16-bit TIFF with tifffile: uint16 (H, W, C). Raises if tifffile cannot."""
    import tifffile

    image = tifffile.imread(path, key=0)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError("not a 16-bit RGB(A) TIFF")
    return image


def _high_precision_pixels(im, path):
    """(uint16 pixels, EXIF orientation) for the 16-bit colour files Pillow would cut to 8 bits, else None."""
    args = im.tile[0][3] if im.tile else ""
    if isinstance(args, tuple):
        args = next((a for a in args if isinstance(a, str)), "")
    rawmode = args if isinstance(args, str) else ""
    if im.format == "PNG" and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B"):
        try:
            pixels, exif = read_png16(path)
        except ValueError:
            return None
        orientation = Image.Exif()
        if exif:
            orientation.load(exif)
        return pixels, orientation.get(ExifTags.Base.Orientation, 1)
    if im.format == "TIFF" and im.mode in ("RGB", "RGBA") and "16" in rawmode:
        try:
            return _read_tiff16(path), im.getexif().get(ExifTags.Base.Orientation, 1)
        except Exception:  # tifffile lacks a codec (e.g. LZW without imagecodecs): Pillow's 8 bits will do
            return None
    return None


def _target_size(w, h, max_side, short_side):
    """(w, h) after scaling the shorter side to `short_side`, then capping the longer side at `max_side`."""
    scale = 1.0
    if short_side is not None:
        scale = short_side / min(w, h)
    if max_side is not None and max(w, h) * scale > max_side:
        scale = max_side / max(w, h)
    if scale == 1.0:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def _open(path, max_pixels):
    """Open `path` with Pillow (header only) under our own pixel limit instead of Pillow's warning."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(path)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise UserError(
            f"{path}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a decompression bomb, or just huge): downscale it first"
        )
    return im


def load_image(path, max_side=None, min_side=DEFAULT_MIN_SIDE, short_side=None, max_pixels=DEFAULT_MAX_PIXELS):
    """Read an image file as float32 (H, W, 3) in [0, 1], upright (EXIF orientation applied), alpha over white.

    Every Pillow mode is converted: 1, L, LA, P (with transparency), RGB, RGBA, CMYK, YCbCr, I;16* and I
    (16-bit gray: scaled by 65535), F (float); 16-bit RGB(A) PNGs and TIFFs keep their 16 bits.
    `short_side` rescales so the shorter side is exactly that; `max_side` then downscales (Lanczos) so the
    longer side is at most that. Files with a side under `min_side` or over `max_pixels` pixels raise UserError.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder, not an image file: give the path of an image")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UserError(f"{path} is not a regular file (a FIFO, socket or device): give the path of an image")
    try:
        with _open(path, max_pixels) as im:
            w, h = im.size
            if min(w, h) < min_side:
                raise UserError(f"{path}: {w}x{h} is too small (under {min_side} pixels on a side): use a larger image")
            target = _target_size(w, h, max_side, short_side)
            precise = _high_precision_pixels(im, path)
            if precise is None:
                if im.format == "JPEG" and target[0] * 2 <= w:
                    im.draft(im.mode, target)
                im.load()
                image = _pil_to_float_rgb(im, path)
                orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            else:
                image, orientation = as_float_rgb(precise[0]), precise[1]
    except FileNotFoundError:
        raise UserError(f"{path}: no such file: check the path") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied: make the file readable") from None
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image file Pillow can read: convert it to PNG or JPEG") from None
    except Image.DecompressionBombError as e:
        raise UserError(f"{path}: too many pixels ({e}): downscale it first") from None
    except _READ_ERRORS as e:
        raise UserError(f"{path} is corrupt or truncated ({e}): re-export or remove it") from None
    if orientation in _ORIENT:
        image = np.ascontiguousarray(_ORIENT[orientation](image))
    if (image.shape[1], image.shape[0]) != _target_size(image.shape[1], image.shape[0], max_side, short_side):
        image = resize(image, size=short_side, max_side=max_side)
    return image


def _resize_exact(image, h, w):
    """Resize float32 (H, W, C) to (h, w, C) with Lanczos (area-averaging when shrinking), clipped to [0, 1]."""
    if image.shape[:2] == (h, w):
        return image
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, k])).resize((w, h), Image.Resampling.LANCZOS))
        for k in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def resize(image, size=None, max_side=None):
    """Resize an image array: (H, W[, C]) -> float32 (h, w, C), values in [0, 1].

    size: an int scales the shorter side to `size` (aspect kept); an (h, w) pair gives the exact shape.
    max_side: then downscale (only) so the longer side is at most `max_side`. uint8 input is scaled by 255.
    """
    x = np.asarray(image)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    h, w = x.shape[:2]
    if isinstance(size, (tuple, list)):
        h, w = int(size[0]), int(size[1])
        if h < 1 or w < 1:
            raise ValueError(f"resize: size must be positive, got {size}")
        size = None
    elif size is not None and int(size) < 1:
        raise ValueError(f"resize: size must be positive, got {size}")
    w, h = _target_size(w, h, max_side, None if size is None else int(size))
    out = _resize_exact(x, h, w)
    return out[:, :, 0] if squeeze else out


def to_uint8(image):
    """Float [0, 1] or uint8 array, (H, W), (H, W, 1) or (H, W, 3) -> uint8 (H, W) or (H, W, 3)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 3), got {a.shape}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return a


def save_image(path, image):
    """Write a float [0, 1] or uint8 image, (H, W) or (H, W, 3), to `path`; the extension picks the format.

    Parent folders are created; the file is written to a temporary name in the same folder, then renamed
    over `path`, so readers never see half a file.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in SAVE_FORMATS:
        raise UserError(f"{path}: unknown image extension {ext or '(none)'!r}: use one of {', '.join(SAVE_FORMATS)}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder: give a file name ending in {ext}")
    pixels = Image.fromarray(to_uint8(image))
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            options = {"quality": JPEG_QUALITY} if SAVE_FORMATS[ext] == "JPEG" else {}
            pixels.save(f, format=SAVE_FORMATS[ext], **options)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        refused = outputs.disk_error(e, path)
        if refused:
            raise refused from None
        raise UserError(f"cannot write {path} ({e.strerror or e}): check the folder exists and is writable") from None
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def list_images(root):
    """All image files under the folder `root`, recursively, by extension (case-insensitive), sorted by path.

    Hidden files and folders (names starting with '.', e.g. macOS '._x.jpg' resource forks) and anything that
    is not a regular file (a FIFO, a socket; said on stderr) are left out; symlinked folders are followed once.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        what = "not a folder" if os.path.exists(root) else "no such folder"
        raise UserError(f"{root}: {what}: give a folder of images")
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            path = os.path.join(folder, f)
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            if os.path.isfile(path):
                found.append(path)
            else:  # a FIFO, socket or device would block or fail when read
                print(f"note: skipping {path}: not a regular file", file=sys.stderr)
    return sorted(found)


def _to_height(image, height):
    """Float32 RGB (height, w, 3) version of an image array, aspect kept."""
    x = as_float_rgb(image)
    if x.shape[0] == height:
        return x
    w = max(1, round(x.shape[1] * height / x.shape[0]))
    return _resize_exact(x, height, w)


def hstack(images, pad=2, pad_value=1.0, height=None):
    """Images side by side, `pad` pixels of `pad_value` between: float32 (height, sum w_i + pads, 3).

    Images of any size and channel count are resized to a common height (`height`, default the smallest).
    """
    if not len(images):
        raise ValueError("hstack: no images")
    height = height or min(np.asarray(im).shape[0] for im in images)
    parts = []
    for k, im in enumerate(images):
        if k:
            parts.append(np.full((height, pad, 3), pad_value, np.float32))
        parts.append(_to_height(im, height))
    return np.concatenate(parts, axis=1)


def grid(images, nrow=4, pad=2, pad_value=1.0, height=None):
    """Images in rows of `nrow`, each row an `hstack`, rows left-aligned and padded: float32 (H, W, 3)."""
    if not len(images):
        raise ValueError("grid: no images")
    height = height or min(np.asarray(im).shape[0] for im in images)
    rows = [hstack(images[i : i + nrow], pad, pad_value, height) for i in range(0, len(images), nrow)]
    width = max(r.shape[1] for r in rows)
    parts = []
    for k, r in enumerate(rows):
        if k:
            parts.append(np.full((pad, width, 3), pad_value, np.float32))
        parts.append(np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=pad_value))
    return np.concatenate(parts, axis=0)
