"""Content and style images for training (`prefetch` loads their batches in the background).

Content: batches of random square crops, float32 (B, S, S, 3) in [0, 1], from an image folder, a TensorFlow
Datasets dataset (`tfds:NAME[:split]`) or the embedded scikit-image photos. Each image is first resized so
its shorter side is S, as the official MetaStyle code does (there bilinearly, here with Lanczos), then an
S x S window is cropped (the official code takes the centre one; `crop="random"`, the default here, takes a
random one). With `zoom` z > 1 each crop comes from the image resized so its shorter side is S x u, u drawn
log-uniformly from [1, z] per crop: the network also sees the finer pixel scale of a photo stylized larger than
it trained (z = 1, the default, is the official resize).

Styles: square images, float32 (N, S, S, 3), from a folder (e.g. WikiArt) or the embedded paintings, resized
to S x S as the official code does (`transforms.Resize((S, S))`), or, with `resize_mode="crop"`, shorter side
to S then the centre square.

Batches are a pure function of (seed, split, step, batch size), so a trainer resumes exactly: the image
order is a fresh permutation each epoch, `np.random.default_rng([seed, stream, 0, epoch])`, and crop
offsets come from `np.random.default_rng([seed, stream, 1, step])`. Unreadable files are skipped (the
next image in the order takes their place), counted in `.skipped`, and logged once each.
"""

import dataclasses
import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from metastyle_jax import images
from metastyle_jax.errors import UserError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
# Natural colour photos bundled in the scikit-image wheel (no download); the motorcycle pair stays together.
EMBEDDED_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
    "motorcycle_right",
    "retina",
    "rocket",
)
EMBEDDED_VAL_PHOTOS = ("chelsea", "rocket")
# The five public-domain paintings shipped in the package (paintings/CREDITS.md), held out of meta-training.
PAINTINGS_DIR = Path(__file__).resolve().parent / "paintings"
PAINTINGS = ("starry_night", "the_scream", "wave", "composition_vii", "udnie")
TFDS_VAL_SPLITS = ("validation", "test")
TFDS_INSTALL = 'pip install "metastyle-jax[tfds]"'
SPLITS = ("train", "val")
_STREAMS = {
    ("content", "train"): 0,
    ("content", "val"): 1,
    ("style", None): 2,
    ("style", "train"): 3,
    ("style", "val"): 4,
}
_TFDS_SPEC = re.compile(r"^tfds:(?P<name>[^:\[\]]+?)(?::(?P<version>\d+\.\d+\.\d+))?(?::(?P<split>.+))?$")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where images come from: kind "folder", "file", "tfds" or "embedded"; `location` is the path or the
    tfds dataset name (with ":version" if given); `split` is the tfds split named in the spec, if any."""

    kind: str
    location: str
    split: str | None = None


def content_source(spec):
    """Parse a data spec: a folder (or one image file), `tfds:NAME[:VERSION][:split]`, or "embedded" (or None)."""
    spec = EMBEDDED if spec is None else str(spec).strip()
    if spec in ("", EMBEDDED):
        return Source(EMBEDDED, EMBEDDED)
    if spec.startswith("tfds:"):
        m = _TFDS_SPEC.match(spec)
        if not m:
            raise UserError(f"{spec!r}: write a TensorFlow Datasets source as tfds:NAME[:split], e.g. tfds:coco/2017")
        name = m["name"] + (f":{m['version']}" if m["version"] else "")
        return Source("tfds", name, m["split"])
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        return Source("folder", path)
    if os.path.isfile(path) and path.lower().endswith(images.IMAGE_EXTENSIONS):
        return Source("file", path)
    what = "is not a folder of images" if os.path.exists(path) else "does not exist"
    raise UserError(f"{spec} {what}: give an image folder, tfds:NAME[:split], or {EMBEDDED}")


def _val_mask(keys, fraction):
    """Deterministic split: True for the round(fraction * n) keys (at least 1 when n >= 2) of smallest SHA-1.

    The rule depends only on the keys (e.g. relative paths), so train and validation never mix across runs.
    """
    n = len(keys)
    n_val = 0 if n < 2 else min(n - 1, max(1, round(fraction * n)))
    order = sorted(range(n), key=lambda i: hashlib.sha1(keys[i].encode()).hexdigest())
    mask = np.zeros(n, bool)
    mask[order[:n_val]] = True
    return mask


def painting_path(name):
    """The file of shipped painting `name` (one of PAINTINGS), or None for any other name."""
    return PAINTINGS_DIR / f"{name}.jpg" if name in PAINTINGS else None


def skimage_image(name):
    """A picture bundled with scikit-image, by name (motorcycle_left/right from the stereo pair): uint8 array."""
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(data, name)()


class _Pool:
    """A list of images to sample: `names` (for messages) and `load(i)` -> float32 (H, W, 3), or UserError."""

    def __init__(self, names, load):
        self.names = list(names)
        self.load = load


def _file_pool(paths, short_side, min_side):
    """Images read from files on demand, shorter side scaled to `short_side`."""
    return _Pool(paths, lambda i: images.load_image(paths[i], min_side=min_side, short_side=short_side))


def _array_pool(names, arrays):
    """Images already in memory."""
    return _Pool(names, lambda i: arrays[i])


def _folder_paths(source, split, val_fraction):
    """The image files of a folder/file source in `split` ("train", "val" or None for all), sorted."""
    paths = [source.location] if source.kind == "file" else images.list_images(source.location)
    if not paths:
        raise UserError(f"{source.location}: no images ({', '.join(images.IMAGE_EXTENSIONS)}) found in it or below")
    if split is None:
        return paths
    root = os.path.dirname(source.location) if source.kind == "file" else source.location
    mask = _val_mask([Path(os.path.relpath(p, root)).as_posix() for p in paths], val_fraction)
    chosen = [p for p, v in zip(paths, mask, strict=True) if v == (split == "val")]
    if not chosen:
        raise UserError(
            f"{source.location}: its {len(paths)} image(s) leave none for the {split} split "
            "(1 in 10 goes to val): add images"
        )
    return chosen


def _import_tfds():
    """tensorflow_datasets, imported only when asked for (it is an optional extra)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError(f"tfds: sources need TensorFlow Datasets: {TFDS_INSTALL}") from None
    return tfds


