import hashlib
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from metastyle_jax import adapt, checkpoints, data, images, losses, stylize, transformer
from metastyle_jax.errors import UserError
from metastyle_jax.commands import adapt as adapt_cmd, stylize as stylize_cmd

SIZE = 32


def _style_file(path, size=(80, 96), mode="RGB", seed=0):
    """A colourful random image file (alpha 255 unless mode says otherwise)."""
    rgb = (np.random.default_rng(seed).random((size[1], size[0], 3)) ** 2 * 255).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(path)
    return path


def _leaves(tree):
    return jax.tree_util.tree_leaves_with_path(tree)


@pytest.fixture(scope="module")
def setup(random_vgg):
    style = np.asarray(jax.random.uniform(jax.random.key(3), (64, 64, 3))) ** 3
    content = data.ContentData("embedded", "train", SIZE, seed=0)
    held_out = data.ContentData("embedded", "val", SIZE, seed=0).batch_at(0, 4)
    return random_vgg, style, content, held_out


@pytest.fixture(scope="module")
def adapted(setup, theta):
    vgg, style, content, held_out = setup
    return adapt.adapt(theta, vgg, style, content, 10, eval_contents=held_out, eval_every=5)


def test_adapting_lowers_the_loss_on_held_out_content(adapted):
    _, hist = adapted
    assert list(hist["eval_step"]) == [0, 5, 10]
    assert hist["loss"].shape == hist["content"].shape == hist["style"].shape == hist["step_seconds"].shape == (10,)
    assert np.all(np.isfinite(hist["loss"]))
    assert hist["eval_loss"][-1] < 0.5 * hist["eval_loss"][0]
    w = losses.LossWeights()
    np.testing.assert_allclose(hist["loss"], w.alpha * hist["content"] + w.beta * hist["style"], rtol=1e-4)


def test_adapt_step_is_a_pure_function(setup, theta):
    vgg, style, content, _ = setup
    grams = adapt.style_targets(vgg, style)
    opt_state = adapt.optimizer(1e-3).init(theta)
    batch = content.batch_at(0, 4)
    kw = dict(weights=losses.LossWeights(), lr=1e-3, only_in=False)  # as adapt() calls it: no recompile
    a = adapt.adapt_step(theta, opt_state, vgg, grams, batch, **kw)
    b = adapt.adapt_step(theta, opt_state, vgg, grams, batch, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert not np.array_equal(a[0]["conv1"]["conv2d"]["kernel"], theta["conv1"]["conv2d"]["kernel"])


def test_warmup_scales_each_update_by_its_share_of_the_learning_rate(setup, theta):
    """With warmup W, Adam's first update is 1 / W of the update without (same gradient, same moments), and the
    learning rate rises linearly to lr over the first W updates, then stays."""
    vgg, style, content, _ = setup
    grams = adapt.style_targets(vgg, style)
    batch = content.batch_at(0, 4)
    kw = dict(weights=losses.LossWeights(), lr=1e-3, only_in=False)
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])  # noqa: E731
    moved = {}
    for warmup in (0, 4):
        opt_state = adapt.optimizer(1e-3, warmup=warmup).init(theta)
        new, _, _ = adapt.adapt_step(theta, opt_state, vgg, grams, batch, warmup=warmup, **kw)
        moved[warmup] = flat(new) - flat(theta)
    assert np.abs(moved[0]).max() > 1e-4
    np.testing.assert_allclose(moved[4], moved[0] / 4, rtol=1e-3, atol=1e-9)
    assert float(adapt.warmup_schedule(1e-3, 4)(1)) == pytest.approx(5e-4)
    assert float(adapt.warmup_schedule(1e-3, 4)(10)) == pytest.approx(1e-3)
    assert adapt.warmup_schedule(1e-3, 0) == 1e-3


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_a_bad_warmup_is_a_user_error(bad):
    import ml_collections
    with pytest.raises(UserError, match="warmup"):
        adapt.warmup_of(ml_collections.ConfigDict({"warmup": bad}))
    assert adapt.warmup_of(ml_collections.ConfigDict({})) == 0


