"""The outer loop's pieces (Algorithm 1): the train state, the outer optimizer (Adam with supplementary eq. 1's
decay and a warm-up), and one pure, jit-compiled meta-training step `train_step(bilevel, state, batch, hyper)`.

The outer optimizer is built from the traced `meta.Hyper` inside the step, not kept in the state: a resumed run
may change its learning rates without recompiling, and the checkpointed state stays (step, params, opt_state,
rng).
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from metastyle_jax import meta, parallel, transformer


class TrainState(flax.struct.PyTreeNode):
    """What a meta-training run carries from one iteration to the next, and checkpoints.

    step: int32 scalar, the outer iteration t; params: theta; opt_state: the outer Adam state;
    rng: uint32[2] raw key data of the run's PRNG key (the step itself draws no randomness: data order
    is a function of (seed, step); the key is kept so anything random derives from the checkpoint).
    """

    step: Any
    params: Any
    opt_state: Any
    rng: Any


def warmup(n, steps):
    """The warm-up factor min(1, (n + 1) / steps) at update n (1 when steps is 0)."""
    steps = jnp.asarray(steps, jnp.float32)
    return jnp.where(steps > 0, jnp.minimum(1.0, (jnp.asarray(n, jnp.float32) + 1) / jnp.maximum(steps, 1)), 1.0)


def outer_learning_rate(hyper, n):
    """The outer learning rate at Adam's n-th update: outer_lr / (1 + k n) (supplementary eq. 1) times the
    warm-up factor."""
    return meta.decayed(hyper.outer_lr, hyper.lr_decay, n) * warmup(n, hyper.outer_warmup)


def outer_lr_used(opt_state, hyper):
    """The learning rate of the outer update that `opt_state` is about to take (`outer_learning_rate` at Adam's
    own update count n, not t: they differ after `config.init_from`)."""
    is_schedule = lambda x: isinstance(x, optax.ScaleByScheduleState)
    return outer_learning_rate(hyper, next(s.count for s in jax.tree_util.tree_leaves(opt_state, is_leaf=is_schedule)
                                           if is_schedule(s)))


def outer_optimizer(settings, hyper):
    """The outer optimizer: Adam (PyTorch's defaults) with lr outer_lr / (1 + k n) at its n-th update,
    times the warm-up factor, over the parameters `settings.outer_params` selects; the others get a zero
    update (not their raw gradient). n counts from Adam's initialization (the run's iteration t, unless
    the run started from a shipped theta: `config.init_from`)."""
    lr = functools.partial(outer_learning_rate, hyper)
    adam = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(lr))
    if settings.outer_params == "all":
        return adam
    labels = lambda params: jax.tree_util.tree_map(
        lambda m: "train" if m else "frozen", meta.param_mask(params, settings.outer_params))
    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def make_optimizer(config):
    """The outer optax optimizer a config describes (see `outer_optimizer`)."""
    return outer_optimizer(meta.settings_from_config(config), meta.hyper_from_config(config))


def init_state(config, seed):
    """A fresh TrainState from integer `seed`: theta at Flax's default init, Adam state, step 0."""
    init_key, run_key = jax.random.split(jax.random.key(seed))
    params = transformer.init_params(init_key, 16)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=make_optimizer(config).init(params), rng=jax.random.key_data(run_key))


def _all_finite(tree):
    """True iff no leaf of `tree` holds a NaN or an inf."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


@functools.partial(jax.jit, static_argnames=("mesh",), donate_argnums=1)
def train_step(bilevel, state, batch, hyper, *, mesh=None):
    """One outer iteration (Algorithm 1's loop body) of `bilevel` (a `Bilevel`): (state, metrics). Pure;
    the input state is donated.

    mesh: None for one device, else the styles of `batch` are split over its "data" axis
    (`data_parallel`) and theta, the VGG and the optimizer state are replicated.
    metrics: those of `meta.Bilevel.meta_gradient` plus grad_norm (of the direction), inner_lr (at t), outer_lr
    (the one this update used), and finite (the losses and the direction are free of NaN/inf). A non-finite
    step still returns its state; the caller decides not to keep it.
    """
    if mesh is None:
        direction, metrics = bilevel.meta_gradient(state.params, batch, state.step, hyper)
    else:
        sharded = parallel.data_parallel(meta.Bilevel.meta_gradient, bilevel, mesh)
        direction, metrics = sharded(state.params, batch, state.step, hyper)
    updates, opt_state = outer_optimizer(bilevel.settings, hyper).update(direction, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(direction),
                   inner_lr=meta.decayed(hyper.inner_lr, hyper.lr_decay, state.step),
                   outer_lr=outer_lr_used(state.opt_state, hyper),
                   finite=_all_finite((metrics["outer_loss"], metrics["inner_loss"], direction)))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


@functools.partial(jax.jit, static_argnames=("mesh",))
def eval_loss(bilevel, theta, batch, t, hyper, *, mesh=None):
    """`meta.Bilevel.loss` of a batch, jit-compiled; with a mesh, its styles split over the "data" axis."""
    if mesh is None:
        return bilevel.loss(theta, batch, t, hyper)
    return parallel.data_parallel(meta.Bilevel.loss, bilevel, mesh)(theta, batch, t, hyper)

