"""Figure 6: fast adaptation from theta (MetaStyle) vs training from random initialization (Johnson et al.).

    python -m benchmarks.fig6 --theta CKPT [--style embedded:the_scream] [--steps 200] [--size 256]
        [--eval-every 10] [--snapshots 0,50,100,200] [--out-dir benchmarks/results]

Both arms take the same number of Adam updates (eq. 8, configs/adapt.py: lr 1e-3, batches of 4 content
crops) on the same style, the same content batches and the same held-out batch; only the starting weights
differ (theta, or transformer.init_params(key(seed)) as `metastyle_jax.adapt --random-init`). Records the
perceptual loss on the held-out content every --eval-every updates and the stylized first held-out image at
the snapshot steps: the picture `stylize` makes, averaged over the network's grid shifts (--phases 1: the raw
network). `--set warmup=N` raises both arms' learning rate over their first N updates (configs/adapt.py).
Writes <out-dir>/fig6_<platform>.json, ..._loss.png (both curves) and ..._grid.png
(Johnson et al. above, MetaStyle below, as the paper; stylized photos only, never the painting).
"""

import sys
import time

import jax
import numpy as np

from benchmarks import figures
from metastyle_jax import adapt, config, images, losses, plotting, transformer, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

DEFAULT_WEIGHTS = losses.LossWeights()
ARMS = {"johnson": "Johnson et al. (random init)", "metastyle": "MetaStyle (from theta)"}


def adapt_with_snapshots(params, vgg, style, content, held_out, steps, *, lr, batch_size, only_in=False,
                         weights=DEFAULT_WEIGHTS, eval_every=10, snapshots=(), progress=None,
                         resampling="nearest", phases=1, warmup=0):
    """`adapt.adapt` from `params` (eq. 8: `steps` updates on content.batch_at(step, batch_size), the held-out
    loss at step 0, every `eval_every` steps and after the last), keeping M(held_out[:1]) after each step in
    `snapshots`.

    vgg: a VGGWeights; style: (S, S, 3); held_out: (E, S, S, 3). Returns {"eval_step" (K,),
    "eval_loss"|"eval_content"|"eval_style" (K,), "train_loss" (steps,), "snapshots" {step: (S, S, 3)},
    "seconds"}. `progress(step, loss)` is called after every step; `resampling`: the network's (theta's);
    `phases`: the grid shifts each snapshot averages (transformer.stylize_batch); `warmup`: adapt.optimizer's.
    """
    shots = {}

    def keep(done, p):
        if done in snapshots:
            shots[done] = np.asarray(transformer.stylize_batch(p, held_out[:1], resampling=resampling,
                                                               phases=phases))[0]

    t0 = time.perf_counter()
    _, h = adapt.adapt(params, vgg, style, content, steps, lr=lr, batch_size=batch_size, only_in=only_in,
                       weights=weights, eval_contents=held_out, eval_every=eval_every, progress=progress, hook=keep,
                       resampling=resampling, warmup=warmup)
    return {"eval_step": h["eval_step"].tolist(), "eval_loss": h["eval_loss"].tolist(),
            "eval_content": h["eval_content"].tolist(), "eval_style": h["eval_style"].tolist(),
            "train_loss": h["loss"].tolist(), "snapshots": shots, "seconds": time.perf_counter() - t0}


def judge_arms(runs, photo, painting, step):
    """picture_quality's measures of each arm's snapshot at `step` (the held-out photo against the painting)."""
    from benchmarks import picture_quality
    judge = picture_quality.Judge()
    return {arm: judge.score(np.asarray(photo), np.asarray(painting), np.asarray(run["snapshots"][step]))
            for arm, run in runs.items()}


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.fig6", description=__doc__.splitlines()[0])
    p.add_argument("--theta", required=True, help="meta-trained theta checkpoint (python -m metastyle_jax.train)")
    p.add_argument("--style", default="embedded:the_scream", help="style image: a path or embedded:NAME "
                   "(default embedded:the_scream)")
    p.add_argument("--steps", type=int, help="updates per arm (default 200, the paper)")
    p.add_argument("--size", type=int, help="content crop side in px (default 256)")
    p.add_argument("--style-size", type=int, help="style side in px (default 512)")
    p.add_argument("--eval-every", type=int, default=10, help="held-out loss every N updates (default 10)")
    p.add_argument("--snapshots", help="updates after which the grid shows the stylized held-out image "
                   "(default 0, steps/4, steps/2, steps: 0,50,100,200)")
    p.add_argument("--lr", type=float, help="Adam learning rate of both arms (default 1e-3)")
    p.add_argument("--batch-size", type=int, help="content crops per update (default 4)")
    p.add_argument("--seed", type=int, help="content order and crops, and Johnson et al.'s initialization "
                   "(default 0)")
    figures.add_phases_arg(p, "each snapshot")
    p.add_argument("--judge", action="store_true", help="also score each arm's last snapshot with "
                   "benchmarks.picture_quality's measures (needs the judge extra)")
    figures.add_output_args(p, "fig6")
    cli.add_config_args(p, "adapt")
    args = p.parse_args(argv)
    cfg = cli.config_from_args(args, ("steps", "size", "style_size", "eval_every", "lr", "batch_size", "seed"))
    if cfg.num_steps < 1 or cfg.batch_size < 1 or cfg.eval_every < 1 or cfg.eval_batch < 1:
        raise UserError("--steps, --batch-size, --eval-every and eval_batch must be at least 1")
    if cfg.data.content_size < 16 or cfg.data.style_size < 16:
        raise UserError("--size and --style-size must be at least 16 px")
    if not cfg.lr > 0 or cfg.seed < 0:
        raise UserError("--lr must be positive and --seed non-negative")
    adapt.warmup_of(cfg)
    return args, cfg


