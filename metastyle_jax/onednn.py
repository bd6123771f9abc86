"""Mixed-precision convolutions on the CPU's matrix engine: oneDNN kernels called from XLA as FFI custom calls.

Operands are rounded to bfloat16, products accumulate in float32, and outputs are float32; oneDNN runs them on
AMX or AVX512-BF16 where the CPU has them (XLA:CPU runs no convolution there, benchmarks/xla_cpu_slow_paths.py).
The three operations, forward, input gradient and kernel gradient, are each the others' derivatives
(custom_vjp), so gradients of every order (the exact meta-gradient's second order) stay on oneDNN.

The C++ source (csrc/onednn_conv.cc) is compiled on first use with g++ against oneDNN (the PyPI package
onednn-devel-cpu-gomp, a dependency on x86-64 Linux) and jaxlib's FFI headers, and cached in
cache.root()/onednn (about 5 s, once per jaxlib); `status()` says why when that is not possible.
"""

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import cache, errors, manual_axes

SOURCE = Path(__file__).parent / "csrc" / "onednn_conv.cc"
TARGETS = {"forward": "MetastyleConvForward", "backward_data": "MetastyleConvBackwardData",
           "backward_weights": "MetastyleConvBackwardWeights"}
INSTALL_HINT = "pip install onednn-devel-cpu-gomp==2023.2.0, a dependency on x86-64 Linux"


