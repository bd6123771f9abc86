"""Table 1 of the paper (section 5.2): parameters and seconds per image of every method at 256 and 512 px.

    python -m benchmarks.table1 [--sizes 256 512] [--methods gatys johnson ... adapt throughput] [--runs 3]
        [--gatys-steps 800] [--adapt-steps 200] [--out-dir benchmarks/results] [--force]

Every network is built in Flax from its paper's/official code's layer list at random initialization
(speed does not depend on the weights; benchmarks/methods/). Timing as the paper: one content image and
one style image of the same size, compiled ahead of time (compilation timed apart), one warm-up call,
then `--runs` calls each ended by `jax.block_until_ready`; the figure is their median. Gatys et al.: 800
Adam steps of metastyle_jax.gatys plus its targets; with `--gatys-steps K` < 800, K steps are timed as
one compiled chunk and 800 extrapolated (labelled). Extra rows from the paper's prose: fast adaptation,
200 steps of metastyle_jax.adapt.adapt_step at 256 px (batch 4, style 512 px; `--adapt-steps K` times K
steps and extrapolates, labelled), and throughput of the MetaStyle network at batch 16. Prints each
figure beside the paper's and their ratio; writes <out-dir>/table1_<platform>.json and .md.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks import common
from benchmarks.methods import MODULES, ROWS, gatys
from metastyle_jax import adapt, losses, outputs, transformer, vgg16
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError

EXTRA_ROWS = ("adapt", "throughput")
ADAPT_PAPER_S = 24.0        # paper section 5.2: 200 steps "amounts to an additional 24 seconds" (Titan Xp)
ADAPT_STEPS = 200
ADAPT_BATCH = 4
THROUGHPUT_BATCH = 16
RESULTS = Path(common.RESULTS)
NOTES = {
    "gatys": "No network of its own (paper: N/A). Loss and optimizer of this repository (VGG16 relu1_2 ... "
             "relu4_3, Adam on the pixels); the paper does not name its optimizer.",
    "johnson": "Exact match: the paper's 1.68M is this network.",
    "wct": "Five encoder/decoder pairs: 34,239,371 (34.24M rounded) vs the paper's 34.23M (0.03% apart, "
           "under the 5% threshold; the paper may truncate).",
    "adain": "Exact match: encoder to relu4_1 (with the 1x1 conv) + decoder = 7,010,959.",
    "meta_networks": "The paper's 219.32M fits the meta network with the transformer's fixed part "
                     "(217,659,011, 0.76% under); the frozen VGG16 encoder (7,635,264 to relu4_3) is not "
                     "counted there, but is in 'ours' (it runs on every style).",
    "avatar_net": "Ours runs the encoder to relu4_1 + decoder (7,055,555). The paper's 147.22M is the "
                  "whole VGG19 with its ImageNet classifier (143,667,240, as in the TF-slim checkpoint the "
                  "official code loads) + the decoder (3,549,827) = 147,217,067: an exact fit.",
    "style_swap": "Encoder to relu3_1 (with the 1x1 conv, 555,340) + inverse network with batch norm "
                  "(555,843) = 1,111,183, 25% under the paper's 1.48M. No convention we tried fits (candidates "
                  "below: the closest, two encoders + inverse network, is 12.6% over). The official "
                  "train-vgg-decoder.lua builds exactly our mirror; the gap is unexplained (perhaps another "
                  "released inverse network).",
    "metastyle": "Exact match: the adapted network is Johnson's.",
}


def count_params(variables):
    """Scalars in a variables pytree, batch-norm running statistics excluded."""
    leaves = jax.tree_util.tree_leaves_with_path(variables)
    return sum(int(x.size) for path, x in leaves if "batch_stats" not in jax.tree_util.keystr(path))


def compile_and_time(fn, args, runs):
    """Compile `fn(*args)` ahead of time, call it once to warm up, then time `runs` calls.

    Returns {"compile_s", "warmup_s", "seconds": [runs], "median_s"}.
    """
    t0 = time.perf_counter()
    compiled = jax.jit(lambda *a: fn(*a)).lower(*args).compile()  # a fresh function: no cache hits
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    warmup_s = time.perf_counter() - t0
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        seconds.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "warmup_s": warmup_s, "seconds": seconds, "median_s": float(np.median(seconds))}


def images(key, size, n=1):
    """Random (n, size, size, 3) content and style images in [0, 1] (speed does not depend on pixels)."""
    k1, k2 = jax.random.split(key)
    return jax.random.uniform(k1, (n, size, size, 3)), jax.random.uniform(k2, (n, size, size, 3))


def time_feed_forward(module, variables, size, runs, key):
    """Seconds per image of `module.stylize` on one size x size content and style."""
    content, style = images(key, size)
    return compile_and_time(module.stylize, (variables, content, style), runs)


def time_gatys(size, runs, steps, key):
    """Gatys et al.: targets + `steps` Adam steps timed; 800 steps extrapolated where steps < 800."""
    content, style = images(key, size)
    args = gatys.setup(jax.random.fold_in(key, 1), content[0], style[0])
    targets = compile_and_time(gatys.targets_fn(), (args[2], content[0], style[0]), runs)
    chunk = compile_and_time(gatys.chunk(steps), args, runs)
    per_step = chunk["median_s"] / steps
    return {"compile_s": targets["compile_s"] + chunk["compile_s"], "targets_s": targets["median_s"],
            "steps_timed": steps, "chunk_seconds": chunk["seconds"], "per_step_s": per_step,
            "median_s": targets["median_s"] + gatys.STEPS * per_step,
            "figure": "measured" if steps >= gatys.STEPS else
            f"extrapolated to {gatys.STEPS} steps from {steps} (median of {runs} chunks)"}


def time_adapt(size, style_size, steps, key):
    """Fast adaptation: `steps` calls of the compiled adapt.adapt_step (batch 4), 200 steps extrapolated."""
    params = transformer.init_params(jax.random.fold_in(key, 0), 16)
    vgg, weights = vgg16.random(jax.random.fold_in(key, 1)), losses.LossWeights()
    contents = jax.random.uniform(jax.random.fold_in(key, 2), (ADAPT_BATCH, size, size, 3))
    style = jax.random.uniform(jax.random.fold_in(key, 3), (style_size, style_size, 3))
    grams = adapt.style_targets(vgg, style, weights)
    opt_state = adapt.optimizer(1e-3).init(params)
    t0 = time.perf_counter()
    compiled = adapt.adapt_step.lower(params, opt_state, vgg, grams, contents, weights=weights, lr=1e-3).compile()
    compile_s = time.perf_counter() - t0
    seconds = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        params, opt_state, m = compiled(params, opt_state, vgg, grams, contents)
        jax.block_until_ready((params, m))
        seconds.append(time.perf_counter() - t0)
    per_step = float(np.median(seconds[1:]))
    return {"compile_s": compile_s, "warmup_s": seconds[0], "seconds": seconds[1:], "per_step_s": per_step,
            "median_s": ADAPT_STEPS * per_step, "content_size": size, "style_size": style_size,
            "batch_size": ADAPT_BATCH, "steps_timed": steps, "paper_s": ADAPT_PAPER_S,
            "figure": "measured" if steps >= ADAPT_STEPS else
            f"extrapolated to {ADAPT_STEPS} steps from {steps} (median step after one warm-up step)"}


def time_throughput(size, runs, key):
    """Images per second of the MetaStyle network on a batch of 16."""
    batch, _ = images(key, size, THROUGHPUT_BATCH)
    params = transformer.init_params(jax.random.fold_in(key, 1), 16)
    t = compile_and_time(lambda p, x: transformer.apply(p, x), (params, batch), runs)
    return {**t, "batch_size": THROUGHPUT_BATCH, "images_per_s": THROUGHPUT_BATCH / t["median_s"]}


def source_state():
    """The git commit and the package files modified in the working tree when the figures were taken."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], check=False, capture_output=True, text=True, timeout=30,
                                  cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"git_commit": git("rev-parse", "HEAD"),
            "modified_files": git("status", "--porcelain", "--", "metastyle_jax", "benchmarks").splitlines()}


