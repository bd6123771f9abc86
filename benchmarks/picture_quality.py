"""The picture judge (issue 22): scores (photo, painting, output) triples with measures no training loss uses.

    python -m benchmarks.picture_quality --gallery [--size 512]          # the five shipped styles x 3 photos
    python -m benchmarks.picture_quality --first-command outputs/stylized  # the README's first command
    python -m benchmarks.picture_quality --study runs/study               # benchmarks.objective_study's runs
    python -m benchmarks.picture_quality --lattice DIR [DIR ...] --name N  # the checkerboard ratio per frequency
    python -m benchmarks.picture_quality --verdict NAME --against BASE  # issue 22's bars on two judged records

Measures (each output compared at its own size; the photo is resized to it):
- blob share: the share of pixels that are near-black in the output (max channel < 0.04) where the photo's
  luminance is above 0.2 (lower is better; photos 0);
- white share: the same for saturated white (min channel > 0.96) where the photo's luminance is below 0.8;
- checkerboard ratio: on the output's grey image under a 2-D Hann window, the power at the 2- and 4-pixel
  periods (frequencies N/4, N/2, 3N/4 on either axis, DC excluded), each divided by the median power of the
  8 bins two steps around it; the mean of the 4 strongest ratios (lower is better; photos about 4);
- edges kept: the correlation of the photo's and the output's gradient magnitudes after a Gaussian blur of
  side/128 px (higher is better; the photo itself 1);
- deep content: the correlation of ImageNet EfficientNet-Lite0 features (stage 5, stride 16) of photo and
  output (higher is better);
- colour distance: the Hellinger distance between 8x8x8 RGB histograms of output and painting (lower is better);
- texture distance: EfficientNet-Lite0 per-channel means and standard deviations at strides 2, 4, 8 and 16,
  output against painting, relative distance averaged over the four (lower is better).
Rows named "photo" (the photo unchanged) and "gatys" (Gatys et al. from the photo, `--gatys-steps`) are the
references. Writes benchmarks/results/picture_quality_<name>.json and .md, and a grid JPEG beside them.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from benchmarks import judge_net
from benchmarks.common import RESULTS, write_result

MEASURES = ("blob_share", "white_share", "checkerboard", "edges_kept", "deep_content", "colour_distance", "texture_distance")
HIGHER_IS_BETTER = {"edges_kept", "deep_content"}
TEXTURE_STAGES = (0, 1, 2, 3)
CONTENT_STAGE = 4
STUDY_PHOTOS = ("chelsea", "rocket", "astronaut")
GATYS_CACHE = RESULTS.parents[1] / "runs" / "judge_gatys"


def luminance(image):
    """Rec. 601 luma of (H, W, 3) RGB in [0, 1]: (H, W)."""
    return image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)


def blob_share(photo, output):
    """Share of the pixels where the photo is lit (luminance > 0.2) but the output is near-black (max < 0.04)."""
    lit = luminance(photo) > 0.2
    return float(np.mean((output.max(axis=-1) < 0.04) & lit)) if lit.any() else 0.0


def white_share(photo, output):
    """Share of the pixels where the photo is not bright (luminance < 0.8) but the output is saturated white."""
    return float(np.mean((output.min(axis=-1) > 0.96) & (luminance(photo) < 0.8)))


def lattice_ratios(output):
    """{(a, b): ratio} for the 15 frequencies (a, b) / 4 cycles a pixel (a on the vertical axis, b on the horizontal,
    each 0-3, not both 0): on the output's grey image under a 2-D Hann window, the power there over the median power
    of the 8 bins two steps around it. (1, 0) and (3, 0) are a 4-pixel period down the image, (2, 2) the 2-pixel
    checkerboard."""
    grey = luminance(output).astype(np.float64)
    h, w = (grey.shape[0] // 4) * 4, (grey.shape[1] // 4) * 4
    grey = grey[:h, :w] - grey[:h, :w].mean()
    power = np.abs(np.fft.fft2(grey * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    ratios = {}
    for a in range(4):
        for b in range(4):
            if a == b == 0:
                continue
            u, v = a * h // 4, b * w // 4
            ring = [power[(u + du) % h, (v + dv) % w] for du in (-2, 0, 2) for dv in (-2, 0, 2) if du or dv]
            ratios[a, b] = float(power[u, v] / max(np.median(ring), 1e-30))
    return ratios


def checkerboard_ratio(output):
    """Power at the 2- and 4-pixel periods over the median of the bins two steps around: mean of the top 4 of
    `lattice_ratios`."""
    return float(np.mean(sorted(lattice_ratios(output).values())[-4:]))


def _blur(image, sigma):
    """Separable Gaussian blur of a 2-D array (reflect padding)."""
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(image, radius, mode="reflect")
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, "valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, k, "valid"), 0, rows)


def correlation(a, b):
    """Pearson correlation of two arrays of one shape, flattened."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / max(np.sqrt((a @ a) * (b @ b)), 1e-30))


