"""MetaStyle in JAX/Flax: meta-train a style transfer network once, adapt it to any painting in seconds."""

__version__ = "0.1.0"
