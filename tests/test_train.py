"""`python -m metastyle_jax.train` end to end on the embedded data with the real (default, ImageNet) VGG16 at 32 px.

One 12-iteration run (A) carries most checks; short runs beside it check resuming and determinism. They
share one compiled step (same shapes and structural settings; learning rates are traced arguments).
"""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from metastyle_jax import checkpoints, outer, outputs, parallel, train
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError, WriteError
from metastyle_jax.commands import train as train_cmd

TINY = ["--config", "tiny", "--set", "outer_lr=1e-4", "--set", "eval_every=12", "--set", "sample_every=12",
        "--set", "plot_every=10", "--set", "checkpoint_every=4", "--set", "keep_checkpoints=20"]


def run(workdir, *extra):
    """train_cmd.main on `workdir` with the tiny settings; returns the final theta (numpy pytree)."""
    return train_cmd.main([*TINY, "--workdir", str(workdir), *extra])


def metrics(workdir):
    """The metrics.jsonl records of a run, without their wall-clock "time" (which no two runs share)."""
    records = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(r.pop("time"), float) for r in records)
    return records


def checkpoint_params(workdir, step):
    """theta of the training checkpoint at `step` in a run folder."""
    import ml_collections
    cfg = ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
    ckpt = checkpoints.TrainCheckpoints(Path(workdir) / "checkpoints")
    state, _ = ckpt.restore(parallel.host_tree(outer.init_state(cfg, 0)), step)
    ckpt.close()
    return state.params


def same(a, b):
    import jax
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def leaves(tree):
    """Every scalar of a pytree, as one flat float64 array."""
    import jax
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(tree)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    a = root / "a"
    theta_a = run(a, "--set", "num_steps=12")
    b = root / "b"
    run(b, "--set", "num_steps=2")                 # stops after iteration 2 (its checkpoint)
    theta_b = run(b, "--set", "num_steps=4", "--resume")
    k = root / "k"                                 # A as if killed during iteration 9: checkpoints 8.. lost
    shutil.copytree(a, k)
    for step_dir in (k / "checkpoints").iterdir():
        if step_dir.name.isdigit() and int(step_dir.name) >= 8:
            shutil.rmtree(step_dir)
    shutil.rmtree(k / "theta")
    theta_k = run(k, "--set", "num_steps=8", "--resume")
    return {"a": a, "b": b, "k": k, "theta_a": theta_a, "theta_b": theta_b, "theta_k": theta_k}


def test_resume_equals_uninterrupted(runs):
    a = runs["a"]
    assert same(runs["theta_b"], checkpoint_params(a, 4))
    assert same(runs["theta_k"], checkpoint_params(a, 8))
    by_step = {m["step"]: m for m in metrics(a) if "outer_loss" in m}
    for name, last in (("b", 4), ("k", 8)):
        resumed = [m for m in metrics(runs[name]) if "outer_loss" in m]
        assert [m["step"] for m in resumed] == list(range(1, last + 1))  # history cut back at the checkpoint
        assert all(m == by_step[m["step"]] for m in resumed)             # same data order, same losses


def test_same_seed_gives_the_same_run(runs):
    first_b = [m for m in metrics(runs["b"]) if "outer_loss" in m][:2]
    first_a = [m for m in metrics(runs["a"]) if "outer_loss" in m][:2]
    assert first_a == first_b


def test_short_run_lowers_the_outer_validation_loss(runs):
    evals = [m for m in metrics(runs["a"]) if "eval_outer_loss" in m]
    assert [m["step"] for m in evals] == [0, 12]
    assert evals[1]["eval_outer_loss"] < evals[0]["eval_outer_loss"]