def edges_kept(photo, output):
    """Correlation of blurred gradient magnitudes of photo and output (grey), blur sigma side / 128."""
    sigma = max(photo.shape[:2]) / 128

    def edges(image):
        gy, gx = np.gradient(_blur(luminance(image).astype(np.float64), sigma))
        return np.hypot(gx, gy)

    return correlation(edges(photo), edges(output))


def colour_distance(output, painting, bins=8):
    """Hellinger distance between the bins^3 RGB histograms of two images, in [0, 1]."""
    def hist(image):
        q = np.clip((image[..., :3] * bins).astype(int), 0, bins - 1).reshape(-1, 3)
        h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3).astype(np.float64)
        return h / h.sum()

    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(hist(output) * hist(painting))))))


def resize(image, shape):
    """Bilinear resize of (H, W, 3) float to shape (h, w)."""
    from PIL import Image
    chans = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), "F").resize(shape[::-1], Image.BILINEAR))
             for c in range(3)]
    return np.stack(chans, -1)


class Judge:
    """EfficientNet-Lite0 features for the deep measures, computed once per image."""

    def __init__(self):
        self.torch, self.net = judge_net.load()

    def stages(self, image):
        """{stage: (C, h, w) float64} of an (H, W, 3) image in [0, 1]."""
        t = self.torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32))[None]
        with self.torch.no_grad():
            _, stages = self.net(t)
        return {k: v[0].double().numpy() for k, v in stages.items()}

    def score(self, photo, painting, output):
        """All MEASURES of one triple (photo is resized to the output's size, the painting to <= 512 px)."""
        photo = resize(photo, output.shape[:2]) if photo.shape[:2] != output.shape[:2] else photo
        scale = 512 / max(painting.shape[:2])
        if scale < 1:
            painting = resize(painting, (round(painting.shape[0] * scale), round(painting.shape[1] * scale)))
        f_out, f_photo, f_paint = self.stages(output), self.stages(photo), self.stages(painting)
        texture = []
        for s in TEXTURE_STAGES:
            stats = [(f[s].reshape(f[s].shape[0], -1).mean(1), f[s].reshape(f[s].shape[0], -1).std(1))
                     for f in (f_out, f_paint)]
            (mo, so), (mp, sp) = stats
            texture.append((np.linalg.norm(mo - mp) + np.linalg.norm(so - sp)) / (np.linalg.norm(mp) + np.linalg.norm(sp)))
        return {"blob_share": blob_share(photo, output), "white_share": white_share(photo, output),
                "checkerboard": checkerboard_ratio(output),
                "edges_kept": edges_kept(photo, output),
                "deep_content": correlation(f_photo[CONTENT_STAGE], f_out[CONTENT_STAGE]),
                "colour_distance": colour_distance(output, painting), "texture_distance": float(np.mean(texture))}


def summarize(rows, key):
    """Mean of each measure over rows grouped by rows[i][key]: {group: {measure: mean}, ...}."""
    groups = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return {g: {m: float(np.mean([r[m] for r in rs])) for m in MEASURES} | {"max_blob_share": max(r["blob_share"] for r in rs),
                                                                          "max_checkerboard": max(r["checkerboard"] for r in rs),
                                                                          "n": len(rs)}
            for g, rs in groups.items()}


MAX_BLOB_SHARE = 0.005  # issue 22: "blob share under 0.5% on every picture"
MAX_CHECKERBOARD = 8.0  # issue 22: "checkerboard ratio at most 8 on every picture"
REFERENCES = ("photo", "gatys")


def verdict(record, baseline):
    """Issue 22's bars on a judged `record` against an earlier `baseline` (both `picture_quality` results):
    {bar: (met, what was measured)}. The per-picture bars read record["rows"]; the averages compare the mean over
    all styled pictures (reference rows left out) with the baseline's, from each record's summary."""
    rows = [r for r in record["rows"] if r["group"] not in REFERENCES]

    def mean(rec, m):
        groups = [s for g, s in rec["summary"].items() if g not in REFERENCES]
        return sum(s[m] * s["n"] for s in groups) / sum(s["n"] for s in groups)

    worst_blob = max(rows, key=lambda r: r["blob_share"])
    worst_checker = max(rows, key=lambda r: r["checkerboard"])
    out = {"blob share under 0.5% on every picture": (
               worst_blob["blob_share"] < MAX_BLOB_SHARE,
               f"max {100 * worst_blob['blob_share']:.2f}% ({worst_blob['label']}), "
               f"{sum(r['blob_share'] >= MAX_BLOB_SHARE for r in rows)} of {len(rows)} at or over"),
           "checkerboard at most 8 on every picture": (
               worst_checker["checkerboard"] <= MAX_CHECKERBOARD,
               f"max {worst_checker['checkerboard']:.1f} ({worst_checker['label']}), "
               f"{sum(r['checkerboard'] > MAX_CHECKERBOARD for r in rows)} of {len(rows)} over")}
    for m in ("edges_kept", "deep_content", "colour_distance", "texture_distance"):
        new, old = mean(record, m), mean(baseline, m)
        better = new >= old if m in HIGHER_IS_BETTER else new <= old
        out[f"{m.replace('_', ' ')} no worse on average"] = (better, f"{new:.3f} against {old:.3f}")
    return out


