"""Import a checkpoint of the official PyTorch MetaStyle (a `TransformerNet` state dict) as a model checkpoint.

    python -m metastyle_jax.convert --from-pytorch model.pth --out CKPT [--kind theta|adapted]

Names map one to one (conv1.conv2d.weight -> conv1/conv2d/kernel, in1.weight -> in1/scale, in1.bias ->
in1/bias, res1.conv1.conv2d.weight -> res1/conv1/conv2d/kernel, ...). Kernels go from OIHW to HWIO; both
frameworks compute cross-correlations, so no spatial flip. The official network reads pixels in [0, 255]
(`transforms.Lambda(lambda x: x.mul(255))`) and writes sigmoid outputs in [0, 1]; ours reads [0, 1], so
conv1's kernel is multiplied by 255 (`--input-scale`, exact: reflection padding commutes with scaling).
Needs PyTorch (`pip install "metastyle-jax[torch]"`).
"""

import hashlib
import re
from pathlib import Path

import jax
import numpy as np

from metastyle_jax import checkpoints, outputs, transformer
from metastyle_jax.errors import UserError

OFFICIAL_INPUT_SCALE = 255.0
# Buffers that PyTorch < 0.4.1 saved for InstanceNorm2d; they are unused by the network (no running stats).
IGNORED_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def torch_key(path):
    """The PyTorch state-dict key of a Flax parameter path: ("res1", "in1", "scale") -> "res1.in1.weight"."""
    *modules, leaf = (getattr(k, "key", k) for k in path)
    return ".".join(modules + [{"kernel": "weight", "scale": "weight", "bias": "bias"}[leaf]])


def _load_state(path):
    """The tensors of a PyTorch file as {key: float32 numpy array}; UserError for anything else."""
    try:
        import torch
    except ImportError:
        raise UserError('reading PyTorch files needs PyTorch: pip install "metastyle-jax[torch]"') from None
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path} is a folder, not a .pth file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors of many types
        pickled = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if pickled:
            raise UserError(f"{path} holds a pickled {pickled[1]} object, not a state dict: save "
                            "model.state_dict() instead (never unpickled here: it could run code)") from None
        raise UserError(f"cannot read {path}: not a PyTorch checkpoint ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return {k.removeprefix("module."): v.detach().to(torch.float32).numpy() for k, v in state.items()}


def from_state_dict(state, input_scale=OFFICIAL_INPUT_SCALE, where="state dict"):
    """Flax params of TransformerNet from an official state dict {key: numpy array}.

    Raises UserError naming missing, unexpected or mis-shaped keys (and VGG16 weights given by mistake).
    """
    if any(k.startswith("features.") for k in state):
        raise UserError(f"{where} holds VGG16 weights (features.0.weight, ...), not a TransformerNet: "
                        "give VGG weights to --vgg torchvision --vgg-path")
    template = transformer.abstract_params()
    wanted = {torch_key(p): p for p, _ in jax.tree_util.tree_leaves_with_path(template)}
    present = {k for k in state if not k.endswith(IGNORED_SUFFIXES)}
    missing, unexpected = sorted(set(wanted) - present), sorted(present - set(wanted))
    if missing or unexpected:
        parts = [f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "",
                 f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}" if unexpected else ""]
        raise UserError(f"{where} is not the official TransformerNet ({'; '.join(filter(None, parts))})")

    def convert(path, leaf):
        key = torch_key(path)
        array = state[key]
        if leaf.ndim == 4:
            array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
        if array.shape != leaf.shape:
            raise UserError(f"{where}: {key} has shape {tuple(state[key].shape)}, which does not fit "
                            f"TransformerNet's {leaf.shape} (HWIO)")
        if key == "conv1.conv2d.weight":
            array = array * np.float32(input_scale)
        return np.ascontiguousarray(array, dtype=np.float32)

    return jax.tree_util.tree_map_with_path(convert, template)


def convert_file(src, out, kind="theta", input_scale=OFFICIAL_INPUT_SCALE, force=False):
    """Write the official network saved at `src` (.pth) as model checkpoint `out` of `kind` (theta or adapted),
    conv1's kernel scaled by `input_scale`. Returns the number of parameters converted."""
    if not input_scale > 0:
        raise UserError("--input-scale must be positive (255 for the official code)")
    outputs.check([out], [src], force)
    src = Path(src)
    params = from_state_dict(_load_state(src), input_scale, where=str(src))
    meta = checkpoints.model_meta(kind, vgg=None, converted_from=str(src),
                                  source_sha256=hashlib.sha256(src.read_bytes()).hexdigest(),
                                  origin="official PyTorch MetaStyle TransformerNet", input_scale=input_scale)
    checkpoints.save_model(Path(out).absolute(), params, meta, force=force)  # Orbax: absolute
    return transformer.count_params(params)


if __name__ == "__main__":  # python -m metastyle_jax.convert: the command line's `convert`
    from metastyle_jax import commands

    commands.run("convert")
