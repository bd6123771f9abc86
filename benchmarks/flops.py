"""FLOPs of one meta-iteration, one adaptation step and one stylization, and the fraction of peak achieved.

    python -m benchmarks.flops [--sizes 256 512] [--time] [--timings benchmarks/results/torch_vs_jax_gpu.json]

Counts come from XLA: `jax.jit(f).lower(...).compile().cost_analysis()["flops"]` (an FMA counts 2 FLOPs;
element-wise ops count too), for `outer.train_step` with configs/metastyle.py (256 px, 4 styles x 4
contents, T=1, exact second order), `adapt.adapt_step` (batch 4 at 256 px, Adam on every parameter) and
`transformer.apply` on one image at each of --sizes. The stylization count is cross-checked against
`stylize_conv_flops`, the analytic count of the network's convolutions (its docstring has the formula).
On the CPU, metastyle_jax/conv.py's convolutions compute one output row and column more than they keep
(`stylize_conv_flops(..., cpu_program=True)`), so XLA's CPU counts are a few percent above the network's. Writes
benchmarks/results/flops.json.

Achieved fraction of peak: with --time, each stylization is timed here (median of --runs after a warm-up);
with --timings, the JAX medians of a benchmarks.torch_vs_jax result at the same configuration are used for
the meta-iteration and the adaptation step (with --counts, their counts come from an earlier flops.json). Peaks: NVIDIA H100 SXM dense, bf16 989, TF32 495, FP32 67
TFLOP/s (H200: the same compute). Timings go into flops_<platform>.json, the counts alone into flops.json.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import environment, write_result
from metastyle_jax import adapt, config, losses, meta, outer, transformer, vgg16

# Dense peak TFLOP/s of an H100 SXM (H200: same compute); FP32 is the CUDA-core rate, TF32/bf16 tensor cores.
PEAKS_TFLOPS = {"h100_sxm_bf16": 989.0, "h100_sxm_tf32": 495.0, "h100_sxm_fp32": 67.0}

# (name, kernel, c_in, c_out, output side as a fraction of the input side): supplementary Table 1.
TRANSFORMER_CONVS = (
    ("conv1", 9, 3, 32, 1), ("conv2", 3, 32, 64, 1 / 2), ("conv3", 3, 64, 128, 1 / 4),
    *((f"res{i}.conv{j}", 3, 128, 128, 1 / 4) for i in range(1, 6) for j in (1, 2)),
    ("deconv1", 3, 128, 64, 1 / 2), ("deconv2", 3, 64, 32, 1), ("deconv3", 9, 32, 3, 1),
)


def stylize_conv_flops(h, w, batch=1, cpu_program=False):
    """Analytic FLOPs of the transformer's convolutions on `batch` images of h x w (multiples of 4):

        sum over layers of 2 * (h f) * (w f) * k^2 * c_in * c_out

    with f the layer's output side over the input side (1, 1/2, 1/4, ..., Table 1) and 2 FLOPs per
    multiply-add; = 307,584 FLOPs per pixel (20.2 GFLOP at 256 x 256). Bias, instance norm, ReLU,
    padding, upsampling and sigmoid are left out (element-wise: under 1% more). `cpu_program`: the count
    of the program the CPU runs, whose convolutions (metastyle_jax/conv.py) each compute one output row
    and column more than they keep, as XLA counts them (the kernel taps inside the input: per axis
    o k + k - 1 instead of o k, o the output side; +1.6% at 256 px)."""
    extra = lambda k: k - 1 if cpu_program else 0
    return batch * sum(2 * (h * f * k + extra(k)) * (w * f * k + extra(k)) * c_in * c_out
                       for _, k, c_in, c_out, f in TRANSFORMER_CONVS)


def vgg_conv_flops(h, w, batch=1):
    """Analytic FLOPs of VGG16's convolutions up to relu4_3 on `batch` images of h x w (multiples of 8):
    sum over conv layers of 2 * (h / 2^b) * (w / 2^b) * 9 * c_in * c_out, b the block index from 0."""
    total, c_in = 0, 3
    for b, widths in enumerate(vgg16.BLOCKS):
        for c_out in widths:
            total += 2 * (h / 2 ** b) * (w / 2 ** b) * 9 * c_in * c_out
            c_in = c_out
    return batch * total


def xla_flops(compiled):
    """The "flops" entry of a compiled function's XLA cost analysis (a dict, or a list of one per module)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])


def stylize_compiled(params, size):
    """transformer.apply on one (1, size, size, 3) image, compiled."""
    x = jnp.zeros((1, size, size, 3), jnp.float32)
    return jax.jit(transformer.apply).lower(params, x).compile(), x


def meta_compiled(cfg, vgg):
    """outer.train_step for `cfg` (random batch of its shapes), compiled; with its arguments."""
    s, b, n, ns = cfg.styles_per_batch, cfg.batch_size, cfg.data.content_size, cfg.data.style_size
    state = outer.init_state(cfg, 0)
    batch = {"train": jnp.zeros((s, b, n, n, 3)), "val": jnp.zeros((s, b, n, n, 3)), "style": jnp.zeros((s, ns, ns, 3))}
    hyper = meta.hyper_from_config(cfg)
    args = (meta.Bilevel(jax.device_put(vgg), meta.settings_from_config(cfg)), state, batch, hyper)
    return outer.train_step.lower(*args).compile(), args


def adapt_compiled(params, vgg, size, batch):
    """adapt.adapt_step on (batch, size, size, 3) contents, compiled; with its arguments."""
    grams = {k: jnp.zeros((1, c, c)) for k, c in zip(vgg16.LAYERS, (64, 128, 256, 512))}
    opt_state = adapt.optimizer(1e-3).init(params)
    args = (params, opt_state, jax.device_put(vgg), grams, jnp.zeros((batch, size, size, 3)))
    return adapt.adapt_step.lower(*args, weights=losses.LossWeights()).compile(), args