def verdict_table(results, title):
    """A markdown table of `verdict`'s output."""
    lines = [f"### {title}", "", "| bar | met | measured |", "| --- | --- | --- |"]
    lines += [f"| {bar} | {'yes' if met else 'no'} | {what} |" for bar, (met, what) in results.items()]
    return "\n".join(lines) + "\n"


def table(summary, title):
    """A markdown table of `summarize`'s output."""
    head = ["group", "n", "blob share", "max blob", "white share", "checkerboard", "max checker", "edges kept", "deep content",
            "colour dist", "texture dist"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for g, s in summary.items():
        lines.append(f"| {g} | {s['n']} | {100 * s['blob_share']:.2f}% | {100 * s['max_blob_share']:.2f}% | "
                     f"{100 * s['white_share']:.2f}% | "
                     f"{s['checkerboard']:.1f} | {s['max_checkerboard']:.1f} | {s['edges_kept']:.3f} | "
                     f"{s['deep_content']:.3f} | {s['colour_distance']:.3f} | {s['texture_distance']:.3f} |")
    return "\n".join(lines) + "\n"


def load(path):
    """An image file as (H, W, 3) float32 in [0, 1]."""
    from metastyle_jax import images
    return images.load_image(str(path))


def embedded(name, max_side=None):
    """An embedded photo or painting as (H, W, 3) float32 in [0, 1]."""
    from metastyle_jax import data
    return data.load_image_spec(f"embedded:{name}", max_side=max_side)


def gatys_output(photo, painting, steps, cache_dir):
    """Gatys et al. from the photo with the project's default loss, `steps` Adam steps (cached as PNG)."""
    from metastyle_jax import gatys, images, losses, vgg_weights
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(photo.tobytes() + painting.tobytes() + str((photo.shape, steps)).encode())
    path = cache_dir / f"{digest.hexdigest()[:16]}.png"
    if not path.exists():
        style = resize(painting, (512, 512)) if max(painting.shape[:2]) != 512 else painting
        out, _ = gatys.optimize(vgg_weights.load_vgg("hed"), photo, style, photo, steps, 0.02, losses.LossWeights())
        images.save_image(str(path), np.clip(out, 0, 1))
    return load(path)


def study_triples(root):
    """(group, label, photo, painting, output) of every run under an objective_study folder."""
    from benchmarks import objective_study
    triples = []
    for hist in sorted(Path(root).glob("*/*/history.json")):
        meta = json.loads(hist.read_text())
        painting = load(meta.get("painting_path") or objective_study.TRAIN_STYLES / meta["painting"])
        for name in STUDY_PHOTOS:
            out = load(hist.parent / f"{name}.png")
            photo = embedded(name, max_side=max(out.shape[:2]))
            triples.append((hist.parent.parent.name, f"{hist.parent.name}/{name}", photo, painting, out))
    return triples


def gallery_triples(size, photos=STUDY_PHOTOS, models=None):
    """(style, label, photo, painting, output) of each shipped style (or each style in folder `models`, named after
    its painting) on `photos` at `size` px. Each output is the picture `stylize --style NAME` writes: the command's
    compute dtype ("auto"), rounded to 8 bits (a lattice below one grey level is not in the file)."""
    from metastyle_jax import checkpoints, data, images, onednn, stylize
    dtype, _ = onednn.resolve_dtype("auto")
    pictures = [embedded(p, max_side=size) for p in photos]
    triples = []
    for name in data.PAINTINGS:
        path = Path(models) / name if models else stylize.shipped_style(name)
        if not (path / "meta.json").is_file():
            continue
        params, meta = checkpoints.load_model(path, kinds=("adapted",))
        painting = load(data.painting_path(name))
        outs = stylize.stylize(params, pictures, 1, resampling=checkpoints.resampling(meta), dtype=dtype)
        for p, pic, out in zip(photos, pictures, outs):
            triples.append((name, f"{name}/{p}", pic, painting, images.to_uint8(np.asarray(out)) / np.float32(255)))
    return triples


def first_command_triples(folder, style="starry_night"):
    """(style, label, photo, painting, output) of the README's first command's outputs in `folder`."""
    from metastyle_jax import data
    painting = load(data.painting_path(style))
    triples = []
    for out_path in sorted(Path(folder).glob("*.png")):
        out = load(out_path)
        triples.append((style, out_path.stem, embedded(out_path.stem, max_side=max(out.shape[:2])), painting, out))
    return triples


def grid(triples, path, cell=96):
    """Rows of photo | painting | output for each triple, saved to `path` (a JPEG keeps git small)."""
    from metastyle_jax import images
    cells = []
    for _, _, photo, painting, out in triples:
        cells += [resize(x, (cell, round(cell * x.shape[1] / x.shape[0]))) for x in (photo, painting, out)]
    images.save_image(str(path), images.grid(cells, nrow=3, height=cell))


def lattice_table(folders, name):
    """Print and record (picture_quality_NAME.json) the mean `lattice_ratios` of the PNGs in each folder."""
    found = {}
    for folder in folders:
        ratios = [lattice_ratios(load(f)) for f in sorted(Path(folder).glob("*.png"))]
        if not ratios:
            raise SystemExit(f"no PNG outputs in {folder}")
        found[folder] = {f"{a},{b}": float(np.mean([r[a, b] for r in ratios])) for a, b in ratios[0]}
        strongest = sorted(found[folder].items(), key=lambda kv: -kv[1])[:4]
        print(f"{folder} ({len(ratios)} images): " + ", ".join(f"({k}) {v:.1f}" for k, v in strongest))
    print(write_result(f"picture_quality_{name}", {"frequencies": "a,b: (a, b) / 4 cycles a pixel, a vertical",
                                                   "folders": found}))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.picture_quality", description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--gallery", action="store_true", help="the shipped styles on chelsea, rocket, astronaut")
    what.add_argument("--first-command", metavar="DIR", help="the README's first command's output folder")
    what.add_argument("--study", metavar="DIR", help="an objective_study output folder")
    what.add_argument("--lattice", nargs="+", metavar="DIR", help="folders of outputs: the mean of each frequency's "
                      "ratio (`lattice_ratios`) over each folder's PNGs")
    what.add_argument("--verdict", metavar="NAME", help="issue 22's bars on the judged record NAME "
                      "(picture_quality_NAME.json) against --against")
    p.add_argument("--against", metavar="BASE", help="--verdict: the earlier record (e.g. gallery_before)")
    p.add_argument("--size", type=int, default=512, help="stylization size for --gallery")
    p.add_argument("--models", metavar="DIR", help="--gallery: the styles in DIR/NAME instead of the shipped ones")
    p.add_argument("--gatys-steps", type=int, default=0, help="add a Gatys et al. reference row per pair")
    p.add_argument("--name", default=None, help="result name (default: from the mode)")
    args = p.parse_args(argv)
    if args.lattice:
        return lattice_table(args.lattice, args.name or "lattice")
    if args.verdict:
        if not args.against:
            p.error("--verdict needs --against BASE")
        records = [RESULTS / f"picture_quality_{n}.json" for n in (args.verdict, args.against)]
        for r in records:
            if not r.is_file():
                p.error(f"no judged record {r}")
        md = verdict_table(verdict(*(json.loads(r.read_text()) for r in records)),
                           f"issue 22's bars: {args.verdict} against {args.against}")
        print(md)
        return md
    triples = (gallery_triples(args.size, models=args.models) if args.gallery else first_command_triples(args.first_command)
               if args.first_command else study_triples(args.study))
    if not triples:
        p.error(f"no outputs to judge in {args.models or args.first_command or args.study or 'the shipped styles'}")
    name = args.name or ("gallery" if args.gallery else "first_command" if args.first_command else "study")
    judge = Judge()
    rows, referenced = [], set()
    for group, label, photo, painting, out in triples:
        rows.append({"group": group, "label": label, **judge.score(photo, painting, out)})
        if label in referenced:  # the references depend on the (photo, painting) pair only
            continue
        referenced.add(label)
        refs = [("photo", photo)]
        if args.gatys_steps:
            refs.append(("gatys", gatys_output(photo, painting, args.gatys_steps, GATYS_CACHE)))
        rows += [{"group": ref, "label": f"{ref}/{label}", **judge.score(photo, painting, image)}
                 for ref, image in refs]
    summary = summarize(rows, "group")
    md = table(summary, f"picture_quality {name}")
    print(md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"picture_quality_{name}.md").write_text(md)
    grid(triples, RESULTS / f"picture_quality_{name}.jpg")
    print(write_result(f"picture_quality_{name}", {"measures": list(MEASURES), "summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
