import pytest

from metastyle_jax import config
from metastyle_jax.cli import UserError


def test_gatys_config_has_the_papers_values():
    cfg = config.load("gatys")
    assert (cfg.steps, cfg.alpha, cfg.beta) == (800, 1.0, 1e5)


def test_overrides_are_typed():
    cfg = config.load("gatys", ["steps=10", "beta=1e4", "vgg.source=keras", "init=noise"])
    assert cfg.steps == 10 and isinstance(cfg.steps, int)
    assert cfg.beta == 1e4 and cfg.vgg.source == "keras" and cfg.init == "noise"
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
