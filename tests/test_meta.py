"""The bilevel objective and the meta-training step (metastyle_jax.meta), on CPU at 16-32 px with random VGG.

Two checks run in subprocesses, started together so that their compilations share the two cores:
float64 finite differences of the bilevel objective (x64 is process-global) for T=1 and T=2, and the
2-device data-parallel step (XLA_FLAGS must be set before JAX starts). Run one by hand with
`python tests/test_meta.py fd 1` or `python tests/test_meta.py devices`.
"""

import atexit
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from metastyle_jax import meta, outer, parallel, transformer, vgg16


def meta_step_of(vgg, cfg, mesh=None):
    """meta_step(state, batch) -> (state, metrics): `outer.train_step` with the settings and hyper-parameters of
    `cfg` bound; with a `mesh`, state and VGG replicated on it and batches split over it."""
    bilevel, hyper = meta.Bilevel(vgg, meta.settings_from_config(cfg)), meta.hyper_from_config(cfg)
    if mesh is not None:
        parallel.check_mesh(cfg, mesh)
    return lambda state, batch: outer.train_step(bilevel, state, batch, hyper, mesh=mesh)


REPO = Path(__file__).resolve().parents[1]
FAST_COMPILE = "--xla_llvm_disable_expensive_passes=true"


def tiny_config(**overrides):
    """The meta-training keys of configs/metastyle.py at test scale (2 styles x 1 content)."""
    c = ml_collections.ConfigDict(dict(
        mode="second_order", meta_grad="autodiff", inner_steps=1, inner_lr=1e-4, outer_lr=1e-3,
        lr_decay=2.5e-5, inner_params="instance_norm", outer_params="all", styles_per_batch=2, batch_size=1,
        styles_in_parallel=0, dtype="float32", loss=dict(alpha=1.0, beta=1e5)))
    for key, value in overrides.items():
        c[key] = value
    return c


def random_batch(seed, s=2, b=1, size=32, steps=None, dtype=np.float32):
    """A meta-batch of random images: train (S, [T,] B, H, W, 3), val (S, B, H, W, 3), style (S, H, W, 3)."""
    r = np.random.default_rng(seed)
    train = (s, b, size, size, 3) if steps is None else (s, steps, b, size, size, 3)
    return {"train": r.random(train).astype(dtype), "val": r.random((s, b, size, size, 3)).astype(dtype),
            "style": r.random((s, size, size, 3)).astype(dtype)}


def numpy_vgg(seed=1):
    """A vgg16.VGG (ImageNet input normalization) with random parameters (LeCun-normal kernels as Flax's init,
    zero biases) made with numpy: no JAX compile."""
    r = np.random.default_rng(seed)
    return vgg16.VGG({name: {"kernel": (r.standard_normal(shapes["kernel"]) * np.sqrt(1 / np.prod(shapes["kernel"][:3])))
                   .astype(np.float32), "bias": np.zeros(shapes["bias"], np.float32)}
                      for name, shapes in vgg16.param_shapes().items()}, vgg16.IMAGENET_SPEC)


