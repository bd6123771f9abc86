"""Fast adaptation (eq. 8) from theta to one style: the paper's section 5.2 and the official `fast` command.

Keys as in configs/metastyle.py (one dialect); the older flat names (steps, size, style_size, content, crop,
alpha, beta, tv) are accepted as aliases (`config.ALIASES`)."""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.num_steps = 200        # paper, section 5.2: "only 200 iterations"; official --update-step 200
    c.lr = 1e-3              # official --lr 1e-3 (Adam); Fig. 6 trains Johnson et al. "with the same learning rate"
    c.warmup = 20            # Adam's learning rate rises linearly over the first 20 updates (adapt.warmup_schedule).
    #                          Deviation: none in the paper and the official code (0 restores them). Adam's first
    #                          updates move every parameter by about lr and throw theta off (Fig. 6 from theta: the
    #                          held-out loss rises over the first 10 updates on all five paintings). With 20, the
    #                          README's first command has a 10% lower held-out loss, checkerboard 3.7 (4.0), edges
    #                          kept 0.773 (0.750), colour distance 0.510 (0.533) (benchmarks/results/figures.md)
    c.batch_size = 4         # paper, section 5.1: "All batches are of size 4"; official --iter-batch-size 4
    c.loss = ml_collections.ConfigDict({
        "alpha": 5.0,        # eq. 4. Deviation: the paper's section 5.1 has 1; from the shipped theta, 1 leaves black
        #                      blobs on the photos (gallery blob share 2.1%), 5 removes most (0.21%) and keeps
        #                      more of the photos (benchmarks/results/objective_study.md, "The black blobs")
        "beta": 1e5,         # eq. 4, paper section 5.1
        "tv": 2.0,           # total variation. Deviation: not in the paper (0 restores it); 10 with --vgg hed;
        #                      see configs/metastyle.py
        "saturation": 0.0,   # weight of losses.saturation (0: none, as the paper); see configs/metastyle.py
        "layer_balance": "step0",  # the style layers' factors. Deviation: step0 re-weights them for each painting
        #                      so that each layer carries a quarter of the style term at step 0 (adapt.balance_at_step0),
        #                      which brings the gallery closer to the paintings (colour distance 0.46 -> 0.43);
        #                      "source" keeps the VGG source's (vgg_weights; the paper's equal factors with torchvision)
    })
    c.data = ml_collections.ConfigDict({
        # Deviation: the paper and the official code adapt on MS-COCO; by default we use the scikit-image photos
        # bundled with the package (no download). Give --content DIR or --content tfds:coco/2017 for COCO.
        "content": "embedded",
        "content_size": 256,  # content crop side, px; official --content-size 256 (Resize + CenterCrop)
        "style_size": 512,    # style side, px; official --style-size 512, Resize((512, 512)) (aspect not kept)
        # Deviation: the official code takes the centre crop of each content image; we take a random one
        # (seeded), which matters with the 7 embedded training photos. "center" restores the official behaviour.
        "crop": "random",
        "zoom": 1.0,          # ours: the largest random zoom of the content crops (data.ContentData; 1: none, as
        #                       the official code); see configs/metastyle.py
    })
    # Deviation (compute only): "auto" runs the convolutions in bfloat16 with float32 accumulation through oneDNN
    # on CPUs with AMX (metastyle_jax/onednn.py); "float32" is the exact path, "bfloat16" asks for oneDNN anywhere
    c.dtype = "auto"
    c.only_in = False        # official --only-in 0: Adam on every parameter; True: instance-norm scale/shift only
    c.eval_every = 20        # ours: perceptual loss on held-out (val split) content every N steps (Fig. 6, right)
    c.eval_batch = 4         # ours: held-out images per evaluation (fixed for the whole run)
    c.seed = 0               # content order and crops; the random initialization when no theta is given
    c.resampling = "antialiased"  # the transformer's, with no theta (from theta: theta's); see configs/metastyle.py
    c.vgg = ml_collections.ConfigDict({"source": "imagenet", "path": "",  # see configs/metastyle.py
                                       "layer_weights": ()})  # the four style layers' factors (vgg16.LAYERS
    #                          order); (): the source's (vgg_weights: IMAGENET_LAYER_WEIGHTS, HED_LAYER_WEIGHTS)
    return c
