import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from dwsjax import image_coords, mlp_spec, siren_apply, siren_init, siren_init_batch
from dwsjax.assignment import assignment_value, linear_assignment
from dwsjax.augment import random_perms
from dwsjax.matching import (
    alignment_objective,
    mlp_permutation_spec,
    permute_neurons,
    weight_matching,
    weight_matching_scipy,
)

SPEC = mlp_spec(2, 8, 6, 1)
match = jax.jit(weight_matching, static_argnames=("sign_aware",))
match_pairs = jax.jit(jax.vmap(weight_matching, in_axes=(0, 0, None, None, None, None)), static_argnums=(2, 3, 4, 5))


def pair(seed, spec=SPEC):
    ka, kb = jax.random.split(jax.random.key(seed))
    return siren_init(ka, spec), siren_init(kb, spec)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 32])
@pytest.mark.parametrize("maximize", [False, True])
def test_assignment_matches_scipy(n, maximize):
    rng = np.random.default_rng(n)
    solve = jax.jit(lambda c: linear_assignment(c, maximize=maximize))
    for _ in range(10):
        cost = rng.normal(size=(n, n)).astype(np.float32)
        col = np.asarray(solve(cost))
        assert sorted(col) == list(range(n))
        rows, ref = linear_sum_assignment(cost, maximize=maximize)
        np.testing.assert_allclose(cost[rows, col].sum(), cost[rows, ref].sum(), rtol=1e-5, atol=1e-5)


def test_assignment_integer_ties_and_vmap():
    rng = np.random.default_rng(0)
    costs = rng.integers(0, 4, size=(16, 12, 12)).astype(np.float32)
    cols = jax.jit(jax.vmap(linear_assignment))(jnp.asarray(costs))
    ours = np.asarray(assignment_value(jnp.asarray(costs), cols))
    ref = [c[linear_sum_assignment(c)].sum() for c in costs]
    np.testing.assert_allclose(ours, ref)


def test_assignment_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        linear_assignment(jnp.zeros((3, 4)))


def test_permutation_spec_and_signed_permutation_preserve_siren():
    ws, _ = pair(0)
    pspec = mlp_permutation_spec(SPEC)
    assert pspec.sizes == (8, 6)
    assert pspec.weight_axes == ((None, 0), (0, 1), (1, None))
    perms = random_perms(jax.random.key(1), ws)
    signs = tuple(jnp.where(jax.random.bernoulli(jax.random.key(2), 0.5, (n,)), -1.0, 1.0) for n in pspec.sizes)
    out = jax.jit(permute_neurons, static_argnums=1)(ws, pspec, perms, signs)
    render = jax.jit(siren_apply)
    coords = image_coords(8, 8)
    np.testing.assert_allclose(render(out, coords), render(ws, coords), atol=1e-5)


@pytest.mark.parametrize("sign_aware", [False, True])
def test_weight_matching_recovers_applied_permutation(sign_aware):
    ws, _ = pair(3)
    pspec = mlp_permutation_spec(SPEC)
    perms = random_perms(jax.random.key(4), ws)
    signs = None
    if sign_aware:
        signs = tuple(jnp.where(jax.random.bernoulli(jax.random.key(5), 0.5, (n,)), -1.0, 1.0) for n in pspec.sizes)
    copy = permute_neurons(ws, pspec, perms, signs)
    result = match(ws, copy, sign_aware=sign_aware)
    for p, found in zip(perms, result.perms):
        np.testing.assert_array_equal(found, np.argsort(np.asarray(p)))
    np.testing.assert_allclose(result.objective, alignment_objective(ws, ws), rtol=1e-5)
    aligned = permute_neurons(copy, pspec, result.perms, result.signs)
    for x, y in zip(jax.tree.leaves(aligned), jax.tree.leaves(ws)):
        np.testing.assert_allclose(x, y, atol=1e-6)


@pytest.mark.parametrize("solver", ["jax", "scipy"])
def test_weight_matching_never_below_identity_and_matches_scipy_under_vmap(solver):
    ws = siren_init_batch(jax.random.split(jax.random.key(7), 16), SPEC)
    a = jax.tree.map(lambda x: x[:8], ws)
    b = jax.tree.map(lambda x: x[8:], ws)
    for sign_aware in (False, True):
        result = match_pairs(a, b, 10, sign_aware, True, solver)
        identity = jax.vmap(alignment_objective)(a, b)
        assert np.all(np.asarray(result.objective) >= np.asarray(identity) - 1e-5)
        a_np, b_np = jax.tree.map(np.asarray, a), jax.tree.map(np.asarray, b)
        ref = [
            weight_matching_scipy(
                jax.tree.map(lambda x: x[i], a_np), jax.tree.map(lambda x: x[i], b_np), sign_aware=sign_aware
            ).objective
            for i in range(8)
        ]
        np.testing.assert_allclose(result.objective, ref, rtol=1e-4)


def test_sign_aware_objective_at_least_plain_and_aligned_function_preserved():
    a, b = pair(9)
    plain = match(a, b, sign_aware=False)
    signed = match(a, b, sign_aware=True)
    assert float(signed.objective) >= float(plain.objective) - 1e-5
    coords = image_coords(8, 8)
    aligned = permute_neurons(b, mlp_permutation_spec(SPEC), signed.perms, signed.signs)
    render = jax.jit(siren_apply)
    np.testing.assert_allclose(render(aligned, coords), render(b, coords), atol=1e-5)


def test_weight_matching_rejects_different_architectures():
    a, _ = pair(0)
    b, _ = pair(0, mlp_spec(2, 8, 5, 1))
    with pytest.raises(ValueError, match="one architecture"):
        weight_matching(a, b)


def test_unknown_solver_is_refused():
    a, b = pair(0)
    with pytest.raises(ValueError, match="unknown assignment solver 'lapjv'; use 'auto', 'jax' or 'scipy'"):
        weight_matching(a, b, solver="lapjv")
