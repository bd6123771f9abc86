"""Fast adaptation: minimize eq. 8, E_c[l(I_c, I_s, M(I_c; w))], over w from theta, for one style.

    python -m metastyle_jax.adapt [--model THETA] --style PAINTING --steps 200 --out STYLE_CKPT

Adam (lr 1e-3) on batches of 4 content crops (256 px) against the Gram targets of the style (512 px), as the
paper (section 5.2) and the official `fast` command do; `--only-in` moves only the instance-norm scale and
shift. w starts from `--model` (default: the shipped theta); with `--random-init` it starts from random
initialization: that is Johnson et al. (2016), the baseline of Fig. 6, through the same code. Writes the
adapted checkpoint, its loss curve, a preview grid, its metrics (JSON lines) and TensorBoard events, all
moved into place together once every one of them is written.
"""

import dataclasses
import functools
import hashlib
import json
import sys
import time
from typing import NamedTuple
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

from metastyle_jax import (checkpoints, checks, data, images, losses, onednn, outputs, plotting, prefetch,
                           stylize, transformer, vgg_weights)
from metastyle_jax.errors import UserError

STYLE_MIN_SIDE = 64              # px on the shorter side: below this a painting carries no brush strokes
STYLE_MAX_PIXELS = 50_000_000    # a style is used at 512 px: decoding a bigger file is wasted memory
GRAY_SPREAD = 2.0 / 255.0        # largest channel spread (max - min over R, G, B) of a colourless image
DEFAULT_THETA = "theta"          # the meta-trained theta shipped in the package (checkpoints.MODELS_DIR)
LAYER_BALANCES = ("source", "step0")  # loss.layer_balance: the VGG source's layer factors, or re-weighted per painting
STEP0_IMAGES = 4                 # training contents whose step-0 style term sets the per-painting balance


class ScaleLeavesState(NamedTuple):
    """scale_leaves keeps no state."""


def scale_leaves(scales: dict) -> optax.GradientTransformation:
    """Multiply each leaf of the updates by the float of the same path in `scales` (a params-shaped pytree)."""

    def init_fn(params):
        del params
        return ScaleLeavesState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda u, s: u * s, updates, scales), state

    return optax.GradientTransformation(init_fn, update_fn)


def input_scale_of(meta):
    """The pixel range a model's conv1 kernel was trained for (255: imported from the official code, whose
    network reads 0-255 pixels; `convert` folds the 255 into the kernel), from its meta.json; 1 otherwise."""
    return float(((meta or {}).get("settings") or {}).get("input_scale", 1.0))


def resampling_of(theta_meta, cfg):
    """The transformer resampling an adaptation runs: theta's (its meta), or with no theta (random init) the
    config's `resampling`, a UserError if that is not one of `transformer.RESAMPLING`."""
    if theta_meta:
        return checkpoints.resampling(theta_meta)
    if cfg.resampling not in transformer.RESAMPLING:
        raise UserError(f"resampling must be one of {', '.join(transformer.RESAMPLING)}, not {cfg.resampling!r}")
    return cfg.resampling


def warmup_schedule(lr, warmup):
    """Adam's learning rate at update k (0-based): lr * min(1, (k + 1) / warmup), a linear rise over the first
    `warmup` updates; the constant `lr` for warmup <= 0."""
    if warmup <= 0:
        return lr
    return lambda k: lr * jnp.minimum(1.0, (k + 1) / warmup)


