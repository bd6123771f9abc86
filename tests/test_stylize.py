import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from metastyle_jax import images, stylize, transformer
from metastyle_jax.cli import UserError


def _write(path, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _touch(path):
    path.write_bytes(b"\0" * 8)
    return path


def test_stylize_matches_the_network_and_batches_by_shape(theta):
    pics = [np.random.default_rng(i).random((h, w, 3)).astype(np.float32)
            for i, (h, w) in enumerate([(20, 28), (32, 32), (20, 28)])]
    out = stylize.stylize(theta, pics, batch_size=2)
    assert [o.shape for o in out] == [p.shape for p in pics]
    np.testing.assert_allclose(out[1], np.asarray(transformer.apply(theta, pics[1][None]))[0], atol=1e-5)


def test_cli_file_any_mode_and_size(tmp_path, model, capsys):
    src = _write(tmp_path / "in.png", (45, 27), mode="LA")  # grayscale+alpha, odd size
    stylize.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "o.png")])
    out = images.load_image(tmp_path / "o.png")
    assert out.shape == (27, 45, 3)
    stylize.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "s.jpg"), "--size", "20"])
    assert max(images.load_image(tmp_path / "s.jpg", min_side=1).shape[:2]) == 20
    assert "the adapted network" in capsys.readouterr().out


def test_cli_folder_recursive_skips_corrupt(tmp_path, model, capsys):
    _write(tmp_path / "in" / "a.png")
    _write(tmp_path / "in" / "sub" / "b.jpg", (32, 32))
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not an image")
    stylize.main(["--model", str(model), "--content", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "sub" / "b.png").exists()
    captured = capsys.readouterr()
    assert "skipped 1" in captured.out and "bad.jpg" in captured.err


def test_untrained_network_warns(tmp_path, capsys):
    src = _write(tmp_path / "in.png")
    stylize.main(["--content", str(src), "--out", str(tmp_path / "o.png")])
    assert "UNTRAINED" in capsys.readouterr().err


@pytest.mark.parametrize("make,match", [
    (lambda t: ["--content", str(t / "missing.png")], "not found"),
    (lambda t: ["--model", str(t / "nomodel")], "not found"),
    (lambda t: ["--model", str(_touch(t / "w.h5"))], "VGG weights"),
    (lambda t: ["--out", str(t / "o.bmp")], "must end in"),
    (lambda t: ["--size", "3"], "--size"),
])
def test_cli_bad_input(tmp_path, make, match):
    src = _write(tmp_path / "in.png")
    argv = ["--content", str(src), "--out", str(tmp_path / "o.png")] + make(tmp_path)
    with pytest.raises(UserError, match=match):
        stylize.main(argv)


def test_cli_refuses_to_overwrite(tmp_path, model):
    src = _write(tmp_path / "in.png")
    (tmp_path / "o.png").write_bytes(b"keep me")
    with pytest.raises(UserError, match="exists"):
        stylize.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "o.png")])
    assert (tmp_path / "o.png").read_bytes() == b"keep me"


def test_module_entry_point_prints_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.stylize", "--content", str(tmp_path / "x.png"),
                        "--out", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: content not found: {tmp_path / 'x.png'}"]
