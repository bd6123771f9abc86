"""Nothing of the user's is lost: an output never replaces an input (with or without --force), two outputs
never share a path, --force replaces only what this program wrote, special files are skipped, not read."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from metastyle_jax import checkpoints, outputs
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError
from metastyle_jax.commands import (
    adapt as adapt_cmd, convert as convert_cmd, export as export_cmd, gatys as gatys_cmd,
    interpolate as interpolate_cmd, stylize as stylize_cmd, train as train_cmd)


def _png(path, size=(40, 30), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


def _snapshot(root):
    """{relative path: bytes} of every file under `root`."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line_error(main, argv, capsys, after_progress=False):
    """The one-line error of a refused command (with `after_progress`, the line after its progress output)."""
    with pytest.raises(SystemExit) as e:
        cli.run(main, argv)
    err = capsys.readouterr().err.strip()
    if after_progress:
        err = err.replace("\r", "\n").splitlines()[-1]
        err = err[err.index("error: "):]
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_check_rules(tmp_path, model):
    photo = _png(tmp_path / "in" / "a.png")
    with pytest.raises(UserError, match="is an input of this command"):
        outputs.check([photo], [photo], force=True)
    with pytest.raises(UserError, match="is an input of this command"):
        outputs.check([tmp_path / "in"], [photo], force=True)  # a folder holding an input
    with pytest.raises(UserError, match="the same file"):
        outputs.check([tmp_path / "o.png", tmp_path / "." / "o.png"])
    with pytest.raises(UserError, match="exists; pass --force"):
        outputs.check([photo])
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "notes" / "todo.txt").write_text("keep")
    with pytest.raises(UserError, match="folder of other files"):
        outputs.check([mine], force=True)
    frames = tmp_path / "frames"
    _png(frames / "frame_000001.png")
    outputs.check([model, frames, photo], force=True)  # a model, stylized frames and an image file: replaceable
    outputs.check([tmp_path / "new.png"], ["embedded:astronaut"])


def test_force_never_replaces_an_input(tmp_path, model, theta, capsys):
    """Each entry point, given an output that is one of its inputs and --force: exit 2, one line, and every
    file in the folder byte-identical afterwards."""
    photo = _png(tmp_path / "w.png")
    style = _png(tmp_path / "style.png", (70, 70), seed=1)
    pth = tmp_path / "official.pth"
    pth.write_bytes(b"not read: refused before")
    second = tmp_path / "second"
    shutil.copytree(model, second)
    before = _snapshot(tmp_path)
    cases = [
        (stylize_cmd.main, ["--model", str(model), "--content", str(photo), "--out", str(photo)]),
        (stylize_cmd.main, ["--model", str(model), "--content", str(tmp_path), "--out", str(tmp_path)]),
        (adapt_cmd.main, ["--style", str(style), "--out", str(style), "--steps", "1"]),
        (adapt_cmd.main, ["--style", str(style), "--out", str(tmp_path), "--content", str(tmp_path)]),
        (gatys_cmd.main, ["--content", str(photo), "--style", str(style), "--out", str(photo)]),
        (gatys_cmd.main, ["--content", str(photo), "--style", str(style), "--out", str(tmp_path / "g.png"),
                      "--compare", str(style)]),
        (interpolate_cmd.main, ["--models", str(model), str(second), "--content", str(photo), "--weights", "0.5,0.5",
                            "--out", str(tmp_path / "i.png"), "--save-model", str(second)]),
        (export_cmd.main, ["--model", str(model), "--format", "onnx", "--out", str(model)]),
        (convert_cmd.main, ["--from-pytorch", str(pth), "--out", str(pth)]),
        (train_cmd.main, ["--config", "tiny", "--workdir", str(tmp_path), "--set", f"data.content={tmp_path}"]),
    ]
    for main, argv in cases:
        err = _one_line_error(main, argv + ["--force"], capsys)
        assert "is an input of this command" in err, (argv, err)
        assert _snapshot(tmp_path) == before, argv


def test_force_replaces_only_what_this_program_wrote(tmp_path, model, capsys):
    photo = _png(tmp_path / "in.png")
    folder = tmp_path / "holiday"
    _png(folder / "beach.png")
    (folder / "notes.txt").write_text("keep")
    before = _snapshot(folder)
    err = _one_line_error(export_cmd.main, ["--model", str(model), "--format", "onnx", "--out", str(folder), "--force"],
                          capsys)
    assert "folder of other files" in err and _snapshot(folder) == before
    err = _one_line_error(stylize_cmd.main, ["--model", str(model), "--video", str(photo), "--out", str(folder),
                                         "--force"], capsys)
    assert "folder of other files" in err and _snapshot(folder) == before
    saved = checkpoints.save_model(tmp_path / "ckpt", *checkpoints.load_model(model))
    checkpoints.save_model(saved, *checkpoints.load_model(model), force=True)  # a model replaces a model