def cpu_flags():
    """The instruction-set flags of this machine's CPU (/proc/cpuinfo), an empty set where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def matrix_engine(flags=None):
    """The bfloat16 product units of a CPU with instruction-set `flags` (default: this one's): "amx",
    "avx512_bf16", or None."""
    flags = cpu_flags() if flags is None else flags
    if {"amx_bf16", "amx_tile"} <= flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else None


def _onednn_prefix():
    """The prefix holding include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so (the onednn-devel-cpu-gomp wheel's
    data folder: this environment's, or its base installation's for a venv that sees the system's packages; or
    $METASTYLE_ONEDNN_PREFIX), else None."""
    candidates = (os.environ.get("METASTYLE_ONEDNN_PREFIX"), sysconfig.get_paths()["data"], sys.base_prefix, "/usr")
    for prefix in candidates:
        if prefix and (Path(prefix) / "include/oneapi/dnnl/dnnl.hpp").exists() and any(
                (Path(prefix) / lib).exists() for lib in ("lib/libdnnl.so", "lib/x86_64-linux-gnu/libdnnl.so")):
            return Path(prefix)
    return None


def _build(prefix, target):
    """Compile SOURCE into the shared library `target` (written atomically); raises RuntimeError."""
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++) to build the oneDNN kernels")
    libdir = next((d for d in (prefix / "lib/x86_64-linux-gnu", prefix / "lib") if (d / "libdnnl.so").exists()),
                  prefix / "lib")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}",
                   f"-I{prefix / 'include'}", str(SOURCE), "-o", str(built), f"-L{libdir}", "-ldnnl",
                   f"-Wl,-rpath,{libdir}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"building the oneDNN kernels failed: {last}")
        os.replace(built, target)


@functools.cache
def _load():
    """Build (once per source, jaxlib and oneDNN) and load the kernels, register the FFI targets; returns
    None, or why the kernels cannot be used."""
    import ctypes

    prefix = _onednn_prefix()
    if prefix is None:
        return f"oneDNN is not installed ({INSTALL_HINT})"
    tag = hashlib.sha256(SOURCE.read_bytes() + jax.ffi.include_dir().encode() + str(prefix).encode()
                         + jax.__version__.encode()).hexdigest()[:16]
    library = cache.root() / "onednn" / f"onednn_conv-{tag}.so"
    try:
        if not library.exists():
            _build(prefix, library)
        lib = ctypes.CDLL(str(library))
    except (RuntimeError, OSError) as e:
        return str(e).splitlines()[0]
    for name, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(f"metastyle_onednn_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")
    return None


def status():
    """None when the oneDNN kernels are ready to use, else one line saying why not."""
    return _load()


def _call(name, shape, a, b, strides, padding):
    reason = _load()
    if reason is not None:
        raise RuntimeError(reason)
    (pt, pb), (pl, pr) = padding
    call = jax.ffi.ffi_call(f"metastyle_onednn_{name}", jax.ShapeDtypeStruct(shape, jnp.float32),
                            vmap_method="sequential")
    out = call(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), sh=np.int64(strides[0]), sw=np.int64(strides[1]),
               pt=np.int64(pt), pb=np.int64(pb), pl=np.int64(pl), pr=np.int64(pr))
    return manual_axes.vary_like(out, a, b)  # inside shard_map, the result varies as its operands


def _out_size(size, kernel, stride, pads):
    return (size + pads[0] + pads[1] - kernel) // stride + 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def forward(x, w, strides, padding):
    """The convolution of x (B, H, W, I) with w (Kh, Kw, I, O), `strides` (s0, s1) and non-negative zero
    `padding` ((lo, hi), (lo, hi)) -> (B, Ho, Wo, O) float32, from bfloat16-rounded operands."""
    ho, wo = (_out_size(x.shape[1 + d], w.shape[d], strides[d], padding[d]) for d in range(2))
    return _call("forward", (x.shape[0], ho, wo, w.shape[3]), x, w, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def backward_data(g, w, strides, padding, in_hw):
    """The input gradient of `forward` for the output gradient g (B, Ho, Wo, O) and w (Kh, Kw, I, O), the
    input being in_hw = (H, W) -> (B, H, W, I) float32."""
    return _call("backward_data", (g.shape[0], *in_hw, w.shape[2]), g, w, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def backward_weights(x, g, strides, padding, kernel_hw):
    """The kernel gradient of `forward` for x (B, H, W, I) and the output gradient g (B, Ho, Wo, O), the
    kernel being kernel_hw = (Kh, Kw) -> (Kh, Kw, I, O) float32."""
    return _call("backward_weights", (*kernel_hw, x.shape[3], g.shape[3]), x, g, strides, padding)


def _forward_fwd(x, w, strides, padding):
    return forward(x, w, strides, padding), (x, w)


def _forward_bwd(strides, padding, res, ct):
    x, w = res
    return (backward_data(ct, w, strides, padding, x.shape[1:3]).astype(x.dtype),
            backward_weights(x, ct, strides, padding, w.shape[:2]).astype(w.dtype))


def _backward_data_fwd(g, w, strides, padding, in_hw):
    return backward_data(g, w, strides, padding, in_hw), (g, w)


def _backward_data_bwd(strides, padding, in_hw, res, ct):
    g, w = res  # backward_data is linear in each operand: <backward_data(g, w), ct> = <g, forward(ct, w)>
    return (forward(ct, w, strides, padding).astype(g.dtype),
            backward_weights(ct, g, strides, padding, w.shape[:2]).astype(w.dtype))


def _backward_weights_fwd(x, g, strides, padding, kernel_hw):
    return backward_weights(x, g, strides, padding, kernel_hw), (x, g)


def _backward_weights_bwd(strides, padding, kernel_hw, res, ct):
    x, g = res  # <backward_weights(x, g), ct> = <forward(x, ct), g>
    return (backward_data(g, ct, strides, padding, x.shape[1:3]).astype(x.dtype),
            forward(x, ct, strides, padding).astype(g.dtype))


forward.defvjp(_forward_fwd, _forward_bwd)
backward_data.defvjp(_backward_data_fwd, _backward_data_bwd)
backward_weights.defvjp(_backward_weights_fwd, _backward_weights_bwd)


def conv(x, w, strides, padding):
    """`forward` for padding of any sign: negative padding crops x first. x (B, H, W, I), w (Kh, Kw, I, O)
    -> (B, Ho, Wo, O) float32."""
    crop = [(max(-lo, 0), max(-hi, 0)) for lo, hi in padding]
    if any(c for pair in crop for c in pair):
        x = x[:, crop[0][0]:x.shape[1] - crop[0][1], crop[1][0]:x.shape[2] - crop[1][1]]
    return forward(x, w, tuple(strides), tuple((max(lo, 0), max(hi, 0)) for lo, hi in padding))


DTYPES = ("auto", "float32", "bfloat16")


def resolve_dtype(requested="auto", backend=None, flags=None):
    """The compute dtype to run for the config value `requested` ("auto", "float32" or "bfloat16"; others,
    such as "float64", pass through) and one line for the user, or None.

    On the CPU, bfloat16 runs the convolutions through oneDNN; "auto" picks it where the CPU has AMX.
    Where bfloat16 cannot run (no oneDNN, no compiler), the exact float32 path runs and the line says why."""
    if requested not in DTYPES + ("float64",):
        raise errors.UserError(f"dtype must be one of {', '.join(DTYPES)}, not {requested!r}")
    if (backend or jax.default_backend()) != "cpu":
        return ("float32" if requested == "auto" else requested), None
    if requested not in ("auto", "bfloat16"):
        return requested, None
    engine = matrix_engine(flags)
    if requested == "auto" and engine != "amx":
        hint = " (dtype=bfloat16 runs them on its AVX512-BF16 units)" if engine else ""
        return "float32", f"float32 convolutions: this CPU has no AMX{hint}"
    reason = status()
    if reason is not None:
        return "float32", f"float32 convolutions: the bfloat16 path is unavailable: {reason}"
    return "bfloat16", f"bfloat16 convolutions (float32 accumulation) through oneDNN on {engine or 'this CPU'}"
