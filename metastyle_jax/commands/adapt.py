"""`python -m metastyle_jax.adapt`: adapt theta to one painting (eq. 8, `metastyle_jax.adapt`)."""

import numpy as np

from metastyle_jax import adapt
from metastyle_jax.commands import cli


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m metastyle_jax.adapt", description=adapt.__doc__.splitlines()[0])
    start = p.add_mutually_exclusive_group()
    start.add_argument("--model", help="theta checkpoint to adapt: a path or a shipped model's name (default: theta, "
                       "the meta-trained theta shipped in the package)")
    start.add_argument("--random-init", action="store_true",
                       help="start from random initialization instead of theta: Johnson et al.")
    p.add_argument("--style", required=True, help="style image: a path or embedded:NAME")
    p.add_argument("--out", required=True, help="adapted checkpoint (a directory); <out>_loss.png, "
                   "<out>_preview.png, <out>_metrics.jsonl and <out>_tb/ (TensorBoard) go beside it")
    p.add_argument("--content", help="content images: a folder, tfds:NAME[:split] or embedded (default)")
    p.add_argument("--steps", type=int, help="Adam steps (default 200, as the paper)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, help="raise the learning rate linearly over the first N steps (default 20; "
                   "0: none, as the paper)")
    p.add_argument("--batch-size", type=int, help="content images per step (default 4)")
    p.add_argument("--size", type=int, help="content crop side in px (default 256)")
    p.add_argument("--style-size", type=int, help="style side in px (default 512)")
    p.add_argument("--only-in", action="store_true", default=None,
                   help="update only the instance-norm scale and shift (the official --only-in 1)")
    p.add_argument("--eval-every", type=int, help="held-out loss every N steps, 0 for never (default 20)")
    p.add_argument("--zoom", type=float, help="crop the content at random zooms up to this factor, so that the "
                   "network also learns the finer pixel scale of photos stylized larger (default 1: none)")
    p.add_argument("--seed", type=int, help="content order and crops; the initialization without --model")
    p.add_argument("--allow-gray", action="store_true", help="accept a grayscale style image")
    cli.add_config_args(p, "adapt")
    args = p.parse_args(argv)
    cfg = cli.config_from_args(args, ("content", "steps", "lr", "warmup", "batch_size", "size", "style_size", "only_in",
                                      "eval_every", "seed", "zoom"))
    model = None if args.random_init else (args.model or adapt.DEFAULT_THETA)
    r = adapt.adapt_to_painting(cfg, args.style, args.out, model, force=args.force, allow_gray=args.allow_gray)
    hist, settings = r["history"], r["meta"]["settings"]
    rest = hist["step_seconds"][1:]
    per_step = f", then {np.mean(rest):.3g} s/step" if len(rest) else ""
    final_eval = settings["final_eval_loss"]
    held = f" (held-out {hist['eval_loss'][0]:.4g} -> {final_eval:.4g})" if final_eval is not None else ""
    print(f"adapted {'from ' + str(model) if model else 'from random initialization'} to {settings['style']} "
          f"in {settings['seconds']:.1f} s ({cfg.num_steps} steps; first step with compilation "
          f"{hist['step_seconds'][0]:.1f} s{per_step}); final loss {settings['final_loss']:.4g}{held} -> "
          f"{r['out']}, {r['curve'].name}, {r['preview'].name}, {r['metrics'].name}, {r['tensorboard'].name}")
