"""Table 1 benchmark: parameter counts of every method's network, forwards at 32 px, the WCT, AdaIN and
style-swap operations against their definitions, and a smoke run of benchmarks.table1 writing its files."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import table1
from benchmarks.methods import (
    FEED_FORWARD,
    adain,
    avatar_net,
    johnson,
    meta_networks,
    style_swap,
    vgg19,
    wct,
)
from metastyle_jax.errors import UserError

SIZE = 32


def shapes_count(module, *args):
    """Parameter count of module.init(*args) without computing it (jax.eval_shape)."""
    return table1.count_params(jax.eval_shape(lambda: module.init(jax.random.key(0), *args)))


@pytest.mark.parametrize("name, expected", [
    ("johnson", 1_679_235), ("metastyle", 1_679_235), ("wct", 34_239_371), ("adain", 7_010_959),
    ("avatar_net", 3_505_728 + 3_549_827), ("style_swap", 555_340 + 555_843),
    ("meta_networks", 217_640_224 + 18_787 + 7_635_264)])
def test_parameter_counts(name, expected):
    """The Flax networks hold exactly the parameters of the official layer lists."""
    assert shapes_count(FEED_FORWARD[name], SIZE) == expected


def test_hand_formulas_match_networks():
    assert johnson.transformer_count(32) == 1_679_235
    assert vgg19.encoder_count("relu4_1", preprocess=True) == 3_505_740
    assert vgg19.decoder_count("relu4_1") == 3_505_219
    assert vgg19.full_vgg19_count() == 143_667_240          # torchvision's vgg19: 143,667,240
    assert avatar_net.paper_count() == 147_217_067          # paper: 147.22M
    assert wct.paper_count() == shapes_count(wct, SIZE)
    assert adain.paper_count() == shapes_count(adain, SIZE)
    assert style_swap.paper_count() == shapes_count(style_swap, SIZE)
    shen = jax.eval_shape(lambda: meta_networks.init(jax.random.key(0), SIZE))
    assert table1.count_params(shen["meta"]) == meta_networks.meta_count()
    assert meta_networks.paper_count() == table1.count_params(shen["meta"]) + table1.count_params(shen["fixed"])
    assert abs(meta_networks.paper_count() / 219.32e6 - 1) < 0.01
    small = jax.eval_shape(lambda: meta_networks.init(jax.random.key(0), SIZE, 8))
    assert table1.count_params(small["meta"]) == meta_networks.meta_count(8)


def test_shen_transformer_is_metastyles():
    """At base 32 Shen's transformer has MetaStyle's parameter tree (names and shapes)."""
    ours = jax.eval_shape(lambda: meta_networks.Transformer(32).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3))))
    theirs = jax.eval_shape(lambda: johnson.init(jax.random.key(0), 16))
    assert jax.tree_util.tree_map(lambda x: x.shape, ours["params"]) == \
        jax.tree_util.tree_map(lambda x: x.shape, theirs)
    assert len(meta_networks.predicted_groups()) == 14


def _images(key=0):
    k1, k2 = jax.random.split(jax.random.key(key))
    return jax.random.uniform(k1, (1, SIZE, SIZE, 3)), jax.random.uniform(k2, (1, SIZE, SIZE, 3))


@pytest.mark.parametrize("name", ["johnson", "wct", "adain", "avatar_net", "style_swap"])
def test_forward_shapes_finite(name):
    module = FEED_FORWARD[name]
    variables = module.init(jax.random.key(1), SIZE)
    out = jax.jit(module.stylize)(variables, *_images())
    assert out.shape == (1, SIZE, SIZE, 3)
    assert bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.slow
def test_meta_networks_forward_depends_on_style():
    """Shen's forward (base 8 for speed) runs and the predicted network changes with the style."""
    variables = meta_networks.init(jax.random.key(1), SIZE, 8)
    f = jax.jit(lambda v, c, s: meta_networks.stylize(v, c, s, 8))
    content, style = _images()
    out = f(variables, content, style)
    assert out.shape == (1, SIZE, SIZE, 3) and bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.max(jnp.abs(out - f(variables, content, 1.0 - style)))) > 1e-6


