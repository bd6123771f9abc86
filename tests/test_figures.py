"""The paper-figure benchmarks (fig6, fig7, quality, supplementary) at 32 px with a handful of steps."""

import importlib.util
import json

import jax
import numpy as np
import pytest
from PIL import Image

from benchmarks import fig6, fig7, figures, quality, supplementary
from metastyle_jax import adapt, checkpoints, data, transformer
from metastyle_jax.commands import cli

SIZE = ["--size", "32", "--style-size", "32"]


@pytest.fixture(scope="session")
def theta_ckpt(tmp_path_factory):
    """A 'theta' checkpoint holding transformer.init_params(key(0)): what fig6 starts Johnson et al. from
    with --seed 0, so both arms begin at the same weights."""
    path = tmp_path_factory.mktemp("theta") / "theta"
    meta = checkpoints.model_meta("theta", vgg=None, iterations=0, config={"data": {"content_size": 32}})
    checkpoints.save_model(path, transformer.init_params(jax.random.key(0)), meta)
    return str(path)


JUDGE = importlib.util.find_spec("torch") is not None  # the picture judge's EfficientNet runs in PyTorch


def _fig6(theta, out, seed, name):
    judge = ["--judge"] if seed == 1 and JUDGE else []
    return fig6.main(["--theta", theta, *SIZE, "--steps", "4", "--eval-every", "2", "--snapshots", "0,2,4",
                      "--seed", str(seed), "--out-dir", str(out), "--name", name, *judge])


@pytest.fixture(scope="session")
def fig6_runs(theta_ckpt, tmp_path_factory):
    """fig6 with Johnson et al. started at key(1) (not theta) and at key(0) (= theta): (out dir, results)."""
    out = tmp_path_factory.mktemp("fig6")
    return out, {seed: _fig6(theta_ckpt, out, seed, f"seed{seed}") for seed in (1, 0)}


def test_fig6_writes_both_curves_and_a_two_row_grid(fig6_runs, theta_ckpt):
    out, runs = fig6_runs
    saved = json.loads((out / "seed1.json").read_text())
    assert saved["final_eval_loss"] == runs[1]["final_eval_loss"]
    for key in ("device", "command", "theta", "style", "settings", "curves", "final_eval_loss",
                "final_loss_ratio_johnson_over_metastyle", "snapshot_steps"):
        assert key in saved
    assert saved["theta"]["iterations"] == 0 and saved["theta"]["content_size"] == 32
    assert saved["held_out_pool"] == list(data.EMBEDDED_VAL_PHOTOS)
    # the snapshots are the pictures stylize makes (theta's grid shifts); both arms take the config's warmup
    resampling = figures.load_theta(theta_ckpt)[1]["resampling"]
    assert saved["settings"]["snapshot_phases"] == transformer.phases_for(resampling)
    assert saved["settings"]["warmup"] == 20  # configs/adapt.py
    for arm in ("johnson", "metastyle"):
        curve = saved["curves"][arm]
        assert curve["eval_step"] == [0, 2, 4]
        assert len(curve["eval_loss"]) == 3 and len(curve["train_loss"]) == 4
        assert np.all(np.isfinite(curve["eval_loss"]))
    final = saved["final_eval_loss"]
    assert saved["final_loss_ratio_johnson_over_metastyle"] == pytest.approx(final["johnson"] / final["metastyle"])
    assert saved["curves"]["johnson"]["eval_loss"] != saved["curves"]["metastyle"]["eval_loss"]
    for png in ("seed1_loss.png", "seed1_grid.png"):
        assert Image.open(out / png).size[0] > 0
    if JUDGE:  # the judge's measures of each arm's last snapshot beside the loss
        from benchmarks import picture_quality
        assert set(saved["judge"]) == {"johnson", "metastyle"}
        assert all(set(s) == set(picture_quality.MEASURES) for s in saved["judge"].values())
        assert saved["judge"]["johnson"] != saved["judge"]["metastyle"]
    grid = np.asarray(Image.open(out / "seed1_grid.png"))
    # two rows of (title + cell title + 32 px) and a 2 px gap; four cells (photo, steps 0, 2, 4) a row
    assert grid.shape[0] == 2 * (2 * figures.TITLE_HEIGHT + 32) + 2
    assert grid.shape[1] == 4 * 32 + 3 * 2


