"""Figures people would rather look at than numbers: loss curves as PNG (matplotlib, Agg backend)."""

import os
import tempfile
from pathlib import Path

import numpy as np


def loss_curves(path, curves, title=None, xlabel="step", log=True):
    """Plot named curves to a PNG at `path`, written atomically.

    curves: {name: sequence of values} (x = 0, 1, ...) or {name: (xs, ys)}.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for name, values in curves.items():
        if isinstance(values, tuple) and len(values) == 2:
            xs, ys = np.asarray(values[0]), np.asarray(values[1], dtype=float)
        else:
            ys = np.asarray(values, dtype=float)
            xs = np.arange(len(ys))
        ax.plot(xs, ys, label=name, linewidth=1.2)
    if log:
        ys = np.concatenate([np.asarray(v[1] if isinstance(v, tuple) else v, float).ravel()
                             for v in curves.values()])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        if ys.size:
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(ys.min(), ys.max() * 1e-6) / 1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