def test_ship_theta_export_only_writes_the_checkpoint_and_nothing_else(runs, tmp_path, monkeypatch):
    """`ship_theta --export-only`: a running campaign's checkpoint as a model, with no card or campaign record."""
    import jax
    from benchmarks import ship_theta
    monkeypatch.setattr(ship_theta, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(ship_theta, "CAMPAIGN", tmp_path / "campaign" / "theta_campaign")
    ship_theta.main(["--workdir", str(runs["a"]), "--step", "12", "--out", str(tmp_path / "m"), "--export-only"])
    params, meta_json = checkpoints.load_model(tmp_path / "m", kinds=("theta",))
    assert meta_json["settings"]["iterations"] == 12 and not (tmp_path / "docs").exists() and not (tmp_path / "campaign").exists()
    want = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), checkpoint_params(runs["a"], 12))
    assert np.abs(leaves(params) - leaves(want)).max() < 1e-3 * np.abs(leaves(want)).max()


def test_run_writes_curves_samples_events_and_theta(runs):
    a = runs["a"]
    assert (a / "loss_curves.png").stat().st_size > 1000
    assert (a / "samples" / "step_0000012.png").exists()
    assert list((a / "tb").glob("events.out.tfevents.*"))
    record = metrics(a)[1]
    assert {"inner_loss", "outer_loss", "outer_content", "outer_style", "grad_norm", "inner_lr",
            "outer_lr"} <= set(record)
    params, meta_json = checkpoints.load_model(a / "theta", kinds=("theta",))
    assert same(params, runs["theta_a"])
    assert meta_json["vgg"]["source"] == "imagenet" and len(meta_json["vgg"]["sha256"]) == 64
    assert meta_json["settings"]["iterations"] == 12
    saved = json.loads((a / "config.json").read_text())
    assert saved["mode"] == "second_order" and saved["outer_lr"] == 1e-4


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--set", "outer_lr=1e30", "--set", "checkpoint_every=1", "--set", "num_steps=5")
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "non-finite" in err and "last good checkpoint is iteration" in err
    ckpt = checkpoints.TrainCheckpoints(tmp_path / "checkpoints")
    last = ckpt.latest_step()
    ckpt.close()
    assert last is not None and last < 5
    assert f"iteration {last + 1}" in err
    assert not (tmp_path / "theta").exists()


def one_line_error(argv, capsys, after_progress=False):
    """The error line of train run as a command (exit 2, no traceback): the only line printed unless
    `after_progress` (the run's notes and progress bar came first)."""
    with pytest.raises(SystemExit) as e:
        cli.run(train_cmd.main, argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "Traceback" not in err and (after_progress or len(err.splitlines()) == 1), err
    return err.splitlines()[-1]


@pytest.mark.parametrize("override,message", [("nope=1", "unknown config key"),
                                              ("mode=maml", "mode must be one of"),
                                              ("inner_steps=0", "inner_steps must be at least 1"),
                                              ("styles_in_parallel=3", "must divide"),
                                              ("inner_lr=fast", "bad value")])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, override, message):
    err = one_line_error([*TINY, "--workdir", str(tmp_path / "w"), "--set", override], capsys)
    assert message in err
    assert not (tmp_path / "w").exists()


def test_existing_run_is_never_overwritten(runs, capsys):
    err = one_line_error([*TINY, "--workdir", str(runs["b"])], capsys)
    assert "--resume" in err and "--force" in err
    err = one_line_error([*TINY, "--workdir", str(runs["b"]), "--resume", "--set", "mode=reptile"], capsys)
    assert "mode differ" in err


def test_force_never_deletes_what_no_run_wrote(runs, tmp_path, capsys):
    work = tmp_path / "w"
    shutil.copytree(runs["b"], work)
    assert not train.foreign_entries(work)  # a finished run: everything in its folders is its own
    for extra in ("checkpoints/other_tool.ckpt", "samples/my_photo.png"):
        (work / extra).parent.mkdir(exist_ok=True)
        (work / extra).write_bytes(b"keep")
    before = sorted(str(p.relative_to(work)) for p in work.rglob("*"))
    err = one_line_error([*TINY, "--workdir", str(work), "--force"], capsys)
    assert "no run wrote" in err and "nothing was deleted" in err
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == before
    assert (work / "checkpoints/other_tool.ckpt").read_bytes() == b"keep"