def test_fig6_arms_are_identical_when_theta_is_the_random_init(fig6_runs):
    _, runs = fig6_runs
    johnson, meta = runs[0]["curves"]["johnson"], runs[0]["curves"]["metastyle"]
    assert johnson == meta
    assert runs[0]["final_loss_ratio_johnson_over_metastyle"] == 1.0


def test_fig6_snapshots_are_the_networks_adapt_passes_its_hook(real_vgg, theta_ckpt):
    """fig6 runs adapt.adapt (with its warmup); its snapshot at step k is M(held_out[0]) with the parameters after
    k updates, averaged over the grid shifts asked for."""
    theta, _ = figures.load_theta(theta_ckpt)
    style = np.asarray(jax.random.uniform(jax.random.key(3), (32, 32, 3))) ** 3
    content = data.ContentData("embedded", "train", 32, seed=0)
    held_out = data.ContentData("embedded", "val", 32, seed=0).batch_at(0, 4)
    ours = fig6.adapt_with_snapshots(theta, real_vgg, style, content, held_out, 4, lr=1e-3, batch_size=4,
                                     eval_every=2, snapshots=(0, 4), phases=4, warmup=3)
    final, hist = adapt.adapt(theta, real_vgg, style, content, 4, eval_contents=held_out, eval_every=2, warmup=3)
    assert ours["eval_step"] == hist["eval_step"].tolist() == [0, 2, 4]
    np.testing.assert_allclose(ours["train_loss"], hist["loss"], rtol=1e-6)
    assert sorted(ours["snapshots"]) == [0, 4]
    for step, params in ((0, theta), (4, final)):
        want = np.asarray(transformer.stylize_batch(params, held_out[:1], phases=4))[0]
        np.testing.assert_allclose(ours["snapshots"][step], want, atol=1e-5)


