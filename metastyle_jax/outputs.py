"""What a command may write: its outputs never replace its inputs, never each other, and `--force` replaces
only what this program wrote before (an image or video file, a model, an export, a folder of frames).

`check` runs before any work starts, so a refused command leaves everything as it was. A directory output is
built in `staging_dir` and moved into place by `replace_dir`, which replaces the old one only once the new one
is complete.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from metastyle_jax.errors import UserError

FRAME_NAME = re.compile(r"frame_\d{6}\.png")
_STAGED = set()  # this process's staging folders: `remove_staged` deletes them when Ctrl-C ends it at once


@contextlib.contextmanager
def staging_dir(final):
    """A fresh hidden folder `.NAME.tmp-*` beside `final` to build a directory output in; removed when the block
    ends, however it ends (after `replace_dir` has moved it, nothing is left to remove)."""
    final = Path(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    _STAGED.add(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _STAGED.discard(tmp)


def write_atomic(path, write):
    """Create `path` by calling `write(file)` on a temporary file beside it, then renaming it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def remove_staged():
    """Delete every staging folder still open: the exit path of an interrupt that cannot wait for `finally`."""
    for tmp in list(_STAGED):
        shutil.rmtree(tmp, ignore_errors=True)


def _real(path):
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _inside(path, folder):
    return path == folder or folder in path.parents


def written_by_us(path):
    """True if directory `path` is something this program writes whole: a model checkpoint (meta.json of
    format metastyle-jax), an export (card.json) or a folder of stylized video frames (frame_NNNNNN.png only)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        if isinstance(meta, dict) and meta.get("format") == "metastyle-jax":
            return True
    except (OSError, ValueError, AttributeError):
        pass
    try:
        if str(json.loads((path / "card.json").read_text())["exported_by"]["package"]).startswith("metastyle-jax"):
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    names = [p.name for p in path.iterdir()]
    return bool(names) and all(FRAME_NAME.fullmatch(n) for n in names)


def check_not_input(outputs, inputs):
    """Refuse (UserError) an output that is one of `inputs` or a folder holding one."""
    ins = [(i, _real(i)) for i in inputs if i is not None and os.path.exists(str(i))]
    for given in filter(None, outputs):
        real = _real(given)
        for name, src in ins:
            if real == src or (real.is_dir() and _inside(src, real)):
                raise UserError(f"{given} is an input of this command ({name}): choose another output path; "
                                "an output never replaces an input, with or without --force")


def name_max(path):
    """The longest file name (bytes) the file system of `path`'s nearest existing folder allows (255 if unknown)."""
    folder = Path(os.path.abspath(str(path))).parent
    while not os.path.isdir(folder) and folder != folder.parent:  # os.path: False, not OSError, on long names
        folder = folder.parent
    try:
        return os.pathconf(str(folder), "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_names(outputs):
    """Refuse (UserError) an output whose name, or a folder name on its path, is longer than allowed."""
    for out in outputs:
        limit = name_max(out)
        for part in Path(str(out)).parts:
            if len(os.fsencode(part)) > limit:
                raise UserError(f"the output name {part[:40]}... is {len(os.fsencode(part))} bytes long; this "
                                f"file system allows {limit}: choose a shorter --out")


def check(outputs, inputs=(), force=False):
    """Refuse (UserError, one line) before anything is written if an output is one of `inputs` or holds one,
    if two outputs are the same path, if an output exists without `force`, or if `force` would replace a
    folder this program did not write. `outputs` and `inputs` are paths; None entries are ignored, as are
    inputs that are not on disk (embedded:NAME)."""
    check_names([o for o in outputs if o is not None])
    outs = [(o, _real(o)) for o in outputs if o is not None]
    ins = [(i, _real(i)) for i in inputs if i is not None and os.path.exists(str(i))]
    check_not_input([o for o, _ in outs], [i for i, _ in ins])
    seen = {}
    for given, real in outs:
        if real in seen:
            raise UserError(f"two outputs of this command are the same file, {seen[real]} and {given}: "
                            "give each its own path")
        seen[real] = given
        if not os.path.lexists(real):
            continue
        if not force:
            raise UserError(f"{given} exists; pass --force to overwrite it")
        if real.is_dir() and not written_by_us(real):
            raise UserError(f"{given} is a folder of other files, not one this program wrote: --force replaces "
                            "only a model, an export or stylized frames; choose another output path")


def replace_dir(src, dst):
    """Move the finished directory `src` to `dst`, replacing what is at `dst` only after `src` is complete."""
    dst = Path(dst)
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()
