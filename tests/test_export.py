"""export: every format's artefact, loaded by jax / tensorflow / onnxruntime alone, matches the JAX network."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO

from metastyle_jax import checkpoints, export, transformer
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError
from metastyle_jax.commands import export as export_cmd

TOLERANCE = 1e-4
NEEDS = {"stablehlo": "jax", "savedmodel": "tensorflow", "onnx": "onnxruntime"}

# Each loader reads the artefact in directory argv[1] with one runtime only; `run(image)` -> numpy.
LOADERS = {
    "stablehlo": """
from jax import export
f = export.deserialize(bytearray(open(sys.argv[1] + "/model.stablehlo", "rb").read()))
run = lambda image: np.asarray(f.call(image))
""",
    "savedmodel": """
import tensorflow as tf
f = tf.saved_model.load(sys.argv[1] + "/saved_model").signatures["serving_default"]
run = lambda image: f(image=tf.constant(image))["stylized"].numpy()
""",
    "onnx": """
import onnxruntime as ort
s = ort.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
run = lambda image: s.run(["stylized"], {"image": image})[0]
""",
}
SCRIPT = """
import sys
import numpy as np
{loader}
np.save("out0.npy", run(np.load(sys.argv[2])))
assert not [m for m in sys.modules if m.startswith("metastyle_jax")], "the loader imported metastyle_jax"
"""


def available(fmt):
    """Skip marks for formats whose runtime or converter is not installed here."""
    mods = [NEEDS[fmt]] + (["jax2onnx", "onnx"] if fmt == "onnx" else [])
    missing = [m for m in mods if importlib.util.find_spec(m) is None]
    return pytest.param(fmt, marks=pytest.mark.skipif(bool(missing), reason=f"{missing} not installed"))


@pytest.fixture(scope="module")
def model(tmp_path_factory, theta):
    path = tmp_path_factory.mktemp("export") / "adapted"
    checkpoints.save_model(path, theta, checkpoints.model_meta("adapted", style="test"))
    return path


@pytest.fixture(scope="module")
def image():
    """A batch of 2 at 37 x 50 px: neither side a multiple of 4, unlike the export's own check image."""
    return np.random.default_rng(1).random((2, 37, 50, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def expected(theta, image):
    return np.asarray(jax.jit(transformer.apply)(theta, image))


def run_elsewhere(fmt, directory, image, tmp_path):
    """Run the artefact in a fresh interpreter that imports only numpy and the format's runtime."""
    np.save(tmp_path / "in.npy", image)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    script = SCRIPT.format(loader=LOADERS[fmt])
    proc = subprocess.run([sys.executable, "-c", script, str(directory), str(tmp_path / "in.npy")], check=False,
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(tmp_path / "out0.npy")


@pytest.mark.parametrize("fmt", [available(f) for f in export.FORMATS])
def test_dynamic_artefact_runs_without_this_package(fmt, model, image, expected, tmp_path, capsys):
    out = tmp_path / fmt
    export_cmd.main(["--model", str(model), "--format", fmt, "--out", str(out)])
    assert "max |artefact - JAX|" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["format"] == fmt and card["dynamic"] and card["input"]["shape"] == ["b", "h", "w", 3]
    assert card["input"]["layout"] == "NHWC" and card["output"]["range"] == [0.0, 1.0]
    assert card["source_meta"]["kind"] == "adapted" and card["source_meta"]["settings"] == {"style": "test"}
    assert card["check"]["max_abs_diff_vs_jax"] < TOLERANCE and card["check"]["image_shape"] == [1, 45, 61, 3]

    result = run_elsewhere(fmt, out, image, tmp_path)
    assert result.shape == image.shape
    assert np.abs(result - expected).max() < TOLERANCE


def test_forward_equals_the_network_at_sizes_not_multiple_of_4(theta, image, expected):
    # Both are compiled; XLA fuses the two programs differently, hence float32 round-off of ~1e-6.
    np.testing.assert_allclose(jax.jit(export.forward(theta))(image), expected, atol=1e-5)


def test_fixed_size_stablehlo_accepts_only_that_size(model, image, expected, tmp_path):
    from jax import export as jax_export

    out = tmp_path / "fixed"
    export_cmd.main(["--model", str(model), "--format", "stablehlo", "--out", str(out), "--size", "37", "50",
                 "--platforms", "cpu"])
    f = jax_export.deserialize(bytearray((out / "model.stablehlo").read_bytes()))
    assert tuple(str(d) for d in f.in_avals[0].shape) == ("b", "37", "50", "3") and f.platforms == ("cpu",)
    assert np.abs(np.asarray(f.call(image)) - expected).max() < TOLERANCE
    with pytest.raises(ValueError):
        f.call(np.zeros((1, 40, 50, 3), np.float32))
    assert json.loads((out / "card.json").read_text())["input"]["shape"] == ["b", 37, 50, 3]


def test_existing_out_is_kept_without_force_and_an_export_replaced_with_it(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    argv = ["--model", str(model), "--format", "stablehlo", "--out", str(out), "--no-check", "--platforms", "cpu"]
    with pytest.raises(UserError, match="--force"):
        export_cmd.main(argv)
    with pytest.raises(UserError, match="folder of other files"):  # --force replaces only an export
        export_cmd.main(argv + ["--force"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (out / "keep.txt").unlink()
    out.rmdir()
    export_cmd.main(argv)
    (out / "mark.txt").write_text("in the old export")
    with pytest.raises(UserError, match="--force"):
        export_cmd.main(argv)
    export_cmd.main(argv + ["--force"])
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.stablehlo"]  # the old export replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_mismatching_artefact_is_not_written(theta, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "run_artefact", lambda fmt, directory, images: np.zeros_like(images))
    with pytest.raises(UserError, match="differs from the JAX network"):
        export.export_model(theta, {}, "stablehlo", tmp_path / "bad", platforms=("cpu",))
    assert list(tmp_path.iterdir()) == []


def test_missing_converter_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"needs jax2onnx, onnx, onnxruntime: pip install"):
        export.check_requirements("onnx")
    with pytest.raises(UserError, match=r"--format stablehlo needs flatbuffers: pip install flatbuffers"):
        export.check_requirements("stablehlo")


@pytest.mark.parametrize("make,match", [
    (lambda t, m: ["--model", str(t / "missing"), "--format", "stablehlo"], "not found"),
    (lambda t, m: ["--model", str(m["theta"]), "--format", "stablehlo"], "'theta' model"),
    (lambda t, m: ["--model", str(m["adapted"]), "--format", "tflite"], "invalid choice"),
    (lambda t, m: ["--model", str(m["adapted"]), "--format", "stablehlo", "--size", "8", "8"], "between 16 and 8192 px"),
    (lambda t, m: ["--model", str(m["adapted"]), "--format", "onnx", "--platforms", "gpu"], "--platforms"),
    (lambda t, m: ["--model", str(m["adapted"]), "--format", "stablehlo", "--out", str(m["adapted"])], "--force"),
])
def test_bad_input_is_one_line_and_exit_2(make, match, model, theta, tmp_path, capsys):
    models = {"adapted": model, "theta": tmp_path / "theta"}
    checkpoints.save_model(models["theta"], theta, checkpoints.model_meta("theta"))
    with pytest.raises(SystemExit) as e:
        cli.run(export_cmd.main, ["--out", str(tmp_path / "out")] + make(tmp_path, models))
    captured = capsys.readouterr()
    assert e.value.code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], captured.err
    assert not (tmp_path / "out").exists()


def test_entry_point_process_reports_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "metastyle_jax.export", "--model", str(tmp_path / "none"),
                           "--format", "stablehlo", "--out", str(tmp_path / "out")], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: model checkpoint not found: {tmp_path / 'none'}"]


def test_installed_but_broken_runtime_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: object())

    def broken(name):
        raise AttributeError("module 'numpy' has no attribute 'something'\nmore")

    monkeypatch.setattr(export.importlib, "import_module", broken)
    with pytest.raises(UserError, match=r"needs tensorflow, which is installed but fails to import: module 'numpy'"):
        export.check_requirements("savedmodel")


def test_missing_jax2onnx_names_its_own_install_step(monkeypatch):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None if name == "jax2onnx" else object())
    with pytest.raises(UserError, match=r"pip install --no-deps 'jax2onnx>=0.17'"):
        export.check_requirements("onnx")
