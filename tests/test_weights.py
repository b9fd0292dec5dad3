import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dwsjax as d
from dwsjax.weights import check_finite, check_weight_space, stats_from_arrays, stats_to_arrays


def test_flatten_round_trip_is_exact():
    spec = d.mlp_spec(3, 5, 4, 2)
    ws = d.siren_init_batch(jax.random.split(jax.random.key(0), (2, 3)), spec)
    flat = d.flatten_weights(ws)
    assert flat.shape == (2, 3, spec.num_params)
    back = d.unflatten_weights(flat, spec)
    for a, b in zip(jax.tree.leaves(ws), jax.tree.leaves(back)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(d.flatten_weights(back), flat)


def test_spec_mismatch_is_a_clear_error():
    spec = d.mlp_spec(2, 32, 32, 1)
    ws = d.siren_init(jax.random.key(0), d.mlp_spec(2, 16, 32, 1))
    with pytest.raises(ValueError, match="architecture mismatch at layer 0"):
        check_weight_space(ws, spec)
    with pytest.raises(ValueError, match="needs 1185 entries"):
        d.unflatten_weights(jnp.zeros(10), spec)


def test_normalisation_is_undone_exactly_enough():
    spec = d.mlp_spec(2, 8, 1)
    ws = d.siren_init_batch(jax.random.split(jax.random.key(1), 50), spec)
    for per in ("layer", "entry"):
        stats = d.weight_stats(ws, per=per)
        normed = d.normalize(ws, stats)
        flat = d.flatten_weights(normed)
        if per == "entry":
            np.testing.assert_allclose(flat.mean(0), 0, atol=1e-5)
        back = d.denormalize(normed, stats)
        for a, b in zip(jax.tree.leaves(ws), jax.tree.leaves(back)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        saved = stats_from_arrays(stats_to_arrays(stats), spec)
        for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(saved)):
            np.testing.assert_array_equal(a, b)


def test_nan_weights_are_reported():
    ws = d.siren_init(jax.random.key(0), d.mlp_spec(2, 4, 1))
    bad = ws._replace(biases=(ws.biases[0].at[1].set(jnp.nan),) + ws.biases[1:])
    with pytest.raises(ValueError, match="layer 0 has 1 NaN"):
        check_finite(bad)
