"""The models shipped in the package: theta loads by name, float32 in memory, with its card; the five
shipped paintings were held out of its training; float16 storage moves its output by at most 1/255. Each
shipped style was adapted from the shipped theta to its painting, and `stylize --style NAME` uses it."""

import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from benchmarks import ship_theta
from metastyle_jax import checkpoints, data, images, stylize, transformer
from metastyle_jax.errors import UserError

pytestmark = pytest.mark.skipif("theta" not in checkpoints.shipped_models(), reason="no shipped theta")


@pytest.fixture(scope="module")
def shipped():
    return checkpoints.load_model("theta", kinds=("theta",))


def test_theta_loads_by_name_as_float32(shipped):
    params, meta = shipped
    assert checkpoints.resolve_model("theta") == checkpoints.MODELS_DIR / "theta"
    assert checkpoints.same_shapes(params, transformer.abstract_params())
    assert all(x.dtype == np.float32 and np.isfinite(x).all() for x in jax.tree_util.tree_leaves(params))
    assert meta["kind"] == "theta" and meta["settings"]["iterations"] > 0


def test_the_shipped_paintings_were_held_out(shipped):
    card = shipped[1]["settings"]["card"]
    trained = {Path(f).stem for f, *_ in card["training_styles"]}
    assert len(trained) >= 50 and not trained & set(data.PAINTINGS)
    config = shipped[1]["settings"]["config"]
    assert Path(config["data"]["styles"]).resolve() != data.PAINTINGS_DIR.resolve()
    assert card["float16_max_output_change"] <= 1 / 255


def test_float16_rounding_moves_the_output_by_at_most_one_level(shipped):
    """Each weight moved by half a float16 ulp of itself (the largest rounding error), random signs."""
    params = shipped[0]
    moved = ship_theta.half_ulp_moved(params, np.random.default_rng(0))
    photos = np.stack([images.resize(data.load_image_spec(f"embedded:{n}"), (128, 128))
                       for n in ("astronaut", "coffee", "chelsea")]).astype(np.float32)
    run = jax.jit(transformer.apply)
    change = float(np.abs(np.asarray(run(params, photos)) - np.asarray(run(moved, photos))).max())
    assert change <= 1 / 255


SHIPPED_STYLES = [n for n in data.PAINTINGS if n in checkpoints.shipped_models()]


@pytest.mark.parametrize("name", SHIPPED_STYLES)
def test_each_shipped_style_is_theta_adapted_to_its_painting(name):
    params, meta = checkpoints.load_model(stylize.shipped_style(name), kinds=("adapted",))
    s = meta["settings"]
    assert all(x.dtype == np.float32 and np.isfinite(x).all() for x in jax.tree_util.tree_leaves(params))
    assert s["from_theta"] == "theta" and s["style"] == f"{name}.jpg"
    assert (s["size"], s["style_size"]) == (128, 256)  # the first command's sizes (docs/training.md)
    assert meta["vgg"]["source"] == "imagenet"
    assert s["style_sha256"] == hashlib.sha256(data.painting_path(name).read_bytes()).hexdigest()
    assert s["card"]["float16_max_output_change"] <= 1 / 255
    stored = checkpoints.ocp.StandardCheckpointer().restore(stylize.shipped_style(name).resolve() / "params")
    for path, x in jax.tree_util.tree_leaves_with_path(stored):  # kernels float16, the rest float32
        assert x.dtype == (np.float16 if path[-1].key == "kernel" else np.float32), path


@pytest.mark.parametrize("name", SHIPPED_STYLES)
def test_float16_kernels_move_a_style_by_at_most_one_level(name):
    params, _ = checkpoints.load_model(stylize.shipped_style(name), kinds=("adapted",))
    moved = ship_theta.half_ulp_moved(params, np.random.default_rng(0), lambda path: path[-1].key == "kernel")
    photos = np.stack([images.resize(data.load_image_spec(f"embedded:{n}"), (128, 128))
                       for n in ("astronaut", "coffee", "chelsea")]).astype(np.float32)
    change = float(np.abs(np.asarray(transformer.stylize_batch(params, photos))
                          - np.asarray(transformer.stylize_batch(moved, photos))).max())
    assert change <= 1 / 255


def test_a_bare_unknown_name_lists_the_shipped_models():
    with pytest.raises(UserError, match="shipped models: .*theta"):
        checkpoints.load_model("no_such_model")


