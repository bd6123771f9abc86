"""The supplementary's training claims on a reduced budget: second order vs first order vs Reptile, T=1 vs T=2.

    python -m benchmarks.supplementary [--iterations 100] [--size 64] [--eval-every 20]
        [--variants second_order,first_order,reptile,second_order_t2] [--set KEY=VALUE] [--out-dir DIR]

Every variant meta-trains theta from the same random initialization on the same meta-batches (the shipped
theta's data and settings, configs/metastyle.py `cpu`, at --size px, outer Adam lr 5e-4 as that campaign's
first phase from random init; --set changes any key) for --iterations outer updates; only the variant's keys
differ (VARIANTS).
Every --eval-every iterations it scores theta by one yardstick for all: E(theta) of eq. 7 with the paper's
reported setting (T=1, one SGD step on the instance norms of B_tr, then the perceptual loss on B_val) on the
run's fixed held-out meta-batch (16 training styles, each with its own contents); T=2 is also scored by its
own objective. Writes <out-dir>/supplementary_<platform>.json, ..._eval.png (the common E(theta) curves) and
..._train.png (each variant's outer training loss, as logged by its own objective).
"""

import dataclasses
import itertools
import sys
import time


from benchmarks import figures
from metastyle_jax import meta, outer, plotting, train, vgg_weights
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

VARIANTS = {  # name: (label, config overrides)
    "second_order": ("second order, T=1 (the paper)", {}),
    "first_order": ("first order (MAML without 2nd-order term), T=1", {"mode": "first_order"}),
    "reptile": ("Reptile, T=1", {"mode": "reptile"}),
    "second_order_t2": ("second order, T=2", {"inner_steps": 2}),
    "inner_all": ("second order, T=1, inner SGD on all parameters", {"inner_params": "all"}),
}
DEFAULT_VARIANTS = ("second_order", "first_order", "reptile", "second_order_t2")
OUTER_LR = 5e-4  # the campaign's outer lr from random init (configs/metastyle.py `cpu`); paper 1e-3


def run_variant(cfg, vgg, source, eval_batch, iterations, eval_every, progress):
    """Meta-train `cfg` from `outer.init_state(cfg, cfg.seed)` on `source.batch_at(t)` with the training loop
    (`train.compile_step`, `train.iterate`); E(theta) at T=1 with IN-only inner steps (and the variant's own E
    when its T or inner parameters differ) at 0, every `eval_every` and the last iteration.
    Returns {"train_step", "outer_loss", "eval_step", "eval_t1", "eval_own", "eval_seconds",
    "seconds_per_iteration" (evaluations excluded), "compile_seconds", "diverged_at"}."""
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    bilevel = meta.Bilevel(vgg, settings)
    full = {"styles_in_parallel": cfg.styles_per_batch}
    # the yardstick's loss does not depend on `mode`: one compiled evaluation serves every T=1, IN-only variant
    common = bilevel.replace(settings=dataclasses.replace(settings, mode="second_order", inner_steps=1,
                                                          inner_params="instance_norm", **full))
    own = bilevel.replace(settings=dataclasses.replace(settings, mode="second_order", **full))
    state = outer.init_state(cfg, cfg.seed)
    out = {"train_step": [], "outer_loss": [], "eval_step": [], "eval_t1": [], "eval_own": [], "diverged_at": None,
           "eval_seconds": []}

    def evaluate(t, params):
        t0 = time.perf_counter()
        out["eval_step"].append(t)
        out["eval_t1"].append(float(outer.eval_loss(common, params, eval_batch, t, hyper)))
        if own.settings != common.settings:
            out["eval_own"].append(float(outer.eval_loss(own, params, eval_batch, t, hyper)))
        out["eval_seconds"].append(time.perf_counter() - t0 if t else 0.0)

    evaluate(0, state.params)
    t0 = time.perf_counter()
    first = source.batch_at(0)
    step_fn = train.compile_step(bilevel, state, first, hyper)
    out["compile_seconds"] = time.perf_counter() - t0
    batches = itertools.chain([first], (source.batch_at(t) for t in itertools.count(1)))

    def after(t, state, metrics):
        out["train_step"].append(t)
        out["outer_loss"].append(float(metrics["outer_loss"]))
        progress(float(metrics["outer_loss"]))
        if t % eval_every == 0 or t == iterations:
            evaluate(t, state.params)

    t1 = time.perf_counter()
    try:
        train.iterate(step_fn, state, batches, 0, iterations, after)
    except train.Diverged as e:
        out["diverged_at"] = e.iteration
    seconds = time.perf_counter() - t1 - sum(out["eval_seconds"])
    out["seconds_per_iteration"] = seconds / max(len(out["train_step"]), 1)
    return out


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.supplementary", description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=100, help="outer updates per variant (default 100)")
    p.add_argument("--size", type=int, default=64, help="content and style side in px (default 64)")
    p.add_argument("--eval-every", type=int, default=20, help="E(theta) every N iterations (default 20)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, of {', '.join(VARIANTS)} (default {','.join(DEFAULT_VARIANTS)})")
    figures.add_output_args(p, "supplementary")
    cli.add_config_args(p, "metastyle:cpu")
    args = p.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise UserError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(VARIANTS)}")
    if args.iterations < 1 or args.eval_every < 1 or args.size < 16:
        raise UserError("--iterations and --eval-every must be at least 1, --size at least 16 px")
    args.set = [f"outer_lr={OUTER_LR}", *args.set]  # before the user's --set, which may change it
    cfg = cli.config_from_args(args, ())
    cfg.num_steps = args.iterations
    cfg.data.update(content_size=args.size, style_size=args.size)
    train.check_config(cfg)
    return args, cfg, names


