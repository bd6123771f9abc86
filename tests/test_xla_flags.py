"""The XLA flag set on import (metastyle_jax.xla_flags)."""

import os
import subprocess
import sys

from metastyle_jax import xla_flags

OFF = "--xla_cpu_enable_platform_dependent_math=false"


def test_consistent_math_is_added_once_and_never_overrides_the_user():
    assert xla_flags.with_consistent_math(None) == OFF
    assert xla_flags.with_consistent_math("") == OFF
    assert xla_flags.with_consistent_math("--xla_a=1  --xla_b") == f"--xla_a=1 --xla_b {OFF}"
    assert xla_flags.with_consistent_math(f"--xla_a=1 {OFF}") == f"--xla_a=1 {OFF}"
    mine = "--xla_cpu_enable_platform_dependent_math=true --xla_a=1"
    assert xla_flags.with_consistent_math(mine) == mine
    env = {"XLA_FLAGS": "--xla_a=1"}
    xla_flags.use_consistent_math(env)
    assert env == {"XLA_FLAGS": f"--xla_a=1 {OFF}"}


def test_importing_the_package_sets_it_before_jax_starts():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = ("import os, metastyle_jax, jax; jax.numpy.zeros(1).block_until_ready(); "
            "print(os.environ['XLA_FLAGS'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [OFF]
