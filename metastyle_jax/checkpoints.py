"""Checkpoints: model files (theta or an adapted network) and training-state checkpoints, via Orbax.

A model checkpoint is a directory holding `params/` (Orbax) and `meta.json` (kind, architecture, VGG
source and hash, settings). It is written into a temporary sibling directory and renamed into place,
so a crash never leaves a half-written model and an existing one is only replaced on request.
"""

import contextlib
import datetime
import json
import logging
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from metastyle_jax import outputs, quiet, transformer
from metastyle_jax.errors import UserError

# Models shipped in the package (metastyle_jax/models/NAME), loadable by name: theta, and one adapted model
# per shipped painting where present.
MODELS_DIR = Path(__file__).resolve().parent / "models"
FORMAT = "metastyle-jax"
ARCH = "TransformerNet(table1)"  # the official network; an antialiased one is ARCH + ", antialiased" (`arch`)
KINDS = ("theta", "adapted")


def _orbax_teardown_noise(exc_type, exc_value):
    """True for what Orbax's reads and writes still in flight report after a failure: they finish on a closed
    asyncio loop and each raises `RuntimeError: Event loop is closed` in a thread of TensorStore's."""
    return exc_type is RuntimeError and str(exc_value) == "Event loop is closed"


@contextlib.contextmanager
def _orbax_writes(target, partial=()):
    """Orbax writes to `target`: a full, read-only or forbidden disk becomes a WriteError of one line
    (`outputs.disk_error`) once the `partial` folders are removed, without the tracebacks that Orbax's writer
    thread logs and its asyncio loop prints on teardown."""
    quiet.drop(_orbax_teardown_noise)  # before the write: its threads report while the failure reaches this frame
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)  # Orbax's writer thread logs the error that the save below raises again
    try:
        yield
    except Exception as e:  # noqa: BLE001 (Orbax raises ValueError, OSError, ... for a failed write)
        refused = outputs.disk_error(e, target)
        if refused is None:
            raise
        for folder in list(partial() if callable(partial) else partial):
            outputs.remove_tree(folder, settle_s=outputs.SETTLE_S)
        raise refused from None
    finally:
        absl.setLevel(level)


def _abstract(tree):
    """ShapeDtypeStructs of a pytree, the restore target Orbax checks shapes against."""
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)


def arch(resampling="nearest"):
    """The architecture name a model records for a network with that resampling (`transformer.RESAMPLING`)."""
    return ARCH if resampling == "nearest" else ARCH[:-1] + f", {resampling})"


ARCHS = {arch(r): r for r in transformer.RESAMPLING}


def resampling(meta):
    """The resampling (`transformer.RESAMPLING`) of the network a model's meta names; "nearest" for an untrained
    one (no arch)."""
    return ARCHS.get(meta.get("arch", ARCH), "nearest")


def model_meta(kind, vgg=None, resampling="nearest", **settings):
    """The metadata recorded with a model: kind ('theta' or 'adapted'), architecture (with its resampling),
    VGG source/hash."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return {"format": FORMAT, "version": 1, "kind": kind, "arch": arch(resampling),
            "num_params": transformer.count_params(transformer.abstract_params()),
            "vgg": vgg, "settings": settings,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def save_model(path, params, meta, force=False):
    """Write params + meta.json to directory `path` atomically; refuse to replace it unless `force`."""
    path = Path(path).absolute()  # Orbax refuses relative paths
    outputs.check([path], force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    with outputs.staging_dir(path) as tmp:
        write_model(tmp, params, meta, target=path)
        outputs.replace_dir(tmp, path)
    return path


def write_model(folder, params, meta, target=None):
    """Write params (Orbax, under `folder`/params) and meta.json into the new, empty folder `folder`; a full or
    read-only disk is a UserError naming `target` (default: `folder`)."""
    folder = Path(folder).absolute()  # Orbax refuses relative paths
    with _orbax_writes(target or folder):
        ckpt = ocp.StandardCheckpointer()
        ckpt.save(folder / "params", jax.device_get(params))
        ckpt.wait_until_finished()
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


def shipped_models():
    """Names of the models shipped in the package (e.g. "theta")."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "meta.json").is_file()) if MODELS_DIR.is_dir() else []


def resolve_model(spec):
    """The directory of model `spec`: an existing path, else the shipped model of that name, else `spec`
    as a path (which the readers then report as not found)."""
    path = Path(spec)
    if not path.exists() and str(spec) in shipped_models():
        return MODELS_DIR / str(spec)
    return path


