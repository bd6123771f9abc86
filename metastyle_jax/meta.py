"""The bilevel objective of MetaStyle (eq. 7, Algorithm 1) and its exact meta-gradient.

For every style s of a meta-batch: w_s = theta; T steps of plain SGD (lr delta_t) on the perceptual loss
of a training content batch, moving only the parameters `inner_params` selects (instance-norm scale and
shift by default, supplementary section 2); then the perceptual loss of w_s on a validation content batch.
The outer loss E is the mean of those over the styles, and theta takes an Adam step (lr eta_t) on
dE/dtheta, differentiated through the inner updates: `jax.grad` through the T inner steps
(meta_grad="autodiff"), or the same exact gradient by reverse accumulation with Hessian-vector
products (meta_grad="hvp").

Loops over inner steps and over style groups are unrolled in Python (`unrolled_scan`), not `lax.scan`:
XLA's CPU backend rewrites convolutions into its fast layouts only outside loop bodies (benchmarks/profile_meta.py).

The loss of a task is `losses.perceptual_loss`, with the content targets computed once per batch outside
every derivative.

Modes, one code path:
- "second_order": the exact meta-gradient (MAML).
- "first_order": the inner gradients are constants (`stop_gradient`), so dw_T/dtheta = I (first-order MAML).
- "reptile": theta moves toward the adapted weights: the Adam "gradient" is mean_s (theta - w_s,T). Only the
  parameters the inner loop moves can differ from theta, so only those move. The outer loss is still
  evaluated, for monitoring.

Both learning rates decay with the outer iteration t as lr0 / (1 + k t) (supplementary eq. 1).

A batch is a dict of arrays, S styles first, RGB in [0, 1]:
  "train": (S, B, H, W, 3) content of the inner loop, reused at each inner step (supplementary), or
           (S, T, B, H, W, 3), a fresh batch per inner step (Algorithm 1 as printed);
  "val":   (S, B, H, W, 3) content of the outer loss;
  "style": (S, Hs, Ws, 3) style images, or "style_grams": {layer: (S, C, C)} their Gram targets.

`Bilevel(vgg, settings)` binds the objective once to the VGG16 (a `vgg16.VGG`, whose parameters are traced
arguments and whose input spec is static) and to the structural settings (`MetaSettings`, static under jit);
its methods take (theta, task or batch, t, hyper). The numeric hyper-parameters (`Hyper`: learning rates,
decay, alpha, beta) are traced arguments, so changing them never recompiles. `outer.train_step(bilevel,
state, batch, hyper)` is the compiled outer iteration, `parallel` splits it over devices.
"""

import dataclasses
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from metastyle_jax import losses, onednn, transformer

MODES = ("second_order", "first_order", "reptile")
META_GRADS = ("autodiff", "hvp")
PARAM_SETS = ("all", "instance_norm", "non_instance_norm")
# Compute dtypes; "float64" only under jax_enable_x64, for numerical checks.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}


class Hyper(NamedTuple):
    """The numeric hyper-parameters (float32 scalars, traced): inner SGD lr delta_0, outer Adam lr eta_0,
    decay k of lr0 / (1 + k t), alpha, beta of eq. 4, outer_warmup W: the outer lr is scaled by
    min(1, (n + 1) / W) at Adam's n-th update (0: no warm-up), tv, the total-variation weight, and saturation,
    the weight of `losses.saturation`."""

    inner_lr: Any
    outer_lr: Any
    lr_decay: Any
    alpha: Any
    beta: Any
    outer_warmup: Any = np.float32(0)
    tv: Any = np.float32(0)
    saturation: Any = np.float32(0)