def optimizer(lr, only_in=False, input_scale=1.0, warmup=0):
    """Adam(lr) on every parameter, or (only_in) on the instance-norm scale/shift only, the rest frozen; with the
    learning rate rising over the first `warmup` updates (`warmup_schedule`).

    input_scale s != 1 (a converted official network): Adam runs on conv1's kernel as the official code
    parameterizes it, K / s, so an adaptation moves it as the official code does: the gradient is scaled by s
    before Adam and the update by s after (exact; Adam's step size does not depend on the gradient's scale)."""
    adam = optax.adam(warmup_schedule(lr, warmup))
    if only_in:
        labels = lambda p: jax.tree_util.tree_map(lambda m: "in" if m else "frozen", transformer.instance_norm_mask(p))
        return optax.partition({"in": adam, "frozen": optax.set_to_zero()}, labels)
    if input_scale == 1.0:
        return adam
    scales = jax.tree_util.tree_map_with_path(
        lambda path, _: input_scale if tuple(k.key for k in path) == ("conv1", "conv2d", "kernel") else 1.0,
        transformer.abstract_params())
    return optax.chain(scale_leaves(scales), adam, scale_leaves(scales))


def _loss(params, vgg, grams, contents, weights, dtype="float32", resampling="nearest"):
    """Eq. 4 of M(contents; params) against `contents` and the style Grams: (scalar, {content, style}), with
    the convolutions of both networks in `dtype` (bfloat16: mixed precision, `onednn`) and the transformer's
    `resampling`."""
    dtype = jnp.dtype(dtype)
    return losses.perceptual_loss(vgg, transformer.apply(params, contents, dtype, resampling=resampling), grams,
                                  contents=contents, weights=weights, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("weights", "lr", "only_in", "input_scale", "dtype", "resampling",
                                             "warmup"))
def adapt_step(params, opt_state, vgg, grams, contents, *, weights=losses.LossWeights(), lr=1e-3,
               only_in=False, input_scale=1.0, dtype="float32", resampling="nearest", warmup=0):
    """One Adam step on eq. 8 through `vgg` (a `vgg16.VGG`): contents (B, H, W, 3) in [0, 1], grams layer ->
    (1, C, C); `optimizer` says what only_in, input_scale and warmup do; `dtype` is the convolutions' compute dtype,
    `resampling` the transformer's.

    Returns (params, opt_state, {"loss", "content", "style"}), the losses of this batch before the update.
    """
    (total, parts), g = jax.value_and_grad(_loss, has_aux=True)(params, vgg, grams, contents, weights, dtype,
                                                                resampling)
    updates, opt_state = optimizer(lr, only_in, input_scale, warmup).update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {"loss": total, **parts}


@functools.partial(jax.jit, static_argnames=("weights", "dtype", "resampling"))
def evaluate(params, vgg, grams, contents, *, weights=losses.LossWeights(), dtype="float32", resampling="nearest"):
    """The perceptual loss of M(contents; params) without updating: {"loss", "content", "style"} scalars."""
    total, parts = _loss(params, vgg, grams, contents, weights, dtype, resampling)
    return {"loss": total, **parts}


@functools.partial(jax.jit, static_argnames=("layers",))
def _style_grams(vgg, style, *, layers):
    return losses.style_grams(vgg, style[None], layers)


def style_targets(vgg, style, weights=losses.LossWeights()):
    """Gram targets of one style image (S, S, 3): layer -> (1, C, C), shared by every image of a batch."""
    return _style_grams(vgg, jnp.asarray(style, jnp.float32), layers=tuple(weights.style_layers))


def compile_step(params, opt_state, vgg, grams, batch, **settings):
    """`adapt_step` compiled for these shapes and `settings` (its keyword arguments), refused before it runs if
    it cannot fit in memory: a function (params, opt_state, vgg, grams, batch) -> `adapt_step`'s result."""
    step_fn = adapt_step.lower(params, opt_state, vgg, grams, batch, **settings).compile()
    checks.check_memory(checks.program_bytes(step_fn), f"an adaptation step on {batch.shape[0]} images of "
                        f"{batch.shape[2]}x{batch.shape[1]}", "use a smaller --size or --batch-size")
    return step_fn


