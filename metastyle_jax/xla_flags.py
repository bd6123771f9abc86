"""The XLA flag metastyle-jax runs with: float32 arithmetic that is the same on every CPU.

XLA:CPU lets the libraries it hands operations to (YNNPACK) use arithmetic that differs by CPU
(`--xla_cpu_enable_platform_dependent_math`, on by default). On an Intel Xeon with AMX that put the float32
meta-gradient 0.46% away from its float64 value, against 1.2e-6 with it off; off, float32 stylization took
1.13x as long there and the adaptation and meta steps 1.05x, bfloat16 1.00-1.01x (`python -m benchmarks.cpu_math`,
benchmarks/results/cpu_math_xeon_amx.json). Importing metastyle_jax turns it
off (`use_consistent_math`) unless XLA_FLAGS already sets it; JAX reads XLA_FLAGS when it starts its CPU
backend, so this holds for every program that imports metastyle_jax before it computes anything with JAX.
"""

import os

FLAG = "--xla_cpu_enable_platform_dependent_math"


def with_consistent_math(flags):
    """The XLA_FLAGS text `flags` (None: unset) with FLAG=false added, unless it already sets FLAG."""
    tokens = (flags or "").split()
    if any(token.split("=", 1)[0] == FLAG for token in tokens):
        return flags
    return " ".join(tokens + [f"{FLAG}=false"])


def use_consistent_math(environ=os.environ):
    """Set environ["XLA_FLAGS"] to `with_consistent_math` of itself."""
    environ["XLA_FLAGS"] = with_consistent_math(environ.get("XLA_FLAGS"))