def test_campaign_phases_accumulate_and_the_curves_cover_them(tmp_path, monkeypatch):
    import ml_collections


    monkeypatch.setattr(ship_theta, "CAMPAIGN", tmp_path / "campaign")
    shipped = {"settings": {"card": {"iterations": 400, "run_seconds": 4000}, "config": {"outer_lr": 5e-4}}}
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 400, "eval_outer_loss": 5.3}] + [{"step": s, "outer_loss": 9.0 - s / 100} for s in (410, 420, 430)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = ml_collections.ConfigDict({"outer_lr": 2e-4, "data": {"content_size": 64}})
    phases = ship_theta.record_phase(run, cfg, 420, 600, shipped)
    assert [(p["first"], p["last"], p["seconds"], p["outer_lr"]) for p in phases] == [(0, 400, 4000, 5e-4),
                                                                                      (400, 420, 600, 2e-4)]
    assert phases[1]["content_size"] == 64
    kept = (tmp_path / "campaign" / phases[1]["metrics"]).read_text().splitlines()
    assert [json.loads(x)["step"] for x in kept] == [400, 410, 420]  # nothing after the shipped iteration
    again = ship_theta.record_phase(run, cfg, 430, 900, None)  # the same phase shipped again, later: replaced
    assert [(p["first"], p["last"]) for p in again] == [(0, 400), (400, 430)]
    ship_theta.campaign_curves(again, tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size[0] > 100
    big = tmp_path / "run128"  # a later phase at another size: its losses get curves of their own
    big.mkdir()
    (big / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "outer_loss": 20.0, "eval_outer_loss": 19.0})
                                               + "\n" for s in (440, 450)))
    cfg128 = ml_collections.ConfigDict({"outer_lr": 2e-4, "data": {"content_size": 128}})
    phases = ship_theta.record_phase(big, cfg128, 450, 100, None)
    drawn = {}
    monkeypatch.setattr(ship_theta.plotting, "loss_curves", lambda path, curves, **kw: drawn.update(curves))
    ship_theta.campaign_curves(phases, tmp_path / "curves.png")
    assert sorted(drawn) == [f"outer loss, {what}, {size} px" for what in ("fixed evaluation batch", "training batch")
                             for size in (128, 64)]
    assert drawn["outer loss, training batch, 128 px"] == ((440, 450), (20.0, 20.0))
    # a new campaign (another folder) does not inherit the shipped theta's phases
    fresh = ship_theta.record_phase(run, cfg, 420, 600, shipped, tmp_path / "theta2_campaign")
    assert [(p["first"], p["last"]) for p in fresh] == [(400, 420)]
    # a run folder kept across sessions, whose iteration 420 was shipped before: the new phase starts there
    kept_run = ship_theta.record_phase(run, cfg, 430, 300, None, tmp_path / "theta2_campaign", start=420)
    assert [(p["first"], p["last"]) for p in kept_run] == [(400, 420), (420, 430)]
    tail = (tmp_path / "theta2_campaign" / kept_run[1]["metrics"]).read_text().splitlines()
    assert [json.loads(x)["step"] for x in tail] == [430]
    # a phase on another loss network: each network's losses get curves of their own, named
    on_imagenet = ml_collections.ConfigDict({"outer_lr": 2e-4, "data": {"content_size": 128},
                                             "vgg": {"source": "imagenet"}})
    mixed = ship_theta.record_phase(big, on_imagenet, 450, 100, None, tmp_path / "mixed")
    drawn.clear()
    ship_theta.campaign_curves(phases[:-1] + mixed, tmp_path / "curves.png")
    assert "outer loss, training batch, 128 px, imagenet VGG16" in drawn
    assert "outer loss, training batch, 64 px, hed VGG16" in drawn


def test_the_styles_card_names_each_model_s_style_view():
    """Checkpoints record the style term's view (`vgg_weights.describe`); older ones had their source's view."""
    from metastyle_jax import vgg_weights
    view = vgg_weights.style_view
    assert view({"source": "imagenet", "layer_weights": [0.2] * 4}) == "the style term at full resolution"
    assert view({"source": "hed"}) == "the style term on 2 x 2 averages at a stride of 2"
    current = vgg_weights.describe(vgg_weights.VGGWeights(
        params=None, spec=vgg_weights.SOURCES["imagenet"], source="imagenet", sha256="0" * 64, path="x"))
    assert view(current) == "the style term on 4 x 4 averages at a stride of 2"


def test_a_continued_run_records_the_run_it_began_from(tmp_path):
    """--continues RUN:STEP: the phase of the run a campaign began from (`init_from`) ends at the time of its last
    metrics record at or before STEP, its checkpoint of that iteration being gone."""

    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    rows = [{"step": s, "outer_loss": 1.0, "time": 1000.0 + 10 * s} for s in (10, 20, 30)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ship_theta.metrics_time(run, 25) == 1200.0
    (run / "tb" / "events.out.tfevents.1050.vm").write_text("x")  # a launch at t=1050, still writing after 1200
    assert ship_theta.run_seconds(run, ship_theta.metrics_time(run, 25)) == 150
    with pytest.raises(UserError, match="not a meta-training run folder"):
        ship_theta.read_config(tmp_path)


def test_an_export_of_the_run_ships_in_place_of_a_checkpoint_it_no_longer_keeps(tmp_path):
    import ml_collections


    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time": 1000.0 + s}) + "\n" for s in (10, 20, 30)))
    cfg = ml_collections.ConfigDict({"outer_lr": 2e-4, "layers": (1, 2), "data": {"content_size": 64}})
    params = transformer.init_params(jax.random.key(0))
    checkpoints.save_model(tmp_path / "export", ship_theta.compact(params),
                           checkpoints.model_meta("theta", vgg={"source": "hed"}, config=cfg.to_dict(), iterations=20))
    step, got, vgg, end = ship_theta.exported(tmp_path / "export", run, cfg, 20)
    assert (step, vgg, end) == (20, {"source": "hed"}, 1020.0)  # the run's time at that iteration
    assert checkpoints.same_shapes(got, params)
    with pytest.raises(UserError, match="not iteration 30"):
        ship_theta.exported(tmp_path / "export", run, cfg, 30)
    other = ml_collections.ConfigDict({**cfg.to_dict(), "outer_lr": 1e-3})
    with pytest.raises(UserError, match="not iteration 20"):  # another run's export
        ship_theta.exported(tmp_path / "export", run, other, 20)
    with pytest.raises(UserError, match="needs --step"):
        ship_theta.exported(tmp_path / "export", run, cfg, None)
