"""Quality column: the perceptual loss each method reaches per style, on the same held-out content.

    python -m benchmarks.quality --theta CKPT [--styles starry_night,the_scream,wave,composition_vii,udnie]
        [--size 256] [--steps 200] [--gatys-steps 800] [--out-dir benchmarks/results]

For each style, on a fixed held-out batch of content crops (the val split of the content source: for the
embedded photos, chelsea and rocket, never used for training), the final eq. 4 loss of
(a) MetaStyle: theta adapted with --steps updates (adapt.adapt, configs/adapt.py),
(b) Johnson et al.: the same network and updates from random initialization. This is NOT the paper's
    Johnson et al., which is fully trained (about 160,000 iterations); here it is Fig. 6's baseline,
(c) Gatys et al.: --gatys-steps Adam steps on the pixels of each held-out image, from the image itself.
All three are scored by one function against the same Gram targets (the style squashed to --style-size,
as adaptation sees it). Writes <out-dir>/quality_<platform>.json and .md (a Markdown table; lower is better).
"""

import functools
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks import figures
from metastyle_jax import adapt, config, data, gatys, losses, transformer, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

PAINTINGS = data.PAINTINGS
METHODS = {"metastyle": "MetaStyle (theta + {steps} updates)",
           "johnson": "Johnson et al. (random init + {steps} updates)",
           "gatys": "Gatys et al. ({gatys_steps} steps per image)"}
START_NAMES = {"metastyle": "M(I_c; theta)", "johnson": "M(I_c; random init)", "gatys": "I_c"}


def style_arg(item):
    """A --styles item as a style argument: a bare name is embedded:NAME, anything else a path or embedded:."""
    item = item.strip()
    bare = item and not item.startswith(data.EMBEDDED_PREFIX) and "/" not in item and "." not in item
    return f"{data.EMBEDDED_PREFIX}{item}" if bare else item


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    p.add_argument("--theta", required=True, help="meta-trained theta checkpoint (python -m metastyle_jax.train)")
    p.add_argument("--styles", default=",".join(PAINTINGS), help="comma-separated styles: names of "
                   f"shipped paintings, embedded:NAME or paths (default {','.join(PAINTINGS)})")
    p.add_argument("--steps", type=int, help="adaptation updates of (a) and (b) (default 200, the paper)")
    p.add_argument("--gatys-steps", type=int, default=800, help="Gatys et al. steps per held-out image "
                   "(default 800, the paper)")
    p.add_argument("--gatys-lr", type=float, help="Adam learning rate on the pixels (default: configs/gatys.py)")
    p.add_argument("--size", type=int, help="held-out and training content crop side in px (default 256)")
    p.add_argument("--style-size", type=int, help="style side in px (default 512)")
    p.add_argument("--held-out", type=int, dest="eval_batch", help="held-out content crops (default 4)")
    p.add_argument("--lr", type=float, help="Adam learning rate of (a) and (b) (default 1e-3)")
    p.add_argument("--batch-size", type=int, help="content crops per update (default 4)")
    p.add_argument("--seed", type=int, help="content order, crops and (b)'s initialization (default 0)")
    figures.add_output_args(p, "quality")
    cli.add_config_args(p, "adapt")
    args = p.parse_args(argv)
    cfg = cli.config_from_args(args, ("steps", "size", "style_size", "eval_batch", "lr", "batch_size", "seed"))
    cfg.gatys_steps = args.gatys_steps
    cfg.gatys_lr = args.gatys_lr if args.gatys_lr is not None else config.load("gatys").lr
    cfg.gatys_chunk = config.load("gatys").log_every
    if min(cfg.num_steps, cfg.gatys_steps, cfg.batch_size, cfg.eval_batch) < 1:
        raise UserError("--steps, --gatys-steps, --batch-size and --held-out must be at least 1")
    if cfg.data.content_size < 16 or cfg.data.style_size < 16:
        raise UserError("--size and --style-size must be at least 16 px")
    if not (cfg.lr > 0 and cfg.gatys_lr > 0) or cfg.seed < 0:
        raise UserError("--lr and --gatys-lr must be positive and --seed non-negative")
    styles = [style_arg(s) for s in args.styles.split(",") if s.strip()]
    if not styles:
        raise UserError("--styles names no style")
    return args, cfg, styles


