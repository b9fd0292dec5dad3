import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dwsjax as d
from dwsjax.data import load_targets
from dwsjax.fit import FitConfig, fit_sirens, inr_keys, siren_mse_and_grad
from dwsjax.sine import fast_sin_cos

GRAY = d.mlp_spec(2, 32, 32, 1)


def test_fast_sine_matches_numpy():
    u = np.linspace(-1000, 1000, 2_000_001, dtype=np.float32)
    exact = u.astype(np.float64)
    sin, cos = fast_sin_cos(jnp.asarray(u))
    assert np.abs(np.asarray(sin) - np.sin(exact)).max() < 1e-6 + 1e-7 * 1000
    assert np.abs(np.asarray(cos) - np.cos(exact)).max() < 1e-6 + 1e-7 * 1000


@pytest.mark.parametrize("widths,per_inr_coords", [((2, 32, 32, 1), False), ((3, 8, 8, 8, 8, 1), True)])
def test_hand_written_gradient_equals_autodiff(widths, per_inr_coords):
    spec = d.mlp_spec(*widths)
    ws = d.siren_init_batch(jax.random.split(jax.random.key(0), 3), spec)
    p = 50
    coords_shape = (3, p, widths[0]) if per_inr_coords else (p, widths[0])
    coords = jax.random.uniform(jax.random.key(1), coords_shape, minval=-1, maxval=1)
    targets = jax.random.normal(jax.random.key(2), (3, p, 1))
    mse, grads = siren_mse_and_grad(ws, coords, targets)

    def reference(w):
        per_inr = jnp.mean((d.siren_apply(w, coords) - targets) ** 2, axis=(-2, -1))
        return per_inr.sum(), per_inr

    (_, ref_mse), ref_grads = jax.value_and_grad(reference, has_aux=True)(ws)
    np.testing.assert_allclose(mse, ref_mse, rtol=1e-5)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-5 * float(jnp.abs(r).max()))


@pytest.fixture(scope="module")
def fmnist_fit():
    """8 real images (view 0) plus a second view of image 0, fitted for 300 steps (Sitzmann init: fits fast)."""
    if not os.environ.get("DWSJAX_DATA_DIR"):
        pytest.skip("set DWSJAX_DATA_DIR to a directory with fashion-mnist/ to run real-data tests")
    t = load_targets("fmnist", "train", limit=8)
    rows = np.r_[np.arange(8), 0]
    views = np.r_[np.zeros(8, int), 1]
    config = FitConfig(GRAY, steps=300, learning_rate=1e-3, init_scheme="sitzmann")
    keys = inr_keys(0, t.object_ids[rows], views)
    result = fit_sirens(keys, jnp.asarray(t.coords), jnp.asarray(t.values[rows]), config)
    return t, rows, result


def test_fitted_inrs_reach_psnr_on_real_images(fmnist_fit):
    t, rows, result = fmnist_fit
    psnr = d.psnr(d.siren_apply(result.weights, t.coords), t.values[rows], axes=(-2, -1))
    np.testing.assert_allclose(psnr, result.psnr, atol=0.05)
    assert float(psnr.min()) > 30.0, psnr
    assert np.all(np.asarray(result.steps) == 300)


def test_views_differ_in_weights_but_agree_in_output(fmnist_fit):
    t, _, result = fmnist_fit
    flat = np.asarray(d.flatten_weights(result.weights))
    assert np.linalg.norm(flat[0] - flat[8]) / np.linalg.norm(flat[0]) > 0.5
    out = np.asarray(d.siren_apply(result.weights, t.coords))
    assert float(d.psnr(out[0], out[8])) > 30.0


def test_early_stopping_freezes_inrs_at_target_psnr():
    t = load_targets("synthetic2d", "train", limit=4)
    config = FitConfig(GRAY, steps=400, learning_rate=1e-3, init_scheme="sitzmann", target_psnr=22.0)
    keys = inr_keys(0, t.object_ids, np.zeros(4, int))
    result = fit_sirens(keys, jnp.asarray(t.coords), jnp.asarray(t.values), config)
    assert np.all(np.asarray(result.psnr) >= 22.0)
    assert np.all(np.asarray(result.steps) < 400)


def reference_fit(key, coords, target, config: FitConfig):
    """One INR alone: ``jax.grad`` of ``siren_apply`` and optax's Adam, stopping at the target PSNR."""
    optimizer = optax.adam(config.learning_rate)
    ws = d.siren_init(key, config.spec, scheme=config.init_scheme)
    state = optimizer.init(ws)

    def loss(w):
        return jnp.mean((d.siren_apply(w, coords, output_offset=config.output_offset) - target) ** 2)

    for step in range(config.steps):
        if 10 * np.log10(1.0 / float(loss(ws))) >= config.target_psnr:
            return ws, step
        updates, state = optimizer.update(jax.grad(loss)(ws), state, ws)
        ws = optax.apply_updates(ws, updates)
    return ws, config.steps


