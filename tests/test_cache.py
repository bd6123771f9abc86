"""The cache folder and the persistent compilation cache that every command turns on."""

import os
import subprocess
import sys
from pathlib import Path

from metastyle_jax import cache

# a program compiled under enable_compile_cache; prints the cache folder in use and the result
PROGRAM = """
import jax, jax.numpy as jnp
from metastyle_jax import cache
print(cache.enable_compile_cache())
print(float(jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T)(jnp.arange(64.0).reshape(8, 8)).sum()))
"""


def test_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("METASTYLE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.root() == Path.home() / ".cache" / "metastyle_jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.root() == tmp_path / "xdg" / "metastyle_jax"
    monkeypatch.setenv("METASTYLE_CACHE", str(tmp_path / "mine"))
    assert cache.root() == tmp_path / "mine"
    assert cache.root(tmp_path / "given") == tmp_path / "given"


def _run(tmp_path, **env):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"} | env
    env |= {"METASTYLE_CACHE": str(tmp_path), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_compiled_programs_are_kept_and_reused(tmp_path):
    folder, first = _run(tmp_path)
    assert Path(folder) == tmp_path / "xla"
    entries = sorted(p.name for p in (tmp_path / "xla").iterdir())
    assert any("cache" in name for name in entries)
    folder, again = _run(tmp_path)  # read back from the cache: same result, no new entry
    assert again == first and sorted(p.name for p in (tmp_path / "xla").iterdir()) == entries


def test_compile_cache_can_be_turned_off_or_moved(tmp_path):
    assert _run(tmp_path / "off", METASTYLE_COMPILE_CACHE="0")[0] == "None"
    assert not (tmp_path / "off").exists()
    elsewhere = tmp_path / "elsewhere"
    assert Path(_run(tmp_path / "unused", JAX_COMPILATION_CACHE_DIR=str(elsewhere))[0]) == elsewhere
    assert any(elsewhere.iterdir()) and not (tmp_path / "unused").exists()
