"""`--config configs/theta_cpu.py`: the same as `--config metastyle:cpu`, the shipped theta's campaign
(configs/metastyle.py, `cpu`, names every deviation from the paper)."""

from metastyle_jax import config


def get_config():
    return config.load("metastyle:cpu")
