"""XLA:CPU's platform-dependent math: how far float32 meta-gradients are from float64, and what turning it off costs.

    python -m benchmarks.cpu_math [--size 64] [--rounds 3] [--processes 2] [--label LABEL]

XLA:CPU may let the libraries it hands operations to (YNNPACK) use arithmetic that differs by CPU
(`--xla_cpu_enable_platform_dependent_math`, on by default); metastyle-jax turns it off (`cpu_math`). Both
settings run in their own processes (XLA_FLAGS is read once per process), alternately:
- accuracy: the exact meta-gradient (configs/metastyle.py: second order, T=1) of the shipped theta on a real
  batch (2 embedded paintings as styles, 2 others as contents, `--size` px, the config's VGG16), with the
  styles vmapped together (styles_in_parallel=0, the default) and one after the other (=1), each against the
  same gradient in float64: relative error |g32 - g64| / |g64|;
- speed: cpu_speed's JAX rows (stylize 512 px float32 and bfloat16, an adaptation step at 256 px, a
  meta-iteration at 64 px), `--rounds` rounds per process after an untimed call, in `--processes` processes
  per setting, alternating settings; medians, and the ratio consistent / platform-dependent.
Writes benchmarks/results/cpu_math_<label>.json with the CPU's flags.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SETTINGS = {"platform_dependent": "--xla_cpu_enable_platform_dependent_math=true",
            "consistent": "--xla_cpu_enable_platform_dependent_math=false"}
ROWS = ("stylize_512_b1", "adapt_256_b4", "meta_64")
LAYOUTS = {"vmapped": 0, "one_after_another": 1}


def gradient_worker(size, precision, out):
    """Save the meta-gradients (flat, float64) of both layouts to `out` (.npz), in float32 or float64."""
    import jax
    import jax.numpy as jnp

    from benchmarks.common import compute_in_float64
    from metastyle_jax import checkpoints, config, images, meta, vgg_weights
    if precision == "float64":
        compute_in_float64()
    dtype = np.float64 if precision == "float64" else np.float32
    cast = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), tree)
    cfg = config.load("metastyle")
    cfg.styles_per_batch, cfg.batch_size, cfg.dtype = 2, 1, precision
    theta = cast(checkpoints.load_model("theta", kinds=("theta",))[0])
    vgg = cast(vgg_weights.load_vgg(cfg.vgg.source))
    folder = Path(checkpoints.__file__).parent / "paintings"
    pictures = [images.load_image(folder / f"{name}.jpg", short_side=size)[:size, :size]
                for name in ("starry_night", "wave", "udnie", "the_scream")]
    pictures = np.stack([np.asarray(p, np.float64) for p in pictures])
    batch = cast({"style": pictures[:2], "train": pictures[2:3, None].repeat(2, 0),
                  "val": pictures[3:4, None].repeat(2, 0)})
    hyper = meta.hyper_from_config(cfg, dtype)
    t = jnp.asarray(0, jnp.int32)
    grads = {}
    for layout, in_parallel in LAYOUTS.items():
        cfg.styles_in_parallel = in_parallel
        bilevel = meta.Bilevel(vgg, meta.settings_from_config(cfg))
        g = jax.jit(lambda p, b, bl=bilevel: bl.meta_gradient(p, b, t, hyper)[0])(theta, batch)
        grads[layout] = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(g)])
    np.savez(out, **grads)


def speed_worker(rounds, out):
    """Time cpu_speed's JAX rows in this process; save {row: {runtime: [s]}} as JSON."""
    import jax

    from benchmarks import cpu_speed
    from metastyle_jax import transformer, vgg_weights
    vgg = vgg_weights.load_vgg("hed")
    theta = jax.device_get(transformer.init_params(jax.random.key(0), 16))
    rows = cpu_speed.build(list(ROWS), theta, vgg, np.random.default_rng(0), jax_only=True)
    Path(out).write_text(json.dumps(cpu_speed.interleaved(rows, rounds)))


def run_worker(setting, args):
    env = dict(os.environ, XLA_FLAGS=" ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), SETTINGS[setting]])),
               JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-m", "benchmarks.cpu_math", *args], env=env, check=True)


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64, help="image side of the accuracy batch (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per process (default 3; 0: no speed)")
    p.add_argument("--processes", type=int, default=2, help="speed processes per setting (default 2)")
    p.add_argument("--label", default="cpu", help="results go to benchmarks/results/cpu_math_<label>.json")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, out = args.worker
        if kind == "speed":
            return speed_worker(args.rounds, out)
        return gradient_worker(args.size, kind, out)

    from benchmarks.common import cpu_flags, write_result
    figures = {"settings": SETTINGS, "size": args.size, "cpu_flags": cpu_flags(), "accuracy": {}, "speed": {}}
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "float64.npz"
        run_worker("consistent", ["--size", str(args.size), "--worker", "float64", str(reference)])
        g64 = np.load(reference)
        for setting in SETTINGS:
            path = Path(tmp) / f"{setting}.npz"
            run_worker(setting, ["--size", str(args.size), "--worker", "float32", str(path)])
            g32 = np.load(path)
            figures["accuracy"][setting] = {
                **{f"{layout}_vs_float64": relative(g32[layout], g64[layout]) for layout in LAYOUTS},
                "vmapped_vs_one_after_another": relative(g32["vmapped"], g32["one_after_another"])}
            print(setting, figures["accuracy"][setting], flush=True)
        times = {setting: {} for setting in SETTINGS}
        for k in range(args.processes if args.rounds else 0):
            for setting in SETTINGS:
                path = Path(tmp) / f"speed_{setting}_{k}.json"
                run_worker(setting, ["--rounds", str(args.rounds), "--worker", "speed", str(path)])
                for row, rts in json.loads(path.read_text()).items():
                    for rt, seconds in rts.items():
                        times[setting].setdefault(f"{row}/{rt}", []).extend(seconds)
    for key in times["consistent"]:
        medians = {setting: float(np.median(times[setting][key])) for setting in SETTINGS}
        figures["speed"][key] = {"median_s": medians, "seconds": {s: times[s][key] for s in SETTINGS},
                                 "consistent_over_platform_dependent": medians["consistent"]
                                 / medians["platform_dependent"]}
        print(f"{key}: " + ", ".join(f"{s} {m:.3g} s" for s, m in medians.items())
              + f", ratio {figures['speed'][key]['consistent_over_platform_dependent']:.2f}", flush=True)
    print(f"wrote {write_result(f'cpu_math_{args.label}', figures)}")


if __name__ == "__main__":
    main()
