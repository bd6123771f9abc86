"""Where metastyle-jax keeps what it can fetch or rebuild: downloaded VGG16 weights and compiled programs.

The folder is $METASTYLE_CACHE, else $XDG_CACHE_HOME/metastyle_jax, else ~/.cache/metastyle_jax. Compiled XLA
programs go to its `xla/` subfolder (JAX's persistent compilation cache), so a command run again with the same
shapes skips compilation: on the CPU the meta-iteration takes about a minute to compile, stylization seconds.
"""

import os
from pathlib import Path

COMPILE_CACHE_BYTES = 2 << 30  # least recently used programs are evicted beyond this


def root(override=None):
    """The cache folder: `override`, else $METASTYLE_CACHE, else $XDG_CACHE_HOME/metastyle_jax, else
    ~/.cache/metastyle_jax."""
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(override or os.environ.get("METASTYLE_CACHE") or Path(xdg) / "metastyle_jax").expanduser()


def enable_compile_cache():
    """Turn on JAX's persistent compilation cache in root()/xla, unless $JAX_COMPILATION_CACHE_DIR already
    chose a folder or $METASTYLE_COMPILE_CACHE is 0; returns the folder in use (None: off)."""
    import jax

    if os.environ.get("METASTYLE_COMPILE_CACHE", "1") == "0":
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = root() / "xla"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_BYTES)
    return str(folder)