def adapt(params, vgg, style, content, steps, *, lr=1e-3, batch_size=4, only_in=False,
          input_scale=1.0, weights=losses.LossWeights(), eval_contents=None, eval_every=20, progress=None,
          dtype="float32", hook=None, resampling="nearest", grams=None, warmup=0):
    """Run `steps` steps of `adapt_step` from `params` on batches `content.batch_at(step, batch_size)`, through
    `vgg` (a `vgg16.VGG`).

    style: (S, S, 3) in [0, 1]; content: a `data.ContentData` (or anything with `batch_at`); eval_contents:
    (E, H, W, 3) held-out images whose loss is taken before the first step, every `eval_every` steps and after
    the last (none if None or eval_every is 0). `progress(step, loss)` is called after every step, and
    `hook(done, params)` before the first (done=0) and after each, with the parameters after `done` updates
    (e.g. to keep snapshots). `dtype`:
    the convolutions' compute dtype, "float32" or "bfloat16" (`onednn.resolve_dtype` chooses it); `resampling`:
    the transformer's (`checkpoints.resampling` of theta's meta); `grams`: `style_targets(vgg, style, weights)` where
    the caller has them already; `warmup`: updates over which Adam's learning rate rises to `lr` (`optimizer`).
    Returns (params, history): history["loss"|"content"|"style"] are (steps,) arrays, each the loss of that
    step's batch before its update; history["eval_step"] (K,) counts the updates before each evaluation and
    history["eval_loss"|"eval_content"|"eval_style"] are its (K,) losses; history["step_seconds"] (steps,)
    is the wall time of each step, the first including compilation.
    """
    vgg = jax.device_put(vgg)
    grams = style_targets(vgg, style, weights) if grams is None else grams
    params = jax.device_put(params)
    opt_state = optimizer(lr, only_in, input_scale, warmup).init(params)
    step_fn, loss_settings = None, {"weights": weights, "dtype": dtype, "resampling": resampling}
    do_eval = eval_contents is not None and eval_every > 0
    evals = []

    def record_eval(done):
        m = evaluate(params, vgg, grams, jnp.asarray(eval_contents), **loss_settings)
        evals.append((done, *(float(m[k]) for k in ("loss", "content", "style"))))

    if do_eval:
        record_eval(0)
    if hook is not None:
        hook(0, params)
    hist, seconds = [], []
    with prefetch.prefetch(content.batch_at(s, batch_size) for s in range(steps)) as batches:
        for step, batch in enumerate(batches):
            t0 = time.perf_counter()
            batch = jnp.asarray(batch)
            if step_fn is None:
                step_fn = compile_step(params, opt_state, vgg, grams, batch, lr=lr, only_in=only_in,
                                       input_scale=input_scale, warmup=warmup, **loss_settings)
            params, opt_state, m = step_fn(params, opt_state, vgg, grams, batch)
            m = jax.device_get(m)
            seconds.append(time.perf_counter() - t0)
            hist.append((float(m["loss"]), float(m["content"]), float(m["style"])))
            if not np.isfinite(hist[-1][0]):
                raise UserError(f"adaptation diverged: the loss of step {step + 1} is {hist[-1][0]}; nothing "
                                "was written (try a lower --lr)")
            if do_eval and ((step + 1) % eval_every == 0 or step + 1 == steps):
                record_eval(step + 1)
            if progress is not None:
                progress(step + 1, hist[-1][0])
            if hook is not None:
                hook(step + 1, params)
    if not checkpoints.all_finite(params):
        raise UserError("adaptation diverged: the last update made some parameters NaN or infinite; nothing "
                        "was written (try a lower --lr)")
    return jax.device_get(params), _history(hist, evals, seconds)


def _history(losses_per_step, evals, seconds):
    """`adapt`'s history from its [(loss, content, style)] per step, [(step, loss, content, style)] per
    evaluation and seconds per step."""
    h = np.asarray(losses_per_step, np.float64).reshape(-1, 3)
    e = np.asarray(evals, np.float64).reshape(-1, 4)
    return {"loss": h[:, 0], "content": h[:, 1], "style": h[:, 2], "eval_step": e[:, 0].astype(int),
            "eval_loss": e[:, 1], "eval_content": e[:, 2], "eval_style": e[:, 3], "step_seconds": np.asarray(seconds)}