def _tfds_open(tfds, name, split, data_dir, download):
    """tfds.data_source(name, split) (random access, ArrayRecord); raises ValueError for an unknown split."""
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except ValueError as e:
        if "split" in str(e).lower():
            raise
        hint = "check the name against tfds.list_builders()"
        raise UserError(f"tfds:{name}:{split}: {_first_line(e)} ({hint})") from None
    except Exception as e:
        raise UserError(
            f"tfds:{name}:{split}: {type(e).__name__}: {_first_line(e)} "
            f"(check the name; prepare it with `tfds build {name} --file_format=array_record`)"
        ) from None


def _first_line(e):
    return (str(e).strip().splitlines() or [""])[0][:300]


def _tfds_pool(source, split, size, val_fraction, data_dir, download):
    """The tfds records of `split`: the dataset's own train/validation (or test) splits when it has them,
    else 1 in 10 records of the named split (or of train) set aside for validation by `_val_mask`."""
    tfds = _import_tfds()
    name = source.location
    pools = None
    if source.split is None:
        try:
            train = _tfds_open(tfds, name, "train", data_dir, download)
        except ValueError as e:
            raise UserError(f"tfds:{name}: {_first_line(e)}: name a split, tfds:{name}:SPLIT") from None
        for val_split in TFDS_VAL_SPLITS:
            try:
                val = _tfds_open(tfds, name, val_split, data_dir, download)
            except ValueError:
                continue
            pools = {"train": (train, "train"), "val": (val, val_split)}
            break
        whole, whole_split = train, "train"
    else:
        try:
            whole, whole_split = _tfds_open(tfds, name, source.split, data_dir, download), source.split
        except ValueError as e:
            raise UserError(f"tfds:{name}:{source.split}: {_first_line(e)}") from None
    if pools is not None:
        ds, ds_split = pools[split]
        indices = np.arange(len(ds))
    else:
        mask = _val_mask([f"{name}:{whole_split}:{i}" for i in range(len(whole))], val_fraction)
        ds, ds_split = whole, whole_split
        indices = np.flatnonzero(mask == (split == "val"))
    if not len(indices):
        raise UserError(f"tfds:{name}:{ds_split} has no records for the {split} split: use a larger split")

    def load(i):
        record = ds[int(indices[i])]
        if "image" not in record:
            raise UserError(f"tfds:{name} has no 'image' feature (it has {', '.join(record)}): use an image dataset")
        picture = np.asarray(record["image"])
        if picture.ndim < 2 or min(picture.shape[:2]) < 1:
            raise UserError(f"tfds:{name}:{ds_split}[{int(indices[i])}] is an empty image")
        return images.resize(images.as_float_rgb(picture), size)

    names = [f"tfds:{name}:{ds_split}[{int(i)}]" for i in indices]
    return _Pool(names, load)


