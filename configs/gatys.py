"""Gatys et al. (2016): optimize the pixels of one image on the perceptual loss (the Table 1 baseline).

Keys as in configs/metastyle.py (one dialect); the older flat names (steps, size, style_size, alpha, beta, tv)
are accepted as aliases (`config.ALIASES`)."""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.num_steps = 800        # paper, section 5.2: "we optimize the input using 800 update steps"
    # Deviation: the paper does not name its optimizer; we use Adam on the pixels (clipped to [0, 1]).
    c.lr = 0.02
    c.loss = ml_collections.ConfigDict({
        "alpha": 1.0,        # eq. 4, paper section 5.1
        "beta": 1e5,         # eq. 4, paper section 5.1
        "tv": 2.0,           # total variation. Deviation: not in the paper (0 restores it); 10 with --vgg hed;
        #                      see configs/metastyle.py
    })
    c.data = ml_collections.ConfigDict({
        "content_size": 256,  # longer side of the content image, px (Table 1 is timed at 256 and 512)
        "style_size": 256,    # longer side of the style image, px
    })
    # Deviation (compute only): "auto" runs the convolutions in bfloat16 with float32 accumulation through oneDNN
    # on CPUs with AMX (metastyle_jax/onednn.py); "float32" is the exact path, "bfloat16" asks for oneDNN anywhere
    c.dtype = "auto"
    c.init = "content"       # content | noise | a path to an image (e.g. the style-neutral M(I_c; theta))
    c.seed = 0
    c.log_every = 10         # steps per progress-bar / loss-curve sample
    c.vgg = ml_collections.ConfigDict({"source": "imagenet", "path": ""})  # see configs/metastyle.py
    return c
