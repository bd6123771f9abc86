import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from metastyle_jax import losses, vgg16, vgg_weights


def test_gram_matches_eq3_computed_independently(rng):
    feat = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    g = np.asarray(losses.gram(jnp.asarray(feat)))
    for b in range(2):
        psi = feat[b].transpose(2, 0, 1).reshape(6, 35)  # C x HW, as eq. 3
        np.testing.assert_allclose(g[b], psi @ psi.T / (6 * 5 * 7), rtol=1e-5)


def test_style_loss_is_frobenius_over_c_squared_averaged_over_batch(rng):
    fx = {"a": jnp.asarray(rng.normal(size=(3, 4, 4, 8)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(3, 2, 2, 16)), jnp.float32)}
    target = {k: losses.gram(jnp.asarray(rng.normal(size=v.shape), jnp.float32))[:1] for k, v in fx.items()}
    expected = 0.0
    for k, v in fx.items():
        c = v.shape[-1]
        diff = np.asarray(losses.gram(v)) - np.asarray(target[k])
        expected += np.mean([np.sum(d ** 2) / c ** 2 for d in diff])
    np.testing.assert_allclose(float(losses.style_loss(fx, target, ("a", "b"))), expected, rtol=1e-5)


def test_content_loss_is_eq1_mean_over_features(rng):
    a, b = rng.normal(size=(2, 2, 3, 4, 5))
    np.testing.assert_allclose(float(losses.content_loss(jnp.asarray(a), jnp.asarray(b))),
                               np.sum((a - b) ** 2) / a.size, rtol=1e-5)


def test_perceptual_loss_zero_at_targets_and_weighted_as_eq4(random_vgg):
    vgg = random_vgg
    img = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    style = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    grams_self = losses.style_grams(vgg, img[:1])
    total, parts = losses.perceptual_loss(vgg, img[:1], grams_self, contents=img[:1])
    assert float(total) < 1e-6
    grams = losses.style_grams(vgg, style)
    w = losses.LossWeights(alpha=2.0, beta=3.0)
    total, parts = losses.perceptual_loss(vgg, img, grams, contents=img[::-1], weights=w)
    assert float(parts["content"]) > 0 and float(parts["style"]) > 0
    np.testing.assert_allclose(float(total), 2 * float(parts["content"]) + 3 * float(parts["style"]), rtol=1e-5)


def test_feature_scale_divides_features(random_vgg):
    vgg = random_vgg
    img = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    spec = vgg.spec
    scaled = vgg.replace(spec=vgg16.InputSpec(spec.order, spec.scale, spec.mean, spec.std, feature_scale=4.0))
    a = vgg16.features(vgg, img)
    b = vgg16.features(scaled, img)
    for k in vgg16.LAYERS:
        np.testing.assert_allclose(np.asarray(b[k]) * 4.0, np.asarray(a[k]), rtol=1e-5, atol=1e-6)


def test_precomputed_content_features_give_the_same_loss_and_gradient(random_vgg):
    """perceptual_loss with content_feat (VGG on the outputs only) = with contents (one VGG pass over both)."""
    vgg = random_vgg
    out = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
    contents = jax.random.uniform(jax.random.key(4), (2, 32, 32, 3))
    grams = losses.style_grams(vgg, jax.random.uniform(jax.random.key(5), (1, 32, 32, 3)))
    joint = jax.value_and_grad(lambda o: losses.perceptual_loss(vgg, o, grams, contents=contents)[0])(out)
    feat = losses.content_features(vgg, contents)
    apart = jax.value_and_grad(lambda o: losses.perceptual_loss(vgg, o, grams, content_feat=feat)[0])(out)
    np.testing.assert_allclose(float(joint[0]), float(apart[0]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(joint[1]), np.asarray(apart[1]), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="exactly one"):
        losses.perceptual_loss(vgg, out, grams, contents=contents, content_feat=feat)


def test_layer_weights_of_the_vgg_scale_each_style_term(random_vgg):
    import dataclasses
    img = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
    grams = losses.style_grams(random_vgg, jax.random.uniform(jax.random.key(1), (1, 32, 32, 3)))
    terms = losses.style_terms(vgg16.features(random_vgg, img), grams)
    factors = (2.0, 0.5, 3.0, 10.0)
    vgg = random_vgg.replace(spec=dataclasses.replace(random_vgg.spec, layer_weights=factors))
    _, parts = losses.perceptual_loss(vgg, img, grams, contents=img)
    np.testing.assert_allclose(float(parts["style"]), sum(f * float(terms[k]) for f, k in zip(factors, vgg16.LAYERS)),
                               rtol=1e-5)


def test_block_average_averages_each_block():
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6, 1)
    got = np.asarray(losses.block_average(x, 2))
    assert got.shape == (2, 2, 3, 1) and got[0, 0, 0, 0] == np.mean([0, 1, 6, 7]) and got[1, 1, 2, 0] == x[1, 2:4, 4:].mean()
    assert losses.block_average(x, 1) is x
    windows = np.asarray(losses.block_average(x, 2, 4))  # 4 x 4 windows at a stride of 2
    assert windows.shape == (2, 1, 2, 1) and windows[1, 0, 1, 0] == x[1, :4, 2:6].mean()
    stripes = np.tile(np.array([1.0, 1.0, -1.0, -1.0], np.float32), 4)[None, None, :, None] * np.ones((1, 8, 1, 1))
    assert np.abs(np.asarray(losses.block_average(stripes, 2, 4))).max() < 1e-7   # the 4-pixel period hidden
    assert np.abs(np.asarray(losses.block_average(stripes, 2))).max() == 1.0      # but not by 2 x 2 blocks