class _Sampler:
    """Epoch-permuted, seeded sampling from a `_Pool`, skipping (and remembering) unreadable images."""

    def __init__(self, pool, seed, stream):
        self.pool = pool
        self.seed = int(seed)
        self.stream = stream
        self._bad = {}
        self._perm = (None, None)

    def __len__(self):
        return len(self.pool.names)

    @property
    def skipped(self):
        """(name, reason) of each unreadable image met so far."""
        return [(self.pool.names[i], reason) for i, reason in sorted(self._bad.items())]

    def _index(self, position):
        """The pool index at a global sample position: position // n is the epoch, each its own permutation."""
        n = len(self)
        epoch, offset = divmod(position, n)
        if self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, self.stream, 0, epoch]).permutation(n))
        return int(self._perm[1][offset])

    def _read(self, i):
        """Image i, or None (logged, remembered) if it cannot be read."""
        if i in self._bad:
            return None
        try:
            return self.pool.load(i)
        except UserError as e:
            self._bad[i] = str(e)
            log.warning("skipping unreadable image (%d so far): %s", len(self._bad), e)
            return None

    def _first_readable(self, indices):
        """The first readable image among `indices` (an iterable of pool indices), or UserError if none is."""
        for count, i in enumerate(indices):
            image = self._read(i)
            if image is not None:
                return image
            if count >= len(self) and len(self._bad) >= len(self):
                break
        raise UserError(f"none of the {len(self)} images ({self.pool.names[0]}, ...) can be read: see the log above")

    def images_at(self, step, count):
        """The `count` images of sample positions step * count ... step * count + count - 1."""
        start = step * count
        return [
            self._first_readable(self._index(p) for p in range(start + j, start + j + 2 * len(self)))
            for j in range(count)
        ]


def _zoomed(image, size, rng, zoom):
    """`image` (shorter side at least S x zoom) resized so its shorter side is S x u, u log-uniform in [1, zoom]
    from `rng`; unchanged for zoom 1."""
    if zoom <= 1.0:
        return image
    side = max(size, int(round(size * float(np.exp(rng.uniform(0.0, np.log(zoom)))))))
    return image if side == min(image.shape[:2]) else images.resize(image, side)


def _crop(image, size, rng, random):
    """An S x S window of an image whose shorter side is at least S: random offset, or centred."""
    h, w = image.shape[:2]
    top = int(rng.integers(0, h - size + 1)) if random else (h - size) // 2
    left = int(rng.integers(0, w - size + 1)) if random else (w - size) // 2
    return image[top : top + size, left : left + size]


class _Sampled:
    """What ContentData and StyleData share: a `_Sampler` over their pool of images."""

    def __len__(self):
        """The number of images."""
        return len(self._sampler)

    @property
    def names(self):
        """Paths (or scikit-image names) of the images, in sampling-index order."""
        return list(self._sampler.pool.names)

    @property
    def skipped(self):
        """(name, reason) for each unreadable image met so far; they are never sampled."""
        return self._sampler.skipped


class ContentData(_Sampled):
    """Content crops from a folder, `tfds:NAME[:split]` or "embedded", one split of it, seeded.

    split: "train" or "val", kept apart by a fixed rule (folder: 1 in 10 files by hash of the relative path;
    tfds: the dataset's validation or test split if it has one, else 1 in 10 records by hash; embedded: the
    photos in EMBEDDED_VAL_PHOTOS). size: the crop side S. crop: "random" or "center". seed: an int >= 0.
    zoom: the largest random zoom (module docstring; 1: none).
    data_dir, download: passed to `tfds.data_source` (with download=True an absent dataset is downloaded and
    prepared as ArrayRecord, which random access needs).
    """

    def __init__(
        self,
        spec=EMBEDDED,
        split="train",
        size=256,
        seed=0,
        crop="random",
        val_fraction=0.1,
        min_side=images.DEFAULT_MIN_SIDE,
        data_dir=None,
        download=True,
        zoom=1.0,
    ):
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        if crop not in ("random", "center"):
            raise UserError(f"crop must be random or center, not {crop!r}")
        if int(size) < 1:
            raise UserError(f"the content size must be a positive number of pixels, not {size}")
        if int(seed) < 0:
            raise UserError(f"the seed must be a non-negative integer, not {seed}")
        if not 1.0 <= float(zoom) <= 8.0:
            raise UserError(f"the content zoom must be between 1 and 8, not {zoom}")
        self.source = content_source(spec)
        self.split, self.size, self.seed, self.crop, self.zoom = split, int(size), int(seed), crop, float(zoom)
        side = int(np.ceil(self.size * self.zoom))  # the shorter side images are loaded at
        if self.source.kind == EMBEDDED:
            names = [n for n in EMBEDDED_PHOTOS if (n in EMBEDDED_VAL_PHOTOS) == (split == "val")]
            pool = _array_pool(names, [images.resize(images.as_float_rgb(skimage_image(n)), side) for n in names])
        elif self.source.kind == "tfds":
            pool = _tfds_pool(self.source, split, side, val_fraction, data_dir, download)
        else:
            pool = _file_pool(_folder_paths(self.source, split, val_fraction), side, min_side)
        self._sampler = _Sampler(pool, self.seed, _STREAMS[("content", split)])


    def describe(self):
        """One line: the source, the split, its size, and how many images were skipped so far."""
        return (
            f"{self.source.kind} {self.source.location}: {len(self)} {self.split} images, "
            f"{len(self.skipped)} unreadable skipped"
        )

    def _crops(self, pictures, rng):
        return np.stack([_crop(_zoomed(p, self.size, rng, self.zoom), self.size, rng, self.crop == "random")
                         for p in pictures]).astype(np.float32)

    def batch_at(self, step, batch_size):
        """Batch number `step`: float32 (batch_size, S, S, 3) in [0, 1], a pure function of (seed, step, size).

        Samples step * batch_size ... are taken in each epoch's permutation, so every image is seen once an epoch.
        """
        pictures = self._sampler.images_at(int(step), int(batch_size))
        rng = np.random.default_rng([self.seed, self._sampler.stream, 1, int(step)])
        return self._crops(pictures, rng)


