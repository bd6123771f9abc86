"""MetaStyle (Zhang, Zhu and Zhu, AAAI 2019), "Ours": the adapted image transformation network.

After fast adaptation the network is the one of johnson.py (metastyle_jax.transformer), 1,679,235
parameters (paper: 1.68M); its per-image work is one forward pass.
"""

from benchmarks.methods.johnson import init, paper_count, stylize

__all__ = ["NAME", "PAPER", "init", "paper_count", "stylize"]

NAME = "Ours (adapted MetaStyle network)"
PAPER = {"params_m": 1.68, 256: 0.0047, 512: 0.0145}
