"""Neuron permutations as data, and weight matching (Ainsworth et al., 2022).

A :class:`PermutationSpec` says, for every leaf of a :class:`WeightSpace`, which
hidden layer's neuron permutation acts on each axis (Git Re-Basin's
"permutation spec"). All functions act on ONE unbatched weight space; use
``jax.vmap`` for batches of networks or of pairs.

A *signed* permutation of hidden layer ``k`` is ``(perm_k, sign_k)``: neuron
``i`` of the result is ``sign_k[i]`` times neuron ``perm_k[i]`` of the input
(incoming weights, bias and outgoing weights all multiplied by the sign). For
odd activations (sine) this preserves the function; plain permutations use
``sign = 1`` and preserve it for any activation (Eq. 2 of Shamsian et al.).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.assignment import linear_assignment
from dwsjax.weights import MLPSpec, WeightSpace, spec_of

Perms = tuple[jax.Array, ...]


class PermutationSpec(NamedTuple):
    """Which hidden-layer permutation acts on each axis of each leaf (``None``: none).

    ``weight_axes[i] = (rows, cols)`` for ``W_i`` ``(d_i, d_{i+1})``;
    ``bias_axes[i]`` for ``b_i``; ``sizes[k]`` is the width of permutation ``k``.
    """

    weight_axes: tuple[tuple[int | None, int | None], ...]
    bias_axes: tuple[int | None, ...]
    sizes: tuple[int, ...]


def mlp_permutation_spec(spec: MLPSpec) -> PermutationSpec:
    """Permutation ``k`` acts on hidden layer ``k + 1``: columns of ``W_k``, ``b_k``, rows of ``W_{k+1}``."""
    hidden = len(spec.hidden_widths)

    def perm(k: int) -> int | None:
        return k if 0 <= k < hidden else None

    layers = range(spec.num_layers)
    return PermutationSpec(
        weight_axes=tuple((perm(i - 1), perm(i)) for i in layers),
        bias_axes=tuple(perm(i) for i in layers),
        sizes=tuple(spec.hidden_widths),
    )


def _leaf_axes(pspec: PermutationSpec) -> WeightSpace:
    """The spec as a weight-space-shaped structure of per-axis tuples."""
    return WeightSpace(pspec.weight_axes, tuple((b,) for b in pspec.bias_axes))


def _map_leaves(fn, ws: WeightSpace, pspec: PermutationSpec) -> WeightSpace:
    """``fn(leaf, axes)`` for every leaf, with ``axes`` its per-axis permutation ids."""
    axes = _leaf_axes(pspec)
    return WeightSpace(
        tuple(fn(w, a) for w, a in zip(ws.weights, axes.weights)),
        tuple(fn(b, a) for b, a in zip(ws.biases, axes.biases)),
    )


def _along(vec: jax.Array, axis: int, ndim: int) -> jax.Array:
    return vec.reshape((-1,) + (1,) * (ndim - 1 - axis))


def identity_perms(pspec: PermutationSpec) -> Perms:
    return tuple(jnp.arange(n, dtype=jnp.int32) for n in pspec.sizes)


def unit_signs(pspec: PermutationSpec, dtype=jnp.float32) -> Perms:
    return tuple(jnp.ones((n,), dtype) for n in pspec.sizes)


def permute_neurons(
    ws: WeightSpace, pspec: PermutationSpec, perms: Perms, signs: Perms | None = None, xp=jnp
) -> WeightSpace:
    """Apply a signed permutation to every hidden layer (function-preserving, Eq. 2).

    ``xp=numpy`` runs it on host arrays (the scipy reference path).
    """

    def transform(leaf, axes):
        for axis, k in enumerate(axes):
            if k is not None:
                leaf = xp.take(leaf, perms[k], axis=axis)
                if signs is not None:
                    leaf = leaf * _along(signs[k], axis, leaf.ndim)
        return leaf

    return _map_leaves(transform, ws, pspec)


def scale_neurons(ws: WeightSpace, pspec: PermutationSpec, incoming: Perms, outgoing: Perms) -> WeightSpace:
    """Multiply hidden neuron ``j`` of layer ``k``'s incoming weights and bias by
    ``incoming[k][j]`` and its outgoing weights by ``outgoing[k][j]``."""

    def transform(leaf, axes):
        for axis, k in enumerate(axes):
            if k is not None:
                produces = axis == leaf.ndim - 1
                leaf = leaf * _along((incoming if produces else outgoing)[k], axis, leaf.ndim)
        return leaf

    return _map_leaves(transform, ws, pspec)


def alignment_objective(ws_a: WeightSpace, ws_b: WeightSpace, include_biases: bool = True, xp=jnp) -> jax.Array:
    """``sum_l <W_l^a, W_l^b>`` (+ ``<b_l^a, b_l^b>``): the weight-matching objective."""
    total = sum(xp.vdot(a, b) for a, b in zip(ws_a.weights, ws_b.weights))
    if include_biases:
        total = total + sum(xp.vdot(a, b) for a, b in zip(ws_a.biases, ws_b.biases))
    return total


def _similarity(
    ws_a: WeightSpace, ws_b: WeightSpace, pspec: PermutationSpec, k: int, include_biases: bool, xp
) -> jax.Array:
    """``S[i, j]`` = objective gained by placing neuron ``j`` of ``b`` at position ``i``
    of ``a`` in hidden layer ``k`` (``b`` already has the other layers' permutations)."""
    axes = _leaf_axes(pspec)
    pairs = list(zip(ws_a.weights, ws_b.weights, axes.weights))
    if include_biases:
        pairs += list(zip(ws_a.biases, ws_b.biases, axes.biases))
    n = pspec.sizes[k]
    sim = xp.zeros((n, n), ws_a.weights[0].dtype)
    for a, b, leaf_axes in pairs:
        if k in leaf_axes:
            axis = leaf_axes.index(k)
            sim = sim + xp.moveaxis(a, axis, 0).reshape(n, -1) @ xp.moveaxis(b, axis, 0).reshape(n, -1).T
    return sim


class Alignment(NamedTuple):
    perms: Perms  # perms[k][i]: neuron of b placed at position i of hidden layer k
    signs: Perms  # +-1 per position (all ones unless sign-aware)
    objective: jax.Array  # alignment_objective(a, aligned b)
    sweeps: jax.Array  # coordinate-descent sweeps run


def _update_layer(ws_a, ws_b, pspec, perms, signs, k, sign_aware, include_biases, solve, xp):
    """One coordinate-descent step: the best signed permutation of layer ``k``, others fixed.

    Flipping neuron ``i`` negates its whole row of the similarity (incoming and
    outgoing weights alike), so the objective is ``sum_i s_i sim[i, perm_i]``:
    sign-aware matching assigns on ``|sim|`` and takes ``s_i = sign(sim[i, perm_i])``.
    Keeps the old permutation unless the new one is strictly better.
    """
    others = list(perms)
    others[k] = xp.arange(pspec.sizes[k])
    other_signs = list(signs)
    other_signs[k] = xp.ones_like(signs[k])
    b_rest = permute_neurons(ws_b, pspec, others, other_signs, xp)
    sim = _similarity(ws_a, b_rest, pspec, k, include_biases, xp)
    perm = solve(xp.abs(sim) if sign_aware else sim)
    rows = xp.arange(pspec.sizes[k])
    picked = sim[rows, perm]
    sign = xp.where(picked < 0, -1.0, 1.0).astype(sim.dtype) if sign_aware else xp.ones_like(picked)
    old = xp.sum(sim[rows, perms[k]] * signs[k])
    improved = xp.sum(picked * sign) > old + 1e-6 * xp.maximum(xp.abs(old), 1.0)
    return xp.where(improved, perm, perms[k]), xp.where(improved, sign, signs[k]), improved


def _jax_solve(sim: jax.Array, active: jax.Array) -> jax.Array:
    """The jittable Hungarian; ``active`` is unused (a vmapped ``while_loop`` runs every pair's body)."""
    return linear_assignment(sim, maximize=True)


def _scipy_solve(sim: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(sim, maximize=True)[1]


def _scipy_solve_many(sims: np.ndarray, active: np.ndarray) -> np.ndarray:
    """``_scipy_solve`` of every ``(n, n)`` matrix of ``sims`` ``(..., n, n)`` whose ``active``
    flag (broadcast to ``(...)``) is set -> ``(..., n)`` int32; the identity for the others."""
    sims = np.asarray(sims)
    flat = sims.reshape((-1,) + sims.shape[-2:])
    run = np.broadcast_to(np.asarray(active), sims.shape[:-2]).reshape(-1)
    identity = np.arange(sims.shape[-1])
    cols = np.stack([_scipy_solve(s) if r else identity for s, r in zip(flat, run)]) if len(flat) else flat[..., 0]
    return cols.astype(np.int32).reshape(sims.shape[:-1])


def _host_scipy_solve(sim: jax.Array, active: jax.Array) -> jax.Array:
    """``scipy.optimize.linear_sum_assignment`` from inside a jitted program (``jax.pure_callback``).

    Under ``vmap`` (pairs, batched ``while_loop`` s) the callback receives the whole
    batch ``(..., n, n)`` and loops over it on the host, one call per layer update,
    skipping the pairs whose matching has already converged (``active`` false:
    their result is discarded by the batched ``while_loop``).
    """
    shape = jax.ShapeDtypeStruct(sim.shape[:-1], jnp.int32)
    return jax.pure_callback(_scipy_solve_many, shape, sim, active, vmap_method="expand_dims")


SOLVERS = {"jax": _jax_solve, "scipy": _host_scipy_solve}


def resolve_solver(solver: str = "auto") -> str:
    """``"jax"`` (the jittable Hungarian of :mod:`dwsjax.assignment`, for GPU/TPU) or ``"scipy"``
    (a host callback, the faster one on CPU, see ``experiments.bench_augment``);
    ``"auto"`` picks scipy on the CPU backend and JAX elsewhere."""
    if solver == "auto":
        return "scipy" if jax.default_backend() == "cpu" else "jax"
    if solver not in SOLVERS:
        raise ValueError(f"unknown assignment solver {solver!r}; use 'auto', 'jax' or 'scipy'")
    return solver


def check_same_spec(ws_a: WeightSpace, ws_b: WeightSpace, what: str) -> MLPSpec:
    spec_a, spec_b = spec_of(ws_a), spec_of(ws_b)
    if spec_a != spec_b:
        raise ValueError(f"{what} needs two networks of one architecture, got {spec_a} and {spec_b}")
    return spec_a


def weight_matching(
    ws_a: WeightSpace,
    ws_b: WeightSpace,
    max_sweeps: int = 10,
    sign_aware: bool = False,
    include_biases: bool = True,
    solver: str = "auto",
) -> Alignment:
    """Align ``ws_b`` to ``ws_a``: coordinate descent over hidden-layer (signed) permutations.

    Maximises ``sum_l <W_l^a, S_l P_l W_l^b P_{l-1}^T S_{l-1}>`` (+ biases), each
    step an exact linear assignment (:func:`dwsjax.assignment.linear_assignment`);
    stops after a sweep that changes nothing or after ``max_sweeps``. Starts at
    the identity and only accepts improvements, so the objective is never below
    the identity's. ``sign_aware=True`` also flips neurons (SIRENs: sine is odd).
    Jittable on one pair: jit it and vmap over pairs. ``solver`` picks the
    assignment solver (:func:`resolve_solver`; results agree up to ties).

    Args:
        ws_a: The reference network (unbatched).
        ws_b: The network to align, of ``ws_a``'s architecture.
        max_sweeps: Largest number of coordinate-descent sweeps over the hidden layers.
        sign_aware: Also flip neurons' signs (signed permutations; for odd activations such as sine).
        include_biases: Include the biases in the objective.
        solver: ``"auto"``, ``"jax"`` or ``"scipy"`` (:func:`resolve_solver`).

    Returns:
        :class:`Alignment`: ``perms[k]`` and ``signs[k]`` ``(d_k,)`` per hidden layer (neuron ``i``
        of the aligned network is ``signs[k][i]`` times neuron ``perms[k][i]`` of ``ws_b``), the
        ``objective`` ``<ws_a, aligned ws_b>`` and the ``sweeps`` run. :func:`align` applies it.

    Raises:
        ValueError: If the architectures differ or ``solver`` is unknown.
    """
    pspec = mlp_permutation_spec(check_same_spec(ws_a, ws_b, "weight matching"))
    solve = SOLVERS[resolve_solver(solver)]

    def running(state):
        return state[2] & (state[3] < max_sweeps)

    def sweep(state):
        perms, signs, _, count = state
        changed = jnp.zeros((), bool)
        active = running(state)  # false only for converged pairs in a vmapped batch
        for k in range(len(pspec.sizes)):
            perm, sign, improved = _update_layer(
                ws_a, ws_b, pspec, perms, signs, k, sign_aware, include_biases, lambda sim: solve(sim, active), jnp
            )
            perms = perms[:k] + (perm,) + perms[k + 1 :]
            signs = signs[:k] + (sign,) + signs[k + 1 :]
            changed = changed | improved
        return perms, signs, changed, count + 1

    start = (identity_perms(pspec), unit_signs(pspec, ws_a.weights[0].dtype), jnp.ones((), bool), 0)
    perms, signs, _, sweeps = jax.lax.while_loop(running, sweep, start)
    aligned = permute_neurons(ws_b, pspec, perms, signs)
    return Alignment(perms, signs, alignment_objective(ws_a, aligned, include_biases), sweeps)


def weight_matching_scipy(
    ws_a: WeightSpace,
    ws_b: WeightSpace,
    max_sweeps: int = 10,
    sign_aware: bool = False,
    include_biases: bool = True,
) -> Alignment:
    """Host reference for ONE pair: the same coordinate descent in NumPy with
    ``scipy.optimize.linear_sum_assignment`` (tests and benchmarks)."""
    pspec = mlp_permutation_spec(check_same_spec(ws_a, ws_b, "weight matching"))
    a, b = jax.tree.map(np.asarray, ws_a), jax.tree.map(np.asarray, ws_b)
    perms = [np.arange(n) for n in pspec.sizes]
    signs = [np.ones(n, a.weights[0].dtype) for n in pspec.sizes]
    sweeps = 0
    changed = True
    while changed and sweeps < max_sweeps:
        changed, sweeps = False, sweeps + 1
        for k in range(len(pspec.sizes)):
            perms[k], signs[k], improved = _update_layer(
                a, b, pspec, perms, signs, k, sign_aware, include_biases, _scipy_solve, np
            )
            changed = changed or bool(improved)
    aligned = permute_neurons(b, pspec, perms, signs, np)
    objective = alignment_objective(a, aligned, include_biases, np)
    return Alignment(tuple(perms), tuple(signs), objective, sweeps)


def align(ws_a: WeightSpace, ws_b: WeightSpace, **kwargs) -> WeightSpace:
    """``ws_b`` aligned to ``ws_a``: :func:`weight_matching`'s (signed) permutations applied.

    Args:
        ws_a: The reference network (unbatched).
        ws_b: The network to align, of ``ws_a``'s architecture.
        **kwargs: Options of :func:`weight_matching` (``max_sweeps``, ``sign_aware``, ``solver``, ...).

    Returns:
        The weight space of the same function as ``ws_b``, its hidden neurons reordered
        (and, if ``sign_aware``, negated) to match ``ws_a``'s.

    Raises:
        ValueError: If the architectures differ.
    """
    result = weight_matching(ws_a, ws_b, **kwargs)
    return permute_neurons(ws_b, mlp_permutation_spec(spec_of(ws_a)), result.perms, result.signs)
