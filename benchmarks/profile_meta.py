"""Where the time of one meta-training step goes: each piece of `meta` timed and costed apart, per style.

    python -m benchmarks.profile_meta [--sizes 64 128] [--repeats 3] [--pieces NAME ...] [--label LABEL] [--out FILE]

One style's task (batch_size contents, the config's VGG16, ImageNet by default since issue 22, random images) at
each content size, pieces compiled ahead of time and timed over `--repeats` calls (median):
  adapt_step       value and gradient of the perceptual loss w.r.t. all of theta (one adaptation step)
  inner_step       the inner SGD step alone (gradient w.r.t. the instance-norm parameters)
  outer_loss       E_s(theta): inner step then the validation loss (forward only)
  first_order      dE_s/dtheta with the inner gradient stopped
  second_order     dE_s/dtheta, exact (jax.grad through the inner scan)
  second_order_hvp the same by a Hessian-vector product
plus XLA's `cost_analysis()` flops and bytes of each compiled piece and the number of convolutions in
its optimized HLO, and how many of those XLA's CPU backend does not run in its fast layouts (not
b01f_01io->b01f, or with a reversed window: naive loops). Results go under `--label` (e.g. "before" a
change, run from a checkout of the old code, and "after") in --out (default
benchmarks/results/meta_step_profile_<platform>.json); other labels already in the file are kept.
"""

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.common import RESULTS, environment
from metastyle_jax import config, meta, outer, vgg_weights

PIECES = ("adapt_step", "inner_step", "outer_loss", "first_order", "second_order", "second_order_hvp")


def piece_fn(name, settings, hyper):
    """The jit-able function (theta, vgg, task) -> outputs that piece `name` computes."""
    if name == "adapt_step":
        return lambda theta, vgg, task: jax.value_and_grad(
            lambda p: meta.Bilevel(vgg, settings).task_loss(p, task["train"], task["train_feat"], task["grams"],
                                                            hyper)[0])(theta)
    if name == "inner_step":
        return lambda theta, vgg, task: meta.Bilevel(vgg, settings).inner_loop(theta, task, 0, hyper)
    if name == "outer_loss":
        return lambda theta, vgg, task: meta.Bilevel(vgg, settings).style_objective(theta, task, 0, hyper)[0]
    mode, grad = {"first_order": ("first_order", "autodiff"), "second_order": ("second_order", "autodiff"),
                  "second_order_hvp": ("second_order", "hvp")}[name]
    s = dataclasses.replace(settings, mode=mode, meta_grad=grad)
    return lambda theta, vgg, task: meta.Bilevel(vgg, s).style_direction(theta, task, 0, hyper)


def one_task(vgg, cfg, size, settings):
    """One style's task {"train", "train_feat", "val", "val_feat", "grams"} of random images at `size` px."""
    r = np.random.default_rng(0)
    b = cfg.batch_size
    batch = {"train": r.random((1, b, size, size, 3), np.float32), "val": r.random((1, b, size, size, 3), np.float32),
             "style": r.random((1, size, size, 3), np.float32)}
    tasks = jax.jit(lambda v, bt: meta.Bilevel(v, settings).tasks(bt))(vgg, batch)
    return jax.tree_util.tree_map(lambda x: x[0], tasks)


def profile_piece(name, theta, vgg, task, settings, hyper, repeats):
    """{compile_s, seconds (list), median_s, flops, bytes_accessed, convolutions} of one piece."""
    fn = jax.jit(piece_fn(name, settings, hyper))
    t0 = time.perf_counter()
    compiled = fn.lower(theta, vgg, task).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    hlo = compiled.as_text()
    convs = [line for line in hlo.splitlines() if re.search(r"= \S+ convolution\(", line)]
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(theta, vgg, task))
        seconds.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "seconds": seconds, "median_s": float(np.median(seconds)),
            "gflops": float(cost.get("flops", float("nan"))) / 1e9,
            "gbytes_accessed": float(cost.get("bytes accessed", float("nan"))) / 1e9,
            "convolutions": len(convs),
            "slow_convolutions": sum("b01f_01io->b01f" not in c or "reversal" in c for c in convs)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="content sizes in px (default 64 128)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per piece (default 3)")
    p.add_argument("--pieces", nargs="+", default=list(PIECES), choices=PIECES)
    p.add_argument("--config", default="metastyle")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--label", default="after", help="key of these results in the file (default after)")
    p.add_argument("--out", help="result file (default benchmarks/results/meta_step_profile_<platform>.json)")
    p.add_argument("--note", default="", help="free text stored with these results")
    args = p.parse_args()

    cfg = config.load(args.config, args.set)
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    theta = outer.init_state(cfg, cfg.seed).params
    results = {}
    for size in args.sizes:
        task = one_task(vgg, cfg, size, settings)
        results[str(size)] = {}
        for name in args.pieces:
            r = profile_piece(name, theta, vgg, task, settings, hyper, args.repeats)
            results[str(size)][name] = r
            print(f"{size} px {name:17s} {r['median_s']:8.3f} s  {r['gflops']:9.1f} GFLOP  "
                  f"{r['gbytes_accessed']:8.2f} GB  {r['convolutions']:3d} convs, {r['slow_convolutions']:3d} slow  "
                  f"(compile {r['compile_s']:.1f} s)",
                  flush=True)
    out = Path(args.out or RESULTS / f"meta_step_profile_{jax.devices()[0].platform}.json")
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["what"] = ("one style's pieces of outer.train_step (batch_size contents, random images, HED VGG16), "
                   "medians of --repeats calls; per label: the code it ran")
    doc.setdefault("runs", {})[args.label] = {
        **environment(), "batch_size": cfg.batch_size, "vgg": vgg_weights.describe(vgg),
        "loadavg_after": os.getloadavg(), "note": args.note, "pieces": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {out}")

if __name__ == "__main__":
    main()