def with_layer_weights(vgg, factors):
    """`vgg` with the four style layers' `factors` (vgg16.LAYERS order; config vgg.layer_weights), or as it is
    for (); a UserError unless they are four positive finite numbers."""
    if not factors:
        return vgg
    if len(factors) != len(vgg.spec.layer_weights) or not all(
            isinstance(f, (int, float)) and np.isfinite(f) and f > 0 for f in factors):
        raise UserError(f"vgg.layer_weights must be {len(vgg.spec.layer_weights)} positive numbers, not {factors!r}")
    return vgg.replace(spec=dataclasses.replace(vgg.spec, layer_weights=tuple(float(f) for f in factors)))


def warmup_of(cfg):
    """The config's warmup (updates over which Adam's learning rate rises; 0 in configs that predate it), a
    UserError unless it is a whole number >= 0."""
    w = cfg.get("warmup", 0)
    if isinstance(w, bool) or not isinstance(w, int) or w < 0:
        raise UserError(f"--warmup must be a whole number of updates >= 0, not {w!r}")
    return w


def layer_balance(cfg):
    """The config's loss.layer_balance (one of LAYER_BALANCES; "source" in configs that predate it)."""
    return cfg.loss.get("layer_balance", "source")


def balance_at_step0(vgg, params, content, style, weights, resampling, n=STEP0_IMAGES, grams=None):
    """`vgg` with its style layers re-weighted to equal shares of the style term at step 0: the output of `params`
    on the first `n` training contents against `style` (losses.equal_share_weights; total unchanged). `grams`:
    `style_targets(vgg, style, weights)` where the caller has them (they do not depend on the factors)."""
    outputs = transformer.stylize_batch(params, jnp.asarray(content.batch_at(0, n)), resampling=resampling)
    grams = style_targets(vgg, style, weights) if grams is None else grams
    return with_layer_weights(vgg, losses.equal_share_weights(vgg, outputs, grams, tuple(weights.style_layers)))


def adapt_model(cfg, start, vgg, style, content, *, style_name, style_sha256=None, from_theta=None,
                input_scale=1.0, held_out=None, progress=None, resampling="nearest"):
    """The adaptation that `adapt` (the command) and the web page run: `adapt` from `start` (theta or a random
    init) with the settings of `cfg` (configs/adapt.py: steps, lr, batch_size, size, style_size, alpha, beta,
    only_in, content, crop, seed, eval_every) and VGG `vgg` (a `vgg_weights.VGGWeights`), to the (S, S, 3)
    `style`, with the transformer's `resampling` (`resampling_of`). Returns (params, meta of the adapted model,
    history of `adapt`); meta records every setting, the final losses and the seconds taken."""
    t0 = time.perf_counter()
    dtype, _ = onednn.resolve_dtype(cfg.get("dtype", "float32"))
    grams, warmup = style_targets(vgg, style, losses.weights_of(cfg)), warmup_of(cfg)
    if layer_balance(cfg) == "step0":
        vgg = balance_at_step0(vgg, start, content, style, losses.weights_of(cfg), resampling, grams=grams)
    params, hist = adapt(start, vgg, style, content, int(cfg.num_steps), lr=cfg.lr,
                         batch_size=cfg.batch_size, only_in=bool(cfg.only_in), input_scale=input_scale,
                         weights=losses.weights_of(cfg), eval_contents=held_out,
                         eval_every=cfg.eval_every if held_out is not None else 0, progress=progress,
                         dtype=dtype, resampling=resampling, grams=grams, warmup=warmup)
    meta = checkpoints.model_meta(
        "adapted", vgg=vgg_weights.describe(vgg), resampling=resampling, style=style_name, style_sha256=style_sha256,
        from_theta=from_theta, steps=int(cfg.num_steps), lr=cfg.lr, warmup=warmup,
        batch_size=cfg.batch_size,
        size=cfg.data.content_size, style_size=cfg.data.style_size, alpha=cfg.loss.alpha, beta=cfg.loss.beta,
        tv=cfg.loss.tv, saturation=cfg.loss.get("saturation", 0.0),
        layer_balance=layer_balance(cfg), only_in=bool(cfg.only_in), dtype=dtype,
        content=str(cfg.data.content), crop=cfg.data.crop, zoom=float(cfg.data.get("zoom", 1.0)), seed=cfg.seed,
        input_scale=input_scale,
        final_loss=float(hist["loss"][-1]),
        final_eval_loss=float(hist["eval_loss"][-1]) if len(hist["eval_loss"]) else None,
        seconds=round(time.perf_counter() - t0, 3))
    return params, meta, hist