def test_a_workdir_in_use_by_another_run_is_refused(runs, tmp_path, capsys):
    """A run holds an OS lock on its workdir: a second run there (new, --force or --resume) is one line and
    touches nothing; once the lock is released the run is free to resume."""
    import fcntl
    work = tmp_path / "w"
    shutil.copytree(runs["b"], work)
    before = {str(p.relative_to(work)): p.stat().st_mtime_ns for p in work.rglob("*")}
    with open(work / train.LOCK, "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in (["--force"], ["--resume"]):
            err = one_line_error([*TINY, "--workdir", str(work), *extra], capsys)
            assert "another train run is using" in err
    assert {str(p.relative_to(work)): p.stat().st_mtime_ns for p in work.rglob("*")} == before
    assert train.lock_workdir(work) is not None  # released with the other holder


def test_resume_without_a_run_or_with_a_damaged_config_is_one_line(tmp_path, capsys):
    err = one_line_error([*TINY, "--workdir", str(tmp_path / "none"), "--resume"], capsys)
    assert "holds no run" in err and not (tmp_path / "none").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"mode": "second_order", ')
    err = one_line_error([*TINY, "--workdir", str(tmp_path / "bad"), "--resume"], capsys)
    assert "config.json is damaged" in err
    assert (tmp_path / "bad" / "config.json").read_text() == '{"mode": "second_order", '


def test_resume_sets_a_damaged_latest_checkpoint_aside_and_continues_from_the_one_before(runs, tmp_path, capsys):
    d = tmp_path / "d"
    shutil.copytree(runs["a"], d)
    shutil.rmtree(d / "theta")
    for f in (d / "checkpoints" / "12").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])  # a torn copy: every file cut in half
    theta = run(d, "--set", "num_steps=12", "--resume")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "checkpoint 12 cannot be read" in err and "resuming from checkpoint 8" in err
    assert (d / "damaged_checkpoints" / "12").is_dir()          # kept, not deleted
    assert same(theta, runs["theta_a"])                           # 8 -> 12 again: the same theta


def test_init_from_a_theta_continues_at_its_iteration_with_a_warmed_up_fresh_adam(runs, tmp_path):
    """init_from: theta and iteration from a model, fresh Adam; outer_warmup scales the first update by 1/W
    (Adam's first update is lr * sign(g), so its size is exactly the learning rate)."""
    theta = runs["theta_a"]
    moved = {}
    for warm in (0, 4):
        out = run(tmp_path / f"w{warm}", "--set", f"init_from={runs['a'] / 'theta'}", "--set", f"outer_warmup={warm}",
                  "--set", "num_steps=13")
        logged = metrics(tmp_path / f"w{warm}")
        assert logged[0]["step"] == 12 and max(m["step"] for m in logged) == 13
        first = next(m for m in logged if "outer_lr" in m)
        assert first["outer_lr"] == pytest.approx(1e-4 / (warm or 1), rel=1e-6)  # the lr of Adam's update 0
        step = np.abs(leaves(out) - leaves(theta))
        moved[warm] = np.median(step[step > 0])
    np.testing.assert_allclose(moved[0], 1e-4, rtol=1e-3)
    np.testing.assert_allclose(moved[4], 1e-4 / 4, rtol=1e-3)


