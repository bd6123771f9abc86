"""benchmarks/torch_metastyle.py (PyTorch) computes what metastyle_jax computes: the same network and VGG16
features, perceptual loss, adaptation step, meta-gradient (T = 1 and 2, exact second order) and outer Adam,
at 32 px in float32 with the same parameters and batch. The T = 1 check also shows the first-order gradient
lies far outside the tolerance, so the comparison sees the second-order term."""

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not put the repository on the path
    sys.path.insert(0, str(REPO))

from benchmarks import torch_metastyle as tm
from metastyle_jax import adapt, losses, meta, outer, transformer, vgg16

SIZE = 32
INNER_LR, LR_DECAY, T_OUTER = 0.03, 0.5, 1  # a large inner step and decay: both visibly change the gradient


def rel(a, b):
    """||a - b|| / ||a|| over all leaves of two pytrees."""
    a = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(a)])
    b = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(b)])
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def numpy_theta(seed=0):
    """Random transformer parameters (LeCun-normal kernels, small biases, instance-norm scale ~1, shift ~0)."""
    r = np.random.default_rng(seed)
    shapes = transformer.abstract_params()

    def leaf(path, x, is_in):
        if is_in:
            return (float(path[-1].key == "scale") + 0.1 * r.standard_normal(x.shape)).astype(np.float32)
        if x.ndim == 4:
            return (r.standard_normal(x.shape) / np.sqrt(np.prod(x.shape[:3]))).astype(np.float32)
        return (0.01 * r.standard_normal(x.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(leaf, shapes, transformer.instance_norm_mask(shapes))


@pytest.fixture(scope="module")
def hed_vgg():
    """HED's VGG16: the gradient comparisons below use it. With the default ImageNet weights the same random
    contents and style make a far worse-conditioned problem (one ulp on theta moves the T=2 meta-gradient by
    ~26%), too loose a tolerance to tell a wrong gradient from rounding; the code compared is the same."""
    from metastyle_jax import vgg_weights
    return vgg_weights.load_vgg("hed")


@pytest.fixture(scope="module")
def setup(hed_vgg):
    r = np.random.default_rng(4)
    return {"theta": numpy_theta(), "vgg": hed_vgg, "torch_vgg": tm.vgg_from_params(hed_vgg),
            "contents": r.random((4, SIZE, SIZE, 3), dtype=np.float32),
            "style": r.random((SIZE, SIZE, 3), dtype=np.float32)}


def test_network_and_features_match(setup, random_vgg, real_vgg):
    x = setup["contents"][:2]
    ours = np.asarray(transformer.apply(setup["theta"], x))
    theirs = tm.transformer_from_params(setup["theta"])(tm.nchw(x)).detach().movedim(1, -1).numpy()
    np.testing.assert_allclose(theirs, ours, atol=2e-5)
    for vgg in (setup["vgg"], real_vgg, random_vgg):  # HED and ImageNet (BGR x255 /57.6), and RGB ImageNet
        ours = vgg16.features(vgg, x)
        theirs = tm.vgg_from_params(vgg)(tm.nchw(x))
        for k in vgg16.LAYERS:
            np.testing.assert_allclose(theirs[k].movedim(1, -1).numpy(), ours[k], rtol=1e-4,
                                       atol=1e-4 * float(jnp.abs(ours[k]).max()), err_msg=k)


def test_perceptual_loss_and_its_gradient_match(setup):
    vgg, tvgg = setup["vgg"], setup["torch_vgg"]
    contents = setup["contents"]
    outputs = np.asarray(transformer.apply(setup["theta"], contents))
    grams = losses.style_grams(vgg, setup["style"][None])
    (ours, parts), g_ours = jax.value_and_grad(
        lambda o: losses.perceptual_loss(vgg, o, grams, contents=contents), has_aux=True)(outputs)
    out_t = tm.nchw(outputs).requires_grad_(True)
    t_grams = tm.style_grams(tvgg, tm.nchw(setup["style"][None]))
    theirs, lc, ls = tm.perceptual_loss(tvgg, out_t, tm.content_features(tvgg, tm.nchw(contents)), t_grams)
    theirs.backward()
    assert float(ours) > 1.0
    np.testing.assert_allclose([float(theirs.detach()), float(lc.detach()), float(ls.detach())],
                               [float(ours), float(parts["content"]), float(parts["style"])], rtol=1e-4)
    assert rel(g_ours, out_t.grad.movedim(1, -1).numpy()) < 1e-3


def cancelled(path):
    """Parameters whose gradient is exactly zero: a per-channel constant that an instance norm downstream
    removes (biases of the convolutions before one, and of each residual block's last norm). Adam's first
    step there, g / (sqrt(v) + eps), is the sign of float noise, in either framework."""
    name = [k.key for k in path]
    return name[-1] == "bias" and (name[-2] == "conv2d" and name[0] != "deconv3" or name[-2:] == ["in2", "bias"]
                                   and name[0].startswith("res"))


def test_adaptation_steps_match(setup):
    """Adam on every parameter (batch 4): the gradient (Adam's moments) and update of one step, and the
    losses of two steps."""
    vgg, tvgg, theta = setup["vgg"], setup["torch_vgg"], setup["theta"]
    batches = [setup["contents"], setup["contents"][::-1].copy()]
    grams = adapt.style_targets(vgg, setup["style"])
    net = tm.transformer_from_params(theta)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t_grams = tm.style_grams(tvgg, tm.nchw(setup["style"][None]))
    params, opt_state = theta, adapt.optimizer(1e-3).init(theta)
    ours, theirs = [], []
    for step, b in enumerate(batches):
        params, opt_state, m = adapt.adapt_step(params, opt_state, vgg, grams, jnp.asarray(b))
        ours.append(float(m["loss"]))
        theirs.append(float(tm.adapt_step(net, opt, tvgg, t_grams, tm.nchw(b))))
        if step:
            continue
        state = {k: opt.state[p] for k, p in net.named_parameters()}
        mu = tm.params_like(theta, {k: s["exp_avg"] for k, s in state.items()})  # 0.1 g
        nu = tm.params_like(theta, {k: s["exp_avg_sq"] for k, s in state.items()})  # 0.001 g^2
        assert rel(opt_state[0].mu, mu) < 1e-4
        assert rel(opt_state[0].nu, nu) < 1e-4
        step_of = lambda tree: jax.tree_util.tree_map_with_path(
            lambda path, new, old: 0.0 * old if cancelled(path) else np.asarray(new, np.float64) - old, tree, theta)
        # the first Adam step is ~lr * sign(g): the few entries whose |g| is at rounding level may flip
        # (3e-3 measured: ~4 of 1.7M entries); a wrong gradient would flip a large share of them
        assert rel(step_of(params), step_of(tm.params_like(theta, net.state_dict()))) < 1e-2
    np.testing.assert_allclose(theirs, ours, rtol=1e-4)
    assert abs(ours[1] - ours[0]) > 1e-2 * ours[0]  # the step changed the loss


def config(inner_steps):
    return ml_collections.ConfigDict({
        "mode": "second_order", "meta_grad": "autodiff", "inner_steps": inner_steps, "inner_lr": INNER_LR,
        "outer_lr": 1e-3, "lr_decay": LR_DECAY, "inner_params": "instance_norm", "outer_params": "all",
        "styles_per_batch": 2, "batch_size": 1, "styles_in_parallel": 0, "dtype": "float32",
        "loss": {"alpha": 1.0, "beta": 1e5}})


@pytest.fixture(scope="module")
def meta_batch():
    r = np.random.default_rng(3)
    return {"train": r.random((2, 1, SIZE, SIZE, 3), dtype=np.float32),
            "val": r.random((2, 1, SIZE, SIZE, 3), dtype=np.float32),
            "style": r.random((2, SIZE, SIZE, 3), dtype=np.float32)}


def moved_by_one_ulp(theta, seed=9):
    """theta with every weight moved by one float32 ulp of itself (2^-24 relative), random signs."""
    r = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: (x * (1 + np.float32(2.0 ** -24) * r.choice([-1, 1], x.shape))).astype(np.float32), theta)


@pytest.fixture(scope="module")
def jax_meta_gradients(setup, meta_batch):
    """JAX meta-gradients and metrics at t = T_OUTER: second order T=1, first order T=1, second order T=2
    (one compilation), and each one's sensitivity to float32 rounding: its relative change when theta moves
    by one ulp (the same compiled program)."""
    hyper = meta.hyper_from_config(config(1))
    s1 = meta.settings_from_config(config(1))
    variants = (s1, dataclasses.replace(s1, mode="first_order"), dataclasses.replace(s1, inner_steps=2))
    fn = jax.jit(lambda theta, vgg, batch, t: [meta.Bilevel(vgg, s).meta_gradient(theta, batch, t, hyper)
                                               for s in variants])
    t = jnp.asarray(T_OUTER, jnp.int32)
    results = fn(setup["theta"], setup["vgg"], meta_batch, t)
    moved = fn(moved_by_one_ulp(setup["theta"]), setup["vgg"], meta_batch, t)
    return results, [rel(g, m) for (g, _), (m, _) in zip(results, moved)]


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_meta_gradient_matches(setup, meta_batch, jax_meta_gradients, inner_steps):
    """Two float32 implementations of the meta-gradient differ by about its sensitivity to rounding (measured:
    one ulp on theta moves the T=2 meta-gradient by ~0.7% with HED's layer weights), so the tolerance is four
    times that sensitivity, at least 0.5%, and must stay far below the second-order term."""
    ((g1, m1), (g_first, _), (g2, m2)), sensitivity = jax_meta_gradients
    ours, metrics = (g1, m1) if inner_steps == 1 else (g2, m2)
    tolerance = max(5e-3, 4 * sensitivity[0 if inner_steps == 1 else 2])
    assert tolerance < 0.05
    net = tm.transformer_from_params(setup["theta"])
    theirs = tm.meta_gradient(net, setup["torch_vgg"], {k: tm.nchw(v) for k, v in meta_batch.items()}, T_OUTER,
                              inner_lr=INNER_LR, lr_decay=LR_DECAY, inner_steps=inner_steps)
    np.testing.assert_allclose([theirs["outer_loss"], theirs["inner_loss"]],
                               [float(metrics["outer_loss"]), float(metrics["inner_loss"])], rtol=1e-4)
    assert float(metrics["outer_loss"]) != pytest.approx(float(metrics["inner_loss"]), rel=1e-2)  # the inner step acts
    grads = tm.params_like(setup["theta"], {k: p.grad for k, p in net.named_parameters()})
    error = rel(ours, grads)
    assert error < tolerance
    if inner_steps == 1:
        assert rel(ours, g_first) > 100 * error  # the second-order term is far above the tolerance
    else:
        assert rel(ours, g1) > 4 * tolerance      # and so is the second inner step


def test_outer_adam_with_decay_matches(setup):
    """torch Adam + LambdaLR(1 / (1 + k t)) against outer.outer_optimizer on the same gradients, 3 steps."""
    theta = setup["theta"]
    settings, hyper = meta.settings_from_config(config(1)), meta.hyper_from_config(config(1))
    opt = outer.outer_optimizer(settings, hyper)
    net = tm.transformer_from_params(theta)
    t_opt, sched = tm.meta_optimizer(net, outer_lr=1e-3, lr_decay=LR_DECAY)
    params, state = theta, opt.init(theta)
    r = np.random.default_rng(0)
    for _ in range(3):
        g = jax.tree_util.tree_map(lambda x: r.standard_normal(x.shape).astype(np.float32), theta)
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        tensors = tm.state_dict_from_params(g)
        for name, p in net.named_parameters():
            p.grad = tensors[name]
        t_opt.step()
        sched.step()
    ours = jax.tree_util.tree_map(lambda a, b: np.asarray(a) - b, params, theta)
    theirs = jax.tree_util.tree_map(lambda a, b: a - b, tm.params_like(theta, net.state_dict()), theta)
    assert rel(ours, theirs) < 1e-4


def test_adapting_a_converted_official_theta_moves_conv1_as_the_official_code(setup):
    """The official network reads 0-255 pixels; `convert` folds the 255 into conv1's kernel. Adam from such a
    theta (input_scale 255, recorded by convert) sees conv1's gradient as the official code does and moves
    conv1 as far as five official steps on a PyTorch network fed 0-255 pixels; without the input scale Adam
    moves it ~255x less."""
    from metastyle_jax import convert

    vgg, tvgg, theta = setup["vgg"], setup["torch_vgg"], setup["theta"]
    official = {k: v.numpy() for k, v in tm.state_dict_from_params(theta).items()}  # as the official code saves
    start = official["conv1.conv2d.weight"].transpose(2, 3, 1, 0)
    net = tm.transformer_from_params(theta)

    class Official(torch.nn.Module):  # the official training loop: transforms.Lambda(lambda x: x.mul(255))
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x * 255)

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t_grams = tm.style_grams(tvgg, tm.nchw(setup["style"][None]))
    grams = adapt.style_targets(vgg, setup["style"])
    batches = [setup["contents"][np.roll(np.arange(4), i)] for i in range(5)]
    theirs_mu = None
    for b in batches:
        tm.adapt_step(Official(net), opt, tvgg, t_grams, tm.nchw(b))
        if theirs_mu is None:  # Adam's first moment after one step: 0.1 x conv1's gradient, official parameterization
            theirs_mu = opt.state[net.conv1.conv2d.weight]["exp_avg"].numpy().transpose(2, 3, 1, 0).copy()
    theirs_move = net.conv1.conv2d.weight.detach().numpy().transpose(2, 3, 1, 0) - start

    moved = {}
    for scale in (255.0, 1.0):
        params = convert.from_state_dict(official)
        opt_state = adapt.optimizer(1e-3, input_scale=scale).init(params)
        for i, b in enumerate(batches):
            params, opt_state, _ = adapt.adapt_step(params, opt_state, vgg, grams, jnp.asarray(b),
                                                    input_scale=scale)
            if i == 0 and scale == 255.0:
                mu = np.asarray(opt_state[1][0].mu["conv1"]["conv2d"]["kernel"])
                # the gradient Adam sees is the official one: 5.7e-3 measured, where the native parameterization
                # agrees to 4e-6; the loss's own gradient with the folded kernel differs by as much from
                # PyTorch's (both float64-stable, forward passes equal to 2e-6): under investigation (issue 13)
                assert rel(theirs_mu, mu) < 1e-2
        move = np.asarray(params["conv1"]["conv2d"]["kernel"]) / 255 - start
        moved[scale] = (np.linalg.norm(move) / np.linalg.norm(theirs_move),
                        float(np.mean(np.sign(move) == np.sign(theirs_move))))
    # the few entries whose gradient is at rounding level may flip sign (0.15% after one step, 4% after five)
    assert 0.9 < moved[255.0][0] < 1.1 and moved[255.0][1] > 0.93, moved
    assert moved[1.0][0] < 0.05, moved
