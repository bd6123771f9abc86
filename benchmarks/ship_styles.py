"""Ship the five adapted styles: theta adapted to each shipped painting at 256 px, kernels stored in float16.

    bash benchmarks/get_photos.sh                       # content photos into runs/photos (never committed)
    python -m benchmarks.ship_styles [--names starry_night wave] [--content runs/photos] [--steps 200] \
        [--batch-size 2] [--size 256] [--style-size 512] [--dtype bfloat16]

Each painting goes through the `adapt` command's own function (`adapt.adapt_to_painting`, configs/adapt.py:
Adam lr 1e-3 after its warmup, 200 steps, 256 px crops, 512 px style, as the paper's section 5.2, but
batches of 2 content crops where the paper has 4, for the build machine's time) from the shipped theta, into
runs/styles/NAME (with its loss curve and preview). The adapted weights are then stored in
metastyle_jax/models/NAME (`ship_theta.compact`: float16 kernels), where `stylize --style NAME` finds them, with the
adaptation's settings and a card: the theta they came from, the content photos, the machine, and the largest
output change float16 storage causes. `--stored-runs` skips the adaptation and stores the runs already made.
Then writes docs/styles_card.md: per style, the settings and the perceptual loss
of a fixed held-out content batch stylized by theta and by the shipped model.
"""

import datetime
import os
import platform
from pathlib import Path

import jax

from benchmarks import ship_theta
from metastyle_jax import adapt, checkpoints, config, data, losses, vgg_weights
from metastyle_jax.commands import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


def store(run, cfg, out, theta=adapt.DEFAULT_THETA):
    """The adapted model at `run` (float32, from `adapt`) written `ship_theta.compact`ly (float16 kernels) to
    `out`, with a card; returns its meta."""
    params, meta = checkpoints.load_model(run, kinds=("adapted",))
    theta_meta = checkpoints.read_meta(checkpoints.resolve_model(theta))
    meta["settings"]["card"] = {
        "theta_iterations": theta_meta["settings"]["iterations"],
        "content": ship_theta.content_sources(cfg.data.content) if cfg.data.content != "embedded" else ["embedded"],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "float16_max_output_change": ship_theta.float16_change(params, checkpoints.resampling(meta)),
        "shipped": datetime.date.today().isoformat(),
    }
    checkpoints.save_model(out, ship_theta.compact(params), meta, force=True)
    return meta


def held_out_losses(names, cfg, models_dir, start=adapt.DEFAULT_THETA):
    """{name: {"theta", "shipped": held-out perceptual loss (eq. 4 at cfg.data.content_size px,
    style at cfg.data.style_size, with the style layers' factors each model was adapted with)}}
    on the fixed batch `adapt.held_out_batch(cfg)` of cfg.data.content's val split; "theta": the theta `start`."""
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    held_out = adapt.held_out_batch(cfg)
    weights = losses.weights_of(cfg)
    theta, theta_meta = checkpoints.load_model(start, kinds=("theta",))
    out = {}
    for name in names:
        style = adapt.load_style(f"{data.EMBEDDED_PREFIX}{name}", cfg.data.style_size)[0]
        shipped, meta = checkpoints.load_model(Path(models_dir) / name, kinds=("adapted",))
        own = adapt.with_layer_weights(vgg, tuple((meta.get("vgg") or {}).get("layer_weights") or ()))  # its objective
        grams = adapt.style_targets(own, style, weights)
        out[name] = {k: float(adapt.evaluate(p, own, grams, held_out, weights=weights,
                                             resampling=checkpoints.resampling(m))["loss"])
                     for k, p, m in (("theta", theta, theta_meta), ("shipped", shipped, meta))}
    return out


def warmup_text(settings):
    """How the card names the adaptation's warmup (`adapt --warmup`; none in styles adapted before it)."""
    n = settings.get("warmup", 0)
    return f", reached by a linear warmup over the first {n} steps: a deviation, docs/deviations.md" if n else ""


