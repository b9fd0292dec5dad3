"""Probe features (dwsjax.models.probes): right activations, exact invariance on fitted INRs, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsjax.models import build_model
from dwsjax.models.probes import ProbeConfig, neuron_activations
from dwsjax.siren import siren_apply
from dwsjax.weights import mlp_spec, normalize, weight_stats
from tests.test_models import SMALL, permute_hidden, random_perms

SPEC = mlp_spec(3, 6, 5, 1)


@pytest.fixture(scope="module")
def fitted():
    """Real SDF INRs: three synthetic 3D shapes fitted briefly."""
    from dwsjax.data import load_targets
    from dwsjax.fit import FitConfig, fit_sirens, inr_keys

    t = load_targets("synthetic3d", "train", limit=3, n_points=256)
    coords = jnp.asarray(t.coords)
    return fit_sirens(
        inr_keys(0, t.object_ids, np.zeros(3, int)), coords, jnp.asarray(t.values), FitConfig(SPEC, steps=30)
    ).weights


def test_last_activations_are_the_inr_output(fitted):
    x = jax.random.uniform(jax.random.key(0), (16, 3), minval=-1, maxval=1)
    acts = neuron_activations(fitted, x)
    assert [a.shape for a in acts] == [(3, 16, d) for d in SPEC.widths]
    np.testing.assert_allclose(acts[-1], siren_apply(fitted, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(acts[0][1], x)


def test_activations_move_with_their_neurons(fitted):
    x = jax.random.uniform(jax.random.key(1), (16, 3), minval=-1, maxval=1)
    perms = random_perms(2, SPEC)
    permuted = neuron_activations(permute_hidden(fitted, perms), x)
    for a, b, p in zip(neuron_activations(fitted, x)[1:-1], permuted[1:-1], perms):
        np.testing.assert_allclose(b, np.take(np.asarray(a), p, axis=2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "learnable"), [("dws", True), ("dws", False), ("gnn", True)])
def test_probe_models_are_invariant_on_fitted_inrs(fitted, name, learnable):
    ws = normalize(fitted, weight_stats(fitted))
    model = build_model(name, SPEC, 5, probe=ProbeConfig(12, learnable), **SMALL[name])
    params = jax.jit(model.init)(jax.random.key(3), ws, raw=fitted)
    apply = jax.jit(model.apply)
    logits = apply(params, ws, raw=fitted)
    assert np.abs(np.asarray(logits)).max() > 1e-3
    for seed in range(3):
        perms = random_perms(20 + seed, SPEC)
        out = apply(params, permute_hidden(ws, perms), raw=permute_hidden(fitted, perms))
        np.testing.assert_allclose(out, logits, rtol=1e-4, atol=1e-4)


def test_learned_probe_inputs_are_parameters_fixed_ones_are_not(fitted):
    ws = normalize(fitted, weight_stats(fitted))
    count = {}
    for learnable in (False, True):
        model = build_model("dws", SPEC, 5, probe=ProbeConfig(12, learnable), **SMALL["dws"])
        params = jax.eval_shape(model.init, jax.random.key(3), ws, raw=fitted)["params"]
        count[learnable] = sum(x.size for x in jax.tree.leaves(params))
    assert count[True] - count[False] == 12 * 3


def test_probe_model_without_raw_weights_says_how_to_call_it(fitted):
    model = build_model("dws", SPEC, 5, probe=ProbeConfig(4), **SMALL["dws"])
    with pytest.raises(ValueError, match="raw=ws"):
        jax.eval_shape(model.init, jax.random.key(0), fitted)


def test_probe_config_refuses_bad_values():
    with pytest.raises(ValueError, match="at least 1 probe point"):
        ProbeConfig(0).check()
    with pytest.raises(ValueError, match="activation"):
        ProbeConfig(4, activation="tanh").check()
