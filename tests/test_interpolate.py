import jax
import numpy as np
import pytest

from metastyle_jax import checkpoints, images, interpolate, stylize, transformer
from metastyle_jax.errors import UserError
from metastyle_jax.commands import interpolate as interpolate_cmd


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.fixture(scope="module")
def pair(theta):
    """Two 'adapted' networks: theta and theta with every leaf perturbed."""
    key = jax.random.key(7)
    leaves, tree = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(key, len(leaves))
    noise = [np.asarray(jax.random.normal(k, x.shape)) * 0.05 for k, x in zip(keys, leaves)]
    other = jax.tree_util.tree_unflatten(tree, [x + n for x, n in zip(leaves, noise)])
    return jax.tree_util.tree_map(np.asarray, theta), other


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, pair):
    root = tmp_path_factory.mktemp("interp")
    for name, params in zip("ab", pair):
        checkpoints.save_model(root / name, params, checkpoints.model_meta("adapted", style=f"{name}.jpg",
                                                                           from_theta="theta"))
    checkpoints.save_model(root / "theta", pair[0], checkpoints.model_meta("theta"))
    return root


def test_weight_one_reproduces_each_endpoint_exactly(pair):
    a, b = pair
    assert _equal(interpolate.combine([a, b], (1.0, 0.0)), a)
    assert _equal(interpolate.combine([a, b], (0.0, 1.0)), b)
    assert _equal(interpolate.combine([b, a, b], (0.0, 1.0, 0.0)), a)


def test_combination_is_convex_and_linear(pair):
    a, b = pair
    mid = interpolate.combine([a, b], (0.25, 0.75))
    for m, x, y in zip(*(jax.tree_util.tree_leaves(t) for t in (mid, a, b))):
        np.testing.assert_allclose(m, 0.25 * x + 0.75 * y, rtol=1e-6, atol=1e-7)
    assert transformer.count_params(mid) == 1_679_235


def test_weights_parsing_and_default_sweep():
    assert interpolate.parse_weights(["1,0", "0.5,0.5", "0,1"], 2) == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    assert interpolate.parse_weights(["0.3", "0.7"], 2) == [(0.3, 0.7)]  # plain numbers: one vector
    assert interpolate.parse_weights(None, 2) == [(1.0, 0.0), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.0, 1.0)]
    sweep3 = interpolate.parse_weights(None, 3)
    assert sweep3[0] == (1.0, 0.0, 0.0) and sweep3[4] == (0.0, 1.0, 0.0) and sweep3[-1] == (0.0, 0.0, 1.0)
    assert len(sweep3) == 9 and all(abs(sum(w) - 1) < 1e-12 for w in sweep3)


@pytest.mark.parametrize("texts,match", [
    (["0.5,0.6"], "not a convex combination"),
    (["1.5,-0.5"], "not a convex combination"),
    (["1,0,0"], "3 weights for 2 models"),
    (["a,b"], "comma-separated numbers"),
    (["nan,1"], "not a convex combination"),
])
def test_bad_weights(texts, match):
    with pytest.raises(UserError, match=match):
        interpolate.parse_weights(texts, 2)


def test_cli_strip_endpoints_match_the_models(tmp_path, ckpts, pair, capsys):
    content = np.random.default_rng(0).random((24, 40, 3)).astype(np.float32)
    images.save_image(tmp_path / "c.png", content)
    content = images.load_image(tmp_path / "c.png")
    out = tmp_path / "strip.png"
    interpolate_cmd.main(["--models", str(ckpts / "a"), str(ckpts / "b"), "--content", str(tmp_path / "c.png"),
                      "--weights", "1,0", "0.5,0.5", "0,1", "--out", str(out)])
    strip = images.load_image(out)
    assert strip.shape == (24, 4 * 40 + 3 * 2, 3)
    got_a = strip[:, 42:82]
    np.testing.assert_allclose(got_a, stylize.stylize(pair[0], [content])[0], atol=0.6 / 255)
    np.testing.assert_allclose(strip[:, -40:], stylize.stylize(pair[1], [content])[0], atol=0.6 / 255)
    assert "a.jpg / b.jpg at weights 1,0 0.5,0.5 0,1" in capsys.readouterr().out


def test_cli_saves_the_interpolated_model(tmp_path, ckpts, pair):
    interpolate_cmd.main(["--models", str(ckpts / "a"), str(ckpts / "b"), "--content", "embedded:coffee", "--size", "32",
                      "--weights", "0.25", "0.75", "--out", str(tmp_path / "s.png"), "--save-model",
                      str(tmp_path / "mix")])
    params, meta = checkpoints.load_model(tmp_path / "mix", kinds=("adapted",))
    assert meta["settings"]["weights"] == [0.25, 0.75] and meta["settings"]["styles"] == ["a.jpg", "b.jpg"]
    assert _equal(params, interpolate.combine(list(pair), (0.25, 0.75)))


@pytest.mark.parametrize("make,match", [
    (lambda r, t: ["--models", str(r / "a"), str(r / "theta")], "'theta' model; this command needs adapted"),
    (lambda r, t: ["--models", str(r / "a")], "at least two"),
    (lambda r, t: ["--models", str(r / "a"), str(t / "vgg16.pth")], "PyTorch"),
    (lambda r, t: ["--models", str(r / "a"), str(r / "b"), "--weights", "1,1"], "convex"),
    (lambda r, t: ["--models", str(r / "a"), str(r / "b"), "--save-model", str(t / "m")], "exactly one weight"),
    (lambda r, t: ["--models", str(r / "a"), str(r / "b"), "--out", str(t / "s.gif")], "must end in"),
])
def test_cli_bad_input(tmp_path, ckpts, make, match):
    (tmp_path / "vgg16.pth").write_bytes(b"\0" * 8)
    argv = ["--content", "embedded:coffee", "--size", "32", "--out", str(tmp_path / "s.png")] + make(ckpts, tmp_path)
    with pytest.raises(UserError, match=match):
        interpolate_cmd.main(argv)


def test_cli_refuses_to_overwrite(tmp_path, ckpts):
    (tmp_path / "s.png").write_bytes(b"keep")
    with pytest.raises(UserError, match="exists; pass --force"):
        interpolate_cmd.main(["--models", str(ckpts / "a"), str(ckpts / "b"), "--content", "embedded:coffee",
                          "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").read_bytes() == b"keep"