def write_card(path, names, cfg, models_dir, start=adapt.DEFAULT_THETA):
    """docs/styles_card.md: the shipped styles' settings and held-out losses (`held_out_losses`)."""
    found = held_out_losses(names, cfg, models_dir, start)
    rows = []
    for name in names:
        s = checkpoints.read_meta(Path(models_dir) / name)["settings"]
        c = s["card"]
        rows.append(f"| {name} | {s['steps']} | {s['batch_size']} | {s['size']} | {s['style_size']} | "
                    f"{found[name]['theta']:.3g} | {found[name]['shipped']:.3g} | "
                    f"{1 - found[name]['shipped'] / found[name]['theta']:.0%} | {s['seconds'] / 60:.0f} min | "
                    f"{c['float16_max_output_change'] * 255:.3f}/255 |")
    first_meta = checkpoints.read_meta(Path(models_dir) / names[0])
    first = first_meta["settings"]
    lines = [
        "# The shipped styles", "",
        "`metastyle_jax/models/NAME`, used by `python -m metastyle_jax.stylize --style NAME`: the shipped theta "
        f"(iteration {first['card']['theta_iterations']:,}) adapted to each shipped painting by the `adapt` "
        f"command's own code (Adam lr 1e-3 on every parameter{warmup_text(first)}, {first['size']} px content crops, "
        f"{first['style_size']} px style; the paper's section 5.2: 256 and 512), with the "
        f"{(first_meta.get('vgg') or {}).get('source', 'hed')} VGG16 (docs/model.md), "
        + ("its style layers re-weighted for each painting to equal shares at step 0 (`loss.layer_balance`), "
           if first.get("layer_balance") == "step0" else "") +
        f"{vgg_weights.style_view(first_meta.get('vgg') or {})}, content weight alpha {first['alpha']:g}, total "
        f"variation {first['tv']:g} (configs/adapt.py). "
        "Deviation, for the build machine's time: batches "
        "of 2 content crops, where the paper has 4. "
        + ("" if (first['size'], first['style_size']) == (256, 512) else
           "Deviation, for the pictures: the smaller sizes (at 256 and 512 px ImageNet VGG16's style term draws a "
           "heavy 4-pixel hatching; benchmarks/results/objective_study.md). ") +
        f"Convolutions: {first.get('dtype', 'float32')} (`--dtype`; bfloat16 runs them through oneDNN with float32 "
        "accumulation). "
        f"Content photos: `{first['content']}`. Machine: {first['card']['machine']}; jax {first['card']['jax']}. "
        "Written by `python -m benchmarks.ship_styles`; the losses below by `python -m benchmarks.ship_styles "
        "--stored-runs`. Adaptation times are wall times on a CPU that other jobs shared.", "",
        f"Held-out loss: eq. 4 on {cfg.eval_batch} photos of the validation split of `{cfg.data.content}` (never "
        f"shown to the adaptation), {cfg.data.content_size} px, stylized by theta itself and by the shipped model.", "",
        "| style | steps | batch | px | style px | held-out loss, theta | shipped | lower by | adaptation time | "
        "float16 moves the output by |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, "",
        "![gallery](gallery.jpg)", "",
    ]
    Path(path).write_text("\n".join(lines))
    return found


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m benchmarks.ship_styles", description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", choices=data.PAINTINGS, default=list(data.PAINTINGS))
    p.add_argument("--content", default="runs/photos" if Path("runs/photos").is_dir() else "embedded",
                   help="content images (default runs/photos where benchmarks/get_photos.sh made it)")
    p.add_argument("--steps", type=int, default=200, help="Adam steps (default 200, the paper's)")
    p.add_argument("--batch-size", type=int, default=2, help="content crops per step (default 2: the paper's 4 "
                   "takes about 10 s a step at 256 px on a 2-core CPU, 2.7 h for the five; deviation)")
    p.add_argument("--size", type=int, default=256, help="content crop side, px (default 256, the paper's)")
    p.add_argument("--style-size", type=int, default=512, help="painting side, px (default 512, the paper's)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="the adaptation's convolutions (configs/adapt.py's dtype; bfloat16: oneDNN, mixed precision)")
    p.add_argument("--theta", default=adapt.DEFAULT_THETA, help="the theta to adapt (default: the shipped one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further override of configs/adapt.py, e.g. loss.alpha=5 (repeatable)")
    p.add_argument("--workdir", default="runs/styles", help="where the float32 adapted models go")
    p.add_argument("--out", default=str(checkpoints.MODELS_DIR), help="the package's model directory")
    p.add_argument("--stored-runs", action="store_true", help="no adaptation: store the adapted models already in "
                   "--workdir and write the card")
    args = p.parse_args(argv)
    cfg = config.load("adapt", [f"content={args.content}", f"steps={args.steps}", f"size={args.size}",
                                f"style_size={args.style_size}", f"batch_size={args.batch_size}",
                                f"dtype={args.dtype}", *args.set])
    for name in args.names:
        run = Path(args.workdir) / name
        if not args.stored_runs:
            adapt.adapt_to_painting(cfg, f"{data.EMBEDDED_PREFIX}{name}", run, args.theta, force=True)
        meta = store(run, cfg, Path(args.out) / name, args.theta)
        s = meta["settings"]
        print(f"{name}: loss {s['final_loss']:.4g}, held-out {s['final_eval_loss']}, {s['seconds']:.0f} s, "
              f"float16 change {s['card']['float16_max_output_change'] * 255:.3f}/255 -> {Path(args.out) / name}",
              flush=True)
    shipped = [n for n in data.PAINTINGS if (Path(args.out) / n / "meta.json").is_file()]
    shipping = Path(args.out).resolve() == checkpoints.MODELS_DIR.resolve()
    card = DOCS / "styles_card.md" if shipping else Path(args.out) / "styles_card.md"
    for name, loss in write_card(card, shipped, cfg, args.out, args.theta).items():
        print(f"{name}: held-out loss {loss['theta']:.4g} from theta, {loss['shipped']:.4g} shipped")


if __name__ == "__main__":
    cli.run(main)
