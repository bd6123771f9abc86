"""Content and style data: spec parsing, seeded determinism, splits, bad files, embedded data, tfds, prefetch."""

import logging
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metastyle_jax import data
from metastyle_jax.errors import UserError


def _solid_folder(root, levels, size=(40, 56), nested=False):
    """Write one solid-gray PNG per level (level k in every pixel) under `root`; returns the paths."""
    paths = []
    for k, level in enumerate(levels):
        folder = root / f"sub{k % 3}" / "deeper" if nested else root
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{k:03d}.png"
        Image.new("RGB", size, (level, level, level)).save(path)
        paths.append(path)
    return paths


def _levels(batch):
    """The gray level (0..255) of each solid image in a batch (B, S, S, 3)."""
    return [int(round(float(b.mean()) * 255)) for b in batch]


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a network connection fail."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_content_source_parsing(tmp_path):
    assert data.content_source(None) == data.Source("embedded", "embedded")
    assert data.content_source("embedded").kind == "embedded"
    assert data.content_source("tfds:coco/2017") == data.Source("tfds", "coco/2017", None)
    assert data.content_source("tfds:coco/2017:validation") == data.Source("tfds", "coco/2017", "validation")
    assert data.content_source("tfds:mnist:3.0.1:train") == data.Source("tfds", "mnist:3.0.1", "train")
    assert data.content_source("tfds:coco/2017:train[:10%]") == data.Source("tfds", "coco/2017", "train[:10%]")
    assert data.content_source(str(tmp_path)) == data.Source("folder", str(tmp_path))
    Image.new("RGB", (20, 20)).save(tmp_path / "one.png")
    assert data.content_source(str(tmp_path / "one.png")).kind == "file"
    (tmp_path / "notes.txt").write_text("x")
    for bad, match in [
        ("tfds:", "tfds:NAME"),
        (str(tmp_path / "missing"), "does not exist"),
        (str(tmp_path / "notes.txt"), "not a folder of images"),
    ]:
        with pytest.raises(UserError, match=match):
            data.content_source(bad)


def test_embedded_content_offline(no_network):
    train = data.ContentData(size=64, seed=0)
    val = data.ContentData(split="val", size=64, seed=0)
    assert len(train) >= 6 and len(val) >= 1
    assert not set(train.names) & set(val.names)
    assert set(train.names) | set(val.names) == set(data.EMBEDDED_PHOTOS)
    batch = train.batch_at(0, 5)
    assert batch.shape == (5, 64, 64, 3) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.std() > 0.05
    assert val.batch_at(0, 2).shape == (2, 64, 64, 3)


def test_embedded_styles_are_the_shipped_paintings(no_network):
    styles = data.StyleData(size=48)
    assert styles.origin == data.EMBEDDED and len(styles) == len(data.PAINTINGS)
    assert sorted(Path(n).stem for n in styles.names) == sorted(data.PAINTINGS)
    batch = styles.style_at(0, 3)
    assert batch.shape == (3, 48, 48, 3) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.std() > 0.05


def test_batches_are_a_pure_function_of_seed_and_step():
    a = data.ContentData(size=48, seed=3)
    b = data.ContentData(size=48, seed=3)
    late = a.batch_at(7, 4)
    np.testing.assert_array_equal(a.batch_at(0, 4), b.batch_at(0, 4))
    np.testing.assert_array_equal(late, b.batch_at(7, 4))
    assert not np.array_equal(a.batch_at(0, 4), a.batch_at(1, 4))
    assert not np.array_equal(a.batch_at(0, 4), data.ContentData(size=48, seed=4).batch_at(0, 4))


def test_each_epoch_visits_every_image_once(tmp_path):
    _solid_folder(tmp_path, range(10, 250, 12))
    content = data.ContentData(str(tmp_path), size=16, seed=1)
    n = len(content)
    seen = [lv for step in range(n) for lv in _levels(content.batch_at(step, 1))]
    assert len(set(seen)) == n
    by_two = _levels(content.batch_at(0, 2))
    assert by_two == seen[:2]


def test_folder_split_disjoint_recursive_and_stable(tmp_path):
    paths = _solid_folder(tmp_path, range(0, 250, 8), nested=True)
    train = data.ContentData(str(tmp_path), size=16)
    val = data.ContentData(str(tmp_path), split="val", size=16)
    assert len(train) + len(val) == len(paths) == 32
    assert len(val) == 3
    assert not set(train.names) & set(val.names)
    assert set(train.names) | set(val.names) == {str(p) for p in paths}
    assert data.ContentData(str(tmp_path), split="val", size=16, seed=9).names == val.names
    val_levels = {lv for step in range(10) for lv in _levels(val.batch_at(step, 3))}
    train_levels = {lv for step in range(10) for lv in _levels(train.batch_at(step, 3))}
    assert not val_levels & train_levels


