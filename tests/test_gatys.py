import jax
import numpy as np
import pytest

from metastyle_jax import gatys, losses
from metastyle_jax.errors import UserError
from metastyle_jax.commands import gatys as gatys_cmd
from conftest import painting


def _pair():
    content = np.asarray(jax.random.uniform(jax.random.key(0), (24, 32, 3)))
    style = np.asarray(jax.random.uniform(jax.random.key(1), (32, 32, 3))) ** 3
    return content, style


def test_optimization_lowers_the_perceptual_loss(random_vgg):
    content, style = _pair()
    w = losses.LossWeights(alpha=1.0, beta=1e6)
    out, hist = gatys.optimize(random_vgg, content, style, content, steps=30, lr=0.05, weights=w, chunk=10)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    assert hist["total"].shape == (30,)
    assert hist["content"][0] < 1e-8  # starts at the content image
    assert hist["total"][-1] < 0.5 * hist["total"][0]
    # the history is the loss of eq. 4 evaluated independently
    np.testing.assert_allclose(hist["total"], w.alpha * hist["content"] + w.beta * hist["style"], rtol=1e-4)


def test_chunks_end_at_the_stops_and_the_hook_sees_each_image(random_vgg):
    """fig7 keeps snapshots through `stops` and `hook`: the chunks end there, and the hook's image at each is
    the one the same steps reach without stops (the loss history is the same too)."""
    content, style = _pair()
    w = losses.LossWeights(alpha=1.0, beta=1e6)
    seen = {}
    out, hist = gatys.optimize(random_vgg, content, style, content, steps=7, lr=0.05, weights=w, chunk=4,
                               stops=(3,), hook=lambda done, x: seen.setdefault(done, x))
    assert sorted(seen) == [0, 3, 7]  # chunks of 3 (to the stop), then 4
    np.testing.assert_array_equal(seen[0], content.astype(np.float32))
    np.testing.assert_array_equal(seen[7], out)
    at3, hist3 = gatys.optimize(random_vgg, content, style, content, steps=3, lr=0.05, weights=w, chunk=4)
    np.testing.assert_allclose(seen[3], at3, atol=1e-6)
    np.testing.assert_allclose(hist["total"][:3], hist3["total"], rtol=1e-5)


def test_initializations(tmp_path):
    content, _ = _pair()
    assert np.array_equal(gatys.initial_image("content", content), content)
    noise = gatys.initial_image("noise", content, seed=3)
    assert noise.shape == content.shape and not np.allclose(noise, content)
    assert np.array_equal(noise, gatys.initial_image("noise", content, seed=3))
    from metastyle_jax import images
    images.save_image(tmp_path / "init.png", np.full((50, 40, 3), 0.25, np.float32))
    init = gatys.initial_image(str(tmp_path / "init.png"), content)
    assert init.shape == content.shape
    np.testing.assert_allclose(init, 0.25, atol=0.01)
    with pytest.raises(UserError):
        gatys.initial_image(str(tmp_path / "missing.png"), content)


def test_cli_end_to_end_with_default_weights(tmp_path, real_vgg, capsys):
    out = tmp_path / "g.png"
    style = painting() or "embedded:coffee"
    gatys_cmd.main(["--content", "embedded:astronaut", "--style", str(style), "--size", "32", "--style-size", "32",
                "--steps", "4", "--out", str(out), "--compare", str(tmp_path / "c.png")])
    assert out.exists() and (tmp_path / "g_loss.png").exists() and (tmp_path / "c.png").exists()
    assert "4 steps" in capsys.readouterr().out
    with pytest.raises(UserError, match="exists"):
        gatys_cmd.main(["--size", "32", "--steps", "1", "--out", str(out), "--style", "embedded:coffee"])


@pytest.mark.parametrize("argv,match", [
    (["--content", "nope.jpg"], "nope.jpg"),
    (["--steps", "0"], "--steps"),
    (["--init", "missing.png"], "missing.png"),
    (["--out", "x.gif"], "must end in"),
    (["--content", "embedded:no_such_photo"], "unknown embedded image"),
    (["--set", "steps=abc"], "bad value"),
])
def test_cli_bad_input_is_one_clear_error(tmp_path, argv, match):
    base = ["--style", "embedded:coffee", "--size", "32", "--out", str(tmp_path / "o.png")]
    with pytest.raises(UserError, match=match):
        gatys_cmd.main(base + argv)


def test_cli_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        gatys_cmd.main(["--no-such-flag"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
