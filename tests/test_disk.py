"""A full, read-only or forbidden disk: refused before the work where that can be known, else one line and exit
2 with nothing partial left; the user's files stay byte-identical.

Injected OSErrors and file-system flags check each path everywhere; where this process may mount a tmpfs
(root in a container), a real 3 MiB one checks the same end to end.
"""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metastyle_jax import adapt, checkpoints, export, images, outputs, video
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError, WriteError
from metastyle_jax.commands import adapt as adapt_cmd, export as export_cmd

ADAPT = ["--size", "32", "--style-size", "64", "--steps", "1", "--batch-size", "1", "--eval-every", "0"]


class FakeStatvfs:
    """What os.statvfs reports for a file system that is read-only or has `free` bytes left."""

    def __init__(self, free=2**40, read_only=False):
        self.f_bavail, self.f_frsize, self.f_flag = free, 1, os.ST_RDONLY if read_only else 0


def fake_disk(monkeypatch, **kw):
    monkeypatch.setattr(outputs.os, "statvfs", lambda path: FakeStatvfs(**kw))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 3 MiB tmpfs, mounted for the test (skips where this process may not mount one)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def one_line(capsys, main, argv, after_progress=False):
    """The error line of `main(argv)` run as a command (exit 2, no traceback); the only line printed unless
    `after_progress` (the work's notes and progress bar came first)."""
    with pytest.raises(SystemExit) as e:
        cli.run(main, argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "Traceback" not in err, err
    assert after_progress or len(err.splitlines()) == 1, err
    assert err.splitlines()[-1].startswith("error: ")
    return err.splitlines()[-1]


def snapshot(folder):
    """{relative path: bytes} of every file under `folder`, and the names of its folders."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in Path(folder).rglob("*")}


def test_disk_error_recognizes_what_a_refused_write_raises():
    full = outputs.disk_error(OSError(errno.ENOSPC, "No space left on device", "/x/a.png"))
    assert isinstance(full, WriteError) and str(full).startswith("cannot write /x/a.png: No space left on device")
    assert "free some space" in str(full)
    assert "choose a writable place" in str(outputs.disk_error(OSError(errno.EROFS, "ro"), "/y"))
    orbax = ValueError("RESOURCE_EXHAUSTED: Error writing ... Failed to write 408784 bytes to file 13: No space "
                       "left on device [os_error_code='28']")
    assert str(outputs.disk_error(orbax, "/m")).startswith("cannot write /m: No space left on device")
    assert str(outputs.disk_error(full, "/final")).startswith("cannot write /final:")  # named anew
    for other in (OSError(errno.ENOENT, "missing"), ValueError("bad"), RuntimeError("os_error_code='2'")):
        assert outputs.disk_error(other) is None


def test_check_refuses_a_read_only_or_full_folder_before_any_work(tmp_path, monkeypatch):
    outputs.check([tmp_path / "new" / "o.png"], nbytes=10)
    fake_disk(monkeypatch, read_only=True)
    with pytest.raises(UserError, match="is on a read-only file system; choose another"):
        outputs.check([tmp_path / "new" / "o.png"])
    fake_disk(monkeypatch, free=5 * 2**20)
    with pytest.raises(UserError, match=r"needs about 6 MiB and .* has 5 MiB free; free some space"):
        outputs.check([tmp_path / "o.png"], nbytes=6 * 2**20)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("disk,message", [({"read_only": True}, "read-only file system"),
                                          ({"free": 2**20}, "needs about")])
def test_adapt_is_refused_before_it_starts(tmp_path, monkeypatch, capsys, disk, message):
    fake_disk(monkeypatch, **disk)
    err = one_line(capsys, adapt_cmd.main, ["--style", "embedded:wave", "--out", str(tmp_path / "o"), *ADAPT])
    assert message in err
    assert not any(tmp_path.iterdir())


def test_a_write_refused_late_replaces_nothing_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """adapt --force over its own earlier outputs: the disk fills while the new ones are written; the old
    ones stay byte-identical and no staging folder is left."""
    argv = ["--style", "embedded:wave", "--out", str(tmp_path / "o"), *ADAPT]
    adapt_cmd.main(argv)
    before = snapshot(tmp_path)

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(adapt.plotting, "loss_curves", full)  # after the model is written, before the rest
    err = one_line(capsys, adapt_cmd.main, argv + ["--force"], after_progress=True)
    assert err == f"error: cannot write {tmp_path / 'o'}: No space left on device; nothing partial was kept: " \
                  "free some space and run again"
    assert snapshot(tmp_path) == before


def test_orbax_writes_on_a_full_disk_are_one_error_and_leave_no_partial_folder(tmp_path, monkeypatch, theta):
    def full(self, directory, *args, **kw):
        Path(directory).mkdir(parents=True)
        (Path(directory) / "half").write_bytes(b"x")
        raise ValueError(f"RESOURCE_EXHAUSTED: Error writing in {directory} [os_error_code='28']")

    monkeypatch.setattr(checkpoints.ocp.StandardCheckpointer, "save", full)
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'm'}: No space left"):
        checkpoints.save_model(tmp_path / "m", theta, checkpoints.model_meta("adapted"))
    assert not any(tmp_path.iterdir())


def test_a_training_checkpoint_that_cannot_be_written_leaves_no_partial_step(tmp_path, monkeypatch):
    ckpt = checkpoints.TrainCheckpoints(tmp_path / "checkpoints", interval=1)

    def full(step, *args, **kw):
        (ckpt.directory / f"{step}.orbax-checkpoint-tmp" / "state").mkdir(parents=True)
        raise ValueError("Failed to write 10072064 bytes to file 26 [os_error_code='28']")

    monkeypatch.setattr(ckpt.manager, "save", full)
    with pytest.raises(WriteError, match="cannot write checkpoint 5 in .*checkpoints: No space left"):
        ckpt.save(5, {"w": np.zeros(3)}, {"step": 5})
    assert not any((tmp_path / "checkpoints").iterdir())


def test_export_on_a_full_disk(tmp_path, monkeypatch, capsys, model):
    def full(fmt, params, folder, *args):
        (Path(folder) / "model.stablehlo").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "write_artefact", full)
    err = one_line(capsys, export_cmd.main, ["--model", str(model), "--format", "stablehlo", "--out",
                                         str(tmp_path / "e")], after_progress=True)
    assert f"cannot write {tmp_path / 'e'}: No space left" in err and not any(tmp_path.iterdir())


def test_a_video_that_ffmpeg_could_not_finish_is_not_kept(tmp_path, monkeypatch):
    """ffmpeg exits as if it had succeeded on a full disk; the sink reads the file back and keeps it only if
    every frame is there."""
    for disk, error in (({}, "ffmpeg could not finish"), ({"free": 0}, "No space left on device")):
        sink = video._VideoSink(tmp_path / "o.mp4", fps=5)
        for _ in range(3):
            sink.write(np.zeros((16, 16, 3), np.float32))
        sink.n += 1  # one frame fewer in the file than was written
        monkeypatch.setattr(video.os, "statvfs", lambda path: FakeStatvfs(**disk))
        with pytest.raises(UserError, match=error):
            sink.finish(True)
        monkeypatch.undo()
        assert not any(tmp_path.iterdir())


def test_frames_that_cannot_be_written_name_the_folder_and_leave_nothing(tmp_path, monkeypatch):
    def full(path, image):
        Path(path).write_bytes(b"half")
        raise WriteError(path, errno.ENOSPC)

    sink = video._FramesSink(tmp_path / "frames")
    monkeypatch.setattr(video.images, "save_image", full)
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'frames'}: No space"):
        sink.write(np.zeros((16, 16, 3), np.float32))
    sink.finish(False)
    assert not any(tmp_path.iterdir())


def test_cli_turns_only_disk_errors_into_one_line(capsys):
    def full(argv):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", "/q/o.png")

    assert "cannot write /q/o.png: Disk quota exceeded" in one_line(capsys, full, [])

    def missing(argv):
        raise FileNotFoundError(errno.ENOENT, "No such file", "/nope")

    with pytest.raises(FileNotFoundError):
        cli.run(missing, [])


def test_a_real_full_disk_is_one_line_in_a_command_line_process(tiny_tmpfs, tmp_path):
    """adapt and images.save_image on a real 3 MiB tmpfs: the up-front check refuses adapt; with the check
    skipped, Orbax's failed write ends the process in exactly one line (no teardown tracebacks), nothing left."""
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.adapt", "--style", "embedded:wave", "--out",
                        str(tiny_tmpfs / "o"), *ADAPT], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: cannot write {tiny_tmpfs / 'o'}: it needs about 14 MiB and {tiny_tmpfs} has 3 MiB free; free "
        "some space or choose another output path"]
    skip_check = ("import sys; from metastyle_jax import commands, outputs; "
                  "outputs.check_writable = lambda outs, nbytes=0: None; commands.run('adapt')")
    r = subprocess.run([sys.executable, "-c", skip_check, "--style", "embedded:wave", "--out", str(tiny_tmpfs / "o"),
                        *ADAPT], capture_output=True, text=True)
    lines = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.strip() and "adapt wave" not in line]
    assert r.returncode == 2 and lines[-1] == (f"error: cannot write {tiny_tmpfs / 'o'}: No space left on device; "
                                               "nothing partial was kept: free some space and run again")
    assert not any("Traceback" in line or "Event loop" in line for line in lines), lines
    assert not any(tiny_tmpfs.iterdir())
    (tiny_tmpfs / "fill").write_bytes(b"\0" * (3 * 2**20 - 8192))
    with pytest.raises(WriteError, match="No space left on device"):
        images.save_image(tiny_tmpfs / "a.png", np.random.default_rng(0).random((256, 256, 3)))
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["fill"]