def test_small_images_are_upscaled_and_cropped(tmp_path):
    y, x = np.mgrid[0:20, 0:30]
    Image.fromarray(np.stack([x * 8, y * 12, x * 0], axis=2).astype(np.uint8)).save(tmp_path / "small.png")
    content = data.ContentData(str(tmp_path / "small.png"), size=64)
    crops = np.stack([content.batch_at(step, 1)[0] for step in range(6)])
    assert crops.shape == (6, 64, 64, 3) and crops.min() >= 0 and crops.max() <= 1
    assert len({float(c[:, :, 0].mean()) for c in crops}) > 1
    center = data.ContentData(str(tmp_path / "small.png"), size=64, crop="center")
    np.testing.assert_array_equal(center.batch_at(0, 1), center.batch_at(5, 1))
    assert abs(float(center.batch_at(0, 1)[0, :, :, 0].mean()) - 116 / 255) < 0.05


def test_zoomed_crops_see_finer_pixel_scales(tmp_path):
    """zoom z: crops from the image at random scales 1..z (a ramp spans fewer grey levels in a zoomed crop), a
    pure function of (seed, step); zoom 1 gives the unzoomed batches."""
    y, x = np.mgrid[0:60, 0:80]
    Image.fromarray(np.stack([x * 3, y * 4, x * 0], axis=2).astype(np.uint8)).save(tmp_path / "ramp.png")
    spec = str(tmp_path / "ramp.png")
    span = lambda batch: [float(b[:, :, 0].max() - b[:, :, 0].min()) for b in batch]
    plain = data.ContentData(spec, size=16, seed=2)
    zoomed = data.ContentData(spec, size=16, seed=2, zoom=4.0)
    plain_spans = [s for step in range(12) for s in span(plain.batch_at(step, 1))]
    zoomed_spans = [s for step in range(12) for s in span(zoomed.batch_at(step, 1))]
    assert max(plain_spans) - min(plain_spans) < 0.02
    assert min(zoomed_spans) < 0.5 * max(plain_spans) and max(zoomed_spans) > 0.8 * max(plain_spans)
    np.testing.assert_array_equal(zoomed.batch_at(5, 2), data.ContentData(spec, size=16, seed=2, zoom=4.0).batch_at(5, 2))
    np.testing.assert_array_equal(plain.batch_at(3, 2), data.ContentData(spec, size=16, seed=2, zoom=1.0).batch_at(3, 2))
    for bad in (0.5, 9.0):
        with pytest.raises(UserError, match="zoom"):
            data.ContentData(spec, size=16, zoom=bad)


def test_corrupt_files_are_skipped_and_counted(tmp_path, caplog):
    _solid_folder(tmp_path, [20, 60, 100, 140, 180, 220, 240])
    (tmp_path / "text.jpg").write_text("this is not a picture")
    good = tmp_path / "img000.png"
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    Image.new("RGB", (5, 5)).save(tmp_path / "tiny.png")
    skipped = set()
    with caplog.at_level(logging.WARNING, logger="metastyle_jax.data"):
        for split in ("train", "val"):
            content = data.ContentData(str(tmp_path), split=split, size=16)
            for step in range(2 * len(content)):
                batch = content.batch_at(step, 2)
                assert batch.shape == (2, 16, 16, 3)
                assert set(_levels(batch)) <= {20, 60, 100, 140, 180, 220, 240}
            skipped |= {os.path.basename(name) for name, _ in content.skipped}
            assert f"{len(content.skipped)} unreadable skipped" in content.describe()
    assert skipped == {"text.jpg", "truncated.png", "tiny.png"}
    assert "skipping unreadable image" in caplog.text