def read_meta(path):
    """The meta.json of a model checkpoint (a path or a shipped model's name); a UserError saying what
    `path` is if it is not one."""
    path = resolve_model(path)
    if not path.exists():
        names = shipped_models() if os.sep not in str(path) else []  # a bare name: say which exist
        raise UserError(f"model checkpoint not found: {path}" + (f" (shipped models: {', '.join(names)})"
                                                                  if names else ""))
    if path.is_file():
        hint = {".pth": "a PyTorch file: convert it with `python -m metastyle_jax.convert --from-pytorch`",
                ".pt": "a PyTorch file: convert it with `python -m metastyle_jax.convert --from-pytorch`",
                ".h5": "a Keras/HDF5 file (VGG weights go to --vgg-path, not --model)",
                ".npz": "a NumPy archive (VGG weights go to --vgg-path, not --model)"}
        raise UserError(f"{path} is {hint.get(path.suffix.lower(), 'a file')}, not a metastyle-jax "
                        "model checkpoint (a directory with meta.json)")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a metastyle-jax model checkpoint (meta.json: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a metastyle-jax model checkpoint")
    if not isinstance(meta.get("settings", {}), dict) or not isinstance(meta.get("vgg") or {}, dict):
        raise UserError(f"{path} has a damaged meta.json: its settings and vgg must be JSON objects")
    return meta


def load_model(path, kinds=KINDS):
    """Load a model checkpoint: (params pytree of numpy arrays, meta dict). Checks kind and architecture."""
    meta = read_meta(path)
    path = resolve_model(path)
    if meta.get("kind") not in kinds:
        raise UserError(f"{path} holds a {meta.get('kind')!r} model; this command needs {' or '.join(kinds)}")
    if meta.get("arch") not in ARCHS:
        raise UserError(f"{path} is a {meta.get('arch')!r} network, not {' or '.join(ARCHS)}")
    quiet.drop(_orbax_teardown_noise)  # before the read: its threads report while the failure reaches this frame
    try:
        params = ocp.StandardCheckpointer().restore(Path(path).resolve() / "params")
    except Exception as e:  # Orbax raises many types for missing, corrupt or mismatched arrays
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        for folder in {str(Path(path).resolve()), str(Path(path).absolute())}:  # its files named from the model
            detail = detail.replace(folder + os.sep, "")
        raise UserError(f"cannot read the parameters in {path}: {detail[:200]}") from None
    # float16 storage (shipped models) is widened back: every computation runs in float32
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
    if not same_shapes(params, transformer.abstract_params()):
        raise UserError(f"cannot read the parameters in {path}: their names or shapes are not {ARCH}'s")
    if not all_finite(params):
        raise UserError(f"{path} holds NaN or infinite parameters (a diverged run?): it cannot stylize anything")
    return params, meta


def all_finite(tree):
    """True if every leaf of pytree `tree` is free of NaN and inf."""
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in jax.tree_util.tree_leaves(tree))


def same_shapes(a, b):
    """True if pytrees a and b have the same structure and leaf shapes."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.shape(x) == np.shape(y) for x, y in zip(la, lb))


class TrainCheckpoints:
    """Training-state checkpoints every `interval` steps in `directory`, keeping the last `keep`.

    Each step directory holds the state pytree and a JSON dict (config, data position, VGG source);
    Orbax writes into a temporary directory and renames it on commit, so a kill never leaves a torn one.
    """

    def __init__(self, directory, interval=1000, keep=3):
        self.directory = Path(directory).resolve()
        opts = ocp.CheckpointManagerOptions(save_interval_steps=interval, max_to_keep=keep,
                                            enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=opts, item_names=("state", "meta"))

    def latest_step(self):
        """The last committed step, or None."""
        return self.manager.latest_step()

    def save(self, step, state, meta, force=False):
        """Save (state, meta) at `step` if the interval says so (or `force`); True if it was written."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(jax.device_get(state)),
                                  meta=ocp.args.JsonSave(meta))
        with _orbax_writes(f"checkpoint {step} in {self.directory}",
                           partial=lambda: self.directory.glob(f"{step}.orbax-checkpoint-tmp*")):
            saved = self.manager.save(step, args=args, force=force)
            self.manager.wait_until_finished()
        return saved

    def restore(self, state_like, step=None):
        """(state, meta) at `step` (default: latest), shaped like `state_like`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"no checkpoint to resume from in {self.directory}")
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(jax.device_get(state_like))),
            meta=ocp.args.JsonRestore()))
        if not same_shapes(out["state"], jax.device_get(state_like)):
            raise UserError(f"the checkpoint in {self.directory} does not match this configuration's "
                            "model/optimizer state; resume with the config it was written with")
        return out["state"], out["meta"]

    def restore_intact(self, state_like, damaged_dir):
        """(state, meta, set_aside) from the latest checkpoint that reads back whole, shaped like `state_like`.

        A later one that cannot be read (truncated, corrupted) is moved to `damaged_dir`/<step>, never
        deleted, and listed in set_aside as (step, reason); a UserError if none is intact."""
        set_aside = []
        quiet.drop(_orbax_teardown_noise)
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                state, meta = self.restore(state_like, step)
            except UserError:
                raise
            except Exception as e:  # Orbax raises many types for missing or corrupt files
                reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
                target, n = Path(damaged_dir) / str(step), 1
                while target.exists():
                    target, n = Path(damaged_dir) / f"{step}.{n}", n + 1
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(self.directory / str(step)), str(target))
                set_aside.append((step, reason))
                continue
            if set_aside:
                self.manager.reload()
            return state, meta, set_aside
        raise UserError(f"no intact checkpoint in {self.directory}" + (
            f" (damaged ones moved to {damaged_dir})" if set_aside else ""))

    def close(self):
        """Wait for pending writes and release the manager."""
        self.manager.close()
