"""Permutation augmentation: a random neuron permutation of every hidden layer (Eq. 2)."""

from __future__ import annotations

import jax

from dwsjax.matching import mlp_permutation_spec, permute_neurons
from dwsjax.weights import WeightSpace, spec_of


def random_perms(key: jax.Array, ws: WeightSpace) -> tuple[jax.Array, ...]:
    """One uniformly random permutation per hidden layer."""
    widths = spec_of(ws).hidden_widths
    return tuple(jax.random.permutation(k, n) for k, n in zip(jax.random.split(key, len(widths)), widths))


def permutation(key: jax.Array, ws: WeightSpace) -> WeightSpace:
    """``W_i -> P_i W_i P_{i-1}^T``, ``b_i -> P_i b_i`` with random hidden ``P_i``."""
    return permute_neurons(ws, mlp_permutation_spec(spec_of(ws)), random_perms(key, ws))
