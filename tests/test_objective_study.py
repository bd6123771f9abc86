"""The objective study's runs (benchmarks/objective_study.py) and the judge reading them back."""

import json

import numpy as np
import pytest

from benchmarks import objective_study, picture_quality
from metastyle_jax import data, images, vgg_weights


def test_variant_names_spell_their_settings():
    v = objective_study.parse_variant("equal_a30_tv300")
    assert (v.layers, v.alpha, v.tv) == ("equal", 30.0, 300.0)
    assert objective_study.parse_variant("paper") == objective_study.Variant()
    assert objective_study.parse_variant("energy_tv5").tv == 5.0
    assert objective_study.parse_variant("equal_avgpool").pool == "avg"
    assert objective_study.parse_variant("equal_bf16_tv1").dtype == "bfloat16"
    assert objective_study.parse_variant("equal_sdown2").style_down == 2
    assert objective_study.parse_variant("equal_sdown2_rcal").recalibrate
    assert objective_study.parse_variant("balance_a5").layers == "balance"
    # balance: the factors calibrate_vgg recorded over all training paintings, which the ImageNet default divides by 5
    assert objective_study.balance_factors("imagenet") == pytest.approx(
        [f * vgg_weights.IMAGENET_CONTENT_BALANCE for f in vgg_weights.IMAGENET_LAYER_WEIGHTS], rel=1e-5)
    for bad in ("flat", "paper_x3", "paper_linear"):
        with pytest.raises(ValueError):
            objective_study.parse_variant(bad)


def test_a_tiny_study_writes_runs_the_judge_scores(real_vgg, tmp_path):
    styles = tmp_path / "styles"
    styles.mkdir()
    for name in ("wave", "udnie"):
        images.save_image(str(styles / f"{name}.jpg"), images.resize(images.load_image(data.painting_path(name)), (48, 48)))
    out = tmp_path / "study"
    objective_study.main(["--variants", "paper", "equal_a5_tv10", "equal_sdown2", "--paintings", "wave.jpg", "--styles-dir",
                          str(styles), "--steps", "2", "--size", "32", "--style-size", "32", "--eval-size", "32",
                          "--out", str(out)])
    runs = sorted(p.parent.parent.name for p in out.glob("*/*/history.json"))
    assert runs == ["equal_a5_tv10", "equal_sdown2", "paper"]
    paper = json.loads((out / "paper" / "wave" / "history.json").read_text())
    equal = json.loads((out / "equal_a5_tv10" / "wave" / "history.json").read_text())
    assert paper["layer_weights"] == [1.0] * 4 and len(paper["loss"]) == 2
    calibration = json.loads((out / "calibration.json").read_text())
    assert equal["layer_weights"] == calibration["max"]["equal"] and equal["variant"]["tv"] == 10.0
    # the equal-share factors give the mean of each layer's term the same share on the calibration styles
    assert len(set(np.round(np.log10(calibration["max"]["equal"]), 6))) == 4
    triples = picture_quality.study_triples(out)
    assert len(triples) == 3 * len(picture_quality.STUDY_PHOTOS)
    assert all(t[4].shape[:2] == t[2].shape[:2] for t in triples)
