import pytest

from metastyle_jax import cli
from conftest import painting


def test_embedded_photo_and_max_side():
    img = cli.load_image_arg("embedded:astronaut", max_side=64)
    assert img.shape == (64, 64, 3) and img.dtype.name == "float32" and 0 <= img.min() <= img.max() <= 1


@pytest.mark.skipif(painting("wave.jpg") is None, reason="../shared/styles is absent")
def test_embedded_painting_from_shared_styles():
    img = cli.load_image_arg("embedded:wave", max_side=80)
    assert max(img.shape[:2]) == 80


def test_painting_falls_back_to_a_bundled_photo_where_shared_is_absent(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "SHARED_STYLES", str(tmp_path))
    img = cli.load_image_arg("embedded:starry_night", max_side=48)
    assert max(img.shape[:2]) == 48
    assert "absent here" in capsys.readouterr().err


def test_unknown_embedded_name():
    with pytest.raises(cli.UserError, match="unknown embedded image"):
        cli.load_image_arg("embedded:__class__")


def test_run_turns_user_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise cli.UserError("bad thing (fix: do X)")
    with pytest.raises(SystemExit) as e:
        cli.run(main, [])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: bad thing (fix: do X)\n"
