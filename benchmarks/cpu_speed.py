"""JAX against PyTorch (and onnxruntime, for stylization) on this CPU: every workload, one process, interleaved.

    python -m benchmarks.cpu_speed [--rows NAME ...] [--rounds 3] [--label LABEL]

Rows (the same network, weights and VGG16 in every runtime; random images of the row's shapes):
  stylize_256_b1, stylize_512_b1, stylize_256_b8, stylize_512_b8   the transformer's forward pass
  adapt_256_b4        one adaptation step (eq. 8, Adam on all of theta), 256 px contents, a 512 px style
  meta_64, meta_128   one meta-iteration, 2 styles x 2 contents, T=1, exact second order
  gatys_256           one Gatys et al. step (Adam on the pixels) at 256 px
JAX runs metastyle_jax itself (compiled ahead, compilation excluded); PyTorch runs
benchmarks/torch_metastyle.py at torch.set_num_threads(cores); onnxruntime runs the ONNX export of the
network (`export.export_onnx`) where it is installed. After one untimed call of each, `--rounds` rounds
go over every row and every runtime in turn, so a change in the machine's load hits all alike; medians.
Each row records the FLOPs of the work (stylization: the network's convolutions, `flops.stylize_conv_flops`;
the others: XLA's cost analysis of the JAX program, which includes conv.py's extra output rows, about 2%
at 256 px) and JAX's achieved GFLOP/s as a
fraction of this machine's measured peaks: the best of a large convolution and a 2048^2 matmul, in JAX and
PyTorch float32 (the float32 peak) and in PyTorch bfloat16 (the bfloat16 peak: oneDNN's AMX or avx512_bf16
kernels where the CPU has them), measured in the same rounds. Every PyTorch row also runs under bfloat16
autocast ("torch_bf16"), and JAX runs again in bfloat16 through oneDNN ("jax_bf16", `onednn`) where it loads,
side by side. Writes benchmarks/results/cpu_speed_<label>.json, with the CPU's
bfloat16 flags.
"""

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from benchmarks import flops as flops_lib
from benchmarks import torch_metastyle as tm
from benchmarks.common import cpu_flags, write_result
from metastyle_jax import adapt, config, gatys, losses, meta, onednn, outer, transformer, vgg_weights

ROWS = ("stylize_256_b1", "stylize_512_b1", "stylize_256_b8", "stylize_512_b8", "adapt_256_b4", "meta_64",
        "meta_128", "gatys_256")


def images(r, *shape):
    return r.random(shape, np.float32)


def jax_dtypes():
    """(runtime name, compute dtype) of the JAX runs: float32, and bfloat16 through oneDNN where it loads."""
    return [("jax", "float32")] + ([("jax_bf16", "bfloat16")] if onednn.status() is None else [])


def stylize_row(theta, net, ort, size, batch, r):
    """{runtime: call} of the transformer's forward pass, and the JAX program's FLOPs."""
    x = images(r, batch, size, size, 3)
    calls = {}
    for name, dtype in jax_dtypes():
        compiled = jax.jit(functools.partial(transformer.apply, dtype=jnp.dtype(dtype))).lower(theta, x).compile()
        calls[name] = functools.partial(lambda c: c(theta, x).block_until_ready(), compiled)
    xt = tm.nchw(x)
    calls["torch"] = lambda: torch_no_grad(net, xt)
    if ort is not None:
        calls["onnxruntime"] = lambda: ort.run(["stylized"], {"image": x})
    return calls, flops_lib.stylize_conv_flops(size, size, batch)


def torch_no_grad(net, x):
    with torch.no_grad():
        return net(x)


