"""The style-neutral image M(I_c; theta) (Fig. 1, Fig. 7): `stylize` with theta, then `gatys --init` from it."""

import numpy as np

from metastyle_jax import checkpoints, data, gatys, images, transformer
from metastyle_jax.commands import gatys as gatys_cmd, stylize as stylize_cmd


def test_theta_gives_the_style_neutral_image_and_gatys_starts_from_it(tmp_path, theta, capsys):
    checkpoints.save_model(tmp_path / "theta", theta, checkpoints.model_meta("theta"))
    images.save_image(tmp_path / "content.png", data.load_image_spec("embedded:astronaut", max_side=32))
    content = images.load_image(tmp_path / "content.png")
    neutral = tmp_path / "neutral.png"
    stylize_cmd.main(["--model", str(tmp_path / "theta"), "--content", str(tmp_path / "content.png"),
                  "--out", str(neutral), "--dtype", "float32"])  # exact on any CPU (auto: bfloat16 with AMX)
    assert "the theta network" in capsys.readouterr().out
    expected = transformer.apply(theta, content[None], phases=transformer.DEFAULT_PHASES["nearest"])  # the CLI's default
    np.testing.assert_allclose(images.load_image(neutral), np.asarray(expected)[0], atol=0.6 / 255)

    out = tmp_path / "gatys.png"
    gatys_cmd.main(["--content", str(tmp_path / "content.png"), "--style", "embedded:coffee", "--init", str(neutral),
                "--size", "32", "--style-size", "32", "--steps", "4", "--out", str(out)])
    assert out.exists() and "4 steps" in capsys.readouterr().out
    init = gatys.initial_image(str(neutral), content)
    np.testing.assert_allclose(init, images.load_image(neutral), atol=1e-6)