def test_refilled_slots_give_the_inrs_of_fitting_each_alone():
    """Continuous batching (2 slots for 6 INRs that stop at different steps) changes no INR."""
    t = load_targets("synthetic2d", "train", limit=6)
    config = FitConfig(GRAY, steps=40, learning_rate=2e-3, output_offset=0.5, target_psnr=14.0, chunk_size=2)
    keys = inr_keys(0, t.object_ids, np.zeros(6, int))
    result = fit_sirens(keys, jnp.asarray(t.coords), jnp.asarray(t.values), config)
    steps = np.asarray(result.steps)
    assert len(set(steps.tolist())) > 2 and steps.min() < 40, steps
    for i in range(6):
        alone, alone_steps = reference_fit(keys[i], jnp.asarray(t.coords), jnp.asarray(t.values[i]), config)
        assert steps[i] == alone_steps
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(jax.tree.map(lambda x: x[i], result.weights))):
            np.testing.assert_allclose(b, a, atol=1e-6)


def test_output_offset_is_applied_in_fitting_and_rendering_alike():
    t = load_targets("synthetic2d", "train", limit=2)
    config = FitConfig(GRAY, steps=30, output_offset=0.5)
    keys = inr_keys(0, t.object_ids, np.zeros(2, int))
    result = fit_sirens(keys, jnp.asarray(t.coords), jnp.asarray(t.values), config)
    rendered = d.siren_apply(result.weights, t.coords, output_offset=0.5)
    np.testing.assert_allclose(d.psnr(rendered, t.values, axes=(-2, -1)), result.psnr, atol=1e-3)
    np.testing.assert_allclose(rendered - d.siren_apply(result.weights, t.coords), 0.5, atol=1e-6)
    image = d.render_image(result.weights, 28, 28, output_offset=0.5)
    np.testing.assert_allclose(image.reshape(rendered.shape), rendered, atol=1e-6)


def test_sharding_over_two_devices_gives_the_same_inrs(tmp_path):
    script = (
        "import jax, jax.numpy as jnp, numpy as np, dwsjax as d\n"
        "from dwsjax.fit import FitConfig, fit_sirens, inr_keys\n"
        "from dwsjax.data import load_targets\n"
        "t = load_targets('synthetic2d', 'train', limit=6)\n"
        "r = fit_sirens(inr_keys(0, t.object_ids, np.zeros(6, int)), jnp.asarray(t.coords), jnp.asarray(t.values),"
        " FitConfig(d.mlp_spec(2, 32, 32, 1), steps=50, chunk_size=2))\n"
        f"np.save(r'{tmp_path}/' + str(len(jax.devices())) + '.npy', np.asarray(d.flatten_weights(r.weights)))\n"
    )
    for count in (1, 2):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    np.testing.assert_allclose(np.load(tmp_path / "1.npy"), np.load(tmp_path / "2.npy"), rtol=1e-5, atol=1e-6)


def test_bad_fit_input_is_a_clear_error():
    config = FitConfig(GRAY, steps=1)
    keys = inr_keys(0, np.arange(2), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"targets must be \(N=2, P, 1\)"):
        fit_sirens(keys, d.image_coords(4, 4), jnp.zeros((2, 16, 3)), config)
    with pytest.raises(ValueError, match="coords must be"):
        fit_sirens(keys, jnp.zeros((16, 3)), jnp.zeros((2, 16, 1)), config)


def test_train_and_test_objects_of_one_index_start_from_different_weights():
    ids, views = np.arange(3), np.zeros(3, int)
    train = d.siren_init_batch(inr_keys(0, ids, views, "train"), GRAY)
    test = d.siren_init_batch(inr_keys(0, ids, views, "test"), GRAY)
    assert not np.allclose(train.weights[0], test.weights[0])
    with pytest.raises(ValueError, match="split must be one of"):
        inr_keys(0, ids, views, "val")


def test_shared_inits_start_view_v_of_every_object_in_every_split_from_one_init():
    ids, views = np.arange(3), np.array([0, 0, 1])
    train = d.siren_init_batch(inr_keys(0, ids, views, "train", init="shared"), GRAY)
    test = d.siren_init_batch(inr_keys(0, ids + 7, views, "test", init="shared"), GRAY)
    np.testing.assert_array_equal(train.weights[0], test.weights[0])
    np.testing.assert_array_equal(train.weights[0][0], train.weights[0][1])
    assert not np.allclose(train.weights[0][0], train.weights[0][2])
    with pytest.raises(ValueError, match="init must be one of"):
        inr_keys(0, ids, views, init="same")