def test_warmup_factor():
    assert [float(outer.warmup(n, 4)) for n in (0, 1, 3, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert float(outer.warmup(0, 0)) == 1.0


def test_a_full_or_read_only_disk_is_one_line_and_keeps_only_what_can_be_resumed(tmp_path, monkeypatch, capsys):
    """Refused before the run on a read-only disk; a new run whose first checkpoint cannot be written leaves
    nothing; one that fails later keeps its last checkpoint and says --resume continues from it."""
    work = tmp_path / "w"
    with monkeypatch.context() as m:
        m.setattr(outputs.os, "statvfs", lambda path: type("FS", (), {"f_bavail": 2**40, "f_frsize": 1,
                                                                       "f_flag": os.ST_RDONLY})())
        assert "read-only file system" in one_line_error([*TINY, "--workdir", str(work)], capsys)
    assert not work.exists()
    save = checkpoints.TrainCheckpoints.save

    def full_from(first):
        def save_or_refuse(self, step, *args, **kw):
            if step >= first:
                raise WriteError(f"checkpoint {step} in {self.directory}", errno.ENOSPC)
            return save(self, step, *args, **kw)
        return save_or_refuse

    monkeypatch.setattr(checkpoints.TrainCheckpoints, "save", full_from(4))
    err = one_line_error([*TINY, "--workdir", str(work), "--set", "num_steps=8"], capsys, after_progress=True)
    assert "cannot write checkpoint 4" in err and "No space left" in err and not work.exists()
    monkeypatch.setattr(checkpoints.TrainCheckpoints, "save", full_from(8))
    err = one_line_error([*TINY, "--workdir", str(work), "--set", "num_steps=8"], capsys, after_progress=True)
    assert "cannot write checkpoint 8" in err and f"checkpoint 4 in {work / 'checkpoints'} is intact: --resume" in err
    assert train.last_checkpoint(work) == 4 and (work / "config.json").exists()


def test_resume_gives_a_key_added_since_the_run_began_the_run_configs_default(tmp_path):
    """A run saved before the configs gained a top-level key resumes with that key's value in the run's own
    config file (passed as `defaults`), not in configs/metastyle.py's."""
    from metastyle_jax import config

    cfg = config.load("tiny")
    saved = cfg.to_dict()
    del saved["outer_warmup"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    defaults = config.load("tiny", ["outer_warmup=7"])
    resumed = train.resolve_config(config.load("tiny", ["outer_warmup=7"]), tmp_path, True, defaults=defaults)
    assert resumed.outer_warmup == 7
    assert train.resolve_config(config.load("tiny"), tmp_path, True).outer_warmup == 0


def test_resume_gives_a_nested_key_added_since_the_run_began_its_default(tmp_path):
    """A run saved before the configs gained loss.saturation resumes with its default (0); asking for another
    value is refused, as for any key that changes the objective."""
    from metastyle_jax import config

    saved = config.load("tiny").to_dict()
    del saved["loss"]["saturation"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert train.resolve_config(config.load("tiny"), tmp_path, True).loss.saturation == 0.0
    with pytest.raises(UserError, match="loss.saturation"):
        train.resolve_config(config.load("tiny", ["loss.saturation=1.0"]), tmp_path, True)


def test_a_run_from_before_the_resampling_key_resumes_with_nearest(tmp_path):
    """The configs now default to the antialiased network; a run saved before the key existed was the nearest
    one and resumes as such, and asking to resume it antialiased is refused."""
    from metastyle_jax import config

    saved = config.load("tiny").to_dict()
    assert saved.pop("resampling") == "antialiased"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert train.resolve_config(config.load("tiny", ["resampling=nearest"]), tmp_path, True).resampling == "nearest"
    with pytest.raises(UserError, match="resampling"):
        train.resolve_config(config.load("tiny"), tmp_path, True)


def test_init_from_a_theta_of_another_loss_network_needs_init_other_vgg(runs):
    """A theta meta-trained with other VGG weights starts a run only with config.init_other_vgg (cpu6)."""
    from metastyle_jax import config

    state = outer.init_state(config.load("tiny"), 0)
    other = {"source": "hed", "sha256": "0" * 64}
    with pytest.raises(UserError, match="init_other_vgg=True"):
        train.start_from_theta(state, runs["a"] / "theta", other, "antialiased")
    started = train.start_from_theta(state, runs["a"] / "theta", other, "antialiased", other_vgg=True)
    assert same(started.params, runs["theta_a"]) and int(started.step) == 12


def test_init_from_a_theta_of_the_other_network_is_one_line(runs, tmp_path, capsys):
    """theta of runs["a"] is antialiased (the configs' default); continuing it as the nearest network is refused."""
    assert checkpoints.resampling(checkpoints.read_meta(runs["a"] / "theta")) == "antialiased"
    err = one_line_error([*TINY, "--workdir", str(tmp_path / "w"), "--set", f"init_from={runs['a'] / 'theta'}",
                          "--set", "resampling=nearest"], capsys)
    assert "resampling=antialiased" in err