def evaluate_style(theta, vgg, style, content, held_out, cfg, weights, bar, resampling="nearest"):
    """The three methods on one style (S, S, 3): {method: {"initial", "final": {"loss", "content", "style"},
    "seconds"}}, all scored by `figures.stylized_loss` on `held_out` (E, H, W, 3); both networks resample as
    theta does (`resampling`)."""
    grams = adapt.style_targets(vgg, style, weights)

    def score(outputs):
        return figures.stylized_loss(vgg, outputs, held_out, grams, weights)

    def tick(n, loss):
        bar.update(n)
        bar.set_postfix(loss=f"{loss:.4g}")

    out = {}
    starts = {"metastyle": theta, "johnson": transformer.init_params(jax.random.key(cfg.seed), 16)}
    for method, start in starts.items():
        bar.set_description(f"quality {method}")
        t0 = time.perf_counter()
        params, _ = adapt.adapt(start, vgg, style, content, cfg.num_steps, lr=cfg.lr,
                                batch_size=cfg.batch_size, only_in=cfg.only_in, weights=weights, eval_every=0,
                                progress=lambda n, loss: tick(1, loss), resampling=resampling,
                                warmup=adapt.warmup_of(cfg))
        run = functools.partial(transformer.stylize_batch, resampling=resampling)
        out[method] = {"initial": score(run(start, held_out)), "final": score(run(params, held_out)),
                       "seconds": time.perf_counter() - t0}
    bar.set_description("quality gatys")
    t0 = time.perf_counter()
    results = [gatys.optimize(vgg, image, style, image, cfg.gatys_steps, cfg.gatys_lr, weights,
                              chunk=cfg.gatys_chunk, progress=tick)[0] for image in held_out]
    out["gatys"] = {"initial": score(held_out), "final": score(np.stack(results)),
                    "seconds": time.perf_counter() - t0}
    return out


def markdown(result):
    """The Markdown page of a quality result: the final-loss table, a mean row, the starting losses."""
    s = result["settings"]
    heads = {m: h.format(**s) for m, h in METHODS.items()}
    per_style = result["styles"]
    lines = ["# Quality: final perceptual loss (eq. 4) on held-out content, lower is better",
             "",
             (f"theta: `{result['theta']['path']}` ({result['theta']['iterations']} meta-iterations, "
              f"{result['theta']['content_size']} px); held-out: {s['held_out']} crops of {s['size']} px "
              f"from {', '.join(result['held_out_pool'])}; style squashed to {s['style_size']} px; "
              f"VGG16: {result['vgg']['source']}; {result['device']}, {result['date']}."),
             f"Command: `{result['command']}`",
             "",
             ("Johnson et al. here is the same network trained for the same few updates from random "
              "initialization (Fig. 6's baseline), not the paper's fully trained model."),
             "",
             "| style | " + " | ".join(heads.values()) + " |",
             "|---|" + "---:|" * len(heads)]
    for name, res in per_style.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[m]['final']['loss']:.4g}" for m in heads) + " |")
    means = {m: float(np.mean([r[m]["final"]["loss"] for r in per_style.values()])) for m in heads}
    lines.append("| **mean** | " + " | ".join(f"**{means[m]:.4g}**" for m in heads) + " |")
    lines += ["", "Starting points (loss before any update):", "",
              "| style | " + " | ".join(START_NAMES.values()) + " |", "|---|" + "---:|" * len(START_NAMES)]
    for name, res in per_style.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[m]['initial']['loss']:.4g}" for m in START_NAMES) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args, cfg, styles = parse_args(argv)
    paths = figures.output_paths(args, "quality", (".json", ".md"))
    theta, label = figures.load_theta(args.theta)
    loaded = [adapt.load_style(s, cfg.data.style_size) for s in styles]
    content = adapt.content_data(cfg)
    held_val = adapt.content_data(cfg, "val")
    held_out = held_val.batch_at(0, cfg.eval_batch)
    vgg = cli.load_vgg_from_args(args, cfg)
    figures.warn_vgg_mismatch(label, vgg)
    weights = losses.weights_of(cfg)

    from tqdm import tqdm
    per_style = {}
    total = len(loaded) * (2 * cfg.num_steps + cfg.eval_batch * cfg.gatys_steps)
    with tqdm(total=total, desc="quality", unit="step", file=sys.stderr) as bar:
        for (style, name, sha), arg in zip(loaded, styles):
            per_style[Path(name).stem.removeprefix(data.EMBEDDED_PREFIX)] = {"style": arg, "style_sha256": sha,
                                          **evaluate_style(theta, vgg, style, content, held_out, cfg, weights, bar,
                                                          label["resampling"])}
    result = {
        "what": "final perceptual loss (eq. 4) on fixed held-out content per style: MetaStyle adapted from "
                "theta, Johnson et al. from random init with the same updates (not fully trained), Gatys et al.",
        "theta": label, "vgg": vgg_weights.describe(vgg),
        "settings": {"steps": cfg.num_steps, "gatys_steps": cfg.gatys_steps, "lr": cfg.lr,
                     "warmup": adapt.warmup_of(cfg), "gatys_lr": cfg.gatys_lr,
                     "batch_size": cfg.batch_size, "size": cfg.data.content_size, "style_size": cfg.data.style_size,
                     "held_out": cfg.eval_batch, "alpha": cfg.loss.alpha, "beta": cfg.loss.beta, "only_in": cfg.only_in,
                     "content": str(cfg.data.content), "crop": cfg.data.crop, "seed": cfg.seed},
        "held_out_pool": held_val.names,
        "johnson_init": f"transformer.init_params(jax.random.key({cfg.seed}))",
        "styles": per_style,
        "mean_final_loss": {m: float(np.mean([r[m]["final"]["loss"] for r in per_style.values()]))
                            for m in METHODS},
    }
    result = figures.write_json(paths[".json"], result)
    paths[".md"].write_text(markdown(result))
    print(markdown(result))
    print(f"-> {paths['.json']}, {paths['.md'].name}")
    return result


if __name__ == "__main__":
    cli.run(main)
