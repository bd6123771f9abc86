"""Gatys et al. (2016): style transfer by optimizing the pixels of one image on the perceptual loss.

    python -m metastyle_jax.gatys --content IMG --style IMG --steps 800 --init content|noise|IMAGE --out OUT.png

The optimization runs in jit-compiled chunks of `lax.scan` steps (Adam on the pixels, clipped to [0, 1]);
between chunks a progress bar shows the current loss. Writes the image and its loss curve (PNG).
"""

import functools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metastyle_jax import checks, data, images, losses, onednn, outputs, plotting, vgg_weights
from metastyle_jax.errors import UserError


def _loss(x, vgg, content_feat, grams, weights, dtype="float32"):
    """Perceptual loss of one image x (H, W, 3) against fixed content features and style Grams, VGG16's
    convolutions in `dtype` (bfloat16: mixed precision through `onednn`)."""
    total, parts = losses.perceptual_loss(vgg, x[None], grams, content_feat=content_feat, weights=weights,
                                          dtype=jnp.dtype(dtype))
    return total, (parts["content"], parts["style"])


@functools.partial(jax.jit, static_argnames=("weights", "lr", "steps", "dtype"))
def run_steps(x, opt_state, vgg, content_feat, grams, *, weights, lr, steps, dtype="float32"):
    """`steps` Adam steps on the pixels of x (H, W, 3) in [0, 1], through `vgg` (a `vgg16.VGG`).

    Returns (x, opt_state, (total, content, style)) with the three losses as (steps,) arrays, each the
    loss before that step's update.
    """
    opt = optax.adam(lr)
    grad_fn = jax.value_and_grad(_loss, has_aux=True)

    def step(carry, _):
        x, s = carry
        (total, (lc, ls)), g = grad_fn(x, vgg, content_feat, grams, weights, dtype)
        updates, s = opt.update(g, s, x)
        return (jnp.clip(x + updates, 0.0, 1.0), s), (total, lc, ls)

    (x, opt_state), hist = jax.lax.scan(step, (x, opt_state), None, length=steps)
    return x, opt_state, hist


def targets(vgg, content, style, weights):
    """Content features (1, h, w, C) of `content` (H, W, 3) and style Grams of `style` (Hs, Ws, 3)."""
    content_feat = losses.content_features(vgg, jnp.asarray(content)[None], weights.content_layer)
    grams = losses.style_grams(vgg, jnp.asarray(style)[None], weights.style_layers)
    return content_feat, grams


def optimize(vgg, content, style, init, steps, lr, weights, chunk=10, progress=None, dtype="float32", stops=(),
             hook=None):
    """Run Gatys et al. from `init` (H, W, 3) through `vgg` (a `vgg16.VGG`): the final image (H, W, 3) and
    per-step loss history {"total", "content", "style"} as (steps,) numpy arrays. The steps run in compiled
    chunks of at most `chunk`, which also end at each step of `stops`; after every chunk `progress(n_done,
    total_loss)` and `hook(steps_done, image)` are called (`hook` also before the first, with 0). `dtype` is the
    convolutions' compute dtype (the targets stay float32)."""
    content_feat, grams = targets(vgg, content, style, weights)
    x = jnp.asarray(init, jnp.float32)
    opt_state = optax.adam(lr).init(x)
    hist, done = [], 0
    first = run_steps.lower(x, opt_state, vgg, content_feat, grams, weights=weights, lr=lr,
                            steps=min(chunk, steps), dtype=dtype).compile()
    checks.check_memory(checks.program_bytes(first), f"Gatys et al. on a {x.shape[1]}x{x.shape[0]} image",
                        "use a smaller --size or --style-size")
    if hook is not None:
        hook(0, np.asarray(x))
    while done < steps:
        n = min([chunk, steps - done] + [s - done for s in stops if s > done])
        if n == min(chunk, steps):
            x, opt_state, h = first(x, opt_state, vgg, content_feat, grams)
        else:
            x, opt_state, h = run_steps(x, opt_state, vgg, content_feat, grams, weights=weights, lr=lr, steps=n,
                                        dtype=dtype)
        hist.append(jax.device_get(h))
        done += n
        if not (np.isfinite(hist[-1][0]).all() and bool(jnp.isfinite(x).all())):
            raise UserError(f"Gatys et al. diverged by step {done} (a NaN or infinite loss or pixel); nothing was "
                            "written (try a lower --lr)")
        if progress is not None:
            progress(n, float(h[0][-1]))
        if hook is not None:
            hook(done, np.asarray(x))
    total, lc, ls = (np.concatenate([h[i] for h in hist]) for i in range(3))
    return np.asarray(x), {"total": total, "content": lc, "style": ls}


def initial_image(init, content, seed=0):
    """The starting image: 'content', 'noise' (uniform, seeded), or the path of an image resized to
    the content's (H, W)."""
    if init == "content":
        return content.copy()
    if init == "noise":
        return np.asarray(jax.random.uniform(jax.random.key(seed), content.shape), np.float32)
    image = images.load_image(init)
    return images.resize(image, size=content.shape[:2])


def transfer(cfg, content_arg, style_arg, out, compare=None, force=False):
    """The `gatys` command: optimize the pixels of an image (configs/gatys.py: init, steps, size, style_size, lr,
    alpha, beta, vgg.source/vgg.path chosen) so that it has the content of `content_arg` and the style of
    `style_arg` (paths or embedded:NAME), then write it to `out`, its loss curve beside it as <name>_loss.png
    and, given `compare`, content | style | result side by side. Shows a progress bar.
    Returns {"out", "curve": paths, "result": (H, W, 3) image, "history": `optimize`'s, "seconds"}."""
    checks.check_lr("--lr", cfg.lr)
    if cfg.num_steps < 1:
        raise UserError("--steps must be at least 1")
    checks.check_side("--size", cfg.data.content_size)
    checks.check_side("--style-size", cfg.data.style_size)
    out = Path(out)
    curve = out.with_name(f"{out.stem}_loss.png")
    outputs.check([out, curve, compare], [content_arg, style_arg, cfg.init], force)
    checks.check_image_suffix(out)

    content = data.load_image_spec(content_arg, max_side=cfg.data.content_size)
    style = data.load_image_spec(style_arg, max_side=cfg.data.style_size)
    init = initial_image(cfg.init, content, cfg.seed)
    vgg = vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None)
    weights = losses.weights_of(cfg)
    dtype, note = onednn.resolve_dtype(cfg.get("dtype", "float32"))
    if note:
        print(note, file=sys.stderr)

    from tqdm import tqdm
    bar = tqdm(total=cfg.num_steps, desc="gatys", unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    try:  # closing the bar ends its line, so that an error gets a line of its own
        result, hist = optimize(vgg, content, style, init, cfg.num_steps, cfg.lr, weights,
                                chunk=cfg.log_every, dtype=dtype,
                                progress=lambda n, loss: (bar.update(n), bar.set_postfix(loss=f"{loss:.4g}")))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    images.save_image(out, result)
    plotting.loss_curves(curve, {"total": hist["total"], "alpha * content": cfg.loss.alpha * hist["content"],
                                 "beta * style": cfg.loss.beta * hist["style"]},
                         title=f"Gatys et al., {Path(style_arg).name}", xlabel="step")
    if compare:
        images.save_image(compare, images.hstack([content, style, result]))
    return {"out": out, "curve": curve, "result": result, "history": hist, "seconds": seconds}


if __name__ == "__main__":  # python -m metastyle_jax.gatys: the command line's `gatys`
    from metastyle_jax import commands

    commands.run("gatys")
