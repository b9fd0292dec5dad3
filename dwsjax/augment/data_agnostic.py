"""Data-agnostic augmentations: noise and dropout-style masking of weights.

Applied leaf by leaf (every weight matrix and bias vector) with its own key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dwsjax.weights import WeightSpace


def _map_with_keys(fn, key: jax.Array, ws: WeightSpace) -> WeightSpace:
    """``fn(key_leaf, leaf)`` with an independent key per leaf."""
    leaves, treedef = jax.tree.flatten(ws)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [fn(k, leaf) for k, leaf in zip(keys, leaves)])


def gaussian_noise(key: jax.Array, ws: WeightSpace, scale: float = 0.32) -> WeightSpace:
    """Gaussian noise scaled to each leaf: ``W_i + eps``, ``eps ~ N(0, (scale * std(W_i))^2)``.

    Args:
        key: PRNG key.
        ws: One network (unbatched).
        scale: Noise std relative to the std of each weight matrix and bias vector.

    Returns:
        The noisy weight space.
    """
    return _map_with_keys(lambda k, w: w + scale * jnp.std(w) * jax.random.normal(k, w.shape, w.dtype), key, ws)


def masking(key: jax.Array, ws: WeightSpace, rate: float = 0.1) -> WeightSpace:
    """Dropout on the weights: zero each entry independently with probability ``rate``
    and scale the kept ones by ``1 / (1 - rate)`` (the augmentation code's ``F.dropout``).

    Args:
        key: PRNG key.
        ws: One network (unbatched).
        rate: Probability of zeroing each weight and bias entry.

    Returns:
        The masked weight space.
    """
    return _map_with_keys(
        lambda k, w: jnp.where(jax.random.bernoulli(k, rate, w.shape), 0.0, w / (1.0 - rate)).astype(w.dtype),
        key,
        ws,
    )


def quantile_masking(key: jax.Array, ws: WeightSpace, max_quantile: float = 0.1) -> WeightSpace:
    """Zero the entries whose magnitude is below the ``q``-quantile of the magnitudes of
    all weights and biases of the network together, ``q ~ U(0, max_quantile)`` drawn
    once per network (as the augmentation code's ``QuantileAugmentation``).

    Args:
        key: PRNG key.
        ws: One network (unbatched).
        max_quantile: Largest quantile ``q``.

    Returns:
        The masked weight space.
    """
    q = jax.random.uniform(key, minval=0.0, maxval=max_quantile)
    threshold = jnp.quantile(jnp.concatenate([jnp.abs(w).ravel() for w in jax.tree.leaves(ws)]), q)
    return jax.tree.map(lambda w: jnp.where(jnp.abs(w) < threshold, 0.0, w).astype(w.dtype), ws)
