"""Seconds per meta-iteration and per adaptation step, JAX against PyTorch on the same device.

    python -m benchmarks.torch_vs_jax [--size 256] [--styles 4] [--batch-size 4] [--repeats 5] [--torch-compile]

The JAX side is metastyle_jax itself (`outer.train_step` with configs/metastyle.py: exact second order, T
inner SGD steps on the instance-norm parameters, all styles vmapped; `adapt.adapt_step`: Adam on every
parameter); the PyTorch side is benchmarks/torch_metastyle.py (same network, VGG16, loss and steps; one
style at a time with create_graph=True). Both start from the same theta (Flax init) and the same random
batch, on the GPU when there is one (torch "cuda", JAX's default backend), else the CPU. Compilation and
warm-up are excluded: JAX compiles ahead of time (timed apart), then both run `--warmup` untimed calls
and `--repeats` timed ones (median; `block_until_ready` / `torch.cuda.synchronize` before each clock).
`--torch-compile` adds a third column, `torch.compile` of the network and VGG16 (the meta step's double
backward may be unsupported: the error is recorded). Writes benchmarks/results/torch_vs_jax_<platform>.json.
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from benchmarks import torch_metastyle as tm
from benchmarks.common import write_result
from metastyle_jax import adapt, config, losses, meta, outer, vgg_weights


def timed(fn, sync, warmup, repeats):
    """(seconds of each of `repeats` calls of fn() after `warmup` untimed ones, fn's last result);
    `sync(result)` waits for the device before each clock reading."""
    out = None
    for _ in range(warmup):
        out = fn()
        sync(out)
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync(out)
        seconds.append(time.perf_counter() - t0)
    return seconds, out


def summary(seconds):
    return {"median_s": float(np.median(seconds)), "min_s": float(np.min(seconds)), "seconds": seconds}


def jax_columns(cfg, vgg, batch, adapt_batch, style, warmup, repeats):
    """Timings and first losses of the JAX meta-iteration and adaptation step."""
    state = outer.init_state(cfg, cfg.seed)
    theta = jax.device_get(state.params)
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    bilevel = meta.Bilevel(jax.device_put(vgg), settings)
    batch_dev = jax.device_put(batch)
    t0 = time.perf_counter()
    step = outer.train_step.lower(bilevel, state, batch_dev, hyper).compile()
    compile_meta = time.perf_counter() - t0
    box = {"state": state}

    def meta_call():
        box["state"], metrics = step(bilevel, box["state"], batch_dev, hyper)
        return box["state"], metrics

    first = jax.device_get(meta_call()[1])
    meta_s, _ = timed(meta_call, jax.block_until_ready, warmup, repeats)

    weights = losses.weights_of(cfg)
    grams = adapt.style_targets(bilevel.vgg, style, weights)
    contents = jax.device_put(jnp.asarray(adapt_batch))
    params = jax.device_put(theta)
    opt_state = adapt.optimizer(1e-3).init(params)
    t0 = time.perf_counter()
    astep = adapt.adapt_step.lower(params, opt_state, bilevel.vgg, grams, contents, weights=weights).compile()
    compile_adapt = time.perf_counter() - t0
    abox = {"p": params, "o": opt_state}

    def adapt_call():
        abox["p"], abox["o"], m = astep(abox["p"], abox["o"], bilevel.vgg, grams, contents)
        return abox["p"], m

    first_adapt = float(adapt_call()[1]["loss"])
    adapt_s, _ = timed(adapt_call, jax.block_until_ready, warmup, repeats)
    return theta, {"meta_iteration": {**summary(meta_s), "compilation_s": compile_meta,
                                      "first_outer_loss": float(first["outer_loss"]),
                                      "first_inner_loss": float(first["inner_loss"])},
                   "adapt_step": {**summary(adapt_s), "compilation_s": compile_adapt, "first_loss": first_adapt}}


def torch_columns(cfg, theta, vgg, batch, adapt_batch, style, device, warmup, repeats, compile_=False):
    """Timings and first losses of the PyTorch meta-iteration and adaptation step (optionally torch.compile)."""
    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)
    hyper = {"inner_lr": cfg.inner_lr, "lr_decay": cfg.lr_decay, "inner_steps": int(cfg.inner_steps),
             "alpha": cfg.loss.alpha, "beta": cfg.loss.beta}
    tvgg = tm.vgg_from_params(vgg, device)
    tbatch = {k: tm.nchw(v, device) for k, v in batch.items()}
    out = {}

    def fresh():
        net = tm.transformer_from_params(theta, device)
        return (torch.compile(net), torch.compile(tvgg)) if compile_ else (net, tvgg)

    try:
        net, run_vgg = fresh()
        opt, sched = tm.meta_optimizer(net, cfg.outer_lr, cfg.lr_decay)
        t = {"t": 0}

        def meta_call():
            m = tm.meta_step(net, opt, sched, run_vgg, tbatch, t["t"], **hyper)
            t["t"] += 1
            return m

        t0 = time.perf_counter()
        first = meta_call()
        sync(None)
        first_s = time.perf_counter() - t0
        seconds, _ = timed(meta_call, sync, warmup, repeats)
        out["meta_iteration"] = {**summary(seconds), "first_call_s": first_s,
                                 "first_outer_loss": first["outer_loss"], "first_inner_loss": first["inner_loss"]}
    except (RuntimeError, NotImplementedError, AssertionError) as e:  # torch.compile, out of memory: recorded
        out["meta_iteration"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    try:
        net, run_vgg = fresh()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        grams = tm.style_grams(tvgg, tm.nchw(style[None], device))
        contents = tm.nchw(adapt_batch, device)
        t0 = time.perf_counter()
        first = float(tm.adapt_step(net, opt, run_vgg, grams, contents, cfg.loss.alpha, cfg.loss.beta))
        first_s = time.perf_counter() - t0
        seconds, _ = timed(lambda: tm.adapt_step(net, opt, run_vgg, grams, contents, cfg.loss.alpha, cfg.loss.beta),
                           sync, warmup, repeats)
        out["adapt_step"] = {**summary(seconds), "first_call_s": first_s, "first_loss": first}
    except (RuntimeError, NotImplementedError, AssertionError) as e:
        out["adapt_step"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    return out


def ratio(a, b):
    """b's median over a's (how many times faster a is), or None where either is missing."""
    if "median_s" in a and "median_s" in b:
        return b["median_s"] / a["median_s"]
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="content side in px (default 256, the paper's)")
    p.add_argument("--style-size", type=int, help="style side in px (default: --size)")
    p.add_argument("--styles", type=int, help="styles per meta-batch (default 4, the paper's)")
    p.add_argument("--batch-size", type=int, help="contents per style batch and per adaptation step (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per column (median; default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls after the first (default 1)")
    p.add_argument("--torch-compile", action="store_true", help="add a torch.compile column")
    p.add_argument("--torch-threads", type=int, help="torch.set_num_threads (CPU; default: PyTorch's choice). On a "
                   "CPU shared with other jobs, OpenMP's spinning threads can make PyTorch ~8x slower: use 1")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configs/metastyle.py override")
    p.add_argument("--name", help="result file name (default torch_vs_jax_<platform>)")
    args = p.parse_args(argv)
    if min(args.size, args.repeats) < 1 or args.warmup < 0:
        p.error("--size and --repeats must be at least 1, --warmup at least 0")

    overrides = list(args.set) + [f"data.content_size={args.size}",
                                  f"data.style_size={args.style_size or args.size}"]
    overrides += [f"styles_per_batch={args.styles}"] * bool(args.styles)
    overrides += [f"batch_size={args.batch_size}"] * bool(args.batch_size)
    cfg = config.load("metastyle", overrides)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    s, b, n, ns = cfg.styles_per_batch, cfg.batch_size, cfg.data.content_size, cfg.data.style_size
    r = np.random.default_rng(0)
    batch = {"train": r.random((s, b, n, n, 3), dtype=np.float32), "val": r.random((s, b, n, n, 3), dtype=np.float32),
             "style": r.random((s, ns, ns, 3), dtype=np.float32)}
    adapt_batch, style = batch["train"][0], batch["style"][0]
    load = os.getloadavg()

    print(f"JAX on {jax.devices()[0]}, PyTorch {torch.__version__} on {device}", file=sys.stderr, flush=True)
    theta, jax_res = jax_columns(cfg, vgg, batch, adapt_batch, style, args.warmup, args.repeats)
    print(f"jax: {jax_res}", file=sys.stderr, flush=True)
    torch_res = torch_columns(cfg, theta, vgg, batch, adapt_batch, style, device, args.warmup, args.repeats)
    print(f"torch: {torch_res}", file=sys.stderr, flush=True)
    columns = {"jax": jax_res, "torch": torch_res}
    name = args.name or f"torch_vs_jax_{jax.devices()[0].platform}"
    path = write_result(name, figures(args, cfg, vgg, device, columns, load))
    if args.torch_compile:  # written again with the third column (the first file survives a timeout here)
        columns["torch_compile"] = torch_columns(cfg, theta, vgg, batch, adapt_batch, style, device, args.warmup,
                                                 args.repeats, compile_=True)
        path = write_result(name, figures(args, cfg, vgg, device, columns, load))
    print(f"ratios (PyTorch time / JAX time): {ratios(columns)}; wrote {path}")


def ratios(columns):
    """{<column>_over_jax: {step: its median / JAX's}} for every non-JAX column."""
    return {f"{k}_over_jax": {step: ratio(columns["jax"][step], columns[k][step])
                              for step in ("meta_iteration", "adapt_step")} for k in columns if k != "jax"}


def figures(args, cfg, vgg, device, columns, load):
    """The result record of a run."""
    return {
        "what": "median seconds per call, compilation and warm-up excluded: meta_iteration = one outer iteration "
                "(T inner SGD steps on IN params per style, exact second-order meta-gradient, outer Adam); "
                "adapt_step = one Adam step on every parameter (eq. 8)",
        "torch": torch.__version__, "torch_device": device if device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "config": {"mode": cfg.mode, "inner_steps": int(cfg.inner_steps), "styles_per_batch": cfg.styles_per_batch,
                   "batch_size": cfg.batch_size, "content_size": cfg.data.content_size,
                   "style_size": cfg.data.style_size, "styles_in_parallel_jax": int(cfg.styles_in_parallel),
                   "dtype": cfg.dtype},
        "precision": {"torch_cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                      "torch_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                      "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
                      "note": "float32 parameters and data in both; on NVIDIA GPUs both frameworks' defaults may "
                              "run float32 convolutions on TF32 tensor cores"},
        "vgg": vgg_weights.describe(vgg), "warmup": args.warmup, "repeats": args.repeats,
        "columns": columns, "ratios": ratios(columns), "load_average_at_start": list(load),
        "load_average_at_end": list(os.getloadavg()),
        "note": "ratio > 1: JAX is faster. PyTorch processes the styles one after the other (per-style "
                "backward, as the official code); JAX vmaps them (styles_in_parallel=0). The first losses of "
                "both columns come from the same theta and batch: equal losses = the same computation.",
    }


if __name__ == "__main__":
    main()
