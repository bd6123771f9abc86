"""Wall time of fast adaptation at the paper's sizes: 256 px content batches of 4, the style at 512 px.

    python -m benchmarks.adapt_time [--steps 200] [--model THETA] [--style embedded:the_scream]

Runs `adapt.adapt` (the loop the CLI runs, held-out evaluation off) with the HED VGG16 and times
every step; the first includes compilation. Where `--steps` is under 200, the 200-step figures are
extrapolated from the median step time and say so. Writes benchmarks/results/adapt_<platform>.json.
"""

import argparse
import os
import time

import jax
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import adapt, checkpoints, data, transformer, vgg_weights

PAPER_STEPS = 200


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=PAPER_STEPS, help="steps to time (default 200)")
    p.add_argument("--model", help="theta checkpoint (default: an untrained theta, random initialization)")
    p.add_argument("--style", default="embedded:the_scream")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--name", help="result file name (default adapt_<platform>)")
    args = p.parse_args()

    if args.model:
        params, _ = checkpoints.load_model(args.model, kinds=("theta",))
        theta = f"meta-trained theta {args.model}"
    else:
        params = transformer.init_params(jax.random.key(0), 16)
        theta = "untrained theta (transformer.init_params(key(0))): no meta-trained theta exists yet"
    vgg = vgg_weights.load_vgg("hed")
    style, style_name, style_sha = adapt.load_style(args.style, args.style_size)
    content = data.ContentData("embedded", "train", args.size, seed=0)
    load = os.getloadavg()
    t0 = time.perf_counter()
    _, hist = adapt.adapt(params, vgg, style, content, args.steps, batch_size=args.batch_size,
                          eval_every=0, progress=lambda n, loss: print(f"step {n}: loss {loss:.4g}", flush=True))
    total = time.perf_counter() - t0
    sec = hist["step_seconds"]
    per_step = float(np.median(sec[1:])) if len(sec) > 1 else float(sec[0])
    measured_all = args.steps >= PAPER_STEPS
    figures = {
        "what": "fast adaptation, adapt.adapt (eq. 8), Adam 1e-3, held-out evaluation off",
        "theta": theta, "style": style_name, "style_sha256": style_sha, "vgg": vgg_weights.describe(vgg),
        "content": "embedded (scikit-image photos, train split), random crops",
        "content_size": args.size, "style_size": args.style_size, "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "first_step_incl_compilation_s": float(sec[0]),
        "compilation_s_estimate": float(sec[0]) - per_step,
        "per_step_median_s": per_step, "per_step_mean_s": float(np.mean(sec[1:])) if len(sec) > 1 else None,
        "measured_total_s": total,
        "adapt_200_steps_excl_compilation_s": float(np.sum(sec[1:PAPER_STEPS]) + per_step) if measured_all
        else PAPER_STEPS * per_step,
        "adapt_200_steps_incl_compilation_s": float(np.sum(sec[:PAPER_STEPS])) if measured_all
        else float(sec[0]) + (PAPER_STEPS - 1) * per_step,
        "200_step_figures": "measured" if measured_all else f"extrapolated from {args.steps} steps (median step)",
        "loss_first_last": [float(hist["loss"][0]), float(hist["loss"][-1])],
        "load_average_at_start": list(load),
        "paper": "24 s for 200 steps on a Titan Xp (section 5.2)",
    }
    path = write_result(args.name or f"adapt_{jax.devices()[0].platform}", figures)
    print(f"wrote {path}")
    for k in ("first_step_incl_compilation_s", "per_step_median_s", "adapt_200_steps_excl_compilation_s",
              "adapt_200_steps_incl_compilation_s", "200_step_figures"):
        print(f"{k}: {figures[k]}")


if __name__ == "__main__":
    main()