def numpy_theta(seed=0):
    """Random transformer parameters made with numpy (LeCun-normal kernels, small biases, instance-norm
    scales near 1): no JAX compile, unlike Flax's init."""
    r = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda: transformer.init_params(jax.random.key(0), 16))
    mask = transformer.instance_norm_mask(shapes)

    def leaf(path, x, is_in):
        name = jax.tree_util.keystr(path)
        if is_in:
            return (float("scale" in name) + 0.1 * r.standard_normal(x.shape)).astype(np.float32)
        if "kernel" in name:
            return (r.standard_normal(x.shape) / np.sqrt(np.prod(x.shape[:3]))).astype(np.float32)
        return (0.01 * r.standard_normal(x.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(leaf, shapes, mask)


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


# ---------------------------------------------------------------- subprocess workers


def fd_worker(inner_steps):
    """Print JSON: directional derivatives of the bilevel objective (central differences, float64) and
    of the meta-gradients (second order by autodiff and by HVPs, first order) along a few directions."""
    sys.path.insert(0, str(REPO))  # run as a script, from tests/
    from benchmarks.common import compute_in_float64
    from metastyle_jax import conv
    compute_in_float64()
    if inner_steps > 1:  # see start_workers
        conv.for_backend = lambda backend=None, dtype=None: jax.lax.conv_general_dilated
    cfg = tiny_config(inner_steps=inner_steps, inner_lr=0.03, dtype="float64")
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg, np.float64)
    to64 = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), tree)
    vgg = to64(numpy_vgg())
    theta = to64(numpy_theta())
    batch = to64(random_batch(3, s=2, b=1, size=8, steps=inner_steps if inner_steps > 1 else None,
                              dtype=np.float64))
    t = jnp.asarray(7, jnp.int32)

    second_hvp = dataclasses.replace(settings, meta_grad="hvp")
    first = dataclasses.replace(second_hvp, mode="first_order")
    # VGG and batch are arguments, not constants of the program: XLA would spend most of its compile folding them
    grads = jax.jit(lambda p, vgg, batch: [meta.Bilevel(vgg, s).meta_gradient(p, batch, t, hyper)[0]
                                           for s in (settings, second_hvp, first)])  # one compile, shared work
    g2, g2_hvp, g1 = grads(theta, vgg, batch)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    r = np.random.default_rng(5)
    in_flags = jax.tree_util.tree_leaves(transformer.instance_norm_mask(theta))
    rand = lambda keep: [r.standard_normal(x.shape) * keep(m) for x, m in zip(leaves, in_flags)]
    directions = {"random": rand(lambda m: 1.0), "random_instance_norm": rand(lambda m: float(m)),
                  "random_other": rand(lambda m: float(not m))}
    eps = 1e-7  # float64 rounding stays ~1e-8 relative; larger steps can cross ReLU / max-pool kinks
    loss_fn = jax.jit(lambda p, vgg, batch: meta.Bilevel(vgg, settings).loss(p, batch, t, hyper))
    loss = lambda p: loss_fn(p, vgg, batch)
    out = {"rel_hvp_vs_autodiff": float(np.max(np.abs(flat(g2_hvp) - flat(g2))) / np.max(np.abs(flat(g2)))),
           "rel_second_vs_first": float(np.linalg.norm(flat(g2) - flat(g1)) / np.linalg.norm(flat(g2))),
           "directions": {}}
    for name, d in directions.items():
        norm = np.sqrt(sum(float(np.sum(x * x)) for x in d))
        d = [x / norm for x in d]
        shifted = lambda sign: jax.tree_util.tree_unflatten(treedef, [p + sign * eps * x for p, x in zip(leaves, d)])
        fd = (float(loss(shifted(1.0))) - float(loss(shifted(-1.0)))) / (2 * eps)
        dot = lambda g: float(sum(np.sum(np.asarray(a) * b) for a, b in zip(jax.tree_util.tree_leaves(g), d)))
        out["directions"][name] = {"fd": fd, "second_order": dot(g2), "hvp": dot(g2_hvp), "first_order": dot(g1)}
    print(json.dumps(out))


def step_and_direction_of(cfg, mesh):
    """jit of (state, batch, vgg) -> ((state, metrics) of `meta_step_of`, the meta-gradient it stepped along): one
    compile per mesh (XLA computes the gradient once), with the VGG an argument, not a constant of the program
    (folding it would take most of the compile)."""
    hyper, settings = meta.hyper_from_config(cfg), meta.settings_from_config(cfg)
    gradient = lambda vgg: parallel.data_parallel(meta.Bilevel.meta_gradient, meta.Bilevel(vgg, settings), mesh)
    return jax.jit(lambda state, batch, vgg: (meta_step_of(vgg, cfg, mesh)(state, batch),
                                              gradient(vgg)(state.params, batch, state.step, hyper)[0]))


