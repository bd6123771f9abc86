"""Seconds per meta-iteration (Algorithm 1's loop body, `outer.train_step`) with the paper's configuration.

    python -m benchmarks.meta_step [--iterations 1] [--set styles_in_parallel=1] [--set KEY=VALUE ...]

configs/metastyle.py (256 px, 4 styles x 4 contents, T=1, exact second order) with the config's
VGG16 (ImageNet by default since issue 22, HED before) and random images (the step's cost does not
depend on pixel values). Compilation is timed apart
(ahead of time, `lower().compile()`); then `--iterations` iterations of the compiled step are timed one
by one (0: compilation only). Writes benchmarks/results/meta_step_<platform>.json.
"""

import argparse
import os
import time

import jax
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import config, meta, outer, parallel, vgg_weights


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=1, help="iterations timed after compilation (default 1)")
    p.add_argument("--config", default="metastyle")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--name", help="result file name (default meta_step_<platform>)")
    args = p.parse_args()

    cfg = config.load(args.config, args.set)
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    s, b, size = cfg.styles_per_batch, cfg.batch_size, cfg.data.content_size
    r = np.random.default_rng(0)
    batch = {"train": r.random((s, b, size, size, 3), np.float32), "val": r.random((s, b, size, size, 3), np.float32),
             "style": r.random((s, cfg.data.style_size, cfg.data.style_size, 3), np.float32)}
    mesh = parallel.make_mesh()
    state = parallel.replicate(outer.init_state(cfg, cfg.seed), mesh)
    batch = parallel.shard_batch(batch, mesh)
    bilevel = meta.Bilevel(parallel.replicate(vgg, mesh), meta.settings_from_config(cfg))
    parallel.check_mesh(cfg, mesh)
    hyper = meta.hyper_from_config(cfg)
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    compiled = outer.train_step.lower(bilevel, state, batch, hyper, mesh=mesh).compile()
    compile_s = time.perf_counter() - t0
    print(f"compilation: {compile_s:.1f} s", flush=True)
    seconds = []
    for i in range(args.iterations):
        t0 = time.perf_counter()
        state, metrics = compiled(bilevel, state, batch, hyper)
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - t0)
        print(f"iteration {i + 1}: {seconds[-1]:.1f} s, outer loss {float(metrics['outer_loss']):.4g}", flush=True)
    per_iter = float(np.median(seconds)) if seconds else None
    figures = {
        "what": "one meta-iteration, outer.train_step: T inner SGD steps per style + exact meta-gradient + Adam",
        "config": {k: cfg[k] for k in ("mode", "meta_grad", "inner_steps", "styles_per_batch", "batch_size",
                                       "styles_in_parallel", "dtype")},
        "content_size": size, "style_size": cfg.data.style_size, "vgg": vgg_weights.describe(vgg),
        "compilation_s": compile_s, "seconds_per_iteration": seconds, "seconds_per_iteration_median": per_iter,
        "paper_100k_iterations_days_estimate": per_iter * 100_000 / 86400 if per_iter else None,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    name = args.name or f"meta_step_{jax.devices()[0].platform}"
    print(f"{per_iter} s per meta-iteration; wrote {write_result(name, figures)}")


if __name__ == "__main__":
    main()
