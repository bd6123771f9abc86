"""The picture judge's measures on pictures whose answer is known, and its EfficientNet-Lite0 port on ImageNet."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import picture_quality as pq


@pytest.fixture(scope="module")
def photo():
    from metastyle_jax import data
    return data.load_image_spec("embedded:chelsea", max_side=128)


def test_blob_share_counts_black_pixels_where_the_photo_is_lit():
    photo = np.full((10, 10, 3), 0.5, np.float32)
    photo[:, :5] = 0.05                      # the left half is dark in the photo
    out = np.full((10, 10, 3), 0.5, np.float32)
    out[:2] = 0.0                            # 2 black rows: 10 pixels lit in the photo, 10 dark there
    assert pq.blob_share(photo, out) == pytest.approx(0.1)
    assert pq.blob_share(photo, photo) == 0.0


def test_checkerboard_ratio_sees_two_and_four_pixel_grids():
    yy, xx = np.mgrid[:96, :128] / 128.0
    smooth = (0.5 + 0.2 * np.sin(9 * xx + 4 * yy) + 0.1 * np.cos(13 * yy))[..., None].repeat(3, -1)
    yy, xx = np.mgrid[:96, :128]
    base = pq.checkerboard_ratio(smooth)
    assert base < 10
    for period in (2, 4):
        grid = smooth + 0.05 * ((((yy + xx) // (period // 2)) % 2)[..., None] - 0.5)
        assert pq.checkerboard_ratio(grid) > 10 * base


def test_lattice_ratios_name_the_frequency_of_a_planted_stripe(tmp_path, monkeypatch):
    yy, xx = np.mgrid[:96, :128] / 128.0
    smooth = (0.5 + 0.2 * np.sin(9 * xx + 4 * yy) + 0.1 * np.cos(13 * yy))[..., None].repeat(3, -1)
    rows = np.mgrid[:96, :128][0]
    stripes = smooth + 0.05 * np.cos(np.pi / 2 * rows)[..., None]  # a 4-pixel period down the image
    ratios = pq.lattice_ratios(stripes)
    assert len(ratios) == 15 and sorted(ratios, key=ratios.get)[-2:] in ([(1, 0), (3, 0)], [(3, 0), (1, 0)])
    assert pq.checkerboard_ratio(stripes) == pytest.approx(np.mean(sorted(ratios.values())[-4:]))
    from benchmarks import common
    from metastyle_jax import images
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        images.save_image(tmp_path / name / "x.png", stripes if name == "a" else smooth)
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    pq.main(["--lattice", str(tmp_path / "a"), str(tmp_path / "b"), "--name", "t"])
    found = json.loads((tmp_path / "picture_quality_t.json").read_text())["folders"]
    assert found[str(tmp_path / "a")]["1,0"] > 10 * found[str(tmp_path / "b")]["1,0"]


def test_edges_kept_is_one_for_the_photo_and_low_for_noise(photo, rng):
    assert pq.edges_kept(photo, photo) == pytest.approx(1.0)
    assert pq.edges_kept(photo, rng.uniform(size=photo.shape).astype(np.float32)) < 0.3


def test_colour_distance_is_zero_for_the_same_colours_and_one_for_disjoint(photo):
    assert pq.colour_distance(photo, photo[::-1]) == pytest.approx(0.0, abs=1e-6)
    assert pq.colour_distance(np.zeros((4, 4, 3)), np.ones((4, 4, 3))) == pytest.approx(1.0)


def test_summary_means_and_maxima():
    rows = [{"group": "a", **{m: 1.0 for m in pq.MEASURES}}, {"group": "a", **{m: 3.0 for m in pq.MEASURES}}]
    s = pq.summarize(rows, "group")["a"]
    assert s["checkerboard"] == 2.0 and s["max_checkerboard"] == 3.0 and s["n"] == 2


def test_verdict_checks_every_picture_and_the_averages_against_the_baseline():
    def record(blobs, checkers, edges):
        rows = [{"group": "style", "label": f"style/p{i}", **{m: 0.5 for m in pq.MEASURES}, "blob_share": b,
                 "checkerboard": c, "edges_kept": edges} for i, (b, c) in enumerate(zip(blobs, checkers))]
        rows.append({"group": "photo", "label": "photo/p0", **{m: 0.0 for m in pq.MEASURES}, "checkerboard": 99.0})
        return {"rows": rows, "summary": pq.summarize(rows, "group")}

    base = record([0.1, 0.2], [40.0, 50.0], 0.3)
    good = pq.verdict(record([0.0, 0.004], [3.0, 8.0], 0.7), base)
    assert all(met for met, _ in good.values())  # the photo row's checkerboard 99 is a reference, not counted
    bad = pq.verdict(record([0.0, 0.005], [8.1, 3.0], 0.2), base)
    assert not bad["blob share under 0.5% on every picture"][0]
    assert "style/p1" in bad["blob share under 0.5% on every picture"][1]
    assert not bad["checkerboard at most 8 on every picture"][0]
    assert not bad["edges kept no worse on average"][0] and bad["colour distance no worse on average"][0]


def test_efficientnet_lite0_port_classifies_imagenet_photos():
    torch = pytest.importorskip("torch")
    from benchmarks import judge_net
    from metastyle_jax import data
    _, net = judge_net.load()
    for name, classes in (("chelsea", {281, 282, 285}), ("coffee", {967, 968})):  # cats; espresso, cup
        x = data.load_image_spec(f"embedded:{name}", max_side=224)
        with torch.no_grad():
            logits, stages = net(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        assert int(logits.argmax()) in classes
    assert [s.shape[1] for s in stages.values()] == [16, 24, 40, 80, 112, 192, 320]


def test_white_share_counts_saturated_white_where_the_photo_is_not_bright():
    photo = np.full((10, 10, 3), 0.5, np.float32)
    photo[:5] = 0.9                          # the top half is bright in the photo
    out = np.full((10, 10, 3), 0.5, np.float32)
    out[:, :3] = 1.0                         # 3 white columns: 15 pixels where the photo is not bright
    assert pq.white_share(photo, out) == pytest.approx(0.15)


def test_checkerboard_scale_scores_a_model_at_each_size(model, monkeypatch, tmp_path):
    from benchmarks import checkerboard_scale, common
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    checkerboard_scale.main(["--models", str(model), "--photos", "coffee", "--sizes", "32", "48"])
    rows = json.loads((tmp_path / "checkerboard_scale.json").read_text())["rows"]
    assert [(r["photo"], r["size"]) for r in rows] == [("coffee", 32), ("coffee", 48)]
    assert all(r["checkerboard"] > 0 and 0 <= r["blob_share"] <= 1 for r in rows)


def test_first_command_variants_refuses_an_unknown_variant_in_one_line():
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "first_command_variants.sh"
    r = subprocess.run(["bash", str(script), "theta_tv7"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("unknown variant: theta_tv7") and len(r.stderr.splitlines()) == 1


def test_checkerboard_loss_adds_each_pattern_and_scores_every_term(real_vgg, monkeypatch, tmp_path):
    from benchmarks import checkerboard_loss, common
    from metastyle_jax import data, images
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    clean = tmp_path / "clean.png"
    images.save_image(str(clean), data.load_image_spec("embedded:coffee", max_side=32))
    checkerboard_loss.main(["--image", str(clean), "--photo", "embedded:coffee", "--style", "embedded:wave",
                            "--style-size", "32"])
    rows = json.loads((tmp_path / "checkerboard_loss.json").read_text())["rows"]
    assert [(r["period"], r["amplitude"]) for r in rows] == [(p, a) for p in (2, 4) for a in checkerboard_loss.AMPLITUDES]
    assert rows[0]["total"] == rows[5]["total"]  # amplitude 0 is the clean image whatever the period
    assert rows[4]["tv"] > rows[0]["tv"] and rows[0]["content"] < 1e-2 * rows[9]["content"]  # photo = image
    outputs = tmp_path / "stylized"
    outputs.mkdir()
    photo = images.load_image(str(clean))
    images.save_image(str(outputs / "coffee.png"),
                      np.clip(photo + 0.1 * checkerboard_loss.checkerboard(photo.shape, 2), 0, 1))
    checkerboard_loss.main(["--outputs", str(outputs), "--style", "embedded:wave", "--style-size", "32", "--name", "o"])
    checkered, smooth, clean_row, doubled = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [r["image"] for r in (checkered, smooth, clean_row, doubled)] == [
        "output", "2x2 block average", "lattice removed", "lattice doubled"] and checkered["photo"] == "coffee"
    assert smooth["tv"] < 0.2 * checkered["tv"] and set(smooth) == set(checkered)  # the 2-pixel period is gone
    assert clean_row["tv"] < 0.5 * checkered["tv"] < doubled["tv"]  # the checkerboard is locked to the grid
    assert clean_row["checkerboard"] < checkered["checkerboard"]
    pattern = checkerboard_loss.checkerboard((4, 8), 4)[..., 0]
    assert (pattern == [[1, 1, -1, -1, 1, 1, -1, -1], [1, 1, -1, -1, 1, 1, -1, -1],
                        [-1, -1, 1, 1, -1, -1, 1, 1], [-1, -1, 1, 1, -1, -1, 1, 1]]).all()


def test_without_lattice_removes_exactly_the_grid_locked_part():
    from benchmarks import checkerboard_loss
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.random((3, 4, 3)), 4, axis=0), 4, axis=1)  # constant over each 4 x 4 cell
    smooth = smooth - smooth.mean() + 0.5
    lattice = np.tile(rng.normal(0, 0.05, (4, 4, 3)), (3, 4, 1))
    lattice -= lattice.mean((0, 1))
    np.testing.assert_allclose(checkerboard_loss.without_lattice(lattice + 0.5), 0.5, atol=1e-12)
    np.testing.assert_allclose(checkerboard_loss.without_lattice(smooth + lattice), smooth, atol=1e-12)
    noise = rng.normal(0, 0.05, (13, 18, 3))  # cropped to 12 x 16
    out = checkerboard_loss.without_lattice(smooth[:12, :16] + lattice + noise[:12, :16])
    assert out.shape == (12, 16, 3)
    np.testing.assert_allclose(checkerboard_loss.without_lattice(out), out, atol=1e-12)  # idempotent


def test_gallery_of_a_folder_of_styles_takes_the_styles_it_holds(model, tmp_path):
    """--gallery --models DIR: the styles in DIR/NAME (a trial's, not the shipped ones); paintings without one are
    left out."""
    import shutil
    shutil.copytree(model, tmp_path / "wave")
    triples = pq.gallery_triples(32, photos=("coffee", "chelsea"), models=tmp_path)
    assert [(style, label) for style, label, *_ in triples] == [("wave", "wave/coffee"), ("wave", "wave/chelsea")]
    assert all(out.shape == photo.shape and max(out.shape[:2]) == 32 for _, _, photo, _, out in triples)
    from metastyle_jax.commands import stylize as command
    from metastyle_jax import images
    command.main(["--model", str(tmp_path / "wave"), "--content", "embedded:chelsea", "--size", "32",
                  "--out", str(tmp_path / "written.png")])
    np.testing.assert_array_equal(triples[1][4], images.load_image(str(tmp_path / "written.png")))  # as written


def test_a_gallery_of_an_empty_folder_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pq, "RESULTS", tmp_path / "results")
    with pytest.raises(SystemExit) as exit_:
        pq.main(["--gallery", "--models", str(tmp_path), "--name", "empty"])
    assert exit_.value.code != 0 and "no outputs to judge" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
