"""Figure 7: Gatys et al. started from the content image vs from the style-neutral image M(I_c; theta).

    python -m benchmarks.fig7 --theta CKPT [--content embedded:chelsea] [--style embedded:the_scream]
        [--steps 800] [--size 256] [--snapshots 0,150,800] [--out-dir benchmarks/results]

Both runs optimize the pixels with `metastyle_jax.gatys` (Adam, configs/gatys.py: lr 0.02, 800 steps)
against the same targets; only the starting image differs. Writes <out-dir>/fig7_<platform>.json (the
loss after every step of both runs, the losses at the snapshot steps, and how many steps the content-started
run needs to reach the other's loss at each snapshot), ..._loss.png and ..._grid.png (the images at the
snapshot steps, from the content image above, from M(I_c; theta) below, as the paper). M(I_c; theta) is the
picture `stylize` makes: the network averaged over its grid shifts (--phases 1: the raw network).
"""

import sys
import time

import numpy as np

from benchmarks import figures
from metastyle_jax import data, gatys, images, losses, plotting, transformer, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

PAPER_SNAPSHOTS = (0, 150, 800)
ARMS = {"content_init": "Gatys et al. from the content image",
        "neutral_init": "Gatys et al. from M(I_c; theta)"}


def optimize_with_snapshots(vgg, content, style, init, steps, *, lr, weights, snapshots=(), chunk=10,
                            progress=None):
    """`gatys.optimize` from `init` (H, W, 3), keeping the image at every step of `snapshots`.

    vgg: a VGGWeights; content, style: the images `gatys.optimize` takes. Returns ({"total"|"content"|"style":
    (steps,) losses, each before that step's update}, {step: image (H, W, 3)} for `snapshots`, the final
    image (H, W, 3), seconds). `progress(n_done, loss)` is called after every chunk.
    """
    shots = {}

    def keep(done, image):
        if done in snapshots:
            shots[done] = image

    t0 = time.perf_counter()
    final, curves = gatys.optimize(vgg, content, style, init, steps, lr, weights, chunk=chunk, progress=progress,
                                   stops=snapshots, hook=keep)
    return ({k: np.asarray(v, np.float64) for k, v in curves.items()}, shots, final,
            time.perf_counter() - t0)


def steps_to_reach(curve, level):
    """The first step k with curve[k] <= level, or None if the curve never gets there."""
    hit = np.flatnonzero(np.asarray(curve) <= level)
    return int(hit[0]) if hit.size else None


def start_style_terms(vgg, content, starts, style_size, weights):
    """{arm: {painting: style term of eq. 4}} of each start image (H, W, 3) against each shipped painting at
    `style_size` px, and its mean over the five under "mean": how style-neutral each start is (the paper's reason
    for starting from M(I_c; theta))."""
    terms = {arm: {} for arm in starts}
    for name in data.PAINTINGS:
        painting = data.load_image_spec(f"embedded:{name}", max_side=style_size)
        grams = losses.style_grams(vgg, painting[None], weights.style_layers)  # gatys.targets' Grams, no content
        for arm, image in starts.items():
            terms[arm][name] = figures.stylized_loss(vgg, image[None], content[None], grams, weights)["style"]
    return {arm: t | {"mean": float(np.mean(list(t.values())))} for arm, t in terms.items()}


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.fig7", description=__doc__.splitlines()[0])
    p.add_argument("--theta", required=True, help="meta-trained theta checkpoint (python -m metastyle_jax.train)")
    p.add_argument("--content", default="embedded:chelsea", help="content image: a path or embedded:NAME "
                   "(default embedded:chelsea, a photo held out of meta-training on the embedded photos)")
    p.add_argument("--style", default="embedded:the_scream", help="style image: a path or embedded:NAME "
                   "(default embedded:the_scream)")
    p.add_argument("--steps", type=int, help="optimization steps per run (default 800, the paper)")
    p.add_argument("--size", type=int, help="longer side of the content image in px (default 256)")
    p.add_argument("--style-size", type=int, help="longer side of the style image in px (default 256)")
    p.add_argument("--lr", type=float, help="Adam learning rate on the pixels (default 0.02)")
    p.add_argument("--snapshots", help="steps whose images the grid shows (default 0,150,800, scaled to --steps)")
    figures.add_phases_arg(p, "M(I_c; theta)")
    figures.add_output_args(p, "fig7")
    cli.add_config_args(p, "gatys")
    args = p.parse_args(argv)
    cfg = cli.config_from_args(args, ("steps", "size", "style_size", "lr"))
    if cfg.num_steps < 1 or cfg.log_every < 1:
        raise UserError("--steps and log_every must be at least 1")
    if cfg.data.content_size < 16 or cfg.data.style_size < 16:
        raise UserError("--size and --style-size must be at least 16 px")
    if not cfg.lr > 0:
        raise UserError("--lr must be positive")
    if args.snapshots is None:
        args.snapshots = ",".join(str(round(s * cfg.num_steps / PAPER_SNAPSHOTS[-1])) for s in PAPER_SNAPSHOTS)
    return args, cfg


