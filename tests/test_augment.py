import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsjax import grid_coords, image_coords, mlp_spec, siren_apply, siren_init, siren_init_batch, unflatten_weights
from dwsjax.augment import (
    AUGMENTATIONS,
    PAIR_AUGMENTATIONS,
    apply_to_batch,
    build_pipeline,
    combination,
    gaussian_noise,
    masking,
    mixup,
    permutation,
    quantile_masking,
    relu_scaling,
    rotate,
    sample_rotation,
    sample_scale,
    sample_translation,
    scale,
    siren_negation,
    siren_shift_biases,
    translate,
)

SPEC = mlp_spec(2, 8, 6, 1)
render = jax.jit(siren_apply, static_argnames="w0")


def relu_apply(ws, x):
    """A ReLU MLP with the same weight layout (hidden ReLU, linear last layer)."""
    for i, (w, b) in enumerate(zip(ws.weights, ws.biases)):
        x = x @ w + b
        x = jax.nn.relu(x) if i < len(ws.weights) - 1 else x
    return x


def net(seed=0, spec=SPEC):
    return siren_init(jax.random.key(seed), spec)


def assert_same_function(ws_new, ws, coords, atol_scale=1e-4, apply=render):
    ref = apply(ws, coords)
    atol = atol_scale * max(1.0, float(jnp.max(jnp.abs(ref))))
    np.testing.assert_allclose(apply(ws_new, coords), ref, atol=atol)


@pytest.mark.parametrize("aug", [siren_negation, permutation])
def test_siren_symmetries_preserve_function(aug):
    ws = net(1)
    out = jax.jit(aug)(jax.random.key(2), ws)
    assert not all(np.allclose(x, y) for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(ws)))
    assert_same_function(out, ws, image_coords(8, 8))


@pytest.mark.parametrize("k", [1, 2, -3, "random"])
def test_siren_bias_shift_preserves_function(k):
    ws = net(3)
    if k == "random":
        shifts = tuple(jax.random.randint(jax.random.key(n), (n,), -3, 4) for n in SPEC.hidden_widths)
    else:
        shifts = tuple(jnp.full((n,), k) for n in SPEC.hidden_widths)
    out = jax.jit(siren_shift_biases)(ws, shifts)
    # w0 = 30 amplifies the float32 rounding of b + k pi / w0 (~1e-7 * |b|) by 30 per layer.
    assert_same_function(out, ws, image_coords(8, 8), atol_scale=2e-4)


def test_siren_bias_with_other_w0():
    ws = net(4)
    out = jax.jit(lambda k, w: AUGMENTATIONS["siren_bias"](k, w, w0=10.0))(jax.random.key(0), ws)
    coords = image_coords(8, 8)
    np.testing.assert_allclose(render(out, coords, w0=10.0), render(ws, coords, w0=10.0), atol=2e-4)


def test_relu_scaling_preserves_relu_network():
    ws = net(5)
    out = jax.jit(relu_scaling)(jax.random.key(6), ws)
    assert_same_function(out, ws, image_coords(8, 8), apply=jax.jit(relu_apply))


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize(
    "aug,sampler", [(translate, sample_translation), (rotate, sample_rotation), (scale, sample_scale)]
)
def test_input_space_equals_rendering_transformed_coordinates(aug, sampler, dim):
    ws = net(7, mlp_spec(dim, 8, 6, 1))
    key = jax.random.key(8)
    coords = image_coords(8, 8) if dim == 2 else grid_coords(4, 3)
    matrix, shift = sampler(key, dim)
    out = jax.jit(aug)(key, ws)
    assert_same_function(out, ws, coords, apply=lambda w, x: render(w, x @ matrix + shift) if w is ws else render(w, x))


def test_rotation_is_orthogonal_and_in_range():
    m2, _ = sample_rotation(jax.random.key(0), 2)
    angle = np.degrees(np.arctan2(float(m2[0, 1]), float(m2[0, 0])))
    assert abs(angle) <= 30
    m3, _ = sample_rotation(jax.random.key(1), 3)
    np.testing.assert_allclose(m3 @ m3.T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(m3), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="2D or 3D"):
        sample_rotation(jax.random.key(0), 4)


def test_data_agnostic_augmentations():
    ws = net(9, mlp_spec(2, 32, 32, 1))
    key = jax.random.key(10)
    noisy = jax.jit(gaussian_noise)(key, ws)
    rel = jnp.std(noisy.weights[1] - ws.weights[1]) / jnp.std(ws.weights[1])
    assert 0.25 < float(rel) < 0.4
    masked = jax.jit(masking)(key, ws)
    dropped = masked.weights[1] == 0
    assert 0.05 < float(jnp.mean(dropped)) < 0.15
    np.testing.assert_allclose(masked.weights[1][~dropped], ws.weights[1][~dropped] / 0.9, rtol=1e-6)
    qmasked = jax.jit(lambda k, w: quantile_masking(k, w, max_quantile=0.5))(key, ws)
    w = np.abs(np.concatenate([np.ravel(x) for x in jax.tree.leaves(ws)]))
    kept = np.concatenate([np.ravel(x) for x in jax.tree.leaves(qmasked)]) != 0
    assert 0 < (~kept).mean() <= 0.5
    assert w[kept].min() >= w[~kept].max()  # one threshold over all weights and biases