def devices_worker():
    """Print JSON, for a 1-device and a 2-device mesh (style axis split): the meta-gradient of the first batch,
    theta after one meta-step and the losses of that step and of a second one."""
    assert jax.device_count() == 2, jax.devices()
    cfg = tiny_config(mode="first_order")  # the cheapest compile that all-reduces gradients of every leaf
    vgg, theta = numpy_vgg(), numpy_theta()
    batches = [random_batch(10 + i, size=16) for i in range(2)]
    out = {}
    for n in (1, 2):
        mesh = parallel.make_mesh(jax.devices()[:n])
        replicated_vgg = parallel.replicate(vgg, mesh)
        step_and_direction = step_and_direction_of(cfg, mesh)
        state = parallel.replicate(outer.init_state(cfg, 0).replace(params=theta), mesh)
        sharded = [parallel.shard_batch(b, mesh) for b in batches]
        assert len(sharded[0]["train"].sharding.device_set) == n
        (state, first), direction = step_and_direction(state, sharded[0], replicated_vgg)
        params = parallel.host_tree(state.params)
        (state, second), _ = step_and_direction(state, sharded[1], replicated_vgg)
        out[n] = {"params": flat(params).tolist(), "grad": flat(parallel.host_tree(direction)).tolist(),
                  "losses": [float(first["outer_loss"]), float(second["outer_loss"]), float(second["inner_loss"])],
                  "devices": len(state.params["conv1"]["conv2d"]["kernel"].sharding.device_set)}
    out["theta"] = flat(theta).tolist()
    try:
        parallel.check_mesh(tiny_config(styles_per_batch=3), parallel.make_mesh())
        out["indivisible"] = None
    except ValueError as e:
        out["indivisible"] = str(e)
    print(json.dumps(out))


# ---------------------------------------------------------------- fixtures


def _start(args, env_extra=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""), FAST_COMPILE] + (env_extra or [])))
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(proc, timeout=900):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


_WORKERS = {}


def start_workers():
    """Start the three subprocess checks once: {"fd1", "fd2", "devices"} -> Popen. conftest.py calls this as
    soon as collection selects a test of this module, so that their compilations run beside the tests before.

    fd1 differentiates through the CPU backend's convolution (metastyle_jax.conv), as meta-training does; fd2
    (T=2) through lax.conv_general_dilated, the GPU's, which compiles in half the time. conv.py's own
    derivatives equal lax's to third order (test_conv.py), and the meta-gradient through conv.py equals
    PyTorch's for T=1 and T=2 (test_torch_equivalence.py)."""
    if not _WORKERS:
        _WORKERS.update(fd1=_start(["fd", "1"]), fd2=_start(["fd", "2"]),
                        devices=_start(["devices"], ["--xla_force_host_platform_device_count=2"]))
        atexit.register(_stop_workers)  # a session that ends before this module's tests leaves none running
    return _WORKERS


def _stop_workers():
    for p in _WORKERS.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture(scope="module", autouse=True)
def workers():
    yield start_workers()
    _stop_workers()


@pytest.fixture(scope="module")
def fd_results(workers):
    return {1: _result(workers["fd1"]), 2: _result(workers["fd2"])}


@pytest.fixture(scope="module")
def random_vgg():
    return jax.device_put(numpy_vgg())