def test_a_style_block_makes_the_style_term_blind_to_the_two_pixel_checkerboard(random_vgg):
    """With style_block 2 the style term sees 2 x 2 block averages (Grams of the painting's too): adding a
    2-pixel checkerboard to the outputs leaves it unchanged, while content (full resolution) moves; at
    style_block 1 the style term moves too."""
    import dataclasses
    out = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=0.2, maxval=0.8)
    painting = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    board = 0.1 * (-1.0) ** (np.arange(32)[:, None] + np.arange(32)[None, :])[None, :, :, None]
    coarse = random_vgg.replace(spec=dataclasses.replace(random_vgg.spec, style_block=2))
    for vgg, style_moves in ((coarse, False), (random_vgg, True)):
        grams = losses.style_grams(vgg, painting)
        _, clean = losses.perceptual_loss(vgg, out, grams, contents=out)
        _, boarded = losses.perceptual_loss(vgg, out + board, grams, contents=out)
        moved = abs(float(boarded["style"]) / float(clean["style"]) - 1)
        assert (moved > 1e-3) if style_moves else (moved < 1e-5)
        assert float(boarded["content"]) > 0 == float(clean["content"])
    coarse_grams = losses.style_grams(coarse, painting)
    manual = losses.style_grams(random_vgg, losses.block_average(painting, 2))
    for k in vgg16.LAYERS:
        np.testing.assert_allclose(np.asarray(coarse_grams[k]), np.asarray(manual[k]), rtol=1e-6)


def test_the_imagenet_view_makes_the_style_term_blind_to_any_lattice_of_period_4(random_vgg):
    """ImageNet VGG16's style view (4 x 4 windows at a stride of 2) hides every pattern locked to the pixel grid
    at periods of 2 and 4 pixels (the transformer's upsampling lattice), not only the 2-pixel checkerboard; a
    window without a coarser stride is honoured too (the style features then come from their own pass)."""
    import dataclasses
    out = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=0.2, maxval=0.8)
    painting = jax.random.uniform(jax.random.key(1), (1, 32, 32, 3))
    cell = jax.random.normal(jax.random.key(2), (4, 4, 3)) * 0.05
    lattice = jnp.tile(cell - cell.mean((0, 1)), (8, 8, 1))[None]
    spec = vgg_weights.SOURCES["imagenet"]
    for block, window, style_moves in ((spec.style_block, spec.style_window, False), (1, 4, False), (1, 0, True)):
        vgg = random_vgg.replace(spec=dataclasses.replace(random_vgg.spec, style_block=block, style_window=window))
        grams = losses.style_grams(vgg, painting)
        _, clean = losses.perceptual_loss(vgg, out, grams, contents=out)
        _, latticed = losses.perceptual_loss(vgg, out + lattice, grams, contents=out)
        moved = abs(float(latticed["style"]) / float(clean["style"]) - 1)
        assert (moved > 1e-3) if style_moves else (moved < 1e-5), (block, window, moved)