def _check_colour(image, name, allow_gray):
    """UserError if `image` (H, W, 3) has no colour, unless `allow_gray`."""
    if not allow_gray and float(np.max(image.max(axis=2) - image.min(axis=2))) <= GRAY_SPREAD:
        raise UserError(f"{name} is grayscale: the adapted network would turn every photo gray; use a colour "
                        "image (or pass --allow-gray if a colourless style is what you want)")


def _check_opaque(path):
    """UserError if the image file at `path` has transparent pixels (RGBA, LA, or a palette with transparency)."""
    with Image.open(path) as im:
        if "A" not in im.getbands() and "transparency" not in im.info:
            return
        alpha = np.asarray(im.convert("RGBA").getchannel("A"))
    if alpha.min() < 255:
        raise UserError(f"{path} has transparent pixels (RGBA): their colour is undefined; flatten it onto "
                        "a background (e.g. save it as JPEG) first")


def load_style(spec, size, allow_gray=False):
    """A style argument (an image file, or embedded:NAME) as float32 (size, size, 3), squashed to a square as
    the official code does, with its name and the SHA-256 of its file (of its uint8 pixels for a picture
    bundled with scikit-image). Tiny, huge, transparent and grayscale images raise a one-line UserError."""
    spec = str(spec)
    if spec.startswith(data.EMBEDDED_PREFIX):
        painting = data.painting_path(spec[len(data.EMBEDDED_PREFIX):])
        if painting is None:
            picture = data.load_image_spec(spec)
            _check_colour(picture, spec, allow_gray)
            digest = hashlib.sha256(np.round(picture * 255).astype(np.uint8).tobytes()).hexdigest()
            return images.resize(picture, (size, size)), spec, digest
        spec = str(painting)
    picture = images.load_image(spec, min_side=STYLE_MIN_SIDE, max_pixels=STYLE_MAX_PIXELS)
    _check_opaque(spec)
    _check_colour(picture, spec, allow_gray)
    digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()
    return images.resize(picture, (size, size)), Path(spec).name, digest


def preview(params, style, contents, resampling="nearest"):
    """The style beside a grid of the content images (top) over their stylizations (bottom): (H, W, 3)."""
    outputs = stylize.stylize(params, list(contents), batch_size=len(contents), resampling=resampling)
    pictures = images.grid(list(contents) + outputs, nrow=len(contents))
    return images.hstack([style, pictures], height=pictures.shape[0])


def content_data(cfg, split="train"):
    """The content of an adaptation with the settings of `cfg` (data.content, content_size, crop, zoom; seed): a
    `data.ContentData` of `split`; the held-out ("val") split without zoom, so that evaluations compare."""
    return data.ContentData(cfg.data.content, split, cfg.data.content_size, cfg.seed, crop=cfg.data.crop,
                            zoom=cfg.data.get("zoom", 1.0) if split == "train" else 1.0)