@dataclasses.dataclass(frozen=True)
class MetaSettings:
    """The structural (static, hashable) settings of the meta step."""

    mode: str = "second_order"
    inner_steps: int = 1
    inner_params: str = "instance_norm"
    outer_params: str = "all"
    styles_in_parallel: int = 0
    dtype: str = "float32"
    meta_grad: str = "autodiff"
    saturation: bool = False  # the loss has a `losses.saturation` term (its weight is Hyper.saturation)
    resampling: str = "nearest"  # the transformer's (transformer.RESAMPLING)

    def __post_init__(self):
        for name, value, allowed in (("mode", self.mode, MODES), ("inner_params", self.inner_params, PARAM_SETS),
                                     ("outer_params", self.outer_params, PARAM_SETS),
                                     ("dtype", self.dtype, tuple(DTYPES)),
                                     ("meta_grad", self.meta_grad, META_GRADS),
                                     ("resampling", self.resampling, transformer.RESAMPLING)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if self.inner_steps < 1:
            raise ValueError(f"inner_steps must be at least 1, not {self.inner_steps}")
        if self.styles_in_parallel < 0:
            raise ValueError(f"styles_in_parallel must be >= 0 (0: all), not {self.styles_in_parallel}")


def settings_from_config(config):
    """MetaSettings from a meta-training ConfigDict (configs/metastyle.py); dtype "auto" resolved."""
    return MetaSettings(mode=config.mode, inner_steps=int(config.inner_steps),
                        inner_params=config.inner_params, outer_params=config.outer_params,
                        styles_in_parallel=int(config.styles_in_parallel),
                        dtype=onednn.resolve_dtype(config.dtype)[0],
                        meta_grad=config.meta_grad, saturation=bool(config.loss.get("saturation", 0.0)),
                        resampling=config.get("resampling", "nearest"))


def hyper_from_config(config, dtype=np.float32):
    """Hyper (numpy scalars of `dtype`) from a meta-training ConfigDict."""
    c = lambda v: np.asarray(v, dtype)
    return Hyper(inner_lr=c(config.inner_lr), outer_lr=c(config.outer_lr), lr_decay=c(config.lr_decay),
                 alpha=c(config.loss.alpha), beta=c(config.loss.beta),
                 outer_warmup=c(config.get("outer_warmup", 0)), tv=c(config.loss.get("tv", 0.0)),
                 saturation=c(config.loss.get("saturation", 0.0)))


def decayed(lr0, k, t):
    """Supplementary eq. 1: the learning rate lr0 / (1 + k t) at outer iteration t."""
    lr0 = jnp.asarray(lr0)
    return lr0 / (1 + k * jnp.asarray(t, lr0.dtype))


def param_mask(params, which):
    """Pytree of Python bools over `params`, True where `which` ("all", "instance_norm",
    "non_instance_norm") says a parameter is trained."""
    if which not in PARAM_SETS:
        raise ValueError(f"parameter set must be one of {', '.join(PARAM_SETS)}, not {which!r}")
    in_mask = transformer.instance_norm_mask(params)
    if which == "all":
        return jax.tree_util.tree_map(lambda _: True, in_mask)
    if which == "instance_norm":
        return in_mask
    return jax.tree_util.tree_map(lambda m: not m, in_mask)


def styles_at_a_time(styles, in_parallel):
    """How many of a meta-batch's `styles` go through vmap together: `in_parallel` (0: all); ValueError unless
    it divides them."""
    p = in_parallel or styles
    if styles % p:
        raise ValueError(f"styles_in_parallel={p} must divide the {styles} styles of a meta-batch "
                         "(styles_per_batch)")
    return p


def _split(params, mask):
    """(fast leaves, slow leaves, treedef): the leaves `mask` selects and the others, in tree order."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    flags = jax.tree_util.tree_leaves(mask)
    return ([x for x, m in zip(leaves, flags) if m], [x for x, m in zip(leaves, flags) if not m], treedef)


def _merge(fast, slow, mask, treedef):
    """Inverse of `_split`: the params pytree from its fast and slow leaves."""
    fast, slow = iter(fast), iter(slow)
    return jax.tree_util.tree_unflatten(
        treedef, [next(fast) if m else next(slow) for m in jax.tree_util.tree_leaves(mask)])


def unrolled_scan(f, init, xs=None, length=None, reverse=False):
    """`jax.lax.scan(f, init, xs, length, reverse)` unrolled in Python: (final carry, stacked outputs).

    Same semantics (f(carry, x) -> (carry, y); outputs stacked on a new leading axis, in xs order), but
    the steps are traced one after the other, so the compiled program has no loop: XLA's CPU backend
    only gives convolutions outside loop bodies its fast layouts. Compile time grows with the length.
    """
    n = length if xs is None else jax.tree_util.tree_leaves(xs)[0].shape[0]
    carry, ys = init, [None] * n
    for i in (reversed(range(n)) if reverse else range(n)):
        carry, ys[i] = f(carry, None if xs is None else jax.tree_util.tree_map(lambda x, i=i: x[i], xs))
    return carry, jax.tree_util.tree_map(lambda *y: jnp.stack(y), *ys)


def _inner_batches(task):
    """(per-step xs for a scan or None, shared (contents, features) or None) of a task's training contents."""
    if task["train"].ndim == 5:
        return (task["train"], task["train_feat"]), None
    return None, (task["train"], task["train_feat"])


def _metrics(outer, parts, inner_losses):
    return {"outer_loss": outer, "outer_content": parts["content"], "outer_style": parts["style"],
            "inner_loss": inner_losses[0], "inner_loss_last": inner_losses[-1]}


class Bilevel(flax.struct.PyTreeNode):
    """Eq. 7 bound once to a VGG16 (`vgg`, a `vgg16.VGG`: its parameters are traced arguments of every
    compiled function, its input spec static) and the structural `settings` (static). Every method is pure
    and takes theta, the task or batch, the outer iteration t and the traced `Hyper`.

    A task is one style's {"train": (B, H, W, 3) reused at every inner step, or (T, B, H, W, 3) one batch per
    step, "train_feat": their content features, "val": (B, H, W, 3), "val_feat", "grams": {layer: (C, C)}}.
    """

    vgg: Any
    settings: MetaSettings = flax.struct.field(pytree_node=False)

    def content_features(self, contents):
        """The content-loss targets phi_relu2_2(I_c) of contents (..., B, H, W, 3): constants (no gradient)."""
        lead = contents.shape[:-4]
        flat = contents.reshape((-1,) + contents.shape[-3:])
        feat = losses.content_features(self.vgg, flat, dtype=DTYPES[self.settings.dtype])
        return feat.reshape(lead + (contents.shape[-4],) + feat.shape[1:])

    def task_loss(self, params, contents, content_feat, grams, hyper):
        """Eq. 4 for one style, `losses.perceptual_loss` of M(contents; params): contents (B, H, W, 3),
        content_feat their relu2_2 features, grams {layer: (C, C)} -> (scalar, {"content", "style"}
        unweighted), alpha and beta from `hyper` (traced)."""
        dtype = DTYPES[self.settings.dtype]
        return losses.perceptual_loss(self.vgg, transformer.apply(params, contents, dtype,
                                                                  resampling=self.settings.resampling),
                                      {k: g[None] for k, g in grams.items()}, content_feat=content_feat,
                                      weights=losses.LossWeights(
                                          alpha=hyper.alpha, beta=hyper.beta, tv=hyper.tv,
                                          saturation=hyper.saturation if self.settings.saturation else 0.0),
                                      dtype=dtype)

    def inner_trajectory(self, theta, task, t, hyper):
        """The T inner SGD steps of one style from theta, lr inner_lr / (1 + k t), on the parameters
        `settings.inner_params` selects.

        Returns (w_T, fast leaves before each step (stacked, leading T), (T,) inner losses before each step,
        and the (mask, slow leaves, treedef) that rebuild a params pytree from fast leaves).
        """
        mask = param_mask(theta, self.settings.inner_params)
        fast, slow, treedef = _split(theta, mask)
        lr = decayed(hyper.inner_lr, hyper.lr_decay, t)
        xs, shared = _inner_batches(task)

        def step(fast, x):
            contents, feat = shared if x is None else x
            loss_of = lambda f: self.task_loss(_merge(f, slow, mask, treedef), contents, feat, task["grams"],
                                               hyper)[0]
            loss, grads = jax.value_and_grad(loss_of)(fast)
            if self.settings.mode == "first_order":
                grads = jax.lax.stop_gradient(grads)
            return [w - lr.astype(w.dtype) * g for w, g in zip(fast, grads)], (fast, loss)

        fast_t, (history, inner_losses) = unrolled_scan(step, fast, xs, length=self.settings.inner_steps)
        return _merge(fast_t, slow, mask, treedef), history, inner_losses, (mask, slow, treedef)

    def inner_loop(self, theta, task, t, hyper):
        """w_T of one style: T steps of SGD from theta (eq. 7, the inner problem). Returns (w_T, (T,) inner
        losses, each before its step). Differentiable in theta (through the unrolled steps); in "first_order"
        mode the inner gradients are constants."""
        w, _, inner_losses, _ = self.inner_trajectory(theta, task, t, hyper)
        return w, inner_losses

    def style_objective(self, theta, task, t, hyper):
        """E_s(theta): the perceptual loss of the adapted w_s,T on the validation contents of one style.
        Returns (scalar, (metrics, w_T))."""
        w, inner_losses = self.inner_loop(theta, task, t, hyper)
        outer, parts = self.task_loss(w, task["val"], task["val_feat"], task["grams"], hyper)
        return outer, (_metrics(outer, parts, inner_losses), w)

    def hvp_direction(self, theta, task, t, hyper):
        """dE_s/dtheta by reverse accumulation over the inner steps with Hessian-vector products.

        a_T = grad E_s(w_T); for t = T .. 1: a_{t-1} = a_t - delta H(w_{t-1}) P a_t, where H is the Hessian of
        the inner loss over all parameters, P keeps the inner-trained entries (H P a by reverse-over-reverse:
        `jax.grad` of <P grad, a>, since conv.py's CPU convolution is a custom_vjp, which forward mode cannot
        enter). a_0 is the exact meta-gradient ("first_order": a_0 = a_T). Returns (a_0, metrics).
        """
        w, history, inner_losses, (mask, slow, treedef) = self.inner_trajectory(theta, task, t, hyper)
        val_loss = lambda p: self.task_loss(p, task["val"], task["val_feat"], task["grams"], hyper)
        (outer, parts), a = jax.value_and_grad(val_loss, has_aux=True)(w)
        if self.settings.mode == "second_order":
            lr = decayed(hyper.inner_lr, hyper.lr_decay, t)
            xs, shared = _inner_batches(task)

            def back(a, x):
                fast, batch = x
                contents, feat = shared if batch is None else batch
                inner_grad = jax.grad(lambda p: self.task_loss(p, contents, feat, task["grams"], hyper)[0])
                a_fast = _split(a, mask)[0]
                # H P a = grad_p <(grad L(p))_fast, a_fast> (H symmetric), at p = theta's inner iterate
                hv = jax.grad(lambda p: sum(jnp.vdot(g, v) for g, v in zip(_split(inner_grad(p), mask)[0], a_fast)))(
                    _merge(fast, slow, mask, treedef))
                return jax.tree_util.tree_map(lambda ai, hi: ai - lr.astype(ai.dtype) * hi, a, hv), None

            a, _ = unrolled_scan(back, a, (history, xs), reverse=True, length=self.settings.inner_steps)
        return a, _metrics(outer, parts, inner_losses)

    def style_direction(self, theta, task, t, hyper):
        """(direction, metrics) one style contributes: dE_s/dtheta (second/first order, by Hessian-vector
        products or by `jax.grad` through the inner steps, as `settings.meta_grad` says) or, in reptile
        mode, theta - w_s,T."""
        if self.settings.mode == "reptile":
            _, (metrics, w) = self.style_objective(theta, task, t, hyper)
            return jax.tree_util.tree_map(jnp.subtract, theta, w), metrics
        if self.settings.meta_grad == "hvp":
            return self.hvp_direction(theta, task, t, hyper)
        grads, (metrics, _) = jax.grad(lambda p: self.style_objective(p, task, t, hyper), has_aux=True)(theta)
        return grads, metrics

    def batch_grams(self, batch):
        """Style Gram targets of a batch, {layer: (S, C, C)}: batch["style_grams"], else from batch["style"]."""
        if "style_grams" in batch:
            return batch["style_grams"]
        return jax.lax.stop_gradient(losses.style_grams(self.vgg, batch["style"]))

    def tasks(self, batch):
        """The per-style tasks {"train", "train_feat", "val", "val_feat", "grams"} of a batch, S first."""
        return {"train": batch["train"], "val": batch["val"], "grams": self.batch_grams(batch),
                "train_feat": self.content_features(batch["train"]),
                "val_feat": self.content_features(batch["val"])}

    def map_styles(self, fn, tasks):
        """fn(task) -> (tree, metrics) over the S styles of `tasks`, `styles_in_parallel` (P; 0: all) at a
        time under vmap and the S / P groups one after the other (unrolled, `unrolled_scan`; memory for
        speed). Returns (mean tree over the styles, metrics stacked (S,))."""
        s = jax.tree_util.tree_leaves(tasks)[0].shape[0]
        p = styles_at_a_time(s, self.settings.styles_in_parallel)
        if p == s:
            trees, metrics = jax.vmap(fn)(tasks)
            return jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), trees), metrics
        grouped = jax.tree_util.tree_map(lambda x: x.reshape(p, s // p, *x.shape[1:]), tasks)
        # Sequential groups: each style's tree is computed (and its intermediates freed) one after the other;
        # only the trees themselves (parameter-sized) are stacked.
        group = lambda g: unrolled_scan(lambda _, task: (None, fn(task)), None, g)[1]
        trees, metrics = jax.vmap(group)(grouped)
        return (jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=(0, 1)) / s, trees),
                jax.tree_util.tree_map(lambda x: x.reshape(s), metrics))

    def loss(self, theta, batch, t, hyper):
        """E(theta): eq. 7's outer loss, the mean over the batch's S styles of the validation perceptual loss
        after adaptation, at outer iteration t. Pure; `jax.grad` of it is the exact meta-gradient."""
        fn = lambda task: (self.style_objective(theta, task, t, hyper)[0], {})
        return self.map_styles(fn, self.tasks(batch))[0]

    def meta_gradient(self, theta, batch, t, hyper):
        """(direction for theta, metrics): the mean over styles of `style_direction`, metrics averaged.

        In "second_order" mode the direction equals jax.grad(loss). metrics (scalars): outer_loss,
        outer_content, outer_style (after adaptation, validation contents), inner_loss (theta on the
        training contents), inner_loss_last (before the last inner step).
        """
        fn = lambda task: self.style_direction(theta, task, t, hyper)
        direction, metrics = self.map_styles(fn, self.tasks(batch))
        return direction, jax.tree_util.tree_map(jnp.mean, metrics)