def test_only_in_leaves_conv_weights_unchanged(setup, theta):
    vgg, style, content, _ = setup
    params, hist = adapt.adapt(theta, vgg, style, content, 2, only_in=True, eval_every=0)
    mask = transformer.instance_norm_mask(theta)
    changed = jax.tree_util.tree_map(lambda a, b: not np.array_equal(a, b), params, theta)
    flat = [(jax.tree_util.keystr(k), m, c) for (k, m), (_, c) in zip(_leaves(mask), _leaves(changed))]
    assert [name for name, is_in, ch in flat if not is_in and ch] == []  # every conv kernel and bias bit-identical
    assert all(ch for _, is_in, ch in flat if is_in)  # every instance-norm scale and shift moved
    assert len(hist["eval_step"]) == 0


def test_style_loading_squashes_hashes_and_refuses_bad_images(tmp_path):
    path = _style_file(tmp_path / "s.png", (120, 80))
    style, name, digest = adapt.load_style(path, 64)
    assert style.shape == (64, 64, 3) and name == "s.png"
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    opaque = _style_file(tmp_path / "opaque.png", mode="RGBA")  # RGBA without transparency is fine
    assert adapt.load_style(opaque, 64)[0].shape == (64, 64, 3)
    gray = _style_file(tmp_path / "g.png", mode="L")
    assert adapt.load_style(gray, 64, allow_gray=True)[0].shape == (64, 64, 3)


def _rgba(path):
    rgb = (np.random.default_rng(1).random((80, 80, 3)) * 255).astype(np.uint8)
    alpha = np.full((80, 80, 1), 255, np.uint8)
    alpha[:40] = 0
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(path)
    return path


def _huge(path):
    Image.new("1", (8000, 8000)).save(path)  # 64 MP, a few kB on disk
    return path


def _junk(path):
    path.write_bytes(b"\0" * 16)
    return path


def _theta_ckpt(path, theta, kind="theta", arch=None):
    checkpoints.save_model(path, theta, checkpoints.model_meta(kind))
    if arch:
        meta = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps(dict(meta, arch=arch)))
    return path


@pytest.mark.parametrize("make,match", [
    (lambda t, th: ["--style", str(_style_file(t / "tiny.png", (40, 40)))], "too small"),
    (lambda t, th: ["--style", str(_huge(t / "huge.png"))], "over the limit"),
    (lambda t, th: ["--style", str(_style_file(t / "g.jpg", mode="L"))], "grayscale"),
    (lambda t, th: ["--style", str(_rgba(t / "a.png"))], "transparent"),
    (lambda t, th: ["--style", str(t / "missing.jpg")], "no such file"),
    (lambda t, th: ["--model", str(_theta_ckpt(t / "ad", th, "adapted"))], "'adapted' model; this command needs theta"),
    (lambda t, th: ["--model", str(_theta_ckpt(t / "arch", th, arch="ResNet50"))], "ResNet50"),
    (lambda t, th: ["--model", str(_junk(t / "vgg16.npz"))], "VGG weights"),
    (lambda t, th: ["--model", str(_junk(t / "official.pth"))], "convert"),
    (lambda t, th: ["--content", str(t / "no_such_folder")], "does not exist"),
    (lambda t, th: ["--steps", "0"], "--steps"),
    (lambda t, th: ["--warmup", "-5"], "--warmup must be a whole number"),
    (lambda t, th: ["--set", "warmup=0.5"], "bad value for warmup"),
    (lambda t, th: ["--zoom", "0.5"], "zoom must be between 1 and 8"),
    (lambda t, th: ["--random-init", "--set", "resampling=bicubic"], "resampling must be one of"),
    (lambda t, th: ["--set", "lr=fast"], "bad value"),
    (lambda t, th: ["--set", "loss.layer_balance=painting"], "layer_balance must be one of"),
    (lambda t, th: ["--set", "vgg.layer_weights=(1.0, 2.0)"], "layer_weights must be 4 positive numbers"),
    (lambda t, th: ["--set", "vgg.layer_weights=(1.0, 2.0, 0.0, 1.0)"], "layer_weights must be 4 positive numbers"),
])
def test_cli_bad_input_is_one_clear_error(tmp_path, theta, make, match):
    base = ["--style", str(_style_file(tmp_path / "style.png")), "--out", str(tmp_path / "out"), "--size", "32"]
    with pytest.raises(UserError, match=match):
        adapt_cmd.main(base + make(tmp_path, theta))