def test_fig7_writes_curves_snapshots_and_grid(theta_ckpt, tmp_path):
    result = fig7.main(["--theta", theta_ckpt, *SIZE, "--steps", "6", "--snapshots", "0,3,6",
                        "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / f"fig7_{figures.platform()}.json").read_text())
    assert saved["final_loss"] == result["final_loss"]
    assert saved["snapshot_steps"] == [0, 3, 6]
    # M(I_c; theta) is the picture stylize makes: averaged over the grid shifts of theta's resampling
    assert saved["settings"]["neutral_phases"] == transformer.phases_for(figures.load_theta(theta_ckpt)[1]["resampling"])
    for arm in ("content_init", "neutral_init"):
        assert all(len(saved["curves"][arm][k]) == 6 for k in ("total", "content", "style"))
        assert sorted(saved["loss_at_snapshots"][arm], key=int) == ["0", "3", "6"]
        # the loss in the optimization loop and the one scored afterwards are the same function
        for s in ("0", "3"):
            assert saved["loss_at_snapshots"][arm][s]["loss"] == pytest.approx(
                saved["curves"][arm]["total"][int(s)], rel=1e-3)
        assert saved["final_loss"][arm] == saved["loss_at_snapshots"][arm]["6"]["loss"]
        assert saved["final_loss"][arm] < saved["loss_at_snapshots"][arm]["0"]["loss"]
    assert saved["loss_at_snapshots"]["content_init"]["0"]["content"] == 0.0  # starts at the content image
    assert saved["loss_at_snapshots"]["neutral_init"]["0"]["content"] > 0.0  # starts at M(I_c; theta)
    for arm, terms in saved["start_style_terms"].items():  # each start against the five paintings; the_scream's
        assert terms["the_scream"] == pytest.approx(saved["loss_at_snapshots"][arm]["0"]["style"], rel=1e-5)
        assert terms["mean"] == pytest.approx(np.mean([terms[n] for n in data.PAINTINGS]))
    grid = np.asarray(Image.open(tmp_path / f"fig7_{figures.platform()}_grid.png"))
    h, w = saved["settings"]["content_shape"][:2]
    assert grid.shape[:2] == (2 * (2 * figures.TITLE_HEIGHT + h) + 2, 3 * w + 2 * 2)
    assert (tmp_path / f"fig7_{figures.platform()}_loss.png").stat().st_size > 0


def test_steps_to_reach():
    assert fig7.steps_to_reach([5.0, 4.0, 3.0, 2.0], 3.5) == 2
    assert fig7.steps_to_reach([5.0, 4.0], 1.0) is None


def test_quality_writes_json_and_markdown_table(theta_ckpt, tmp_path):
    result = quality.main(["--theta", theta_ckpt, *SIZE, "--steps", "2", "--gatys-steps", "3", "--held-out", "2",
                           "--styles", "the_scream,embedded:coffee", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / f"quality_{figures.platform()}.json").read_text())
    assert saved["styles"] == result["styles"]
    assert list(saved["styles"]) == ["the_scream", "coffee"]
    assert saved["held_out_pool"] == list(data.EMBEDDED_VAL_PHOTOS)
    assert saved["settings"]["warmup"] == 20  # configs/adapt.py, both arms
    for res in saved["styles"].values():
        for method in ("metastyle", "johnson", "gatys"):
            assert np.isfinite(res[method]["final"]["loss"]) and res[method]["seconds"] > 0
        # theta is the random init of --seed 0: (a) and (b) are the same run
        assert res["metastyle"]["final"] == res["johnson"]["final"]
        assert res["gatys"]["initial"]["content"] == 0.0
        assert res["gatys"]["final"]["loss"] < res["gatys"]["initial"]["loss"]
    table = (tmp_path / f"quality_{figures.platform()}.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| style | MetaStyle (theta + 2 updates)") and "Gatys et al. (3 steps" in rows[0]
    assert [r.split(" | ")[0] for r in rows[1:4]] == ["| the_scream", "| coffee", "| **mean**"]
    gatys_cell = float(rows[1].split("|")[4].strip())
    assert gatys_cell == pytest.approx(saved["styles"]["the_scream"]["gatys"]["final"]["loss"], rel=1e-3)


def test_quality_style_names():
    assert quality.style_arg("udnie") == "embedded:udnie"
    assert quality.style_arg("embedded:coffee") == "embedded:coffee"
    assert quality.style_arg("dir/style.jpg") == "dir/style.jpg"


def _one_line_error(capsys, module, argv):
    with pytest.raises(SystemExit) as e:
        cli.run(module.main, argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("module", [fig6, fig7, quality])
def test_bad_input_gives_one_line(module, theta_ckpt, tmp_path, capsys):
    out = ["--out-dir", str(tmp_path)]
    assert "--theta" in _one_line_error(capsys, module, out)
    assert "not found" in _one_line_error(capsys, module, ["--theta", str(tmp_path / "nope"), *out])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    flag = "--styles" if module is quality else "--style"
    assert "bad.jpg" in _one_line_error(capsys, module, ["--theta", theta_ckpt, flag, str(bad), *out])
    assert "--steps" in _one_line_error(capsys, module, ["--theta", theta_ckpt, "--steps", "0", *out])
    assert "invalid int" in _one_line_error(capsys, module, ["--theta", theta_ckpt, "--size", "big", *out])


@pytest.mark.parametrize("module", [fig6, fig7])
def test_bad_snapshots_and_existing_outputs(module, theta_ckpt, tmp_path, capsys):
    out = ["--theta", theta_ckpt, "--steps", "10", "--out-dir", str(tmp_path)]
    assert "--snapshots" in _one_line_error(capsys, module, [*out, "--snapshots", "0,20"])
    assert "--snapshots" in _one_line_error(capsys, module, [*out, "--snapshots", "a,b"])
    assert "--phases" in _one_line_error(capsys, module, [*out, "--phases", "0"])
    if module is fig6:
        assert "warmup" in _one_line_error(capsys, module, [*out, "--set", "warmup=-1"])
    (tmp_path / f"{module.__name__.split('.')[-1]}_{figures.platform()}.json").write_text("{}")
    assert "--force" in _one_line_error(capsys, module, out)


def test_adapted_checkpoint_is_not_a_theta(theta_ckpt, tmp_path, capsys):
    adapted = tmp_path / "adapted"
    checkpoints.save_model(adapted, transformer.init_params(jax.random.key(0)), checkpoints.model_meta("adapted"))
    assert "theta" in _one_line_error(capsys, fig6, ["--theta", str(adapted), "--out-dir", str(tmp_path)])


def test_content_without_held_out_images_gives_one_line(theta_ckpt, tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(folder / "a.png")
    err = _one_line_error(capsys, fig6, ["--theta", theta_ckpt, "--set", f"content={folder}",
                                         "--out-dir", str(tmp_path)])
    assert "val split" in err


def test_supplementary_records_the_common_yardstick(tmp_path):
    tiny = ["--set", "data.content=embedded", "--set", "data.styles=embedded", "--set", "styles_per_batch=2",
            "--set", "batch_size=1"]
    r = supplementary.main(["--variants", "reptile", "--iterations", "2", "--size", "32", "--eval-every", "1",
                            *tiny, "--out-dir", str(tmp_path)])
    run = r["runs"]["reptile"]
    assert run["eval_step"] == [0, 1, 2] and run["train_step"] == [1, 2] and run["diverged_at"] is None
    assert run["eval_own"] == []  # T=1: its own objective is the common one
    assert np.isfinite(run["eval_t1"]).all() and run["eval_t1"][1] != run["eval_t1"][0]
    assert r["settings"]["outer_lr"] == supplementary.OUTER_LR and r["settings"]["size"] == 32
    assert all((tmp_path / f"supplementary_{figures.platform()}{s}").stat().st_size > 0
               for s in (".json", "_eval.png", "_train.png"))


def test_supplementary_bad_variant_gives_one_line(tmp_path, capsys):
    assert "reptiles" in _one_line_error(capsys, supplementary, ["--variants", "reptiles", "--out-dir", str(tmp_path)])
    assert "--iterations" in _one_line_error(capsys, supplementary, ["--iterations", "0", "--out-dir", str(tmp_path)])


def test_fig6_table_compares_both_arms_at_each_step_and_shows_the_judge(tmp_path, monkeypatch):
    from benchmarks import fig6_table

    def record(meta, johnson, better=False):
        # alpha 2, beta 10: half of MetaStyle's held-out loss is content, 70% of Johnson et al.'s
        curve = lambda losses, share: {"eval_step": [0, 10, 20], "eval_loss": losses,  # noqa: E731
                                       "eval_content": [share * v / 2 for v in losses],
                                       "eval_style": [(1 - share) * v / 10 for v in losses]}
        train = lambda losses: [losses[0]] * 10 + [losses[1]] * 10  # noqa: E731
        # each arm scores 0.5 or 0.25 on every measure; `better`: MetaStyle's is the better one on each
        good = {k: 0.5 if higher else 0.25 for k, _, _, higher in fig6_table.JUDGED}
        bad = {k: 0.75 - v for k, v in good.items()}
        return {"curves": {"metastyle": {**curve(meta, 0.5), "train_loss": train(meta)},
                           "johnson": {**curve(johnson, 0.7), "train_loss": train(johnson)}},
                "settings": {"alpha": 2.0, "beta": 10.0},
                "judge": {"metastyle": good if better else {k: 0.5 for k in good},
                          "johnson": bad if better else {k: 0.25 for k in good}}}

    monkeypatch.setattr(fig6_table, "RESULTS", tmp_path)
    (tmp_path / "f6_wave.json").write_text(json.dumps(record([900.0, 300.0, 150.0], [1000.0, 600.0, 200.0])))
    (tmp_path / "f6_udnie.json").write_text(json.dumps({**record([9.0, 8.0, 7.0], [9.0, 8.0, 7.0]), "judge": None}))
    (tmp_path / "f6_the_scream.json").write_text(json.dumps(record([9.0, 8.0, 6.0], [9.0, 8.0, 8.0], better=True)))
    (tmp_path / "f6_starry_night.json").write_text(json.dumps(record([9.0, 8.0, 6.5], [9.0, 8.0, 8.0], better=True)))
    md = fig6_table.main(["f6", "--steps", "10,20"])
    row = lambda name: next(line for line in md.splitlines() if line.startswith(f"| {name} |"))  # noqa: E731
    assert "| 300 / 600 | 150 / 200 | 50.0% | 25.0% | 50.00% / 25.00% | 0.5 / 0.2 | 0.500 / 0.250 |" in row("wave")
    # the bar at the last step: 20% lower and no measure worse (edges and deep content are higher-is-better)
    assert row("wave").endswith("| missed: blob, checker, colour, texture |")
    assert row("udnie").endswith("| 0.0% | 0.0% | - | - | - | - | - | - | missed: loss 0.0%, not judged |")
    assert row("the_scream").endswith("| 25.0% | 25.00% / 50.00% | 0.2 / 0.5 | 0.500 / 0.250 | 0.500 / 0.250 "
                                      "| 0.250 / 0.500 | 0.250 / 0.500 | met |")
    assert row("starry_night").endswith("| missed: loss 18.8% |")
    assert (tmp_path / "f6.md").read_text() == md
    # the training batches: the mean of the 20 updates up to each step (here 10 and 20: 900 x 10, then 300 x 10)
    assert "| wave | 900 / 1000 | 600 / 800 | 10.0% | 25.0% |" in md.splitlines()
    # the held-out loss at the last step by term: 150 = 75 + 75 against 200 = 140 + 60
    assert "| wave | 75 / 140 | 46.4% | 75 / 60 | -25.0% |" in md.splitlines()
    with pytest.raises(ValueError, match="step 15 was not evaluated"):
        fig6_table.loss_at(record([1.0] * 3, [1.0] * 3), "metastyle", 15)


def test_fig7_table_reads_each_painting_s_record(tmp_path, monkeypatch):
    from benchmarks import fig7_table

    def record(photo, neutral, reach, terms=True):
        at = {arm: {str(s): {"loss": v} for s, v in zip((0, 5), losses)}
              for arm, losses in (("content_init", photo), ("neutral_init", neutral))}
        return {"snapshot_steps": [0, 5], "loss_at_snapshots": at,
                "content_init_steps_to_reach_neutral_init_at": {"0": 0, "5": reach},
                "start_style_terms": {"content_init": {"wave": 0.02}, "neutral_init": {"wave": 0.01}} if terms else None}

    monkeypatch.setattr(fig7_table, "RESULTS", tmp_path)
    (tmp_path / "f7_wave.json").write_text(json.dumps(record((10.0, 2.0), (8.0, 3.0), 4)))
    (tmp_path / "f7_udnie.json").write_text(json.dumps(record((10.0, 2.0), (8.0, 1.0), None, terms=False)))
    lines = fig7_table.main(["f7"]).splitlines()
    assert "| wave | 0.0200 / 0.0100 | 10.0 / 8.0 | 2.0 / 3.0 | 4 |" in lines
    assert "| udnie | - | 10.0 / 8.0 | 2.0 / 1.0 | never |" in lines