def adapt_row(theta, vgg, tvgg, size, batch, style_size, r):
    """{runtime: call} of one adaptation step, and its FLOPs."""
    contents, style = images(r, batch, size, size, 3), images(r, 1, style_size, style_size, 3)
    weights = losses.LossWeights()
    grams = adapt.style_targets(vgg, style[0], weights)
    calls, programs = {}, []
    for name, dtype in jax_dtypes():
        box = {"p": theta, "o": adapt.optimizer(1e-3).init(theta)}
        programs.append(adapt.adapt_step.lower(box["p"], box["o"], vgg, grams, contents, weights=weights,
                                               dtype=dtype).compile())

        def jax_call(box=box, compiled=programs[-1]):
            box["p"], box["o"], m = compiled(box["p"], box["o"], vgg, grams, contents)
            jax.block_until_ready(m)
        calls[name] = jax_call

    net = tm.transformer_from_params(theta)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tgrams, tcontents = tm.style_grams(tvgg, tm.nchw(style)), tm.nchw(contents)
    calls["torch"] = lambda: tm.adapt_step(net, opt, tvgg, tgrams, tcontents)
    return calls, flops_lib.xla_flops(programs[0])


def meta_row(theta, vgg, tvgg, size, r):
    """{runtime: call} of one meta-iteration (configs/metastyle.py, 2 styles x 2 contents), and its FLOPs."""
    cfg = config.load("metastyle")
    cfg.styles_per_batch, cfg.batch_size = 2, 2
    cfg.loss.tv = 0.0  # the PyTorch meta-step has no total variation
    batch = {"train": images(r, 2, 2, size, size, 3), "val": images(r, 2, 2, size, size, 3),
             "style": images(r, 2, size, size, 3)}
    hyper = meta.hyper_from_config(cfg)
    state = outer.init_state(cfg, 0).replace(params=jax.tree_util.tree_map(jnp.asarray, theta))
    calls, programs = {}, []
    for name, dtype in jax_dtypes():
        cfg.dtype = dtype
        bilevel = meta.Bilevel(vgg, meta.settings_from_config(cfg))
        programs.append(outer.train_step.lower(bilevel, state, batch, hyper).compile())
        box = {"s": jax.tree_util.tree_map(jnp.copy, state)}  # train_step donates its state

        def jax_call(box=box, compiled=programs[-1], bilevel=bilevel):
            box["s"], m = compiled(bilevel, box["s"], batch, hyper)
            jax.block_until_ready(m)
        calls[name] = jax_call

    net = tm.transformer_from_params(theta)
    opt, sched = tm.meta_optimizer(net, cfg.outer_lr, cfg.lr_decay)
    tbatch = {k: tm.nchw(v) for k, v in batch.items()}
    calls["torch"] = lambda: tm.meta_step(net, opt, sched, tvgg, tbatch, 0)
    return calls, flops_lib.xla_flops(programs[0])


def gatys_row(vgg, tvgg, size, r):
    """{runtime: call} of one Gatys et al. step (Adam on the pixels), and its FLOPs."""
    content, style = images(r, size, size, 3), images(r, size, size, 3)
    weights = losses.LossWeights()
    content_feat, grams = gatys.targets(vgg, content, style, weights)
    calls, programs = {}, []
    for name, dtype in jax_dtypes():
        box = {"x": jnp.asarray(content), "o": optax.adam(1e-2).init(jnp.asarray(content))}
        programs.append(gatys.run_steps.lower(box["x"], box["o"], vgg, content_feat, grams, weights=weights,
                                              lr=1e-2, steps=1, dtype=dtype).compile())

        def jax_call(box=box, compiled=programs[-1]):
            box["x"], box["o"], hist = compiled(box["x"], box["o"], vgg, content_feat, grams)
            jax.block_until_ready(hist)
        calls[name] = jax_call

    x = torch.nn.Parameter(tm.nchw(content[None]).clone())
    opt = torch.optim.Adam([x], lr=1e-2)
    tfeat = tm.content_features(tvgg, tm.nchw(content[None]))
    tgrams = tm.style_grams(tvgg, tm.nchw(style[None]))

    def torch_call():
        loss, _, _ = tm.perceptual_loss(tvgg, x, tfeat, tgrams)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)

    calls["torch"] = torch_call
    return calls, flops_lib.xla_flops(programs[0])