def test_style_loss_weights_each_term(rng):
    fx = {"a": jnp.asarray(rng.normal(size=(2, 4, 4, 8)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(2, 2, 2, 16)), jnp.float32)}
    target = {k: losses.gram(jnp.asarray(rng.normal(size=v.shape), jnp.float32))[:1] for k, v in fx.items()}
    terms = losses.style_terms(fx, target, ("a", "b"))
    np.testing.assert_allclose(float(losses.style_loss(fx, target, ("a", "b"), (3.0, 0.5))),
                               3.0 * float(terms["a"]) + 0.5 * float(terms["b"]), rtol=1e-6)
    np.testing.assert_allclose(float(losses.style_loss(fx, target, ("a", "b"))),
                               float(terms["a"]) + float(terms["b"]), rtol=1e-6)


def test_total_variation_is_mean_squared_neighbour_difference(rng):
    x = rng.uniform(size=(2, 5, 6, 3)).astype(np.float32)
    expected = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    np.testing.assert_allclose(float(losses.total_variation(jnp.asarray(x))), expected, rtol=1e-5)
    assert float(losses.total_variation(jnp.ones((1, 4, 4, 3)))) == 0.0


def test_perceptual_loss_adds_weighted_total_variation(random_vgg):
    img = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
    grams = losses.style_grams(random_vgg, jax.random.uniform(jax.random.key(1), (1, 32, 32, 3)))
    plain, _ = losses.perceptual_loss(random_vgg, img, grams, contents=img)
    with_tv, _ = losses.perceptual_loss(random_vgg, img, grams, contents=img, weights=losses.LossWeights(tv=7.0))
    np.testing.assert_allclose(float(with_tv - plain), 7.0 * float(losses.total_variation(img)), rtol=1e-4)


def test_saturation_counts_logits_beyond_the_limit_with_full_strength_gradient(random_vgg):
    z = jnp.asarray([-6.0, -3.0, 0.0, 5.0]).reshape(1, 1, 4, 1)
    assert float(losses.saturation(jax.nn.sigmoid(z))) == pytest.approx((4.0 + 0 + 0 + 1.0) / 4, rel=1e-4)
    grad = np.asarray(jax.grad(lambda v: losses.saturation(jax.nn.sigmoid(v)))(z)).ravel()
    np.testing.assert_allclose(grad, [-1.0, 0.0, 0.0, 0.5], rtol=1e-3, atol=1e-6)  # d/dz of (|z| - 4)^2 / 4
    out = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3), minval=0.001, maxval=0.999)
    grams = losses.style_grams(random_vgg, out)
    plain, _ = losses.perceptual_loss(random_vgg, out, grams, contents=out)
    weighted, _ = losses.perceptual_loss(random_vgg, out, grams, contents=out, weights=losses.LossWeights(saturation=3.0))
    np.testing.assert_allclose(float(weighted) - float(plain), 3.0 * float(losses.saturation(out)), rtol=1e-4)
    assert float(losses.saturation(out)) > 0
    assert losses.weights_of(ml_collections.ConfigDict({"alpha": 1.0, "beta": 1.0, "saturation": 2.0})).saturation == 2.0


def test_equal_share_weights_give_each_style_layer_a_quarter_and_keep_the_total(random_vgg):
    import dataclasses
    img = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    grams = losses.style_grams(random_vgg, jax.random.uniform(jax.random.key(1), (1, 32, 32, 3)))
    factors = losses.equal_share_weights(random_vgg, img, grams)
    terms = losses.style_terms(losses.style_features(random_vgg, img), grams)
    weighted = np.array([f * float(terms[k]) for f, k in zip(factors, vgg16.LAYERS)])
    before = sum(f * float(terms[k]) for f, k in zip(random_vgg.spec.layer_weights, vgg16.LAYERS))
    np.testing.assert_allclose(weighted / weighted.sum(), 0.25, rtol=1e-5)
    np.testing.assert_allclose(weighted.sum(), before, rtol=1e-5)
    vgg = random_vgg.replace(spec=dataclasses.replace(random_vgg.spec, layer_weights=factors))
    _, parts = losses.perceptual_loss(vgg, img, grams, contents=img)
    np.testing.assert_allclose(float(parts["style"]), weighted.sum(), rtol=1e-4)


def test_equal_share_weights_keep_the_factors_where_a_term_is_not_finite(random_vgg):
    """A layer whose term is not finite (e.g. a windowed map left empty at 16 px): no balance, the source's factors."""
    img = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
    grams = losses.style_grams(random_vgg, jax.random.uniform(jax.random.key(1), (1, 32, 32, 3)))
    grams[vgg16.LAYERS[-1]] = grams[vgg16.LAYERS[-1]] * np.nan
    assert losses.equal_share_weights(random_vgg, img, grams) == tuple(random_vgg.spec.layer_weights)