def test_cli_refuses_to_overwrite_any_output(tmp_path):
    style = str(_style_file(tmp_path / "style.png"))
    for existing in ("out", "out_loss.png", "out_preview.png", "out_metrics.jsonl", "out_tb"):
        (tmp_path / existing).write_bytes(b"keep")
        with pytest.raises(UserError, match=f"{existing} exists; pass --force"):
            adapt_cmd.main(["--style", style, "--out", str(tmp_path / "out")])
        assert (tmp_path / existing).read_bytes() == b"keep"
        (tmp_path / existing).unlink()


def test_module_entry_point_prints_one_line_error(tmp_path):
    tiny = _style_file(tmp_path / "tiny.png", (30, 30))
    r = subprocess.run([sys.executable, "-m", "metastyle_jax.adapt", "--style", str(tiny), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "too small" in r.stderr


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, theta):
    """Two tiny CLI runs with the default (ImageNet) VGG: from a theta checkpoint, and from random initialization."""
    root = tmp_path_factory.mktemp("adapt")
    style = _style_file(root / "painting.png", (90, 70))
    model = _theta_ckpt(root / "theta", theta)
    common = ["--style", str(style), "--size", "32", "--style-size", "64", "--steps", "3", "--eval-every", "2"]
    adapt_cmd.main(common + ["--model", str(model), "--out", str(root / "adapted")])
    adapt_cmd.main(common + ["--random-init", "--out", str(root / "johnson"), "--seed", "1", "--zoom", "2"])
    adapt_cmd.main(common + ["--out", str(root / "default")])
    return root


def test_cli_warns_when_theta_s_style_view_differs(tmp_path, theta, real_vgg, capsys):
    """Same weights, another view of the style term (a theta meta-trained before the lattice-blind view)."""
    from metastyle_jax import vgg_weights
    record = dict(vgg_weights.describe(real_vgg), style_block=1, style_window=0)
    model = tmp_path / "theta"
    checkpoints.save_model(model, theta, checkpoints.model_meta("theta", vgg=record))
    adapt_cmd.main(["--model", str(model), "--style", str(_style_file(tmp_path / "p.png")), "--size", "32",
                    "--style-size", "32", "--steps", "1", "--eval-every", "0", "--out", str(tmp_path / "a")])
    assert ("warning: theta was trained with the style term at full resolution, this adaptation uses the style "
            "term on 4 x 4 averages at a stride of 2") in capsys.readouterr().err


def test_step0_layer_balance_gives_each_style_layer_a_quarter_at_step_0(tmp_path, theta, real_vgg):
    """loss.layer_balance=step0: the recorded factors give theta's output on the first training contents equal
    style shares against the painting; the source's factors do not."""
    from metastyle_jax import config, vgg16
    style_path = _style_file(tmp_path / "p.png")
    adapt_cmd.main(["--model", str(_theta_ckpt(tmp_path / "theta", theta)), "--style", str(style_path), "--size", "32",
                    "--style-size", "32", "--steps", "1", "--eval-every", "0", "--out", str(tmp_path / "a"),
                    "--set", "loss.layer_balance=step0"])
    meta = checkpoints.load_model(tmp_path / "a")[1]
    assert meta["settings"]["layer_balance"] == "step0"
    factors = tuple(meta["vgg"]["layer_weights"])
    assert factors != tuple(real_vgg.spec.layer_weights)
    content = adapt.content_data(config.load("adapt", ["size=32"]))
    out = transformer.stylize_batch(theta, content.batch_at(0, adapt.STEP0_IMAGES), resampling="nearest")
    grams = losses.style_grams(real_vgg, adapt.load_style(str(style_path), 32)[0][None])
    terms = losses.style_terms(losses.style_features(real_vgg, out), grams)
    weighted = np.array([f * float(terms[k]) for f, k in zip(factors, vgg16.LAYERS)])
    np.testing.assert_allclose(weighted / weighted.sum(), 0.25, rtol=1e-3)
    source = np.array([f * float(terms[k]) for f, k in zip(real_vgg.spec.layer_weights, vgg16.LAYERS)])
    np.testing.assert_allclose(weighted.sum(), source.sum(), rtol=1e-4)
    assert np.abs(source / source.sum() - 0.25).max() > 0.01
    adapt_cmd.main(["--model", str(tmp_path / "theta"), "--style", str(style_path), "--size", "32", "--style-size",
                    "32", "--steps", "1", "--eval-every", "0", "--out", str(tmp_path / "b"),
                    "--set", "vgg.layer_weights=(0.2, 0.2, 0.2, 0.2)", "--set", "loss.layer_balance=source"])
    assert checkpoints.load_model(tmp_path / "b")[1]["vgg"]["layer_weights"] == [0.2] * 4  # the factors given


def test_cli_starts_from_the_shipped_theta_by_default(cli_runs):
    assert checkpoints.load_model(cli_runs / "default")[1]["settings"]["from_theta"] == "theta"
    shipped, _ = checkpoints.load_model("theta")
    random_init = transformer.init_params(jax.random.key(1), 16)
    moved = lambda p: max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(shipped)))
    # 3 Adam steps of lr 1e-3 move a weight by about 3e-3 (at most 3 * 3.2e-3 for beta1 0.9, beta2 0.999);
    # theta and another network differ by far more
    assert moved(checkpoints.load_model(cli_runs / "default")[0]) < 1e-2 < moved(random_init)


