"""Compile and run time of the test suite's kinds of program under XLA:CPU flags, side by side.

    python -m benchmarks.suite_compile_flags [--label cpu]

Each (program, flags) pair runs in a fresh process with the compilation cache off: an adaptation step at 32 px
(random VGG16, batch 4) and a tiny meta-iteration (configs/tiny.py, HED VGG16). The flag sets are the suite's
old one (disable_expensive_passes) and its current one (tests/conftest.py adds backend_optimization_level=0).
Then, under the current flags, the second-order meta-gradient of a 16 px meta-batch (random VGG16) with the VGG
and the batch passed as arguments, and the same function closing over them, which makes them constants of the
program that XLA folds. Writes benchmarks/results/suite_compile_flags_<label>.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

FLAGS = {"expensive passes off": "--xla_llvm_disable_expensive_passes=true",
         "and optimization level 0": "--xla_llvm_disable_expensive_passes=true --xla_backend_optimization_level=0"}


def measure(program):
    """(compile seconds, run seconds per call) of `program` in this process."""
    import jax
    import numpy as np

    from metastyle_jax import adapt, config, data, meta, outer, train, transformer, vgg16, vgg_weights

    if program.startswith("meta_gradient_16px"):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        import test_meta as tm  # its numpy-made VGG, theta and batch: no compile before the measured one
        bilevel_of = lambda vgg: meta.Bilevel(vgg, meta.settings_from_config(tm.tiny_config()))
        hyper = meta.hyper_from_config(tm.tiny_config())
        vgg, theta, batch = tm.numpy_vgg(), tm.numpy_theta(), tm.random_batch(3, size=16)
        if program.endswith("arguments"):
            fn, args = jax.jit(lambda p, v, b: bilevel_of(v).meta_gradient(p, b, 0, hyper)[0]), (theta, vgg, batch)
        else:
            fn, args = jax.jit(lambda p: bilevel_of(vgg).meta_gradient(p, batch, 0, hyper)[0]), (theta,)
        lowered = fn.lower(*args)
    elif program == "adapt_step_32px":
        vgg, theta = vgg16.random(jax.random.key(1)), transformer.init_params(jax.random.key(0))
        grams = adapt.style_targets(vgg, np.asarray(jax.random.uniform(jax.random.key(3), (64, 64, 3))) ** 3)
        opt, batch = adapt.optimizer(1e-3).init(theta), data.ContentData("embedded", "train", 32, seed=0).batch_at(0, 4)
        lowered, args = adapt.adapt_step.lower(theta, opt, vgg, grams, batch), (theta, opt, vgg, grams, batch)
    else:
        cfg = config.load("tiny")
        bilevel = meta.Bilevel(vgg_weights.load_vgg(), meta.settings_from_config(cfg))
        state, hyper, batch = outer.init_state(cfg, 0), meta.hyper_from_config(cfg), train.MetaData(cfg).batch_at(0)
        lowered, args = outer.train_step.lower(bilevel, state, batch, hyper), None
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        if args is None:
            state, m = compiled(bilevel, state, batch, hyper)
            jax.block_until_ready(m)
        else:
            jax.block_until_ready(compiled(*args))
    return compile_s, (time.perf_counter() - t0) / 3


def main(argv=None):
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2])))
        return
    p = argparse.ArgumentParser(prog="python -m benchmarks.suite_compile_flags", description=__doc__.splitlines()[0])
    p.add_argument("--label", default="cpu")
    args = p.parse_args(argv)
    rows = {}
    cases = [(program, name) for program in ("adapt_step_32px", "meta_iteration_tiny") for name in FLAGS]
    cases += [(f"meta_gradient_16px_{how}", "and optimization level 0") for how in ("arguments", "constants")]
    for program, name in cases:
        env = dict(os.environ, XLA_FLAGS=FLAGS[name], JAX_ENABLE_COMPILATION_CACHE="false")
        out = subprocess.run([sys.executable, "-m", "benchmarks.suite_compile_flags", "--child", program], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        compile_s, run_s = json.loads(out)
        rows.setdefault(program, {})[name] = {"compile_s": round(compile_s, 2), "run_s": round(run_s, 3)}
        print(f"{program}, {name}: compile {compile_s:.1f} s, run {run_s:.3f} s/call", flush=True)
    from benchmarks import common
    print(common.write_result(f"suite_compile_flags_{args.label}", {"flags": FLAGS, "programs": rows,
                                                                   "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
