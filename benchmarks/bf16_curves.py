"""Do bfloat16 convolutions (oneDNN, `dtype=bfloat16`) train as float32 does? Both loss curves, one run each.

    python -m benchmarks.bf16_curves [--adapt-steps 200] [--meta-steps 100] [--label cpu]

- Adaptation (eq. 8): `adapt.adapt` from the shipped theta to The Starry Night, 200 steps of 4 embedded
  photos at 128 px, style 256 px, held-out loss every 20 steps; the same batches in both dtypes.
- Meta-training (eq. 7): `python -m metastyle_jax.train --config metastyle:cpu2` for 100 iterations at 64 px
  from a random theta (seed 0; bash benchmarks/get_photos.sh first, styles from ../shared/styles/train),
  in a temporary workdir per dtype; its metrics.jsonl gives the curves.
Writes benchmarks/results/bf16_curves_<label>.{json,png}: per-step losses and the largest relative gap between
the curves (smoothed over 10 steps). The runs are sequential, so their seconds per step are no speed comparison
(`benchmarks.cpu_speed` interleaves the dtypes for that).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, write_result
from metastyle_jax import adapt, checkpoints, data, losses, onednn, vgg_weights

DTYPES = ("float32", "bfloat16")


def smooth(values, n=10):
    """The running mean over `n` steps (shorter at the start)."""
    c = np.cumsum(np.insert(np.asarray(values, float), 0, 0.0))
    return np.array([(c[i + 1] - c[max(0, i + 1 - n)]) / min(n, i + 1) for i in range(len(values))])


def gap(a, b):
    """The largest relative difference of the smoothed curves a and b."""
    a, b = smooth(a), smooth(b)
    return float(np.max(np.abs(a - b) / np.abs(a)))


def adaptation(steps):
    """{dtype: {"loss", "eval_step", "eval_loss", "seconds_per_step"}} of `steps` adaptation steps."""
    vgg = vgg_weights.load_vgg()
    theta, _ = checkpoints.load_model("theta", kinds=("theta",))
    style = data.load_image_spec("embedded:starry_night")
    from metastyle_jax import images
    style = images.resize(style, size=(256, 256))
    held_out = data.ContentData("embedded", "val", 128, seed=0).batch_at(0, 4)
    out = {}
    for dtype in DTYPES:
        content = data.ContentData("embedded", "train", 128, seed=0)
        _, h = adapt.adapt(theta, vgg, style, content, steps, batch_size=4, weights=losses.LossWeights(tv=10.0),
                           eval_contents=held_out, eval_every=20, dtype=dtype)
        out[dtype] = {"loss": h["loss"].tolist(), "eval_step": h["eval_step"].tolist(),
                      "eval_loss": h["eval_loss"].tolist(),
                      "seconds_per_step": float(np.median(h["step_seconds"][1:]))}
        print(f"adapt {dtype}: final loss {h['loss'][-1]:.4g}, held-out {h['eval_loss'][-1]:.4g}, "
              f"{out[dtype]['seconds_per_step']:.3g} s/step", flush=True)
    return out


def meta_training(steps):
    """{dtype: {"inner_loss", "outer_loss", "steps", "seconds_per_step"}} of `steps` meta-iterations."""
    out = {}
    for dtype in DTYPES:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp) / "run"
            command = [sys.executable, "-m", "metastyle_jax.train", "--config", "metastyle:cpu2", "--workdir",
                       str(workdir), "--set", f"num_steps={steps}", "--set", f"dtype={dtype}",
                       "--set", "data.content_size=64", "--set", "data.style_size=64", "--set", "log_every=1",
                       "--set", "eval_every=0", "--set", "sample_every=0", "--set", f"checkpoint_every={steps}"]
            t0 = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        rows = [r for r in rows if "outer_loss" in r]
        out[dtype] = {"steps": [r["step"] for r in rows], "inner_loss": [r["inner_loss"] for r in rows],
                      "outer_loss": [r["outer_loss"] for r in rows],
                      "seconds_per_step": float(np.median(np.diff([r["time"] for r in rows])))
                      if "time" in rows[0] else seconds / steps}
        print(f"meta {dtype}: final outer loss {rows[-1]['outer_loss']:.4g}, "
              f"{out[dtype]['seconds_per_step']:.3g} s/iteration", flush=True)
    return out


def plot(path, adapt_curves, meta_curves):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for dtype, style in zip(DTYPES, ("-", "--")):
        a = adapt_curves[dtype]
        axes[0].plot(smooth(a["loss"]), style, label=f"{dtype} train batch (10-step mean)")
        axes[0].plot(a["eval_step"], a["eval_loss"], style, marker="o", markersize=3, label=f"{dtype} held-out")
        m = meta_curves[dtype]
        axes[1].plot(m["steps"], smooth(m["outer_loss"]), style, label=f"{dtype} outer (10-step mean)")
    axes[0].set(title="adaptation: theta -> The Starry Night, 128 px", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="meta-training from random theta, 64 px", xlabel="iteration", ylabel="loss", yscale="log")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapt-steps", type=int, default=200)
    p.add_argument("--meta-steps", type=int, default=100)
    p.add_argument("--label", default="cpu")
    args = p.parse_args(argv)
    if onednn.status() is not None:
        sys.exit(f"error: the bfloat16 path is unavailable: {onednn.status()}")
    adapt_curves = adaptation(args.adapt_steps)
    meta_curves = meta_training(args.meta_steps)
    figures = {
        "engine": onednn.matrix_engine(),
        "adapt": adapt_curves, "meta": meta_curves,
        "adapt_largest_gap": gap(adapt_curves["float32"]["loss"], adapt_curves["bfloat16"]["loss"]),
        "adapt_final_eval": {d: adapt_curves[d]["eval_loss"][-1] for d in DTYPES},
        "meta_largest_gap": gap(meta_curves["float32"]["outer_loss"], meta_curves["bfloat16"]["outer_loss"]),
    }
    plot(RESULTS / f"bf16_curves_{args.label}.png", adapt_curves, meta_curves)
    path = write_result(f"bf16_curves_{args.label}", figures)
    print(f"largest smoothed gap: adaptation {figures['adapt_largest_gap']:.1%}, meta-training "
          f"{figures['meta_largest_gap']:.1%} -> {path}")


if __name__ == "__main__":
    main()