def test_mixup_lambda_one_returns_first_and_mismatch_errors():
    a, b = net(11), net(12)
    ya, yb = jnp.eye(3)[0], jnp.eye(3)[2]
    for name, fn in PAIR_AUGMENTATIONS.items():
        exact = {"permute": False} if name == "mixup_prealigned" else {}  # its permutation keeps only the function
        ws, y = jax.jit(functools.partial(fn, lam=1.0, **exact))(jax.random.key(0), a, ya, b, yb)
        for x, ref in zip(jax.tree.leaves(ws), jax.tree.leaves(a)):
            np.testing.assert_allclose(x, ref, err_msg=name)
        np.testing.assert_allclose(y, ya, err_msg=name)
    ws, y = mixup(jax.random.key(0), a, ya, b, yb, lam=0.25)
    np.testing.assert_allclose(y, [0.25, 0, 0.75])
    np.testing.assert_allclose(ws.weights[0], 0.25 * a.weights[0] + 0.75 * b.weights[0], rtol=1e-6)
    other = net(13, mlp_spec(2, 8, 7, 1))
    with pytest.raises(ValueError, match="MixUp needs two networks of one architecture"):
        mixup(jax.random.key(0), a, ya, other, yb)
    with pytest.raises(ValueError, match="labels of one shape"):
        mixup(jax.random.key(0), a, ya, b, jnp.eye(4)[0])


@pytest.mark.slow
def test_every_registered_augmentation_jits_under_vmap():
    batch = siren_init_batch(jax.random.split(jax.random.key(14), 4), SPEC)
    labels = jax.nn.one_hot(jnp.arange(4) % 3, 3)
    # One jit for all (compiles once); mixup_aligned under vmap+jit is in the pipeline test.
    pairs = {k: v for k, v in PAIR_AUGMENTATIONS.items() if k != "mixup_aligned"}

    @jax.jit
    def run_all(key, ws, y):
        singles = {name: apply_to_batch(fn, key, ws) for name, fn in AUGMENTATIONS.items()}
        keys = jax.random.split(key, 4)
        mixed = {name: jax.vmap(fn)(keys, ws, y, ws, y[::-1]) for name, fn in pairs.items()}
        return singles, mixed

    singles, mixed = run_all(jax.random.key(1), batch, labels)
    for name, out in singles.items():
        assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, batch), name
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(out)), name
    for name, (_, y) in mixed.items():
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6, err_msg=name)


def test_apply_to_batch_uses_independent_keys():
    ws = siren_init_batch(jnp.stack([jax.random.key(0)] * 3), SPEC)
    out = jax.jit(lambda k, w: apply_to_batch(translate, k, w))(jax.random.key(1), ws)
    assert not np.allclose(out.biases[0][0], out.biases[0][1])


def test_pipeline_by_name_and_combination():
    batch = siren_init_batch(jax.random.split(jax.random.key(15), 6), SPEC)
    labels = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    pipe = build_pipeline("translate,gaussian_noise:0.5,mixup_aligned")
    assert [s.prob for s in pipe.steps] == [1.0, 0.5, 1.0]
    assert [s.pairs for s in pipe.steps] == [False, False, True]
    assert len(build_pipeline("combination").steps) == len(combination().steps) == 4
    never = build_pipeline("siren_negation:0,mixup:0")
    ws0, y0 = jax.jit(never)(jax.random.key(4), batch, labels)
    for x, ref in zip(jax.tree.leaves(ws0), jax.tree.leaves(batch)):
        np.testing.assert_array_equal(x, ref)
    np.testing.assert_array_equal(y0, labels)
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_pipeline("translate,flip")


@pytest.mark.slow
def test_combination_pipeline_jits_on_a_batch():
    batch = siren_init_batch(jax.random.split(jax.random.key(15), 6), SPEC)
    labels = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    ws, y = jax.jit(combination())(jax.random.key(3), batch, labels)
    assert jax.tree.map(jnp.shape, ws) == jax.tree.map(jnp.shape, batch)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    "name,apply,other",
    [("relu_scaling", render, "sine"), ("siren_negation", relu_apply, "relu"), ("siren_bias", relu_apply, "relu")],
)
def test_activation_symmetries_change_the_other_activation_and_are_refused_for_it(name, apply, other):
    flat = jax.random.normal(jax.random.key(9), (SPEC.num_params,))
    ws, coords = unflatten_weights(flat, SPEC), image_coords(8, 8)
    out = jax.jit(AUGMENTATIONS[name])(jax.random.key(3), ws)
    assert float(jnp.max(jnp.abs(apply(out, coords) - apply(ws, coords)))) > 1e-2
    with pytest.raises(
        ValueError,
        match=rf"{name} preserves the function only for .* INRs, but these INRs use "
        rf".* activations, where it changes the function",
    ):
        build_pipeline(f"translate,{name}", activation=other)


def test_activation_symmetries_build_for_their_activation_and_warn_when_it_is_unknown():
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[net(s) for s in range(4)])
    labels = jax.nn.one_hot(jnp.arange(4) % 2, 2)
    relu_pipe = build_pipeline("relu_scaling,mixup", activation="relu")
    ws, _ = jax.jit(relu_pipe)(jax.random.key(0), batch, labels)
    assert ws.weights[0].shape == batch.weights[0].shape
    assert len(build_pipeline("combination").steps) == 4  # SIRENs by default
    with pytest.raises(ValueError, match="siren_negation preserves the function only for sine"):
        build_pipeline("combination", activation="relu")
    with pytest.warns(
        UserWarning,
        match=r"relu_scaling preserves the function only for ReLU INRs; the INRs' "
        r"activation is unknown",
    ):
        build_pipeline("relu_scaling", activation=None)
    with pytest.raises(ValueError, match="unknown INR activation 'tanh'"):
        build_pipeline("translate", activation="tanh")
