"""benchmarks.calibrate_vgg's layer shares: what issue 22's "each style layer carries at least 10% at step 0"
is measured with."""

import numpy as np
import pytest

from benchmarks import calibrate_vgg
from metastyle_jax import data, vgg16


def test_shares_are_the_weighted_terms_normalized():
    terms = dict(zip(vgg16.LAYERS, (4.0, 2.0, 1.0, 1.0)))
    got = calibrate_vgg.shares(terms, (1.0, 1.0, 2.0, 4.0))
    assert got == pytest.approx(dict(zip(vgg16.LAYERS, (4 / 12, 2 / 12, 2 / 12, 4 / 12))))
    equal = calibrate_vgg.equal_share([terms, dict(zip(vgg16.LAYERS, (2.0, 2.0, 1.0, 3.0)))])
    assert calibrate_vgg.shares(dict(zip(vgg16.LAYERS, (3.0, 2.0, 1.0, 2.0))), equal) == pytest.approx(
        dict.fromkeys(vgg16.LAYERS, 0.25))  # the mean terms, re-weighted, share the style term equally


def test_step0_shares_cover_every_shipped_painting(random_vgg, model):
    step0 = calibrate_vgg.step0_shares(random_vgg, model, 32, 32, {"current": random_vgg.spec.layer_weights})
    assert sorted(step0) == sorted(data.PAINTINGS)
    for s in step0.values():
        assert list(s["current"]) == list(vgg16.LAYERS) and sum(s["current"].values()) == pytest.approx(1.0)
        assert all(np.isfinite(v) and v >= 0 for v in s["current"].values())


def test_step0_shares_take_each_paintings_own_factors(random_vgg, model):
    """The adaptation's per-painting balance (adapt.balance_at_step0) as `adaptation_factors` gives it."""
    per = calibrate_vgg.adaptation_factors(random_vgg, model, 32, 32)
    assert sorted(per) == sorted(data.PAINTINGS) and all(len(f) == 4 and min(f) > 0 for f in per.values())
    ones = dict.fromkeys(data.PAINTINGS, (1.0,) * 4)
    step0 = calibrate_vgg.step0_shares(random_vgg, model, 32, 32, {"ones": (1.0,) * 4, "per": ones,
                                                                    "adaptation": per})
    for s in step0.values():
        assert s["per"] == s["ones"] and sum(s["adaptation"].values()) == pytest.approx(1.0)