def ratio(measured, paper):
    return measured / paper if paper else None


def fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}g}"


def markdown(result):
    """Table 1 as Markdown: counts, measured vs paper seconds and ratios, extra rows, notes, environment."""
    sizes = result["sizes"]
    head = ["Method", "Params (ours)", "Params (paper convention)", "Paper"] + \
        [c for s in sizes for c in (f"{s} (s)", f"paper {s} (s)", "ratio")] + ["compile (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in result["methods"].items():
        cells = [row["name"], f"{row['params'] / 1e6:.2f}M" if row["params"] else "N/A",
                 f"{row['params_paper_convention'] / 1e6:.2f}M" if row["params_paper_convention"] else "N/A",
                 f"{row['params_paper_m']}M" if row["params_paper_m"] else "N/A"]
        compile_s = []
        for s in sizes:
            t = row["sizes"][str(s)]
            star = "*" if key == "gatys" and t["figure"] != "measured" else ""
            cells += [fmt(t["median_s"]) + star, fmt(t["paper_s"]), fmt(t["ratio"], 3)]
            compile_s.append(fmt(t["compile_s"], 3))
        lines.append("| " + " | ".join(cells + [" / ".join(compile_s)]) + " |")
    out = ["# Table 1: speed and flexibility", ""]
    if not result.get("complete", True):
        out += ["**Incomplete run: only the rows below were measured.**", ""]
    out += ["\n".join(lines), ""]
    if "adapt" in result:
        a = result["adapt"]
        out.append(f"- Fast adaptation, {ADAPT_STEPS} steps at {a['content_size']} px (batch {a['batch_size']}, "
                   f"style {a['style_size']} px): {a['median_s']:.1f} s ({a['figure']}; {a['per_step_s']:.3f} s "
                   f"per step; compile {a['compile_s']:.1f} s); paper {ADAPT_PAPER_S:g} s on a Titan Xp, ratio "
                   f"{a['ratio']:.3g}.")
    for s, t in result.get("throughput", {}).items():
        out.append(f"- MetaStyle network throughput at batch {t['batch_size']}, {s} px: {t['images_per_s']:.3g} "
                   f"images/s ({t['median_s']:.3g} s per batch; compile {t['compile_s']:.1f} s).")
    if any(r["sizes"][str(s)].get("figure", "measured") != "measured" for k, r in result["methods"].items()
           if k == "gatys" for s in sizes):
        out.append(f"- \\* Gatys et al.: {result['methods']['gatys']['sizes'][str(sizes[0])]['figure']}.")
    out += ["", "Notes on parameter counts:", ""]
    for k, r in result["methods"].items():
        out.append(f"- {r['name']}: {NOTES[k]}")
        out += [f"  - {label}: {n:,} ({n / (r['params_paper_m'] * 1e6) - 1:+.2%} vs the paper)"
                for label, n in r.get("params_candidates", {}).items()]
    out += ["", (f"Device: {result['device']}, {result['cpu_count']} CPUs; JAX {result['jax']}; {result['date']}; "
                f"median of {result['runs']} runs after compilation and one warm-up call; load average "
                f"(1, 5, 15 min) before {result['loadavg_before']} and after {result['loadavg_after']}."),
            f"Command: `{result['command']}`", ""]
    return "\n".join(out)


def save(paths, result, load_before, complete):
    """Write the JSON and Markdown of `result` (after every row, so that a stopped run leaves what it
    measured; "complete" says whether every requested row is in)."""
    result = {**common.environment(), **result, **source_state(), "complete": complete,
              "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(result, indent=2, default=float) + "\n")
    paths[1].write_text(markdown(result))
    return result


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.table1", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square image sides, px")
    p.add_argument("--methods", nargs="+", default=list(ROWS + EXTRA_ROWS), choices=ROWS + EXTRA_ROWS,
                   metavar="METHOD", help=f"rows to measure: {', '.join(ROWS + EXTRA_ROWS)} (default all)")
    p.add_argument("--runs", type=int, default=3, help="timed calls after the warm-up (median reported)")
    p.add_argument("--gatys-steps", type=int, default=gatys.STEPS, help="Gatys steps timed (< 800 extrapolates)")
    p.add_argument("--adapt-steps", type=int, default=ADAPT_STEPS, help="adaptation steps timed (< 200 "
                   "extrapolates)")
    p.add_argument("--adapt-size", type=int, default=256, help="adaptation content size, px (paper 256)")
    p.add_argument("--adapt-style-size", type=int, default=512, help="adaptation style size, px (paper 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=str(RESULTS), help="where table1_<platform>.json/.md go")
    p.add_argument("--force", action="store_true", help="overwrite existing result files")
    args = p.parse_args(argv)
    for s in args.sizes + [args.adapt_size, args.adapt_style_size]:
        if s < 32 or s % 16:
            raise UserError(f"sizes must be multiples of 16 and at least 32 px, not {s}")
    for flag in ("runs", "gatys_steps", "adapt_steps"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    platform = jax.devices()[0].platform
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir} is not a directory")
    paths = [out_dir / f"table1_{platform}.{ext}" for ext in ("json", "md")]
    outputs.check(paths, force=args.force)

    from tqdm import tqdm
    rows = [m for m in ROWS if m in args.methods]
    tasks = len(rows) * len(args.sizes) + ("adapt" in args.methods) + \
        ("throughput" in args.methods) * len(args.sizes)
    bar = tqdm(total=tasks, desc="table1", unit="timing", file=sys.stderr)
    key = jax.random.key(args.seed)
    load_before = os.getloadavg()
    result = {"what": "Table 1 (section 5.2): seconds per image, one content and one style image of the same "
                      "size, random weights, compiled ahead of time, median after one warm-up call",
              "sizes": args.sizes, "runs": args.runs, "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "methods": {}}
    for name in rows:
        module = MODULES[name]
        variables = None if name == "gatys" else module.init(jax.random.fold_in(key, len(result["methods"])))
        n = None if variables is None else count_params(variables)
        row = {"name": module.NAME, "params": n,
               "params_paper_convention": None if name == "gatys" else module.paper_count(),
               "params_paper_m": module.PAPER["params_m"], "note": NOTES[name], "sizes": {}}
        if hasattr(module, "count_candidates"):
            row["params_candidates"] = module.count_candidates()
        if n is not None:
            row["params_ratio_paper_convention"] = row["params_paper_convention"] / (module.PAPER["params_m"] * 1e6)
        for s in args.sizes:
            k = jax.random.fold_in(key, 1000 + s)
            t = time_gatys(s, args.runs, args.gatys_steps, k) if name == "gatys" else \
                time_feed_forward(module, variables, s, args.runs, k)
            t.update(paper_s=module.PAPER.get(s), ratio=ratio(t["median_s"], module.PAPER.get(s)))
            row["sizes"][str(s)] = t
            print(f"{module.NAME}, {s} px: {t['median_s']:.4g} s/image"
                  + (f" (paper {t['paper_s']:g} s, ratio {t['ratio']:.3g})" if t["paper_s"] else "")
                  + (f" [{t['figure']}]" if "figure" in t else "") + f"; compile {t['compile_s']:.1f} s",
                  file=sys.stderr, flush=True)
            bar.update(1)
            bar.set_postfix(last=f"{name} {s}px {t['median_s']:.3g}s")
        if n is not None:
            print(f"{module.NAME}: {n:,} parameters run per image; paper convention "
                  f"{row['params_paper_convention']:,} vs paper {module.PAPER['params_m']}M "
                  f"(ratio {row['params_ratio_paper_convention']:.4f})", file=sys.stderr, flush=True)
        result["methods"][name] = row
        del variables
        save(paths, result, load_before, complete=False)
    if "adapt" in args.methods:
        a = time_adapt(args.adapt_size, args.adapt_style_size, min(args.adapt_steps, ADAPT_STEPS), key)
        a["ratio"] = ratio(a["median_s"], ADAPT_PAPER_S)
        result["adapt"] = a
        print(f"adaptation, {ADAPT_STEPS} steps: {a['median_s']:.1f} s [{a['figure']}] (paper {ADAPT_PAPER_S:g} s, "
              f"ratio {a['ratio']:.3g})", file=sys.stderr, flush=True)
        bar.update(1)
        save(paths, result, load_before, complete=False)
    if "throughput" in args.methods:
        result["throughput"] = {}
        for s in args.sizes:
            t = time_throughput(s, args.runs, jax.random.fold_in(key, 2000 + s))
            result["throughput"][str(s)] = t
            print(f"throughput, batch {THROUGHPUT_BATCH}, {s} px: {t['images_per_s']:.3g} images/s",
                  file=sys.stderr, flush=True)
            bar.update(1)
    bar.close()
    result = save(paths, result, load_before, complete=True)
    print(f"wrote {paths[0]} and {paths[1]}")
    return result


if __name__ == "__main__":
    cli.run(main)
