import subprocess
import sys

import numpy as np
import pytest

from metastyle_jax import checks, data, images
from metastyle_jax.commands import cli
from metastyle_jax.commands import adapt as adapt_cmd
from metastyle_jax.errors import UserError


def test_embedded_photo_and_max_side():
    img = data.load_image_spec("embedded:astronaut", max_side=64)
    assert img.shape == (64, 64, 3) and img.dtype.name == "float32" and 0 <= img.min() <= img.max() <= 1


@pytest.mark.parametrize("name", ["wave", "starry_night"])
def test_embedded_painting_ships_with_the_package(name):
    """embedded:NAME reads the package's copy (no ../shared needed), at most 1024 px, and equals it."""
    path = data.painting_path(name)
    assert path.is_file() and path.parent == data.PAINTINGS_DIR
    full = data.load_image_spec(f"embedded:{name}")
    assert max(full.shape[:2]) <= 1024 and full.std() > 0.1
    np.testing.assert_array_equal(full, images.load_image(path))
    assert max(data.load_image_spec(f"embedded:{name}", max_side=80).shape[:2]) == 80


def test_every_shipped_painting_is_credited():
    credits = (data.PAINTINGS_DIR / "CREDITS.md").read_text()
    for name in data.PAINTINGS:
        assert data.painting_path(name).is_file() and f"| {name} |" in credits


def test_unknown_embedded_name():
    with pytest.raises(UserError, match="unknown embedded image"):
        data.load_image_spec("embedded:__class__")


def test_run_turns_user_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise UserError("bad thing (fix: do X)")
    with pytest.raises(SystemExit) as e:
        cli.run(main, [])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: bad thing (fix: do X)\n"


@pytest.mark.parametrize("wait", [1.0, 4.0])
def test_ctrl_c_while_compiling_exits_130_cleanly(tmp_path, wait):
    """SIGINT during adapt's first (compiling) step: exit 130 within seconds, 'interrupted' as the last line,
    no traceback, nothing written, the style image byte-identical."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    style = tmp_path / "style.jpg"
    shutil.copy(data.painting_path("wave"), style)
    before = style.read_bytes()
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"} | {"METASTYLE_COMPILE_CACHE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "metastyle_jax.adapt", "--style", str(style), "--size", "64",
                             "--style-size", "64", "--batch-size", "1", "--steps", "5", "--out", str(tmp_path / "out")],
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = ""
    while "0/5" not in err:  # the progress bar is up: the first step is being compiled
        char = proc.stderr.read(1)
        assert char, err
        err += char
    time.sleep(wait)
    proc.send_signal(signal.SIGINT)
    err += proc.stderr.read()
    assert proc.wait(timeout=30) == 130, err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.jpg"] and style.read_bytes() == before


@pytest.mark.parametrize("command,argv", [
    ("adapt", ["--style", "embedded:wave", "--size", "100000", "--out", "OUT"]),
    ("adapt", ["--style", "embedded:wave", "--style-size", "9000", "--out", "OUT"]),
    ("gatys", ["--content", "embedded:astronaut", "--style", "embedded:wave", "--size", "100000", "--out", "OUT.png"]),
    ("stylize", ["--model", "theta", "--content", "embedded:astronaut", "--size", "100000", "--out", "OUT.png"]),
    ("train", ["--config", "tiny", "--set", "data.content_size=100000", "--workdir", "OUT"]),
    ("export", ["--model", "theta", "--format", "stablehlo", "--size", "64", "100000", "--out", "OUT"]),
])
def test_a_size_over_the_bound_is_one_line(command, argv, tmp_path, capsys):
    import importlib

    main = importlib.import_module(f"metastyle_jax.commands.{command}").main
    with pytest.raises(SystemExit) as e:
        cli.run(main, [a.replace("OUT", str(tmp_path / "out")) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "8192 px" in err, err
    assert list(tmp_path.iterdir()) == []


def test_memory_is_checked_before_a_step_runs(tmp_path, capsys, monkeypatch):
    """With less memory free than one adaptation step needs: one line naming both, nothing written."""

    monkeypatch.setattr(checks, "free_memory", lambda: 2**20)
    with pytest.raises(SystemExit) as e:
        cli.run(adapt_cmd.main, ["--style", "embedded:wave", "--size", "32", "--style-size", "32", "--batch-size", "1",
                             "--steps", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert e.value.code == 2 and len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    assert "needs about" in err and "MiB and 1 MiB is free" in err and "smaller --size or --batch-size" in err
    assert list(tmp_path.iterdir()) == []


def test_metastyle_command_runs_each_command_as_its_module_does(tmp_path):
    """`metastyle COMMAND` (the package's console script, `python -m metastyle_jax COMMAND`): usage without a
    command, one line for an unknown one, and the command's own flags and one-line errors otherwise."""
    run = lambda *args: subprocess.run([sys.executable, "-m", "metastyle_jax", *args], capture_output=True, text=True)
    none, helped, unknown = run(), run("--help"), run("paint")
    assert none.returncode == 2 and "usage: metastyle COMMAND" in none.stderr
    assert helped.returncode == 0 and all(f"  {c}" in helped.stdout for c in ("train", "adapt", "stylize", "serve"))
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines() == [
        "metastyle: unknown command 'paint': one of train, adapt, stylize, gatys, interpolate, export, convert, "
        "serve (see --help)"]
    bad = run("stylize", "--model", "nope", "--content", "embedded:chelsea", "--out", str(tmp_path / "o.png"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: model checkpoint not found: nope (shipped models: composition_vii, starry_night, the_scream, theta, "
        "udnie, wave)"]
    assert "--content" in run("stylize", "--help").stdout