@pytest.fixture(scope="module")
def adapted(random_vgg):
    """(theta, w_T, inner losses) for one style of a random batch, inner lr 0.1."""
    cfg = tiny_config(inner_lr=0.1)
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    batch = random_batch(0, s=1)
    theta = outer.init_state(cfg, 0).params

    @jax.jit
    def run(theta, vgg, batch):
        bilevel = meta.Bilevel(vgg, settings)
        task = jax.tree_util.tree_map(lambda x: x[0], bilevel.tasks(batch))
        return bilevel.inner_loop(theta, task, 0, hyper)

    w, inner_losses = run(theta, random_vgg, batch)
    return theta, w, inner_losses


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_meta_gradient_matches_finite_differences(fd_results, inner_steps):
    res = fd_results[inner_steps]
    for name, d in res["directions"].items():
        scale = max(abs(d["fd"]), 1e-3)
        assert abs(d["second_order"] - d["fd"]) <= 1e-4 * scale, (name, d)
        assert abs(d["hvp"] - d["fd"]) <= 1e-4 * scale, (name, d)
    assert res["rel_hvp_vs_autodiff"] < 1e-9


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_second_and_first_order_differ(fd_results, inner_steps):
    res = fd_results[inner_steps]
    assert res["rel_second_vs_first"] > 1e-2
    # Finite differences side with the exact (second-order) gradient, not with first-order MAML.
    d = res["directions"]["random_instance_norm"]
    assert abs(d["first_order"] - d["fd"]) > 100 * abs(d["second_order"] - d["fd"]), d


def test_two_devices_equal_one(workers):
    res = _result(workers["devices"])
    one, two = res["1"], res["2"]
    assert one["devices"] == 1 and two["devices"] == 2
    theta, p1, p2 = (np.asarray(x) for x in (res["theta"], one["params"], two["params"]))
    g1, g2 = np.asarray(one["grad"]), np.asarray(two["grad"])
    # The meta-gradients agree relative to their norm (the styles' means are summed in another order). Adam's
    # first step, -lr g / (|g| + eps), turns rounding-level entries of g into full +-lr steps, so the
    # parameters are compared where |g| is well above rounding only.
    # measured: 2.3e-6 (AMD EPYC), 2.1e-6 (Xeon with AMX; 1.0e-4 there with XLA's platform-dependent math, xla_flags.py)
    assert np.linalg.norm(g2 - g1) < 2e-5 * np.linalg.norm(g1)
    clear = np.abs(g1) > 1e-3 * np.abs(g1).max()
    assert clear.mean() > 0.1 and np.all(np.abs(p1 - theta)[clear] > 0.999 * 1e-3)
    np.testing.assert_allclose(p2[clear], p1[clear], rtol=0, atol=1e-6)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
    assert "divisible by the 2 devices" in res["indivisible"]


def test_inner_loop_changes_only_instance_norm(adapted):
    theta, w, inner_losses = adapted
    mask = transformer.instance_norm_mask(theta)
    changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), theta, w)
    assert jax.tree_util.tree_leaves(changed) == jax.tree_util.tree_leaves(mask)
    assert inner_losses.shape == (1,) and np.isfinite(inner_losses).all()


def test_reptile_moves_theta_toward_adapted_weights(adapted, random_vgg):
    theta, w, _ = adapted
    cfg = tiny_config(mode="reptile", inner_lr=0.1, styles_per_batch=1)
    state = outer.init_state(cfg, 0)
    step = meta_step_of(random_vgg, cfg)
    new, metrics = step(state, random_batch(0, s=1))
    step_taken, toward = flat(new.params) - flat(theta), flat(w) - flat(theta)
    # Entries whose inner gradient is zero in exact arithmetic (e.g. an instance norm's shift feeding a
    # convolution and the next instance norm, which removes it) move by float rounding alone (~1e-11), with a
    # sign that differs between two compiled programs; only entries that really move have a direction.
    moved = np.abs(toward) > 1e-4 * np.median(np.abs(toward[toward != 0]))
    # Adam's first step is lr * sign(theta - w) per entry: every adapted entry steps toward w.
    assert moved.any() and np.all(np.sign(step_taken[moved]) == np.sign(toward[moved]))
    assert np.dot(step_taken, toward) > 0
    mask = jax.tree_util.tree_leaves(transformer.instance_norm_mask(theta))
    moved = [bool(np.any(np.asarray(a) != np.asarray(b)))
             for a, b in zip(jax.tree_util.tree_leaves(theta), jax.tree_util.tree_leaves(new.params))]
    assert moved == mask  # only what the inner loop adapts differs from theta, so only that moves
    assert bool(metrics["finite"]) and int(new.step) == 1


