"""Loading configs (Python files under configs/ with `get_config()`) and applying `key=value` overrides."""

import ast
import importlib.util
import math
from pathlib import Path

import ml_collections

from metastyle_jax.errors import UserError

# an installed wheel carries them in the package (metastyle_jax/configs); a checkout has them at its top level
CONFIG_DIR = next((d for d in (Path(__file__).resolve().parent / "configs",
                               Path(__file__).resolve().parents[1] / "configs") if d.is_dir()),
                  Path(__file__).resolve().parents[1] / "configs")


def config_path(name):
    """Path of config `name`: an existing file path, or `configs/<name>.py` of this repository."""
    p = Path(name)
    if p.suffix == ".py" and p.exists():
        if not p.is_file():  # a FIFO or a device would block the read, a folder cannot be run
            raise UserError(f"config {name} is not a regular file")
        return p
    p = CONFIG_DIR / f"{name}.py"
    if p.exists():
        return p
    names = sorted(q.stem for q in CONFIG_DIR.glob("*.py") if not q.stem.startswith("_"))
    raise UserError(f"config not found: {name} (give a path to a .py file with get_config(), "
                    f"or one of: {', '.join(names)})")


def load(name, overrides=()):
    """The ConfigDict of config file `name` with `overrides` ("a.b=value" strings) applied. "NAME:ARG" (e.g.
    "metastyle:tiny") calls the file's get_config(ARG), as big_vision and ml_collections' config_flags do."""
    name, _, arg = str(name).partition(":")
    path = config_path(name)
    spec = importlib.util.spec_from_file_location(f"metastyle_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        cfg = module.get_config(arg) if arg else module.get_config()
    except Exception as e:
        raise UserError(f"cannot load config {path}: {e}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise UserError(f"cannot load config {path}: get_config() returned a {type(cfg).__name__}, "
                        "not an ml_collections.ConfigDict")
    for item in overrides:
        override(cfg, item)
    return cfg


# One dialect for train, adapt and gatys: the keys of configs/metastyle.py. The older names of adapt's and gatys'
# settings stay accepted wherever a key is given (--set, --config.KEY, a command's flags).
ALIASES = {"steps": "num_steps", "size": "data.content_size", "style_size": "data.style_size",
           "content": "data.content", "crop": "data.crop", "alpha": "loss.alpha", "beta": "loss.beta",
           "tv": "loss.tv", "zoom": "data.zoom"}


def _locate(cfg, key):
    """(the ConfigDict holding `key`, its last part), following dots and, for a key `cfg` lacks, ALIASES."""
    for name in (key, ALIASES.get(key)):
        if name is None:
            continue
        *parents, leaf = name.split(".")
        node = cfg
        for p in parents:
            node = node[p] if isinstance(node, ml_collections.ConfigDict) and p in node else None
        if isinstance(node, ml_collections.ConfigDict) and leaf in node:
            return node, leaf
    raise UserError(f"unknown config key {key!r}")


def get_value(cfg, key):
    """The value of "a.b" (or an alias, ALIASES) in `cfg`."""
    node, leaf = _locate(cfg, key)
    return node[leaf]


def set_value(cfg, key, value):
    """Set "a.b" (or an alias, ALIASES) of `cfg` to an already typed `value`, in place."""
    node, leaf = _locate(cfg, key)
    node[leaf] = value


_KINDS = {bool: "True or False", int: "an integer", float: "a number", tuple: "a tuple", list: "a list"}


def _parse(text, current):
    """A value of the type of `current` from its command-line text."""
    if isinstance(current, str) or current is None:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if current is None else str(value) if not isinstance(value, str) else value
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"expected {_KINDS.get(type(current), 'a ' + type(current).__name__)}") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError("expected True or False")
        return value
    if isinstance(current, (int, float)) and not isinstance(value, bool) and isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        if isinstance(current, int) and not isinstance(current, bool) and float(value) != int(value):
            raise ValueError("expected an integer")
        return type(current)(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(current)(value)
    raise ValueError(f"expected {_KINDS.get(type(current), 'a ' + type(current).__name__)}")


def override(cfg, item):
    """Apply one "a.b=value" override to ConfigDict `cfg` in place, type-checked against the default."""
    if "=" not in item:
        raise UserError(f"bad override {item!r}: expected key=value")
    key, text = item.split("=", 1)
    node, leaf = _locate(cfg, key.strip())
    try:
        node[leaf] = _parse(text.strip(), node[leaf])
    except (ValueError, SyntaxError, TypeError, OverflowError, MemoryError, RecursionError) as e:
        raise UserError(f"bad value for {key}: {text!r} ({e})") from None