def test_wct_matches_definition():
    """Output features have the style's mean and covariance (and whitening is not the identity)."""
    rng = np.random.default_rng(0)
    fc = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8)) + 3.0
    fs = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) - 1.0
    out = np.asarray(jax.jit(wct.wct)(jnp.asarray(fc, jnp.float32), jnp.asarray(fs, jnp.float32)))
    np.testing.assert_allclose(out.mean(0), fs.mean(0), atol=1e-3)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(fs, rowvar=False), rtol=2e-3, atol=2e-3)
    assert np.abs(np.cov(fc, rowvar=False) - np.cov(fs, rowvar=False)).max() > 1.0


def test_adain_has_style_statistics():
    rng = np.random.default_rng(1)
    content = jnp.asarray(rng.normal(2.0, 3.0, size=(2, 8, 8, 5)), jnp.float32)
    style = jnp.asarray(rng.normal(-1.0, 0.5, size=(2, 6, 6, 5)) * np.arange(1, 6), jnp.float32)
    out = np.asarray(adain.adain(content, style, eps=0.0))
    s = np.asarray(style)
    np.testing.assert_allclose(out.mean((1, 2)), s.mean((1, 2)), atol=1e-4)
    np.testing.assert_allclose(out.std((1, 2), ddof=1), s.std((1, 2), ddof=1), rtol=1e-4)


def test_style_swap_picks_best_normalized_patch():
    """best_patches equals a brute-force argmax of <content patch, style patch> / |style patch|."""
    rng = np.random.default_rng(2)
    content = rng.normal(size=(7, 6, 4)).astype(np.float32)
    style = (rng.normal(size=(6, 5, 4)) * rng.uniform(0.1, 3.0, size=(6, 5, 1))).astype(np.float32)
    idx = np.asarray(style_swap.best_patches(jnp.asarray(content), jnp.asarray(style)))
    sp = np.stack([style[i:i + 3, j:j + 3].ravel() for i in range(4) for j in range(3)])
    raw_differs = 0
    for i in range(5):
        for j in range(4):
            p = content[i:i + 3, j:j + 3].ravel()
            assert idx[i, j] == np.argmax(sp @ p / np.linalg.norm(sp, axis=1))
            raw_differs += idx[i, j] != np.argmax(sp @ p)
    assert raw_differs > 0      # the data tells normalized from unnormalized matching apart


def test_style_swap_of_style_with_itself_is_identity():
    """Every patch of the style matches itself, so swapping the style with itself rebuilds it."""
    rng = np.random.default_rng(3)
    style = jnp.asarray(rng.normal(size=(6, 6, 4)), jnp.float32)
    np.testing.assert_allclose(np.asarray(style_swap.swap(style, style)), np.asarray(style), atol=1e-5)
    np.testing.assert_allclose(np.asarray(style_swap.swap(style, style, pad=True)), np.asarray(style), atol=1e-5)


@pytest.mark.slow
def test_table1_smoke_run_writes_json_and_markdown(tmp_path, capsys):
    argv = ["--sizes", "32", "--runs", "1", "--methods", "gatys", "johnson", "adapt", "throughput",
            "--gatys-steps", "1", "--adapt-steps", "1", "--adapt-size", "32", "--adapt-style-size", "32",
            "--out-dir", str(tmp_path)]
    table1.main(argv)
    platform = jax.devices()[0].platform
    data = json.loads((tmp_path / f"table1_{platform}.json").read_text())
    assert set(data["methods"]) == {"gatys", "johnson"}
    assert data["methods"]["johnson"]["params"] == 1_679_235
    t = data["methods"]["johnson"]["sizes"]["32"]
    assert t["median_s"] > 0 and len(t["seconds"]) == 1 and t["compile_s"] > 0
    assert "extrapolated" in data["methods"]["gatys"]["sizes"]["32"]["figure"]
    assert "extrapolated" in data["adapt"]["figure"] and data["adapt"]["median_s"] > 0
    assert data["throughput"]["32"]["images_per_s"] > 0
    assert len(data["loadavg_before"]) == 3 and len(data["loadavg_after"]) == 3
    assert data["complete"] is True and data["git_commit"]
    md = (tmp_path / f"table1_{platform}.md").read_text()
    assert "| Johnson et al. | 1.68M |" in md and "extrapolated" in md and "Incomplete" not in md
    with pytest.raises(UserError, match="--force"):
        table1.main(argv)


def test_table1_bad_flags_are_one_line_errors():
    with pytest.raises(UserError, match="multiples of 16"):
        table1.parse_args(["--sizes", "40"])
    with pytest.raises(SystemExit):
        table1.parse_args(["--methods", "nonsense"])
