"""`--config tiny`: the same as `--config metastyle:tiny` (configs/metastyle.py, `tiny`)."""

from metastyle_jax import config


def get_config():
    return config.load("metastyle:tiny")
