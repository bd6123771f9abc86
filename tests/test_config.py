import pytest

from metastyle_jax import config, meta
from metastyle_jax.errors import UserError


def test_gatys_config_has_the_papers_values():
    cfg = config.load("gatys")
    assert (cfg.num_steps, cfg.loss.alpha, cfg.loss.beta) == (800, 1.0, 1e5)


def test_overrides_are_typed():
    cfg = config.load("gatys", ["steps=10", "beta=1e4", "vgg.source=keras", "init=noise"])
    assert cfg.num_steps == 10 and isinstance(cfg.num_steps, int)
    assert cfg.loss.beta == 1e4 and cfg.vgg.source == "keras" and cfg.init == "noise"
    assert config.load("gatys", ["lr=1"]).lr == 1.0


@pytest.mark.parametrize("item,match", [("nope=1", "unknown config key"), ("vgg.x=1", "unknown"),
                                        ("steps=ten", "bad value"), ("steps=1.5", "bad value"),
                                        ("steps", "expected key=value"),
                                        ("steps=1e400", "expected a finite number"),
                                        ("lr=nan", "expected a number"), ("lr=-inf", "expected a number"),
                                        ("steps.x=1", "unknown config key 'steps.x'"),
                                        ("steps=[1,", "expected an integer")])
def test_bad_overrides_are_one_line_errors(item, match):
    with pytest.raises(UserError, match=match):
        config.load("gatys", [item])


def test_unknown_config_lists_the_known_ones():
    with pytest.raises(UserError, match="gatys"):
        config.load("no_such_config")


def test_get_config_must_return_a_configdict(tmp_path):
    path = tmp_path / "odd.py"
    path.write_text("def get_config():\n    return {'steps': 1}\n")
    with pytest.raises(UserError, match="returned a dict, not an ml_collections.ConfigDict"):
        config.load(str(path))


def test_variants_come_from_get_config_arg():
    paper, tiny, cpu = (config.load(n) for n in ("metastyle", "metastyle:tiny", "metastyle:cpu"))
    assert (paper.data.content_size, tiny.data.content_size, cpu.data.content_size) == (256, 32, 128)
    assert (tiny.num_steps, cpu.styles_per_batch, cpu.batch_size) == (20, 4, 2)
    assert config.load("tiny").to_dict() == tiny.to_dict()                  # the file aliases
    assert config.load("theta_cpu").to_dict() == cpu.to_dict()
    cpu2 = config.load("metastyle:cpu2")
    assert {k: v for k, v in cpu2.to_dict().items() if k not in ("outer_lr", "dtype")} == \
        {k: v for k, v in cpu.to_dict().items() if k not in ("outer_lr", "dtype")}
    assert (cpu2.outer_lr, cpu2.dtype, cpu.dtype) == (5e-4, "bfloat16", "auto")
    cpu3 = config.load("metastyle:cpu3")  # its objective is the VGG source's
    assert {k: v for k, v in cpu3.to_dict().items() if k != "dtype"} == \
        {k: v for k, v in cpu2.to_dict().items() if k != "dtype"} and cpu3.dtype == "float32"
    assert paper.loss.tv == 2.0 and paper.vgg.source == "imagenet"  # the deviations of issue 22 (docs/deviations.md)
    assert (cpu.vgg.source, cpu.loss.tv) == ("hed", 10.0)  # the HED campaigns keep their loss network and TV
    cpu4 = config.load("metastyle:cpu4")
    assert {k: v for k, v in cpu4.to_dict().items() if k not in ("vgg", "loss")} == \
        {k: v for k, v in cpu3.to_dict().items() if k not in ("vgg", "loss")}
    assert (cpu4.vgg.source, cpu4.loss.tv) == ("imagenet", 2.0)
    cpu5 = config.load("metastyle:cpu5")  # cpu4 continued from theta6, zoomed content, bfloat16 where there is AMX
    changed = ("init_from", "outer_warmup", "data", "dtype")
    assert {k: v for k, v in cpu5.to_dict().items() if k not in changed} == \
        {k: v for k, v in cpu4.to_dict().items() if k not in changed}
    assert (cpu5.init_from, cpu5.outer_warmup, cpu5.data.zoom, cpu4.data.zoom, cpu5.dtype) == (
        "benchmarks/campaign/theta6", 50, 4.0, 1.0, "auto")
    assert {k: v for k, v in cpu5.data.items() if k != "zoom"} == {k: v for k, v in cpu4.data.items() if k != "zoom"}
    cpu6 = config.load("metastyle:cpu6")  # cpu4's objective from the shipped (HED, nearest) theta
    changed = ("init_from", "init_other_vgg", "outer_warmup", "resampling", "dtype", "loss")
    assert {k: v for k, v in cpu6.to_dict().items() if k not in changed} == \
        {k: v for k, v in cpu4.to_dict().items() if k not in changed}
    assert (cpu6.init_from, cpu6.init_other_vgg, cpu4.init_other_vgg, cpu6.resampling, cpu6.loss.alpha) == (
        "theta", True, False, "nearest", config.load("adapt").loss.alpha)
    assert {k: v for k, v in cpu6.loss.items() if k != "alpha"} == {k: v for k, v in cpu4.loss.items() if k != "alpha"}
    assert paper.loss.saturation == 0.0 and not meta.settings_from_config(paper).saturation  # off: not computed
    paper.loss.saturation = 1.0
    assert meta.settings_from_config(paper).saturation and float(meta.hyper_from_config(paper).saturation) == 1.0
    with pytest.raises(UserError, match="unknown variant 'huge'"):
        config.load("metastyle:huge")


