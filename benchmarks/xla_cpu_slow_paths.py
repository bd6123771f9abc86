"""Minimal reproductions of the XLA:CPU slow paths that metastyle_jax/conv.py works around, for upstream.

    python -m benchmarks.xla_cpu_slow_paths [--repeats 5]

Each case times two jitted programs that compute the same array (checked equal) with plain jax.lax, and
prints the median seconds of each and their ratio:
  1. unpadded convolution: `padding="VALID"` against one zero row of padding on the high side and a crop;
  2. weight gradient: `jax.vjp` of a convolution with respect to its kernel (a kernel-sized convolution)
     against the same sums as matrix products of shifted windows;
  3. bfloat16 convolutions: a 3x3 128->128 convolution with bfloat16 operands and float32 accumulation
     (`preferred_element_type`) against the same convolution in float32, beside a matmul of the same FLOPs in
     both dtypes. On CPUs with bfloat16 matrix units (avx512_bf16, AMX) the bf16 matmul is several times
     faster than float32 and the bf16 convolution is not (reported as GFLOP/s, not checked equal).
No metastyle_jax code is used: only jax and numpy (and benchmarks.common for the CPU's flags).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import cpu_flags

DN = ("NHWC", "HWIO", "NHWC")


def median_seconds(fn, args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def conv(x, w, padding):
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)


def case_unpadded(r):
    x, w = r.random((1, 264, 264, 32), np.float32), r.random((9, 9, 32, 3), np.float32)
    slow = jax.jit(lambda x, w: conv(x, w, "VALID"))
    fast = jax.jit(lambda x, w: conv(x, w, ((0, 1), (0, 1)))[:, :256, :256])
    return "9x9 conv 32->3, (1, 264, 264, 32), VALID vs pad (0, 1) + crop", slow, fast, (x, w)


def case_weight_grad(r):
    x, g = r.random((2, 258, 258, 64), np.float32), r.random((2, 256, 256, 32), np.float32)
    w0 = jnp.zeros((3, 3, 64, 32))
    slow = jax.jit(lambda x, g: jax.vjp(lambda w: conv(x, w, "VALID"), w0)[1](g)[0])

    def products(x, g):
        xt, gt = jnp.transpose(x, (3, 0, 1, 2)), jnp.transpose(g, (3, 0, 1, 2))
        return jnp.stack([jnp.stack([jnp.einsum("cbpq,dbpq->cd", xt[:, :, i:i + 256, j:j + 256], gt)
                                     for j in range(3)]) for i in range(3)])

    return "kernel gradient of a 3x3 conv 64->32 at (2, 256, 256): vjp vs matrix products", slow, \
        jax.jit(products), (x, g)


def case_bf16(r, repeats):
    """GFLOP/s of conv and matmul in float32 and bfloat16 (f32 accumulation), the same FLOPs each."""
    x, w = r.random((4, 66, 66, 128), np.float32), r.random((3, 3, 128, 128), np.float32)
    flop = 2 * 4 * 64 * 64 * 128 * 128 * 9
    a, b = r.random((4 * 64 * 64, 9 * 128), np.float32), r.random((9 * 128, 128), np.float32)
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        c = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=DN,
                                                             preferred_element_type=jnp.float32))
        m = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
        name = jnp.dtype(dtype).name
        out[f"conv {name}"] = flop / median_seconds(c, (x.astype(dtype), w.astype(dtype)), repeats) / 1e9
        out[f"matmul {name}"] = flop / median_seconds(m, (a.astype(dtype), b.astype(dtype)), repeats) / 1e9
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    r = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")
    for make in (case_unpadded, case_weight_grad):
        name, slow, fast, inputs = make(r)
        a, b = np.asarray(slow(*inputs)), np.asarray(fast(*inputs))
        err = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))
        ts, tf = median_seconds(slow, inputs, args.repeats), median_seconds(fast, inputs, args.repeats)
        print(f"{name}: {ts * 1e3:.1f} ms vs {tf * 1e3:.1f} ms ({ts / tf:.1f}x), max relative difference {err:.1e}")
    rates = case_bf16(r, args.repeats)
    print(f"bfloat16 on this CPU (flags: {' '.join(cpu_flags()) or 'none'}), 3x3 conv 128->128 at (4, 64, 64) and a "
          "matmul of the same FLOPs, GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