def test_cli_writes_checkpoint_curve_and_preview(cli_runs, capsys):
    root = cli_runs
    for name in ("adapted", "johnson"):
        assert (root / f"{name}_loss.png").exists() and (root / f"{name}_preview.png").exists()
    params, meta = checkpoints.load_model(root / "adapted", kinds=("adapted",))
    s = meta["settings"]
    assert s["style"] == "painting.png"
    assert s["style_sha256"] == hashlib.sha256((root / "painting.png").read_bytes()).hexdigest()
    assert s["from_theta"] == str(root / "theta") and s["steps"] == 3 and s["lr"] == 1e-3 and s["only_in"] is False
    assert s["batch_size"] == 4 and s["size"] == 32 and s["style_size"] == 64 and np.isfinite(s["final_loss"])
    assert meta["vgg"]["source"] == "imagenet" and len(meta["vgg"]["sha256"]) == 64
    assert checkpoints.load_model(root / "johnson")[1]["settings"]["from_theta"] is None
    assert (s["zoom"], checkpoints.load_model(root / "johnson")[1]["settings"]["zoom"]) == (1.0, 2.0)
    # the network adapted from theta resamples as theta; one from random init as configs/adapt.py says
    assert checkpoints.resampling(meta) == "nearest"
    assert checkpoints.resampling(checkpoints.load_model(root / "johnson")[1]) == "antialiased"
    preview = images.load_image(root / "adapted_preview.png")
    assert preview.shape[0] == 2 * SIZE + 2  # contents over stylized
    rows = [json.loads(line) for line in (root / "adapted_metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3] and steps[-1]["loss"] == pytest.approx(s["final_loss"])
    assert [r["step"] for r in rows if "eval_loss" in r] == [0, 2, 3]
    events = list((root / "adapted_tb").iterdir())  # TensorBoard: one events file with every metric's tag
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents.")
    assert all(f"adapt/{tag}".encode() in events[0].read_bytes() for tag in ("loss", "seconds", "eval_loss"))


def test_stylize_loads_the_adapted_checkpoint(cli_runs, tmp_path, capsys):
    src = tmp_path / "c.png"
    images.save_image(src, np.random.default_rng(0).random((30, 40, 3)))
    stylize_cmd.main(["--model", str(cli_runs / "adapted"), "--content", str(src), "--out", str(tmp_path / "o.png"),
                      "--dtype", "float32"])  # the exact path on any CPU (auto is bfloat16 where there is AMX)
    assert "the adapted network" in capsys.readouterr().out
    params, _ = checkpoints.load_model(cli_runs / "adapted")
    np.testing.assert_allclose(images.load_image(tmp_path / "o.png"),
                               stylize.stylize(params, [images.load_image(src)])[0], atol=0.6 / 255)


def test_stylize_runs_an_antialiased_model_as_it_was_trained(cli_runs, tmp_path):
    """The random-init model resamples antialiased (its meta says so): `stylize` follows it, not the default."""
    src = tmp_path / "c.png"
    images.save_image(src, np.random.default_rng(1).random((36, 44, 3)))
    stylize_cmd.main(["--model", str(cli_runs / "johnson"), "--content", str(src), "--out", str(tmp_path / "o.png"),
                      "--dtype", "float32"])
    params, _ = checkpoints.load_model(cli_runs / "johnson")
    picture = images.load_image(src)
    out = images.load_image(tmp_path / "o.png")
    np.testing.assert_allclose(out, stylize.stylize(params, [picture], resampling="antialiased")[0], atol=0.6 / 255)
    assert np.abs(out - stylize.stylize(params, [picture])[0]).max() > 2 / 255
