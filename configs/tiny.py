"""A tiny MetaStyle run for tests and CPU smoke runs: 32 px, 2 styles x 2 contents, 20 iterations.

Everything else is configs/metastyle.py (the paper's settings); only size, length and bookkeeping differ.
"""

from metastyle_jax import config


def get_config():
    c = config.load("metastyle")
    c.styles_per_batch = 2
    c.batch_size = 2
    c.num_steps = 20
    c.data.content_size = 32
    c.data.style_size = 32
    c.data.prefetch = 1
    c.log_every = 1
    c.plot_every = 5
    c.sample_every = 10
    c.num_samples = 2
    c.eval_every = 10
    c.checkpoint_every = 5
    c.keep_checkpoints = 2
    return c
