"""MetaStyle in JAX/Flax: meta-train a style transfer network once, adapt it to any painting in seconds."""

from metastyle_jax import xla_flags

__version__ = "0.1.0"

xla_flags.use_consistent_math()  # before JAX starts its CPU backend: the same float32 arithmetic on every CPU