def test_unusable_folders_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        data.ContentData(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_text("x")
    (tmp_path / "bad" / "b.png").write_text("y")
    with pytest.raises(UserError, match="can be read"):
        data.ContentData(str(tmp_path / "bad")).batch_at(0, 1)
    _solid_folder(tmp_path / "one", [50])
    assert len(data.ContentData(str(tmp_path / "one"))) == 1
    with pytest.raises(UserError, match="none for the val split"):
        data.ContentData(str(tmp_path / "one"), split="val")
    with pytest.raises(UserError, match="split"):
        data.ContentData(split="test")
    with pytest.raises(UserError, match="crop"):
        data.ContentData(crop="corner")


def test_style_folder(tmp_path):
    levels = [30, 90, 150, 210]
    _solid_folder(tmp_path, levels, size=(30, 50), nested=True)
    (tmp_path / "broken.jpg").write_text("x")
    styles = data.StyleData(str(tmp_path), size=24, seed=2)
    assert len(styles) == 5 and styles.origin == "folder"
    epoch = [lv for step in range(5) for lv in _levels(styles.style_at(step, 1))]
    assert set(epoch) == set(levels)
    assert [os.path.basename(n) for n, _ in styles.skipped] == ["broken.jpg"]
    batch = styles.style_at(3, 2)
    assert batch.shape == (2, 24, 24, 3)
    np.testing.assert_array_equal(batch, data.StyleData(str(tmp_path), size=24, seed=2).style_at(3, 2))
    train = data.StyleData(str(tmp_path), size=24, split="train")
    val = data.StyleData(str(tmp_path), size=24, split="val")
    assert len(train) + len(val) == 5 and not set(train.names) & set(val.names)
    with pytest.raises(UserError, match="styles come from"):
        data.StyleData("tfds:coco/2017")


def test_style_resize_modes(tmp_path):
    pic = np.zeros((40, 80, 3), np.uint8)
    pic[:, :20] = 255
    Image.fromarray(pic).save(tmp_path / "wide.png")
    square = data.StyleData(str(tmp_path / "wide.png"), size=20).style_at(0)[0]
    crop = data.StyleData(str(tmp_path / "wide.png"), size=20, resize_mode="crop").style_at(0)[0]
    assert square.shape == crop.shape == (20, 20, 3)
    assert square[:, :3].min() > 0.9 and square[:, 8:].max() < 0.1
    assert crop.max() < 0.1


def test_tfds_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(UserError, match=r'pip install "metastyle-jax\[tfds\]"'):
        data.ContentData("tfds:coco/2017")


def _fake_splits(splits, n=12):
    """An `as_data_source_fn` for tfds mock_data: the given splits exist, record i of split s is a solid image
    whose gray level encodes (split, i); other splits raise tfds' unknown-split ValueError."""

    def as_data_source(builder, split, **kwargs):
        if split not in splits:
            raise ValueError(f"Unknown split {split!r}. Should be one of {list(splits)}.")
        base = 100 * splits.index(split)
        return [{"image": np.full((20 + i, 30, 3), base + i, np.uint8), "label": i} for i in range(n)]

    return as_data_source


def test_tfds_uses_the_datasets_own_splits():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(as_data_source_fn=_fake_splits(["train", "validation"])):
        train = data.ContentData("tfds:imagenette", size=16, seed=0)
        val = data.ContentData("tfds:imagenette", split="val", size=16, seed=0)
        assert len(train) == len(val) == 12
        train_levels = {lv for s in range(6) for lv in _levels(train.batch_at(s, 2))}
        val_levels = {lv for s in range(6) for lv in _levels(val.batch_at(s, 2))}
        assert train_levels == set(range(12)) and val_levels == set(range(100, 112))
        np.testing.assert_array_equal(train.batch_at(3, 4), data.ContentData("tfds:imagenette", size=16).batch_at(3, 4))


def test_tfds_without_validation_split_holds_out_records():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(as_data_source_fn=_fake_splits(["train"], n=30)):
        train = data.ContentData("tfds:tf_flowers", size=16)
        val = data.ContentData("tfds:tf_flowers", split="val", size=16)
        assert (len(train), len(val)) == (27, 3)
        assert not set(train.names) & set(val.names)
        with pytest.raises(UserError, match="tfds:tf_flowers:test"):
            data.ContentData("tfds:tf_flowers:test")


def test_tfds_mock_random_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=8):
        content = data.ContentData("tfds:imagenette:train", size=24, seed=0)
        assert len(content) == 7
        batch = content.batch_at(0, 3)
        assert batch.shape == (3, 24, 24, 3) and batch.dtype == np.float32
        assert batch.min() >= 0.0 and batch.max() <= 1.0
        np.testing.assert_array_equal(batch, content.batch_at(0, 3))


def test_tfds_real_array_record_dataset(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("importlib_resources", reason="tfds needs importlib_resources to prepare a dataset")
    tfds.testing.DummyMnist(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    train = data.ContentData("tfds:dummy_mnist", data_dir=str(tmp_path), size=16, download=False)
    val = data.ContentData("tfds:dummy_mnist", split="val", data_dir=str(tmp_path), size=16, download=False)
    assert len(train) == len(val) == 20
    assert val.names[0].startswith("tfds:dummy_mnist:test[")
    batch = train.batch_at(0, 4)
    assert batch.shape == (4, 16, 16, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, train.batch_at(0, 4))