def main(argv=None):
    args, cfg, names = parse_args(argv)
    paths = figures.output_paths(args, "supplementary", (".json", "_eval.png", "_train.png"))
    source = train.MetaData(cfg)
    eval_batch = source.eval_batch()
    vgg = cli.load_vgg_from_args(args, cfg)

    from tqdm import tqdm
    runs = {}
    for name in names:
        variant = cfg.copy_and_resolve_references()
        variant.update(VARIANTS[name][1])
        with tqdm(total=args.iterations, desc=f"supplementary {name}", unit="it", file=sys.stderr) as bar:
            runs[name] = run_variant(variant, vgg, source, eval_batch, args.iterations, args.eval_every,
                                     lambda loss: (bar.update(1), bar.set_postfix(outer=f"{loss:.4g}")))

    title = f"E(theta), T=1, held-out meta-batch; {args.size} px, {len(source.styles)} training styles"
    plotting.loss_curves(paths["_eval.png"], {VARIANTS[n][0]: (r["eval_step"], r["eval_t1"]) for n, r in runs.items()},
                         title=title, xlabel="outer iteration")
    plotting.loss_curves(paths["_train.png"], {VARIANTS[n][0]: (r["train_step"], r["outer_loss"])
                                               for n, r in runs.items()},
                         title=f"outer training loss (each variant's own objective); {args.size} px",
                         xlabel="outer iteration")
    result = {
        "what": "meta-training variants from one random init on the same meta-batches: E(theta) (eq. 7, T=1, "
                "IN-only inner SGD) on a fixed held-out meta-batch, and each variant's outer training loss",
        "variants": {n: {"label": VARIANTS[n][0], "overrides": VARIANTS[n][1]} for n in names},
        "settings": {k: cfg[k] for k in ("styles_per_batch", "batch_size", "inner_lr", "outer_lr", "lr_decay",
                                         "inner_params", "seed")}
                    | {"size": args.size, "iterations": args.iterations, "eval_every": args.eval_every,
                       "content": str(cfg.data.content), "styles": str(cfg.data.styles),
                       "eval_styles": int(eval_batch["style"].shape[0])},
        "vgg": vgg_weights.describe(vgg),
        "runs": runs,
        "final_eval_t1": {n: r["eval_t1"][-1] for n, r in runs.items()},
        "files": {"eval_png": paths["_eval.png"].name, "train_png": paths["_train.png"].name},
    }
    figures.write_json(paths[".json"], result)
    for n, r in runs.items():
        print(f"{n}: E(theta) {r['eval_t1'][0]:.4g} -> {r['eval_t1'][-1]:.4g} after {r['eval_step'][-1]} "
              f"iterations, {r['seconds_per_iteration']:.2f} s/iteration"
              + (f", diverged at {r['diverged_at']}" if r["diverged_at"] else ""))
    print(f"-> {paths['.json']}, {paths['_eval.png'].name}, {paths['_train.png'].name}")
    return result


if __name__ == "__main__":
    cli.run(main)