def main(argv=None):
    args, cfg = parse_args(argv)
    snapshots = figures.snapshot_steps(args.snapshots, cfg.num_steps)
    paths = figures.output_paths(args, "fig6", (".json", "_loss.png", "_grid.png"))
    theta, label = figures.load_theta(args.theta)
    style, style_name, style_sha = adapt.load_style(args.style, cfg.data.style_size)
    content = adapt.content_data(cfg)
    held_val = adapt.content_data(cfg, "val")
    held_out = held_val.batch_at(0, cfg.eval_batch)  # the batch adapt.held_out_batch takes
    vgg = cli.load_vgg_from_args(args, cfg)
    figures.warn_vgg_mismatch(label, vgg)
    weights = losses.weights_of(cfg)
    if adapt.layer_balance(cfg) == "step0":  # theta's balance, one objective for both arms
        vgg = adapt.balance_at_step0(vgg, theta, content, style, weights, label["resampling"])
    starts = {"johnson": transformer.init_params(jax.random.key(cfg.seed), 16), "metastyle": theta}
    phases, warmup = transformer.phases_for(label["resampling"], args.phases), adapt.warmup_of(cfg)

    from tqdm import tqdm
    runs = {}
    for arm, start in starts.items():
        with tqdm(total=cfg.num_steps, desc=f"fig6 {arm}", unit="step", file=sys.stderr) as bar:
            runs[arm] = adapt_with_snapshots(
                start, vgg, style, content, held_out, cfg.num_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                only_in=cfg.only_in, weights=weights, eval_every=cfg.eval_every, snapshots=snapshots,
                progress=lambda n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4g}")),
                resampling=label["resampling"], phases=phases, warmup=warmup)

    final = {arm: run["eval_loss"][-1] for arm, run in runs.items()}
    judged = judge_arms(runs, held_out[0], style, max(snapshots)) if args.judge else None
    title = f"Fig. 6: {style_name}, {cfg.data.content_size} px; {figures.theta_title(label)}"
    plotting.loss_curves(paths["_loss.png"], {ARMS[a]: (r["eval_step"], r["eval_loss"]) for a, r in runs.items()},
                         title=title, xlabel="update step")
    grid = figures.comparison_grid([
        (ARMS[arm], [("held-out photo", held_out[0])] + [(f"step {s}", run["snapshots"][s]) for s in snapshots])
        for arm, run in runs.items()])
    images.save_image(paths["_grid.png"], grid)
    result = {
        "what": "Fig. 6: perceptual loss (eq. 4) on fixed held-out content during adaptation, from theta "
                "(MetaStyle) and from random initialization (Johnson et al.), same updates, style, batches, lr",
        "theta": label, "style": style_name, "style_sha256": style_sha, "vgg": vgg_weights.describe(vgg),
        "settings": {k: config.get_value(cfg, k) for k in ("steps", "lr", "batch_size", "size", "style_size", "alpha",
                                                             "beta", "only_in", "content", "crop", "seed",
                                                             "eval_every", "eval_batch", "loss.layer_balance", "warmup")}
        | {"snapshot_phases": phases},
        "held_out_pool": held_val.names,
        "johnson_init": f"transformer.init_params(jax.random.key({cfg.seed}))",
        "snapshot_steps": snapshots,
        "curves": {arm: {k: v for k, v in run.items() if k not in ("snapshots", "seconds")}
                   for arm, run in runs.items()},
        "seconds": {arm: run["seconds"] for arm, run in runs.items()},
        "initial_eval_loss": {arm: run["eval_loss"][0] for arm, run in runs.items()},
        "final_eval_loss": final,
        "final_loss_ratio_johnson_over_metastyle": final["johnson"] / final["metastyle"],
        "judge": judged,
        "files": {"loss_png": paths["_loss.png"].name, "grid_png": paths["_grid.png"].name},
    }
    figures.write_json(paths[".json"], result)
    for arm, scores in (judged or {}).items():
        print(f"{ARMS[arm]}, step {max(snapshots)}: " + ", ".join(f"{k} {v:.3g}" for k, v in scores.items()))
    print(f"held-out loss after {cfg.num_steps} updates: MetaStyle {final['metastyle']:.4g}, Johnson et al. "
          f"{final['johnson']:.4g} (ratio {result['final_loss_ratio_johnson_over_metastyle']:.3g}) -> "
          f"{paths['.json']}, {paths['_loss.png'].name}, {paths['_grid.png'].name}")
    return result


if __name__ == "__main__":
    cli.run(main)