def peak_rows(r):
    """{runtime: call} of the peak probes: a 3x3 256 -> 256 convolution on (8, 64, 64, 256) and a 2048^2
    matmul, in JAX and PyTorch; with their FLOPs."""
    x, w = images(r, 8, 64, 64, 256), images(r, 3, 3, 256, 256) - 0.5
    a, b = images(r, 2048, 2048), images(r, 2048, 2048)
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
    mm = jax.jit(jnp.matmul)
    xt, wt = tm.nchw(x), torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    xh = xt.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    wh = wt.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    ah, bh = at.to(torch.bfloat16), bt.to(torch.bfloat16)
    conv_flops, mm_flops = 2 * 8 * 64 * 64 * 9 * 256 * 256, 2 * 2048 ** 3
    conv_calls = {"jax": lambda: conv(x, w).block_until_ready(),
                  "torch": lambda: torch.nn.functional.conv2d(xt, wt, padding=1),
                  "torch_bf16": lambda: torch.nn.functional.conv2d(xh, wh, padding=1)}
    if onednn.status() is None:
        bf16_conv = jax.jit(lambda x, w: onednn.conv(x, w, (1, 1), ((1, 1), (1, 1))))
        conv_calls["jax_bf16"] = lambda: bf16_conv(x, w).block_until_ready()
    return {"peak_conv": (conv_calls, conv_flops),
            "peak_matmul": ({"jax": lambda: mm(a, b).block_until_ready(), "torch": lambda: at @ bt,
                             "torch_bf16": lambda: ah @ bh}, mm_flops)}


def autocast(call):
    """`call` run under PyTorch's bfloat16 autocast on the CPU."""
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return call()
    return run


def onnx_session(theta):
    """An onnxruntime session of the exported network, or None where jax2onnx/onnxruntime are missing."""
    try:
        import onnxruntime as ort

        from metastyle_jax import export
        model = export.export_onnx(theta)
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def build(names, theta, vgg, r, jax_only=False):
    """{row: ({runtime: call}, flops)} for the named rows, plus the peak probes; with `jax_only`, the JAX
    calls of the named rows alone (no ONNX export, no peak probes)."""
    tvgg = tm.vgg_from_params(vgg)
    net = tm.transformer_from_params(theta)
    ort = onnx_session(theta) if any(n.startswith("stylize") for n in names) and not jax_only else None
    rows = {}
    for name in names:
        kind, *rest = name.split("_")
        if kind == "stylize":
            rows[name] = stylize_row(theta, net, ort, int(rest[0]), int(rest[1][1:]), r)
        elif kind == "adapt":
            rows[name] = adapt_row(theta, vgg, tvgg, int(rest[0]), int(rest[1][1:]), 512, r)
        elif kind == "meta":
            rows[name] = meta_row(theta, vgg, tvgg, int(rest[0]), r)
        else:
            rows[name] = gatys_row(vgg, tvgg, int(rest[0]), r)
        if jax_only:
            rows[name] = ({rt: call for rt, call in rows[name][0].items() if rt.startswith("jax")}, rows[name][1])
        else:
            rows[name][0]["torch_bf16"] = autocast(rows[name][0]["torch"])
    if not jax_only:
        rows.update(peak_rows(r))
    return rows


def interleaved(rows, rounds):
    """{row: {runtime: [seconds per round]}}: one untimed call of each, then `rounds` rounds over all."""
    for calls, _ in rows.values():
        for call in calls.values():
            call()
    times = {row: {rt: [] for rt in calls} for row, (calls, _) in rows.items()}
    for k in range(rounds):
        for row, (calls, _) in rows.items():
            for rt, call in calls.items():
                t0 = time.perf_counter()
                call()
                times[row][rt].append(time.perf_counter() - t0)
        print(f"round {k + 1}/{rounds}: " + ", ".join(
            f"{row} " + "/".join(f"{rt} {s[-1]:.3g}" for rt, s in rts.items()) for row, rts in times.items()),
            flush=True)
    return times


