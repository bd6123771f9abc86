import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from metastyle_jax import checkpoints, data, images, stylize, transformer
from metastyle_jax.errors import UserError
from metastyle_jax.commands import stylize as stylize_cmd


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
    out = stylize.stylize(theta, pics, batch_size=2, phases=1)
    assert [o.shape for o in out] == [p.shape for p in pics]
    np.testing.assert_allclose(out[1], np.asarray(transformer.apply(theta, pics[1][None]))[0], atol=1e-5)
    averaged = transformer.apply(theta, pics[1][None], phases=transformer.DEFAULT_PHASES["nearest"])
    np.testing.assert_allclose(stylize.stylize(theta, pics[1:2])[0], np.asarray(averaged)[0], atol=1e-5)  # default


def test_statistics_from_a_downscaled_copy(theta):
    """stats_side: a larger picture's instance norms take the statistics of its copy downscaled to that side, in
    the batches of equal shapes; a picture no larger keeps its own."""
    from metastyle_jax import tiling
    pics = [np.random.default_rng(i).random((48, 64, 3)).astype(np.float32) for i in range(3)]
    out = stylize.stylize(theta, pics, batch_size=2, stats_side=32, phases=1)
    for p, o in zip(pics, out):
        stats = tiling.shared_stats(theta, p, 32)
        np.testing.assert_allclose(o, np.asarray(transformer.apply(theta, p[None], stats=stats))[0], atol=1e-5)
        assert np.abs(o - np.asarray(transformer.apply(theta, p[None]))[0]).max() > 1e-3
    np.testing.assert_array_equal(stylize.stylize(theta, pics[:1], stats_side=64)[0], stylize.stylize(theta, pics[:1])[0])


def test_cli_stats_side_reaches_whole_images_only_when_given(tmp_path, model, theta):
    from metastyle_jax import tiling
    src = _write(tmp_path / "in.png", (64, 48))
    photo = images.load_image(src)
    for flags, stats in (([], None), (["--stats-side", "32"], tiling.shared_stats(theta, photo, 32))):
        out = tmp_path / f"o{len(flags)}.png"
        stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(out), "--dtype", "float32",
                          *flags])
        expected = np.asarray(transformer.apply(theta, photo[None], stats=stats,
                                                phases=transformer.DEFAULT_PHASES["nearest"]))[0]
        assert np.abs(images.load_image(out) - expected).max() <= 0.5 / 255 + 1e-5


def test_cli_phases_average_the_network_over_grid_shifts(tmp_path, model, theta):
    src = _write(tmp_path / "in.png", (44, 36))
    photo = images.load_image(src)
    for phases in (1, 16):
        out = tmp_path / f"p{phases}.png"
        stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(out), "--dtype", "float32",
                          "--phases", str(phases)])
        expected = np.asarray(transformer.apply(theta, photo[None], phases=phases))[0]
        assert np.abs(images.load_image(out) - expected).max() <= 0.5 / 255 + 1e-5


def test_cli_phases_other_than_1_2_4_16_is_one_line(tmp_path, model, capsys):
    src = _write(tmp_path / "in.png")
    with pytest.raises(SystemExit) as e:
        stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "o.png"),
                          "--phases", "3"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "--phases" in err and "\n" not in err and not (tmp_path / "o.png").exists()


def test_cli_file_any_mode_and_size(tmp_path, model, capsys):
    src = _write(tmp_path / "in.png", (45, 27), mode="LA")  # grayscale+alpha, odd size
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "o.png")])
    out = images.load_image(tmp_path / "o.png")
    assert out.shape == (27, 45, 3)
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "s.jpg"), "--size", "20"])
    assert max(images.load_image(tmp_path / "s.jpg", min_side=1).shape[:2]) == 20
    assert "the adapted network" in capsys.readouterr().out


def test_cli_folder_recursive_skips_corrupt(tmp_path, model, capsys):
    _write(tmp_path / "in" / "a.png")
    _write(tmp_path / "in" / "sub" / "b.jpg", (32, 32))
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not an image")
    stylize_cmd.main(["--model", str(model), "--content", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "sub" / "b.png").exists()
    captured = capsys.readouterr()
    assert "skipped 1" in captured.out and "bad.jpg" in captured.err


def test_style_name_uses_the_shipped_adapted_model(tmp_path, model, monkeypatch, capsys):
    shipped = tmp_path / "models"
    shutil.copytree(model, shipped / "wave")
    monkeypatch.setattr(checkpoints, "MODELS_DIR", shipped)
    src = _write(tmp_path / "in.png")
    stylize_cmd.main(["--style", "wave", "--content", str(src), "--out", str(tmp_path / "by_name.png")])
    stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "by_path.png")])
    assert (Image.open(tmp_path / "by_name.png").tobytes() == Image.open(tmp_path / "by_path.png").tobytes())
    with pytest.raises(UserError, match="the shipped styles are wave; adapt one"):
        stylize_cmd.main(["--style", "udnie", "--content", str(src), "--out", str(tmp_path / "u.png")])
    capsys.readouterr()
    for bad, match in ((["--style", "mona_lisa"], "invalid choice"), (["--style", "wave", "--model", str(model)],
                                                                      "not allowed with")):
        with pytest.raises(SystemExit) as e:
            stylize_cmd.main(bad + ["--content", str(src), "--out", str(tmp_path / "x.png")])
        err = capsys.readouterr().err
        assert e.value.code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_embedded_content(tmp_path, model):
    stylize_cmd.main(["--model", str(model), "--content", "embedded", "--out", str(tmp_path / "all"), "--size", "24"])
    assert sorted(p.stem for p in (tmp_path / "all").iterdir()) == sorted(data.EMBEDDED_PHOTOS)
    stylize_cmd.main(["--model", str(model), "--content", "embedded:coffee", "--out", str(tmp_path / "c.png"),
                  "--size", "24"])
    assert images.load_image(tmp_path / "c.png", min_side=1).shape == (16, 24, 3)  # coffee is 400 x 600
    with pytest.raises(UserError, match="unknown embedded image"):
        stylize_cmd.main(["--model", str(model), "--content", "embedded:nothing", "--out", str(tmp_path / "n.png")])


def test_untrained_network_warns(tmp_path, capsys):
    src = _write(tmp_path / "in.png")
    stylize_cmd.main(["--content", str(src), "--out", str(tmp_path / "o.png")])
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
        stylize_cmd.main(argv)


def test_cli_refuses_to_overwrite(tmp_path, model):
    src = _write(tmp_path / "in.png")
    (tmp_path / "o.png").write_bytes(b"keep me")
    with pytest.raises(UserError, match="exists"):
        stylize_cmd.main(["--model", str(model), "--content", str(src), "--out", str(tmp_path / "o.png")])
    assert (tmp_path / "o.png").read_bytes() == b"keep me"


def test_module_entry_point_prints_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.stylize", "--content", str(tmp_path / "x.png"),
                        "--out", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: content not found: {tmp_path / 'x.png'}"]
