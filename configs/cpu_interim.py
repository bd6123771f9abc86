"""An interim MetaStyle theta meta-trained on this 2-core CPU in under an hour (issue #6): 32 px.

Everything else is configs/metastyle.py (the paper's settings: exact second order, T=1, inner SGD 1e-4 on
the instance-norm parameters, Adam on all of theta, lr decay 2.5e-5, alpha=1, beta=1e5, HED VGG16).
Deviations from the paper, each for the CPU's time budget:
- 32 px content crops and 32 px styles (paper: 256 and 256): 64 px ran at ~18 s per iteration on the
  shared CPU (load ~17 on 2 cores), too slow for ~500 iterations in 45 minutes;
- 2 styles x 2 contents per meta-batch (paper: 4 x 4);
- outer Adam lr 3e-4 (paper: 1e-3, which spiked at 32 px in the tests; official code: 1e-5);
- num_steps 2000, stopped by hand after ~38 minutes at the checkpoint of iteration 1,275 (paper: 100,000);
- styles: 4 paintings + 4 scikit-image colour pictures (paper: ~20,000 WikiArt paintings), read from
  runs/theta_cpu/styles (git-ignored). The Scream is held out of training, for Figure 6. The folder is
  made by linking composition_vii, starry_night, udnie and wave from ../shared/styles and saving the
  scikit-image pictures hubble_deep_field, immunohistochemistry, retina and coffee there as PNG
  (`images.save_image(path, images.as_float_rgb(data.skimage_image(name)))`).
Content: the embedded scikit-image photos (train split), as the base config.

    python -m metastyle_jax.train --config configs/cpu_interim.py --workdir runs/theta_cpu

Stopped early, a run's theta is exported from its last checkpoint with
`--resume --set num_steps=<that checkpoint's iteration>`.
"""

from metastyle_jax import config

HELD_OUT_STYLES = ("the_scream",)


def get_config():
    c = config.load("metastyle")
    c.update(styles_per_batch=2, batch_size=2, outer_lr=3e-4, num_steps=2000, log_every=10, plot_every=50,
             sample_every=100, num_samples=4, eval_every=100, checkpoint_every=25, keep_checkpoints=2)
    c.data.update(styles="runs/theta_cpu/styles", content_size=32, style_size=32)
    return c