def test_ml_collections_override_flags_are_set_aliases():
    from metastyle_jax.commands import cli

    parser = cli.ArgumentParser()
    cli.add_config_args(parser, "metastyle")
    args = parser.parse_args(["--config", "metastyle:tiny", "--config.outer_lr=1e-4", "--config.data.content_size",
                              "48", "--set", "seed=3"])
    cfg = config.load(args.config, args.set)
    assert (cfg.outer_lr, cfg.data.content_size, cfg.seed, cfg.num_steps) == (1e-4, 48, 3, 20)
    with pytest.raises(UserError, match="unknown config key 'nope'"):
        config.load(args.config, parser.parse_args(["--config.nope=1"]).set)


@pytest.mark.parametrize("name", ["metastyle", "adapt", "gatys"])
def test_train_adapt_and_gatys_speak_one_dialect(name):
    """The same keys name the same settings in all three configs; the older flat names are aliases of them."""
    cfg = config.load(name)
    shared = ["num_steps", "loss.alpha", "loss.beta", "loss.tv", "data.content_size", "data.style_size", "dtype",
              "seed", "vgg.source"]
    assert all(config.get_value(cfg, k) is not None for k in shared)
    by_alias = config.load(name, ["steps=7", "size=48", "style_size=40", "alpha=2", "beta=3", "tv=0"])
    by_key = config.load(name, ["num_steps=7", "data.content_size=48", "data.style_size=40", "loss.alpha=2",
                                "loss.beta=3", "loss.tv=0"])
    assert by_alias.to_dict() == by_key.to_dict()
    assert (by_key.num_steps, by_key.data.content_size, by_key.loss.alpha) == (7, 48, 2.0)


def test_a_commands_flags_set_their_config_keys():
    """adapt's --steps and --size (flag names kept) set num_steps and data.content_size; --config.KEY also takes
    an alias."""
    from metastyle_jax.commands import cli

    parser = cli.ArgumentParser()
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int)
    cli.add_config_args(parser, "adapt")
    args = parser.parse_args(["--steps", "5", "--size", "64", "--config.style_size=128", "--set", "loss.beta=7"])
    cfg = cli.config_from_args(args, ("steps", "size"))
    assert (cfg.num_steps, cfg.data.content_size, cfg.data.style_size, cfg.loss.beta) == (5, 64, 128, 7.0)


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    import os
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(UserError, match="not a regular file"):
        config.load(str(fifo))
    (tmp_path / "folder.py").mkdir()
    with pytest.raises(UserError, match="not a regular file"):
        config.load(str(tmp_path / "folder.py"))
