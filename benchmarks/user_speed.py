"""The commands users run, timed before and after a change, side by side in one run on this machine.

    python -m benchmarks.user_speed [--before REV] [--rounds 2] [--label LABEL]

Checks out REV (default 2821a65, the tree before conv.py's CPU convolution) and HEAD as git worktrees
under runs/, then runs each command below as a subprocess from each tree, alternating which goes
first round by round, so a change in the machine's load hits both alike. Every command is the user's own
(`python -m metastyle_jax.X`), timed by wall clock from start to exit, compilation included (the VGG16
weights are fetched beforehand, untimed), with the same model file (the shipped theta, widened to float32 so
the older tree reads it), images and seeds for both:
  stylize   4 embedded photos at 512 px (`--size 512`)
  adapt     5 steps at 256 px, batch 4, the style at 512 px, held-out evaluation off
  gatys     20 steps at 256 px
  train     6 meta-iterations at 64 px, 2 styles x 2 contents, T=1, exact second order
Writes benchmarks/results/user_speed_<label>.json: per command the median wall time of each tree and
after / before. The persistent compilation cache is off in these runs (both trees compile everything).

    python -m benchmarks.user_speed --compile-cache [--rounds 2] [--label LABEL]

times each command of HEAD twice per round instead: first with an empty compilation cache (cold), then
again with the programs the first run left there (warm), as a user's second run of a command;
writes benchmarks/results/compile_cache_<label>.json with warm / cold per command.

    python -m benchmarks.user_speed --dtypes [--rounds 2] [--label LABEL]

times each command of HEAD with float32 and with bfloat16 convolutions (oneDNN; `--set dtype=...`,
`stylize --dtype ...`), alternating; writes benchmarks/results/user_speed_dtype_<label>.json.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from metastyle_jax import checkpoints, data, images

ROOT = Path(__file__).resolve().parent.parent
TRAIN_STYLES = ROOT.parent / "shared" / "styles" / "train"


def commands(work, model, photos):
    """name -> argument list after `python -m`, every output under `work`."""
    styles = str(TRAIN_STYLES) if TRAIN_STYLES.is_dir() else "embedded"
    scream = str(data.painting_path("the_scream"))  # a file: the older tree has no shipped paintings
    return {
        "stylize": ["metastyle_jax.stylize", "--model", model, "--content", photos, "--size", "512",
                    "--out", f"{work}/stylized", "--force"],
        "adapt": ["metastyle_jax.adapt", "--model", model, "--style", scream, "--steps", "5",
                  "--size", "256", "--style-size", "512", "--batch-size", "4", "--eval-every", "0",
                  "--out", f"{work}/adapted", "--force"],
        "gatys": ["metastyle_jax.gatys", "--style", scream, "--steps", "20", "--size", "256", "--out", f"{work}/gatys.png", "--force"],
        "train": ["metastyle_jax.train", "--config", "metastyle", "--workdir", f"{work}/train", "--force",
                  "--set", "num_steps=6", "--set", "styles_per_batch=2", "--set", "batch_size=2",
                  "--set", "data.content_size=64", "--set", "data.style_size=64",
                  "--set", "data.content=embedded", "--set", f"data.styles={styles}",
                  "--set", "eval_every=0", "--set", "sample_every=0", "--set", "checkpoint_every=6"],
    }


def worktree(rev):
    """A detached git worktree of `rev` under runs/, made once."""
    path = ROOT / "runs" / f"tree_{rev}"
    if not path.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                       capture_output=True)
    return path


def run(tree, args, log, cache=None):
    """Wall seconds of `python -m args` run from `tree` (its package first on the path), with the persistent
    compilation cache in folder `cache` (None: off)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"} | {"PYTHONPATH": str(tree)}
    env |= {"JAX_COMPILATION_CACHE_DIR": str(cache)} if cache else {"METASTYLE_COMPILE_CACHE": "0"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", *args], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(args[:1])} failed in {tree} (exit {r.returncode}); see {log.name}")
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default="2821a65", help="the git revision to compare with (default 2821a65)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", nargs="*", help="commands to time (default all)")
    p.add_argument("--label", default="cpu")
    p.add_argument("--compile-cache", action="store_true", help="time HEAD's commands cold and warm instead")
    p.add_argument("--dtypes", action="store_true", help="time HEAD's commands with float32 and with bfloat16 "
                   "convolutions instead")
    args = p.parse_args()

    work = ROOT / "runs" / "user_speed"
    shutil.rmtree(work, ignore_errors=True)
    photos = work / "photos"
    photos.mkdir(parents=True)
    for name in data.EMBEDDED_PHOTOS[:4]:
        images.save_image(photos / f"{name}.png", data.skimage_image(name))
    model = work / "theta_f32"
    params, meta = checkpoints.load_model("theta", kinds=("theta",))
    checkpoints.save_model(model, params, meta)
    after = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
    if args.compile_cache:
        return compile_cache(worktree(after), after, work, str(model), str(photos), args)
    if args.dtypes:
        return dtype_speed(worktree(after), after, work, str(model), str(photos), args)
    trees = {"before": worktree(args.before), "after": worktree(after)}  # HEAD as committed, not the working tree
    load_before = os.getloadavg()
    times = alternate({k: (tree, []) for k, tree in trees.items()}, work, str(model), str(photos), args)
    rows = compare(times, "before", "after")
    path = write_result(f"user_speed_{args.label}", {
        "what": "wall time of each user command, start to exit (compilation included), median of the rounds",
        "before": args.before, "after": after,
        "rounds": args.rounds, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "rows": rows})
    print(f"wrote {path}")