def main(argv=None):
    args, cfg = parse_args(argv)
    snapshots = figures.snapshot_steps(args.snapshots, cfg.num_steps)
    paths = figures.output_paths(args, "fig7", (".json", "_loss.png", "_grid.png"))
    theta, label = figures.load_theta(args.theta)
    content = data.load_image_spec(args.content, max_side=cfg.data.content_size)
    style = data.load_image_spec(args.style, max_side=cfg.data.style_size)
    vgg = cli.load_vgg_from_args(args, cfg)
    figures.warn_vgg_mismatch(label, vgg)
    weights = losses.weights_of(cfg)
    _, grams = gatys.targets(vgg, content, style, weights)
    phases = transformer.phases_for(label["resampling"], args.phases)
    starts = {"content_init": content, "neutral_init": np.asarray(transformer.stylize_batch(
        theta, content[None], resampling=label["resampling"], phases=phases))[0]}

    neutrality = start_style_terms(vgg, content, starts, cfg.data.style_size, weights)
    from tqdm import tqdm
    runs = {}
    for arm, init in starts.items():
        with tqdm(total=cfg.num_steps, desc=f"fig7 {arm}", unit="step", file=sys.stderr) as bar:
            runs[arm] = optimize_with_snapshots(
                vgg, content, style, init, cfg.num_steps, lr=cfg.lr, weights=weights, snapshots=snapshots,
                chunk=cfg.log_every, progress=lambda n, loss: (bar.update(n), bar.set_postfix(loss=f"{loss:.4g}")))

    def loss_of(image):
        return figures.stylized_loss(vgg, image[None], content[None], grams, weights)

    at = {arm: {s: loss_of(shots[s]) for s in snapshots} for arm, (_, shots, _, _) in runs.items()}
    final = {arm: loss_of(r[2])["loss"] for arm, r in runs.items()}
    content_curve = runs["content_init"][0]["total"]
    catch_up = {s: steps_to_reach(np.append(content_curve, final["content_init"]), at["neutral_init"][s]["loss"])
                for s in snapshots}
    title = f"Fig. 7: Gatys et al., {cfg.data.content_size} px; {figures.theta_title(label)}"
    plotting.loss_curves(paths["_loss.png"], {ARMS[a]: np.append(r[0]["total"], final[a]) for a, r in runs.items()},
                         title=title, xlabel="step")
    images.save_image(paths["_grid.png"], figures.comparison_grid(
        [(ARMS[arm], [(f"step {s}", shots[s]) for s in snapshots]) for arm, (_, shots, _, _) in runs.items()]))
    result = {
        "what": "Fig. 7: Gatys et al. (Adam on the pixels) from the content image and from the style-neutral "
                "image M(I_c; theta), same targets, steps and learning rate",
        "theta": label, "content": args.content, "style": args.style, "vgg": vgg_weights.describe(vgg),
        "settings": {"steps": cfg.num_steps, "lr": cfg.lr, "size": cfg.data.content_size,
                     "style_size": cfg.data.style_size, "alpha": cfg.loss.alpha, "beta": cfg.loss.beta,
                     "content_shape": list(content.shape), "neutral_phases": phases,
                     "optimizer": "Adam on the pixels, clipped to [0, 1] (configs/gatys.py)"},
        "snapshot_steps": snapshots,
        "curves": {arm: {k: v.tolist() for k, v in r[0].items()} for arm, r in runs.items()},
        "curve_note": "curves[arm][k][i] is the loss before update i+1, i.e. of the image after i updates",
        "loss_at_snapshots": {arm: {str(s): v for s, v in a.items()} for arm, a in at.items()},
        "final_loss": final,
        "final_loss_ratio_content_over_neutral": final["content_init"] / final["neutral_init"],
        "content_init_steps_to_reach_neutral_init_at": {str(s): v for s, v in catch_up.items()},
        "seconds": {arm: r[3] for arm, r in runs.items()},
        "start_style_terms": neutrality,
        "start_style_terms_note": "the style term of eq. 4 of each start against each shipped painting, and the mean",
        "files": {"loss_png": paths["_loss.png"].name, "grid_png": paths["_grid.png"].name},
    }
    figures.write_json(paths[".json"], result)
    print(f"style term at the start, mean over the five paintings: photo {neutrality['content_init']['mean']:.4g}, "
          f"M(I_c; theta) {neutrality['neutral_init']['mean']:.4g}")
    print(f"loss after {cfg.num_steps} steps: from the content image {final['content_init']:.4g}, from M(I_c; theta) "
          f"{final['neutral_init']:.4g} -> {paths['.json']}, {paths['_loss.png'].name}, {paths['_grid.png'].name}")
    return result


if __name__ == "__main__":
    cli.run(main)