@pytest.mark.parametrize("which", ["all", "instance_norm", "non_instance_norm"])
def test_outer_optimizer_updates_what_the_config_says(which):
    cfg = tiny_config(outer_params=which)
    params = transformer.init_params(jax.random.key(0), 16)
    opt = outer.make_optimizer(cfg)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = opt.update(grads, opt.init(params), params)
    moved = [bool(np.any(np.asarray(u) != 0)) for u in jax.tree_util.tree_leaves(updates)]
    assert moved == jax.tree_util.tree_leaves(meta.param_mask(params, which))
    # The first Adam step is -lr * g / (|g| + eps): lr of the time-decayed schedule at t = 0.
    np.testing.assert_allclose(np.asarray(jax.tree_util.tree_leaves(updates)[moved.index(True)]).ravel()[0],
                               -cfg.outer_lr, rtol=1e-5)


def test_outer_step_respects_outer_params(random_vgg):
    cfg = tiny_config(outer_params="instance_norm", mode="first_order")
    state = outer.init_state(cfg, 0)
    before = jax.tree_util.tree_map(np.asarray, state.params)
    new, metrics = meta_step_of(random_vgg, cfg)(state, random_batch(1))
    moved = [bool(np.any(a != np.asarray(b))) for a, b in zip(jax.tree_util.tree_leaves(before),
                                                             jax.tree_util.tree_leaves(new.params))]
    assert moved == jax.tree_util.tree_leaves(transformer.instance_norm_mask(before))
    assert bool(metrics["finite"]) and float(metrics["outer_lr"]) == pytest.approx(1e-3)


def test_learning_rates_decay_with_the_outer_iteration():
    assert float(meta.decayed(1e-3, 2.5e-5, 0)) == pytest.approx(1e-3)
    assert float(meta.decayed(1e-3, 2.5e-5, 40_000)) == pytest.approx(5e-4)
    assert float(meta.decayed(1e-4, 2.5e-5, 100_000)) == pytest.approx(1e-4 / 3.5)


def test_task_loss_is_the_perceptual_loss(random_vgg):
    from metastyle_jax import losses
    cfg = tiny_config()
    settings, hyper = meta.settings_from_config(cfg), meta.hyper_from_config(cfg)
    params = transformer.init_params(jax.random.key(0), 16)
    b = random_batch(2, s=1, b=2)
    contents, style = b["val"][0], b["style"]
    bilevel = meta.Bilevel(random_vgg, settings)
    grams = losses.style_grams(random_vgg, style)
    feat = bilevel.content_features(contents)
    ours, parts = bilevel.task_loss(params, contents, feat, {k: g[0] for k, g in grams.items()}, hyper)
    ref, ref_parts = losses.perceptual_loss(random_vgg, transformer.apply(params, contents), grams,
                                            contents=contents)
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    assert float(parts["style"]) == pytest.approx(float(ref_parts["style"]), rel=1e-5)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        meta.settings_from_config(tiny_config(mode="maml++"))
    with pytest.raises(ValueError, match="inner_steps"):
        meta.settings_from_config(tiny_config(inner_steps=0))
    with pytest.raises(ValueError, match="divide"):
        parallel.check_mesh(tiny_config(styles_per_batch=4, styles_in_parallel=3), parallel.make_mesh())


if __name__ == "__main__":
    if sys.argv[1] == "fd":
        fd_worker(int(sys.argv[2]))
    elif sys.argv[1] == "devices":
        devices_worker()
    else:
        sys.exit(f"unknown worker {sys.argv[1]!r}")