def alternate(variants, work, model, photos, args):
    """{command: {variant: [seconds per round]}} of each command run as each variant, a variant being
    (tree, extra arguments by command name); the order of the variants alternates round by round."""
    times = {}
    with open(work / "log.txt", "w") as log:
        for i, (tree, _) in enumerate(variants.values()):  # fetch and convert VGG16 untimed, once per tree
            run(tree, ["metastyle_jax.gatys", "--steps", "1", "--size", "64", "--out", f"{work}/warm{i}.png"], log)
        for r in range(args.rounds):
            for name, cmd in commands(work, model, photos).items():
                if args.only and name not in args.only:
                    continue
                order = list(variants) if r % 2 == 0 else list(variants)[::-1]
                for which in order:
                    tree, extra = variants[which]
                    s = run(tree, cmd + (extra(name) if callable(extra) else extra), log)
                    times.setdefault(name, {}).setdefault(which, []).append(s)
                    print(f"round {r + 1} {name:8s} {which:8s} {s:7.1f} s", flush=True)
    return times


def compare(times, base, new):
    """Per command: its line, the medians of variants `base` and `new`, new / base and every round's seconds."""
    rows = {}
    for name, t in times.items():
        b, n = float(np.median(t[base])), float(np.median(t[new]))
        rows[name] = {"command": "python -m " + " ".join(commands("WORK", "THETA", "PHOTOS")[name]),
                      f"{base}_s": b, f"{new}_s": n, f"{new}_over_{base}": n / b,
                      f"{base}_all_s": t[base], f"{new}_all_s": t[new]}
        print(f"{name:8s} {base} {b:7.1f} s  {new} {n:7.1f} s  {new}/{base} {n / b:.2f}")
    return rows


def dtype_flags(dtype):
    """The extra arguments that set each command's compute dtype."""
    return lambda name: ["--dtype", dtype] if name == "stylize" else ["--set", f"dtype={dtype}"]


def dtype_speed(tree, rev, work, model, photos, args):
    """Each command of `tree` with float32 and with bfloat16 convolutions (oneDNN), alternating."""
    load_before = os.getloadavg()
    times = alternate({d: (tree, dtype_flags(d)) for d in ("float32", "bfloat16")}, work, model, photos, args)
    rows = compare(times, "float32", "bfloat16")
    path = write_result(f"user_speed_dtype_{args.label}", {
        "what": "wall time of each user command, start to exit (compilation included), with dtype float32 and "
                "bfloat16; median of the rounds", "rev": rev, "rounds": args.rounds,
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows})
    print(f"wrote {path}")


def compile_cache(tree, rev, work, model, photos, args):
    """Each command of `tree` run with an empty compilation cache, then again with the one it filled."""
    times, load_before = {}, os.getloadavg()
    with open(work / "log.txt", "w") as log:
        run(tree, ["metastyle_jax.gatys", "--steps", "1", "--size", "64", "--out", f"{work}/warm.png"], log)
        for r in range(args.rounds):
            for name, cmd in commands(work, model, photos).items():
                if args.only and name not in args.only:
                    continue
                cache = work / f"xla_{name}_{r}"
                for which in ("cold", "warm"):
                    s = run(tree, cmd, log, cache)
                    times.setdefault(name, {}).setdefault(which, []).append(s)
                    print(f"round {r + 1} {name:8s} {which:5s} {s:7.1f} s", flush=True)
    rows = {}
    for name, t in times.items():
        c, w = float(np.median(t["cold"])), float(np.median(t["warm"]))
        rows[name] = {"command": "python -m " + " ".join(commands("WORK", "THETA", "PHOTOS")[name]),
                      "cold_s": c, "warm_s": w, "warm_over_cold": w / c, "cold_all_s": t["cold"],
                      "warm_all_s": t["warm"]}
        print(f"{name:8s} cold {c:7.1f} s  warm {w:7.1f} s  warm/cold {w / c:.2f}")
    path = write_result(f"compile_cache_{args.label}", {
        "what": "wall time of each user command, start to exit: with an empty persistent compilation cache "
                "(cold), then run again with the programs the first run left in it (warm); median of the rounds",
        "rev": rev, "rounds": args.rounds, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