def held_out_batch(cfg):
    """The fixed held-out content batch (cfg.eval_batch images of the val split), or None (with a note) when
    the content source is too small to set any apart."""
    try:
        val = content_data(cfg, "val")
    except UserError as e:
        print(f"note: no held-out evaluation ({e})", file=sys.stderr)
        return None
    return val.batch_at(0, cfg.eval_batch)


OUTPUT_SUFFIXES = ("", "_loss.png", "_preview.png", "_metrics.jsonl", "_tb")


def _outputs(out):
    """The checkpoint, loss-curve, preview, metrics and TensorBoard paths of --out."""
    out = Path(out)
    return tuple(out.with_name(f"{out.name}{suffix}") for suffix in OUTPUT_SUFFIXES)


def write_tensorboard(folder, hist):
    """TensorBoard events of `adapt`'s history in `folder`: adapt/loss, content, style and seconds per step
    (from 1), adapt/eval_loss, eval_content and eval_style at each held-out evaluation."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(folder))
    try:
        for row in map(json.loads, metrics_lines(hist).splitlines()):
            step = row.pop("step")
            for key, value in row.items():
                writer.add_scalar(f"adapt/{key}", value, step)
    finally:
        writer.close()


def write_outputs(paths, params, meta, hist, preview_image, style_name):
    """Write the adapted checkpoint, loss curve, preview, metrics and TensorBoard events (`paths`, as
    `_outputs`) into one staging folder, then move each into place: a failed write (a full disk) leaves none
    of them, and an old output is replaced only once every new one is complete."""
    out, curve, grid_png, metrics, tb = paths
    with outputs.staging_dir(out) as tmp:
        staged = [tmp / f"out{suffix}" for suffix in OUTPUT_SUFFIXES]
        staged[0].mkdir()
        checkpoints.write_model(staged[0], params, meta, target=out)
        curves = {"train batch": hist["loss"]}
        if len(hist["eval_step"]):
            curves["held-out"] = (hist["eval_step"], hist["eval_loss"])
        plotting.loss_curves(staged[1], curves, title=f"adaptation to {style_name}", xlabel="step")
        images.save_image(staged[2], preview_image)
        staged[3].write_text(metrics_lines(hist))
        write_tensorboard(staged[4], hist)
        for src, dst in zip(staged, paths):
            outputs.replace_dir(src, dst)


def metrics_lines(hist):
    """`adapt`'s history as JSON lines: {step, loss, content, style, seconds} per step (the batch's losses
    before that step's update, step counting from 1), then {step, eval_loss, eval_content, eval_style} per
    held-out evaluation (step: updates done before it)."""
    rows = [{"step": i + 1, "loss": float(hist["loss"][i]), "content": float(hist["content"][i]),
             "style": float(hist["style"][i]), "seconds": float(hist["step_seconds"][i])}
            for i in range(len(hist["loss"]))]
    rows += [{"step": int(s), "eval_loss": float(a), "eval_content": float(b), "eval_style": float(c)}
             for s, a, b, c in zip(hist["eval_step"], hist["eval_loss"], hist["eval_content"], hist["eval_style"])]
    return "".join(json.dumps(r) + "\n" for r in rows)


def adapt_to_painting(cfg, style_arg, out, model=DEFAULT_THETA, force=False, allow_gray=False):
    """The `adapt` command: adapt `model` (a theta checkpoint's path or shipped name; None: random init, Johnson
    et al.) to the painting `style_arg` (a path or embedded:NAME) with the settings of `cfg` (configs/adapt.py,
    vgg.source/vgg.path chosen), then write the adapted checkpoint `out`, <out>_loss.png, <out>_preview.png
    <out>_metrics.jsonl (`metrics_lines`) and <out>_tb/ (`write_outputs`; replacing only what this program wrote
    before, and only with `force`). Shows a progress bar. Returns {"out", "curve", "preview", "metrics",
    "tensorboard": paths, "meta": the checkpoint's meta, "history": `adapt`'s history}."""
    if cfg.num_steps < 1 or cfg.batch_size < 1:
        raise UserError("--steps and --batch-size must be at least 1")
    checks.check_side("--size", cfg.data.content_size)
    checks.check_side("--style-size", cfg.data.style_size)
    checks.check_memory(cfg.batch_size * cfg.data.content_size ** 2 * 3 * 4 * 2, f"a batch of {cfg.batch_size} "
                        f"content crops of {cfg.data.content_size} px", "use a smaller --size or --batch-size")
    checks.check_lr("--lr", cfg.lr)
    if cfg.eval_every < 0 or cfg.seed < 0 or cfg.eval_batch < 1:
        raise UserError("--lr must be positive, --eval-every and --seed non-negative, eval_batch at least 1")
    if layer_balance(cfg) not in LAYER_BALANCES:
        raise UserError(f"loss.layer_balance must be one of {', '.join(LAYER_BALANCES)}, not "
                        f"{cfg.loss.layer_balance!r}")
    warmup_of(cfg)
    paths = _outputs(out)
    nbytes = 2 * 4 * transformer.count_params(transformer.abstract_params()) + 2**20  # a model, pictures, logs
    outputs.check(paths, [style_arg, cfg.data.content] + ([checkpoints.resolve_model(model)] if model else []), force,
                  nbytes=nbytes)

    style, style_name, style_sha = load_style(style_arg, cfg.data.style_size, allow_gray)
    content = content_data(cfg)
    held_out = held_out_batch(cfg) if cfg.eval_every else None
    if model:
        params, theta_meta = checkpoints.load_model(model, kinds=("theta",))
    else:
        params, theta_meta = transformer.init_params(jax.random.key(cfg.seed), 16), None
        print("--random-init: training from random initialization (Johnson et al.)", file=sys.stderr)
    resampling = resampling_of(theta_meta, cfg)
    vgg = with_layer_weights(vgg_weights.load_vgg(cfg.vgg.source, cfg.vgg.path or None),
                             cfg.vgg.get("layer_weights", ()))
    theta_vgg = (theta_meta or {}).get("vgg") or {}
    if theta_vgg.get("sha256") and theta_vgg["sha256"] != vgg.sha256:
        print(f"warning: theta was trained with {theta_vgg.get('source')} VGG weights, this adaptation uses "
              f"{vgg.source}", file=sys.stderr)
    elif theta_vgg.get("sha256"):
        views = vgg_weights.style_view(theta_vgg), vgg_weights.style_view(vgg_weights.describe(vgg))
        if views[0] != views[1]:
            print(f"warning: theta was trained with {views[0]}, this adaptation uses {views[1]}", file=sys.stderr)
    note = onednn.resolve_dtype(cfg.get("dtype", "float32"))[1]
    if note:
        print(note, file=sys.stderr)
    from tqdm import tqdm
    bar = tqdm(total=cfg.num_steps, desc=f"adapt {style_name}", unit="step", file=sys.stderr)
    try:  # closing the bar ends its line, so that an error gets a line of its own
        params, meta, hist = adapt_model(
            cfg, params, vgg, style, content, style_name=style_name, style_sha256=style_sha,
            from_theta=str(model) if model else None, input_scale=input_scale_of(theta_meta),
            held_out=held_out, progress=lambda n, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4g}")),
            resampling=resampling)
    finally:
        bar.close()
    shown = held_out if held_out is not None else content.batch_at(0, cfg.batch_size)
    write_outputs(paths, params, meta, hist, preview(params, style, shown, resampling), style_name)
    return {**dict(zip(("out", "curve", "preview", "metrics", "tensorboard"), paths)), "meta": meta, "history": hist}


if __name__ == "__main__":  # python -m metastyle_jax.adapt: the command line's `adapt`
    from metastyle_jax import commands

    commands.run("adapt")