def test_colliding_names_get_their_own_outputs(tmp_path, model, capsys):
    (tmp_path / "in").mkdir()
    for i, ext in enumerate(("png", "jpg", "jpeg")):
        _png(tmp_path / "in" / f"x.{ext}", (32, 24), seed=i)
    stylize_cmd.main(["--model", str(model), "--content", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpeg.png", "x.jpg.png", "x.png.png"]
    assert "stylized 3 image(s)" in capsys.readouterr().out
    shown = {p.name: np.asarray(Image.open(p)) for p in (tmp_path / "out").iterdir()}
    assert not np.array_equal(shown["x.png.png"], shown["x.jpg.png"])  # three different results, none lost


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_in_a_folder_is_skipped_not_read(tmp_path, model):
    _png(tmp_path / "in" / "a.png")
    os.mkfifo(tmp_path / "in" / "pipe.png")
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.stylize", "--model", str(model), "--content",
                        str(tmp_path / "in"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "pipe.png: not a regular file" in r.stderr and "stylized 1 image(s)" in r.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.stylize", "--model", str(model), "--content",
                        str(tmp_path / "in" / "pipe.png"), "--out", str(tmp_path / "p.png")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "not a regular file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("lr", ["inf", "nan", "0", "-1e-3"])
def test_non_finite_or_non_positive_learning_rates_are_refused(tmp_path, lr, capsys):
    style = _png(tmp_path / "style.png", (70, 70))
    for main, argv in ((adapt_cmd.main, ["--style", str(style), "--out", str(tmp_path / "a")]),
                       (gatys_cmd.main, ["--style", str(style), "--out", str(tmp_path / "g.png")])):
        err = _one_line_error(main, argv + [f"--lr={lr}"], capsys)
        assert "--lr must be a finite number above 0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.png"]


def test_a_diverging_adaptation_writes_nothing(tmp_path, capsys):
    style = _png(tmp_path / "style.png", (70, 70))
    err = _one_line_error(adapt_cmd.main, ["--style", str(style), "--out", str(tmp_path / "a"), "--lr", "1e30",
                                       "--steps", "3", "--size", "16", "--style-size", "64", "--eval-every", "0",
                                       "--random-init"], capsys, after_progress=True)
    assert "adaptation diverged" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.png"]


def test_a_checkpoint_with_non_finite_parameters_is_refused(tmp_path, theta, capsys):
    import jax

    broken = jax.tree_util.tree_map(lambda x: np.full_like(np.asarray(x), np.nan), theta)
    checkpoints.save_model(tmp_path / "nan_model", broken, checkpoints.model_meta("adapted"))
    photo = _png(tmp_path / "in.png")
    err = _one_line_error(stylize_cmd.main, ["--model", str(tmp_path / "nan_model"), "--content", str(photo),
                                         "--out", str(tmp_path / "o.png")], capsys)
    assert "NaN or infinite parameters" in err and not (tmp_path / "o.png").exists()


def test_an_output_name_longer_than_the_file_system_allows_is_one_line(tmp_path):
    long = tmp_path / ("x" * 300)
    with pytest.raises(UserError, match="300 bytes long; this file system allows 255"):
        outputs.check([long])
    with pytest.raises(UserError, match="bytes long"):
        outputs.check([tmp_path / ("y" * 300) / "out.png"])
    outputs.check([tmp_path / ("z" * 200)])  # a long name that fits
    with pytest.raises(UserError, match="bytes long"):  # a command refuses it before any work
        adapt_cmd.main(["--style", str(_png(tmp_path / "style.png", (80, 80))), "--out", str(tmp_path / ("o" * 260))])


def test_staging_folders_are_removed_however_the_block_ends_and_on_a_hard_exit(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with outputs.staging_dir(final) as tmp:
            (tmp / "partial").write_text("x")
            raise RuntimeError("interrupted half-way")
    assert list(tmp_path.iterdir()) == []
    code = ("import sys, pathlib; from metastyle_jax import outputs; from metastyle_jax.commands import cli\n"
            f"stage = outputs.staging_dir(pathlib.Path({str(final)!r})); tmp = stage.__enter__()\n"
            "(tmp / 'partial').write_text('x'); print(tmp, flush=True); cli._interrupted()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 130 and "interrupted" in r.stderr
    assert r.stdout.strip().startswith(str(tmp_path)) and list(tmp_path.iterdir()) == []
