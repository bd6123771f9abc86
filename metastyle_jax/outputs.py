"""What a command may write: its outputs never replace its inputs, never each other, and `--force` replaces
only what this program wrote before (an image or video file, a model, an export, a folder of frames).

`check` runs before any work starts (names, permissions, free space), so a refused command leaves everything
as it was. A directory output is built in `staging_dir` and moved into place by `replace_dir`, which replaces
the old one only once the new one is complete. `disk_error` turns what a full, read-only or forbidden disk
raises into one line.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from metastyle_jax.errors import NO_SPACE, NOT_WRITABLE, UserError, WriteError

FRAME_NAME = re.compile(r"frame_\d{6}\.png")
TB_EVENTS = re.compile(r"events\.out\.tfevents\..*")  # a TensorBoard events file (train's tb/, adapt's <out>_tb/)
_STAGED = set()  # this process's staging folders: `remove_staged` deletes them when Ctrl-C ends it at once


@contextlib.contextmanager
def staging_dir(final):
    """A fresh hidden folder `.NAME.tmp-*` beside `final` (its parents made) to build a directory output in;
    removed when the block ends, however it ends (after `replace_dir` has moved it, nothing is left to
    remove). A full or read-only disk inside the block is a WriteError naming `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    _STAGED.add(tmp)
    try:
        yield tmp
    except BaseException as e:
        remove_tree(tmp, settle_s=SETTLE_S)
        refused = disk_error(e, final) if isinstance(e, Exception) else None
        if refused:
            raise refused from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _STAGED.discard(tmp)


SETTLE_S = 0.3  # after a failed write, how long a folder must stay gone: writer threads may still add files


def remove_tree(path, settle_s=0.0):
    """Delete `path` (a folder or file); with `settle_s`, delete it again until it has stayed absent that long
    (at most 10 rounds), since the threads of a write that failed (Orbax's) may still be adding files."""
    for _ in range(10):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
        if not settle_s:
            return
        time.sleep(settle_s)
        if not os.path.lexists(path):
            return


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
    return bool(names) and any(all(kind.fullmatch(n) for n in names) for kind in (FRAME_NAME, TB_EVENTS))


def check_not_input(outputs, inputs):
    """Refuse (UserError) an output that is one of `inputs` or a folder holding one."""
    ins = [(i, _real(i)) for i in inputs if i is not None and os.path.exists(str(i))]
    for given in filter(None, outputs):
        real = _real(given)
        for name, src in ins:
            if real == src or (real.is_dir() and _inside(src, real)):
                raise UserError(f"{given} is an input of this command ({name}): choose another output path; "
                                "an output never replaces an input, with or without --force")


def nearest_folder(path):
    """The existing folder closest above `path`: where writing `path` (and any folders it needs) happens."""
    folder = Path(os.path.abspath(str(path))).parent
    while not os.path.isdir(folder) and folder != folder.parent:  # os.path: False, not OSError, on long names
        folder = folder.parent
    return folder


def name_max(path):
    """The longest file name (bytes) the file system of `path`'s nearest existing folder allows (255 if unknown)."""
    try:
        return os.pathconf(str(nearest_folder(path)), "PC_NAME_MAX")
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


def human_bytes(n):
    """A byte count for people: GiB from 1 GiB on, MiB from 1 MiB on, KiB below."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def check_writable(outputs, nbytes=0):
    """Refuse (UserError) an output whose nearest existing folder cannot be written (a read-only file system,
    no permission) or whose file system has less than `nbytes` free."""
    for out in outputs:
        folder = nearest_folder(out)
        try:
            fs = os.statvfs(folder)
        except OSError:
            continue
        if not os.access(folder, os.W_OK | os.X_OK) or fs.f_flag & os.ST_RDONLY:
            why = "is on a read-only file system" if fs.f_flag & os.ST_RDONLY else "is not writable by this user"
            raise UserError(f"cannot write {out}: {folder} {why}; choose another output path")
        free = fs.f_bavail * fs.f_frsize
        if free < nbytes:
            raise UserError(f"cannot write {out}: it needs about {human_bytes(nbytes)} and {folder} has "
                            f"{human_bytes(free)} free; free some space or choose another output path")


def disk_error(exc, target=None):
    """The WriteError for an exception that a full, read-only or forbidden disk raised (an OSError, the text in
    which Orbax/TensorStore wraps one, `os_error_code='28'`, or a WriteError, named anew), naming `target`
    (default: the file); None for any other exception."""
    code = exc.code if isinstance(exc, WriteError) else exc.errno if isinstance(exc, OSError) else None
    if code is None:
        found = re.search(r"os_error_code='(\d+)'", str(exc))
        code = int(found.group(1)) if found else None
    if code not in NO_SPACE + NOT_WRITABLE:
        return None
    return WriteError(target or getattr(exc, "target", None) or getattr(exc, "filename", None) or "an output", code)


def check(outputs, inputs=(), force=False, nbytes=0):
    """Refuse (UserError, one line) before anything is written if an output is one of `inputs` or holds one,
    if two outputs are the same path, if an output exists without `force`, if `force` would replace a folder
    this program did not write, or if an output's folder is not writable or has less than `nbytes` free
    (`check_writable`). `outputs` and `inputs` are paths; None entries are ignored, as are inputs that are not
    on disk (embedded:NAME)."""
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
                            "only a model, an export, TensorBoard events or stylized frames; choose another "
                            "output path")
    check_writable([o for o, _ in outs], nbytes)


def replace_dir(src, dst):
    """Move the finished directory (or file) `src` to `dst`, replacing what is at `dst` only after `src` is
    complete."""
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