def _square(image, size, mode):
    """A style picture as float32 (S, S, 3): squashed to S x S ("square") or shorter side S, centre ("crop")."""
    if mode == "square":
        return images.resize(image, (size, size))
    return _crop(images.resize(image, size), size, None, False)


class StyleData(_Sampled):
    """Style images, float32 (S, S, 3) each, from a folder (recursive, e.g. WikiArt), one image file, or
    "embedded": the five paintings shipped in the package (PAINTINGS). `split` None uses every style;
    "train"/"val" keep 1 in 10 styles (by hash of the relative path) apart for testing adaptation to unseen
    styles.
    """

    def __init__(
        self,
        spec=EMBEDDED,
        size=256,
        seed=0,
        resize_mode="square",
        split=None,
        val_fraction=0.1,
        min_side=images.DEFAULT_MIN_SIDE,
    ):
        if resize_mode not in ("square", "crop"):
            raise UserError(f"style resize mode must be square or crop, not {resize_mode!r}")
        if split not in (None,) + SPLITS:
            raise UserError(f"style split must be train, val or None, not {split!r}")
        if int(size) < 1:
            raise UserError(f"the style size must be a positive number of pixels, not {size}")
        if int(seed) < 0:
            raise UserError(f"the seed must be a non-negative integer, not {seed}")
        self.size, self.seed, self.resize_mode, self.split = int(size), int(seed), resize_mode, split
        source = content_source(spec)
        if source.kind == "tfds":
            raise UserError(f"{spec}: styles come from an image folder, an image file, or {EMBEDDED}")
        self.origin = source.kind
        if source.kind == EMBEDDED:
            source = Source("folder", str(PAINTINGS_DIR))
        paths = _folder_paths(source, split, val_fraction)

        def load(i):
            return _square(images.load_image(paths[i], min_side=min_side), self.size, resize_mode)

        pool = _Pool(paths, load)
        if self.origin == EMBEDDED:
            pool = _array_pool(paths, [pool.load(i) for i in range(len(paths))])
        self._sampler = _Sampler(pool, self.seed, _STREAMS[("style", split)])

    def style_at(self, step, n=1):
        """The `n` styles of meta-step `step`: float32 (n, S, S, 3); each epoch visits every style once."""
        return np.stack(self._sampler.images_at(int(step), int(n))).astype(np.float32)


EMBEDDED_PREFIX = "embedded:"


def load_image_spec(spec, max_side=None):
    """An image argument as (H, W, 3) float32 in [0, 1]: a file path, or `embedded:NAME` for a painting
    shipped in the package (starry_night, the_scream, wave, composition_vii, udnie) or a photo bundled with
    scikit-image (astronaut, coffee, chelsea, rocket, ...)."""
    if not spec.startswith(EMBEDDED_PREFIX):
        return images.load_image(spec, max_side=max_side)
    name = spec[len(EMBEDDED_PREFIX):]
    if painting_path(name) is not None:
        return images.load_image(painting_path(name), max_side=max_side)
    if name not in EMBEDDED_PHOTOS:
        raise UserError(f"unknown embedded image {name!r}: use a file path or one of "
                        f"{', '.join(PAINTINGS + EMBEDDED_PHOTOS)}")
    image = images.as_float_rgb(skimage_image(name))
    return images.resize(image, max_side=max_side) if max_side and max(image.shape[:2]) > max_side else image
