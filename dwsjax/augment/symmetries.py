"""Activation-symmetry augmentations: function-preserving rescalings of hidden neurons.

- SIREN negation: ``sin`` is odd, so negating a neuron's incoming weights, bias
  and outgoing weights keeps the function.
- SIREN bias: ``sin(w0 (z + k pi / w0)) = (-1)^k sin(w0 z)``, so shifting a bias
  by ``k pi / w0`` and multiplying the outgoing weights by ``(-1)^k`` keeps it.
- ReLU scaling: ``relu(c z) = c relu(z)`` for ``c > 0``: ``W_i -> W_i C``,
  ``b_i -> C b_i``, ``W_{i+1} -> C^-1 W_{i+1}`` (weights stored ``(d_in, d_out)``).

Each preserves the function only for its activation: the SIREN ones change a
ReLU network, ReLU scaling changes a SIREN (``sin(c z) != c sin(z)``). The
functions cannot tell; :func:`dwsjax.augment.build_pipeline` refuses a mismatch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dwsjax.matching import mlp_permutation_spec, scale_neurons
from dwsjax.siren import SIREN_W0
from dwsjax.weights import WeightSpace, spec_of


def _hidden_keys(key: jax.Array, ws: WeightSpace):
    return zip(jax.random.split(key, len(ws.weights) - 1), spec_of(ws).hidden_widths)


def siren_negation(key: jax.Array, ws: WeightSpace, prob: float = 0.5) -> WeightSpace:
    """SIREN negation: negate each hidden neuron independently with probability ``prob`` (SIRENs only).

    ``sin`` is odd, so multiplying a neuron's incoming weights, bias and outgoing
    weights by ``-1`` keeps the function (Shamsian et al., Sec. 4).

    Args:
        key: PRNG key.
        ws: One SIREN (unbatched).
        prob: Probability of negating each hidden neuron.

    Returns:
        The weight space of the same function.
    """
    signs = tuple(
        jnp.where(jax.random.bernoulli(k, prob, (n,)), -1.0, 1.0).astype(ws.weights[0].dtype)
        for k, n in _hidden_keys(key, ws)
    )
    return scale_neurons(ws, mlp_permutation_spec(spec_of(ws)), signs, signs)


def siren_shift_biases(ws: WeightSpace, shifts: tuple, w0: float = SIREN_W0) -> WeightSpace:
    """``b_k -> b_k + shifts[k] pi / w0`` (integer shifts per hidden neuron) and the
    neuron's outgoing weights times ``(-1)^shifts[k]``."""
    dtype = ws.weights[0].dtype
    hidden = len(shifts)
    biases = tuple(
        b + (jnp.asarray(shifts[i]) * (jnp.pi / w0)).astype(dtype) if i < hidden else b for i, b in enumerate(ws.biases)
    )
    ones = tuple(jnp.ones(s.shape, dtype) for s in shifts)
    parity = tuple((1 - 2 * (jnp.asarray(s) % 2)).astype(dtype) for s in shifts)
    return scale_neurons(ws._replace(biases=biases), mlp_permutation_spec(spec_of(ws)), ones, parity)


def siren_bias(key: jax.Array, ws: WeightSpace, max_shift: int = 4, w0: float = SIREN_W0) -> WeightSpace:
    """SIREN bias: ``b -> b + k pi / w0`` and outgoing weights times ``(-1)^k`` per hidden neuron (SIRENs only).

    ``sin(w0 (z + k pi / w0)) = (-1)^k sin(w0 z)`` keeps the function, with
    ``k ~ U{-max_shift, ..., max_shift}`` drawn per hidden neuron. ``max_shift = 4``
    is the augmentation paper's code (``SirenBiasAugmentation(k_max=4)``, which draws
    from ``{-4, ..., 3}``: torch's ``randint`` excludes its upper bound; the range here is symmetric).

    Args:
        key: PRNG key.
        ws: One SIREN (unbatched).
        max_shift: Largest ``|k|``.
        w0: The SIREN's frequency factor.

    Returns:
        The weight space of the same function.
    """
    shifts = tuple(jax.random.randint(k, (n,), -max_shift, max_shift + 1) for k, n in _hidden_keys(key, ws))
    return siren_shift_biases(ws, shifts, w0)


def relu_scaling(key: jax.Array, ws: WeightSpace, low: float = 0.5, high: float = 2.0) -> WeightSpace:
    """ReLU scaling: ``W_i -> W_i C``, ``b_i -> C b_i``, ``W_{i+1} -> C^-1 W_{i+1}`` (ReLU networks only).

    ``relu(c z) = c relu(z)`` for ``c > 0`` keeps the function, with a diagonal
    ``C`` of ``c ~ U(low, high)`` per hidden neuron.

    Args:
        key: PRNG key.
        ws: One ReLU MLP (unbatched).
        low: Smallest scale.
        high: Largest scale.

    Returns:
        The weight space of the same function.
    """
    scales = tuple(jax.random.uniform(k, (n,), ws.weights[0].dtype, low, high) for k, n in _hidden_keys(key, ws))
    return scale_neurons(ws, mlp_permutation_spec(spec_of(ws)), scales, tuple(1.0 / c for c in scales))
