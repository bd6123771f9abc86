"""Size and per-image run time of each exported artefact against the JAX function, at 256 px on this machine.

    python -m benchmarks.export_speed [--model ADAPTED] [--size 256] [--runs 20] [--formats stablehlo,savedmodel,onnx]

Exports the network (dynamic H, W; StableHLO/SavedModel lowered for cpu and cuda, as the CLI does) into a
temporary folder, loads each artefact with its own runtime (jax.export.deserialize, tf.saved_model.load,
onnxruntime), and times one (1, S, S, 3) image: the first call (compilation included) and the median
of --runs further calls, taken in rounds that call every candidate once in turn. The JAX baseline is
`jax.jit(transformer.apply)` with the parameters as arguments (what `stylize` runs), beside the same jit
with the parameters closed over as constants (as the artefacts hold them).
Writes benchmarks/results/export_<platform>.json.
"""

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from benchmarks.common import write_result
from metastyle_jax import checkpoints, export, transformer


def interleaved_times(calls, image, runs):
    """{name: (first call s, [s of each further call])}; the further calls go round-robin over `calls`,
    so a change in the machine's load hits every candidate alike."""
    def once(call):
        t0 = time.perf_counter()
        np.asarray(call(image))
        return time.perf_counter() - t0

    first = {name: once(call) for name, call in calls.items()}
    times = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            times[name].append(once(call))
    return {name: (first[name], times[name]) for name in calls}


def loader(fmt, directory):
    """A callable image -> stylized image running the artefact of `fmt` in `directory` with its runtime."""
    path = os.path.join(directory, export.ARTEFACTS[fmt])
    if fmt == "stablehlo":
        from jax import export as jax_export
        with open(path, "rb") as f:
            exported = jax_export.deserialize(bytearray(f.read()))
        return jax.jit(exported.call)
    if fmt == "savedmodel":
        import tensorflow as tf
        signature = tf.saved_model.load(path).signatures["serving_default"]
        return lambda image: signature(image=tf.constant(image))["stylized"].numpy()
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda image: session.run(["stylized"], {"image": image})[0]


def runtimes(formats):
    """Which runtime (and version) ran each format."""
    from importlib.metadata import version

    text = {"stablehlo": lambda: f"jax {jax.__version__}: jax.export.deserialize(...).call under jax.jit",
            "savedmodel": lambda: f"tensorflow-cpu {version('tensorflow-cpu')}: signature call (XlaCallModule)",
            "onnx": lambda: f"onnxruntime {version('onnxruntime')}: CPUExecutionProvider, default threads"}
    return {fmt: text[fmt]() for fmt in formats}


def summary(first, times):
    """First-call and steady-state figures in seconds."""
    return {"first_call_incl_compile_s": first, "median_s": float(np.median(times)),
            "min_s": float(np.min(times)), "max_s": float(np.max(times))}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="adapted checkpoint (default: an untrained network, key 0; speed does not "
                   "depend on the weights)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--formats", default=",".join(export.FORMATS))
    p.add_argument("--name", help="result file name (default export_<platform>)")
    args = p.parse_args()

    if args.model:
        params, meta = checkpoints.load_model(args.model, kinds=("adapted",))
    else:
        params, meta = transformer.init_params(jax.random.key(0), 16), {"kind": "untrained"}
    image = np.random.default_rng(0).random((1, args.size, args.size, 3), dtype=np.float32)
    load = os.getloadavg()

    jax_fn = jax.jit(transformer.apply)
    calls = {"jax": lambda x: jax_fn(params, x), "jax_params_as_constants": jax.jit(export.forward(params))}
    formats = args.formats.split(",")
    results = {name: {} for name in calls}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            out = os.path.join(tmp, fmt)
            t0 = time.perf_counter()
            export.export_model(params, meta, fmt, out, platforms=("cpu", "cuda"), check=False)
            results[fmt] = {"artefact_bytes": export.artefact_size(os.path.join(out, export.ARTEFACTS[fmt])),
                            "export_s": time.perf_counter() - t0}
            calls[fmt] = loader(fmt, out)
            print(f"exported {fmt}: {results[fmt]['artefact_bytes'] / 2**20:.2f} MiB", flush=True)
        timings = interleaved_times(calls, image, args.runs)
        expected = np.asarray(jax_fn(params, image))
        for name, (first, times) in timings.items():
            results[name].update(summary(first, times))
            results[name]["max_abs_diff_vs_jax"] = float(np.abs(np.asarray(calls[name](image)) - expected).max())
    for name, figures in results.items():
        figures["median_vs_jax"] = figures["median_s"] / results["jax"]["median_s"]
        print(f"{name}: median {figures['median_s'] * 1e3:.1f} ms ({figures['median_vs_jax']:.2f} x jax), "
              f"first call {figures['first_call_incl_compile_s']:.2f} s", flush=True)

    figures = {
        "what": "per-image run time of exported artefacts vs the JAX function (jit, params as arguments; "
                "also jit with params closed over as constants, as in the artefacts); after one first call "
                "each, --runs rounds calling every candidate once in turn",
        "image": [1, args.size, args.size, 3], "runs": args.runs, "model": args.model or "untrained (key 0)",
        "num_params": transformer.count_params(params),
        "runtimes": runtimes(formats),
        "jax_output_mean_std": [float(expected.mean()), float(expected.std())],
        "results": results, "load_average_at_start": list(load), "load_average_at_end": list(os.getloadavg()),
    }
    print(f"wrote {write_result(args.name or f'export_{jax.devices()[0].platform}', figures)}")


if __name__ == "__main__":
    main()
