"""The methods of the paper's Table 1, each a Flax network at random initialization with a pure
`stylize(variables, content, style)` doing its whole per-image work (Gatys: the optimization loop)."""

from benchmarks.methods import (
                                adain,
                                avatar_net,
                                gatys,
                                johnson,
                                meta_networks,
                                metastyle,
                                style_swap,
                                wct,
)

# Table 1's row order; gatys is timed per optimization step, the others per forward pass.
FEED_FORWARD = {"johnson": johnson, "wct": wct, "adain": adain, "meta_networks": meta_networks,
                "avatar_net": avatar_net, "style_swap": style_swap, "metastyle": metastyle}
ROWS = ("gatys",) + tuple(FEED_FORWARD)
MODULES = {"gatys": gatys, **FEED_FORWARD}
