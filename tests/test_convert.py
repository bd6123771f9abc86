"""The PyTorch import against an independent PyTorch TransformerNet written here, with the official names."""

import jax
import numpy as np
import pytest

from metastyle_jax import checkpoints, convert, transformer
from metastyle_jax.errors import UserError
from metastyle_jax.commands import convert as convert_cmd

torch = pytest.importorskip("torch")
nn = torch.nn


class ConvLayer(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    def forward(self, x):
        return super().forward(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class TorchTransformerNet(nn.Module):
    """The official src/transformer_net.py network: pixels in [0, 255] in, sigmoid in [0, 1] out."""

    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        for i in range(1, 6):
            setattr(self, f"res{i}", ResidualBlock(128))
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3, 1), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3, 1), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)

    def forward(self, x):
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = torch.relu(self.in3(self.conv3(y)))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = torch.relu(self.in4(self.deconv1(y)))
        y = torch.relu(self.in5(self.deconv2(y)))
        return torch.sigmoid(self.deconv3(y))


@pytest.fixture(scope="module")
def torch_net():
    torch.manual_seed(0)
    net = TorchTransformerNet().eval()
    with torch.no_grad():  # random instance-norm scale and shift too, not PyTorch's ones and zeros
        for name, p in net.named_parameters():
            if ".conv2d." not in name:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
    return net


@pytest.fixture(scope="module")
def pth(tmp_path_factory, torch_net):
    path = tmp_path_factory.mktemp("pt") / "model.pth"
    torch.save(torch_net.state_dict(), path)
    return path


def test_converted_network_gives_the_same_image(tmp_path, torch_net, pth, capsys):
    convert_cmd.main(["--from-pytorch", str(pth), "--out", str(tmp_path / "ckpt")])
    params, meta = checkpoints.load_model(tmp_path / "ckpt", kinds=("theta",))
    assert meta["settings"]["input_scale"] == 255 and meta["settings"]["converted_from"] == str(pth)
    assert "1,679,235 parameters" in capsys.readouterr().out
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():  # the official convention: pixels * 255 in
        expected = torch_net(torch.from_numpy(x * 255).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    got = np.asarray(transformer.apply(params, x))
    assert np.max(np.abs(got - expected)) < 1e-4
    assert np.std(expected) > 0.01  # a non-trivial image, not a saturated sigmoid


def test_input_scale_one_and_adapted_kind(tmp_path, torch_net, monkeypatch):
    state = {k: v for k, v in torch_net.state_dict().items()}
    state = {f"module.{k}": v for k, v in state.items()}  # DataParallel prefix
    state["module.in1.running_mean"] = torch.zeros(32)  # old PyTorch InstanceNorm buffers are ignored
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    monkeypatch.chdir(tmp_path)  # a relative --out
    convert_cmd.main(["--from-pytorch", "wrapped.pth", "--out", "c", "--kind", "adapted", "--input-scale", "1"])
    params, meta = checkpoints.load_model(tmp_path / "c", kinds=("adapted",))
    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.max(np.abs(np.asarray(transformer.apply(params, x)) - expected)) < 1e-4


def _vgg_state(path):
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    return path


def _other_arch(path, net):
    state = dict(net.state_dict())
    state["conv1.conv2d.weight"] = torch.zeros(16, 3, 9, 9)
    torch.save(state, path)
    return path


def _missing(path, net):
    state = dict(net.state_dict())
    del state["res3.in2.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    return path


def _junk(path):
    path.write_bytes(b"not torch")
    return path


def _pickled_module(path, net):
    torch.save(net, path)
    return path


@pytest.mark.parametrize("make,match", [
    (lambda t, n: _vgg_state(t / "vgg16.pth"), "VGG16 weights"),
    (lambda t, n: _other_arch(t / "small.pth", n), "conv1.conv2d.weight has shape"),
    (lambda t, n: _missing(t / "m.pth", n), "missing res3.in2.bias; unexpected extra.weight"),
    (lambda t, n: _pickled_module(t / "whole.pth", n), "pickled .*TorchTransformerNet object, not a state dict"),
    (lambda t, n: _junk(t / "junk.pth"), "not a PyTorch checkpoint"),
    (lambda t, n: t / "absent.pth", "no such file"),
])
def test_bad_input_is_one_clear_error(tmp_path, torch_net, make, match):
    src = make(tmp_path, torch_net)
    with pytest.raises(UserError, match=match):
        convert_cmd.main(["--from-pytorch", str(src), "--out", str(tmp_path / "ckpt")])
    assert not (tmp_path / "ckpt").exists()


def test_refuses_to_overwrite(tmp_path, pth):
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(UserError, match="exists; pass --force"):
        convert_cmd.main(["--from-pytorch", str(pth), "--out", str(tmp_path / "ckpt")])


def test_every_parameter_has_its_official_name(theta):
    keys = sorted(convert.torch_key(path) for path, _ in jax.tree_util.tree_leaves_with_path(theta))
    assert keys == sorted(TorchTransformerNet().state_dict())