def achieved(flops, seconds):
    """{tflops, fraction of each peak} for `flops` done in `seconds`."""
    tflops = flops / seconds / 1e12
    return {"seconds": seconds, "achieved_tflops": tflops,
            "fraction_of_peak": {k: tflops / v for k, v in PEAKS_TFLOPS.items()}}


def time_compiled(compiled, args, runs):
    """Median seconds of `runs` calls of a compiled function after one warm-up, each waited for."""
    jax.block_until_ready(compiled(*args))
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        seconds.append(time.perf_counter() - t0)
    return float(np.median(seconds))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="stylization sides in px")
    p.add_argument("--meta-size", type=int, default=256, help="meta-iteration content side (default 256)")
    p.add_argument("--adapt-size", type=int, default=256, help="adaptation content side (default 256)")
    p.add_argument("--batch-size", type=int, default=4, help="contents per style / per adaptation step")
    p.add_argument("--styles", type=int, default=4, help="styles per meta-batch")
    p.add_argument("--time", action="store_true", help="time each stylization here (median of --runs)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--timings", help="a benchmarks.torch_vs_jax result: its JAX medians give the meta and "
                   "adaptation fractions of peak where its configuration is the one counted")
    p.add_argument("--counts", help="take the adaptation and meta-iteration counts from this flops.json instead "
                   "of compiling them again (they are device-independent; the meta compile is the slow one)")
    p.add_argument("--name", default="flops", help="result name for the counts (default flops)")
    args = p.parse_args(argv)
    if min(args.sizes + [args.meta_size, args.adapt_size, args.batch_size, args.styles, args.runs]) < 1:
        p.error("sizes, batch sizes, styles and runs must be positive")

    from metastyle_jax import vgg_weights
    vgg = vgg_weights.load_vgg("hed")
    params = transformer.init_params(jax.random.key(0), 16)
    counts, timings = {"stylize": {}}, {}
    for size in args.sizes:
        compiled, x = stylize_compiled(params, size)
        xla, analytic = xla_flops(compiled), stylize_conv_flops(size, size)
        counts["stylize"][str(size)] = {"xla_flops": xla, "analytic_conv_flops": analytic,
                                        "xla_over_analytic": xla / analytic}
        print(f"stylize {size} px: XLA {xla / 1e9:.2f} GFLOP, analytic convolutions {analytic / 1e9:.2f} GFLOP",
              flush=True)
        if args.time:
            timings[f"stylize_{size}"] = achieved(xla, time_compiled(compiled, (params, x), args.runs))
    cfg = config.load("metastyle", [f"data.content_size={args.meta_size}", f"data.style_size={args.meta_size}",
                                    f"batch_size={args.batch_size}", f"styles_per_batch={args.styles}"])
    if args.counts:
        given = json.loads(Path(args.counts).read_text())["counts"]
        counts.update({k: dict(given[k], source=args.counts) for k in ("adapt_step", "meta_iteration") if k in given})
    else:
        compiled, _ = adapt_compiled(params, vgg, args.adapt_size, args.batch_size)
        counts["adapt_step"] = {
            "xla_flops": xla_flops(compiled), "size": args.adapt_size, "batch_size": args.batch_size,
            "analytic_forward_convs": stylize_conv_flops(args.adapt_size, args.adapt_size, args.batch_size)
            + vgg_conv_flops(args.adapt_size, args.adapt_size, 2 * args.batch_size)}
        print(f"adapt step: XLA {counts['adapt_step']['xla_flops'] / 1e12:.3f} TFLOP", flush=True)
        compiled, _ = meta_compiled(cfg, vgg)
        counts["meta_iteration"] = {"xla_flops": xla_flops(compiled), "size": args.meta_size,
                                    "styles_per_batch": args.styles, "batch_size": args.batch_size,
                                    "inner_steps": int(cfg.inner_steps), "mode": cfg.mode}
        print(f"meta-iteration: XLA {counts['meta_iteration']['xla_flops'] / 1e12:.3f} TFLOP", flush=True)
    if args.timings:
        result = json.loads(Path(args.timings).read_text())
        c, jax_cols = result["config"], result["columns"]["jax"]
        measured = {"meta_iteration": (c["content_size"], c["styles_per_batch"], c["batch_size"], c["inner_steps"]),
                    "adapt_step": (c["content_size"], c["batch_size"])}
        for step in ("meta_iteration", "adapt_step"):
            n = counts.get(step, {})
            counted = (n.get("size"), n.get("styles_per_batch"), n.get("batch_size"), n.get("inner_steps")) \
                if step == "meta_iteration" else (n.get("size"), n.get("batch_size"))
            if n and counted == measured[step] and "median_s" in jax_cols[step]:
                timings[step] = achieved(n["xla_flops"], jax_cols[step]["median_s"])
            else:
                timings[step] = {"skipped": f"{args.timings} was measured at {measured[step]}, counted at {counted}"}
    figures = {"what": "FLOPs per call from XLA's cost analysis of the compiled program (FMA = 2 FLOPs); "
                       "stylize: one image; adapt_step: one Adam step on a batch; meta_iteration: outer.train_step "
                       "(configs/metastyle.py)",
               "counts": counts, "peaks_tflops": PEAKS_TFLOPS}
    if not args.counts:  # the counts of this run (with --counts they are another file's)
        print(f"wrote {write_result(args.name, figures)}")
    if timings:
        platform = environment()["device"].split(":")[0]
        path = write_result(f"{args.name}_{platform}", {**figures, "timings": timings})
        for k, v in timings.items():
            print(f"{k}: {v}")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