def summarize(rows, times):
    """Per row: medians, JAX / best other float32 runtime, JAX / PyTorch bf16 autocast, FLOPs, GFLOP/s and the
    fractions of the measured float32 and bfloat16 peaks."""
    medians = {row: {rt: float(np.median(s)) for rt, s in rts.items()} for row, rts in times.items()}
    probes = ("peak_conv", "peak_matmul")
    peak = max(rows[p][1] / s for p in probes for rt, s in medians[p].items() if not rt.endswith("_bf16"))
    peak_bf16 = max(rows[p][1] / s for p in probes for rt, s in medians[p].items() if rt.endswith("_bf16"))
    out = {"peak_gflops": peak / 1e9, "peak_bf16_gflops": peak_bf16 / 1e9, "cpu_bf16_flags": cpu_flags(),
           "rows": {}}
    for row, rts in medians.items():
        others = [s for rt, s in rts.items() if rt != "jax" and not rt.endswith("_bf16")]
        gflops = rows[row][1] / rts["jax"] / 1e9
        out["rows"][row] = {"median_s": rts, "jax_over_best_other": rts["jax"] / min(others),
                            "jax_over_torch_bf16": rts["jax"] / rts["torch_bf16"],
                            "jax_flops": rows[row][1], "jax_gflops": gflops,
                            "jax_fraction_of_peak": gflops * 1e9 / peak,
                            "jax_fraction_of_bf16_peak": gflops * 1e9 / peak_bf16, "seconds": times[row]}
        if "jax_bf16" in rts:
            bf16_gflops = rows[row][1] / rts["jax_bf16"] / 1e9
            out["rows"][row].update(jax_bf16_speedup=rts["jax"] / rts["jax_bf16"],
                                    jax_bf16_over_torch_bf16=rts["jax_bf16"] / rts["torch_bf16"],
                                    jax_bf16_gflops=bf16_gflops,
                                    jax_bf16_fraction_of_bf16_peak=bf16_gflops * 1e9 / peak_bf16)
    return out


def markdown(figures):
    """The rows as a Markdown table (the docs' table)."""
    runtimes = ("jax", "jax_bf16", "torch", "torch_bf16", "onnxruntime")
    lines = ["| row | JAX s | JAX bf16 s | PyTorch s | PyTorch bf16 autocast s | onnxruntime s | JAX / best float32 "
             "other | JAX float32 / JAX bf16 | JAX bf16 / PyTorch bf16 | JAX GFLOP/s | JAX bf16 GFLOP/s | "
             "JAX of float32 peak | JAX bf16 of bf16 peak |",
             "| --- " * 13 + "|"]
    for row, f in figures["rows"].items():
        cells = [f"{f['median_s'][rt]:.3g}" if rt in f["median_s"] else "" for rt in runtimes]
        bf16 = [f"{f['jax_bf16_speedup']:.2f}", f"{f['jax_bf16_over_torch_bf16']:.2f}"] if "jax_bf16_speedup" in f \
            else ["", ""]
        bf16_rate = [f"{f['jax_bf16_gflops']:.0f}", f"{f['jax_bf16_fraction_of_bf16_peak']:.0%}"] \
            if "jax_bf16_speedup" in f else ["", ""]
        lines.append(f"| {row} | {' | '.join(cells)} | {f['jax_over_best_other']:.2f} | {' | '.join(bf16)} | "
                     f"{f['jax_gflops']:.0f} | {bf16_rate[0]} | {f['jax_fraction_of_peak']:.0%} | {bf16_rate[1]} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS, help="workloads (default: all)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--label", default="cpu", help="results go to benchmarks/results/cpu_speed_<label>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    vgg = vgg_weights.load_vgg("hed")
    theta = jax.device_get(transformer.init_params(jax.random.key(0), 16))
    load = os.getloadavg()
    rows = build(args.rows, theta, vgg, np.random.default_rng(0))
    figures = summarize(rows, interleaved(rows, args.rounds))
    for row, f in figures["rows"].items():
        times = ", ".join(f"{rt} {s:.3g} s" for rt, s in f["median_s"].items())
        print(f"{row:16s} {times}; JAX / best other {f['jax_over_best_other']:.2f}; "
              f"{f['jax_gflops']:.1f} GFLOP/s = {f['jax_fraction_of_peak']:.0%} of the {figures['peak_gflops']:.0f} peak")
    print(markdown(figures))
    path = write_result(f"cpu_speed_{args.label}", {
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "rounds": args.rounds,
        "load_average_before": load, "load_average_after": os.getloadavg(), **figures})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
