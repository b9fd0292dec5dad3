"""Weight-space MixUp (Shamsian et al., Eqs. 3-5) and its Table 5 ablations.

Every variant maps ``(key, ws_a, y_a, ws_b, y_b) -> (ws, y)`` for ONE pair of
networks of one architecture with one-hot or soft labels ``y`` ``(K,)``:
``ws = lam ws_a + (1 - lam) T(ws_b)``, ``y = lam y_a + (1 - lam) y_b`` where
``T`` is the identity (Eq. 3), a random permutation (Eq. 4) or the weight-matching
alignment to ``ws_a`` (Eq. 5). ``lam ~ Beta(alpha, alpha)`` unless ``lam`` is given.
:func:`mixup_prealigned` is Eq. 5 for INRs aligned beforehand to one template
(:mod:`dwsjax.templates`): plain interpolation, then a random permutation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dwsjax.augment.permutation import permutation
from dwsjax.matching import align, check_same_spec
from dwsjax.weights import WeightSpace


def sample_lambda(key: jax.Array, alpha: float = 1.0, lam: float | None = None) -> jax.Array:
    """``lam ~ Beta(alpha, alpha)`` (alpha = 1: uniform), or the fixed ``lam``."""
    return jnp.asarray(lam) if lam is not None else jax.random.beta(key, alpha, alpha)


def interpolate(a, b, lam: jax.Array):
    """``lam a + (1 - lam) b`` over matching pytrees (weights or labels)."""
    return jax.tree.map(lambda x, y: (lam * x + (1 - lam) * y).astype(x.dtype), a, b)


def _check_pair(ws_a: WeightSpace, y_a: jax.Array, ws_b: WeightSpace, y_b: jax.Array) -> None:
    check_same_spec(ws_a, ws_b, "MixUp")
    if jnp.shape(y_a) != jnp.shape(y_b):
        raise ValueError(f"MixUp needs labels of one shape, got {jnp.shape(y_a)} and {jnp.shape(y_b)}")


def _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, transform_b, mix_weights=True, mix_labels=True):
    _check_pair(ws_a, y_a, ws_b, y_b)
    key_lam, key_t = jax.random.split(key)
    lam = sample_lambda(key_lam, alpha, lam)
    ws = interpolate(ws_a, transform_b(key_t, ws_b), lam) if mix_weights else ws_a
    return ws, interpolate(y_a, y_b, lam) if mix_labels else y_a


def _identity(key, ws):
    return ws


def mixup(key, ws_a, y_a, ws_b, y_b, alpha: float = 1.0, lam: float | None = None):
    """Direct MixUp of the raw weights (Eq. 3): ``lam ws_a + (1 - lam) ws_b``, ``lam y_a + (1 - lam) y_b``.

    Args:
        key: PRNG key.
        ws_a: First network (unbatched).
        y_a: Its one-hot or soft label ``(K,)``.
        ws_b: Second network, of ``ws_a``'s architecture.
        y_b: Its label ``(K,)``.
        alpha: ``lam ~ Beta(alpha, alpha)``.
        lam: Fixed mixing weight instead of a draw.

    Returns:
        ``(ws, y)``: the mixed weight space and the mixed soft label ``(K,)``.

    Raises:
        ValueError: If the networks' architectures or the labels' shapes differ.
    """
    return _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, _identity)


def mixup_permuted(key, ws_a, y_a, ws_b, y_b, alpha: float = 1.0, lam: float | None = None):
    """MixUp after a random hidden-neuron permutation ``P`` of ``ws_b`` (Eq. 4): ``lam ws_a + (1 - lam) P(ws_b)``.

    Args:
        key: PRNG key.
        ws_a: First network (unbatched).
        y_a: Its one-hot or soft label ``(K,)``.
        ws_b: Second network, of ``ws_a``'s architecture.
        y_b: Its label ``(K,)``.
        alpha: ``lam ~ Beta(alpha, alpha)``.
        lam: Fixed mixing weight instead of a draw.

    Returns:
        ``(ws, y)``: the mixed weight space and the mixed soft label ``(K,)``.

    Raises:
        ValueError: If the networks' architectures or the labels' shapes differ.
    """
    return _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, permutation)


def mixup_aligned(
    key,
    ws_a,
    y_a,
    ws_b,
    y_b,
    alpha: float = 1.0,
    lam: float | None = None,
    sign_aware: bool = False,
    max_sweeps: int = 10,
    solver: str = "auto",
):
    """MixUp after aligning ``ws_b`` to ``ws_a`` with weight matching (Eq. 5): ``lam ws_a + (1 - lam) pi(ws_b)``.

    ``pi`` maximises ``<ws_a, pi(ws_b)>`` over hidden-neuron permutations
    (:func:`dwsjax.matching.weight_matching`, Ainsworth et al. 2022).

    Args:
        key: PRNG key.
        ws_a: First network (unbatched).
        y_a: Its one-hot or soft label ``(K,)``.
        ws_b: Second network, of ``ws_a``'s architecture.
        y_b: Its label ``(K,)``.
        alpha: ``lam ~ Beta(alpha, alpha)``.
        lam: Fixed mixing weight instead of a draw.
        sign_aware: Also match SIREN neuron signs (beyond the paper).
        max_sweeps: Coordinate-descent sweeps of the matching.
        solver: Assignment solver (:func:`dwsjax.matching.resolve_solver`).

    Returns:
        ``(ws, y)``: the mixed weight space and the mixed soft label ``(K,)``.

    Raises:
        ValueError: If the networks' architectures or the labels' shapes differ.
    """

    def aligned(_, ws_b):
        return align(ws_a, ws_b, sign_aware=sign_aware, max_sweeps=max_sweeps, solver=solver)

    return _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, aligned)


def mixup_prealigned(key, ws_a, y_a, ws_b, y_b, alpha: float = 1.0, lam: float | None = None, permute: bool = True):
    """MixUp of two INRs already aligned to one template: ``P(lam ws_a + (1 - lam) ws_b)``.

    Eq. 5 of Shamsian et al. with the alignment done once per INR, to a template.
    Both must be template-aligned beforehand (:func:`dwsjax.template_store.template_aligned`;
    ``experiments.classify`` does it). ``P`` is a random hidden-neuron permutation
    (``permute=True``) so that the model still sees every neuron order, not only
    the template's; it preserves the mixed network's function.

    Args:
        key: PRNG key.
        ws_a: First network (unbatched).
        y_a: Its one-hot or soft label ``(K,)``.
        ws_b: Second network, of ``ws_a``'s architecture.
        y_b: Its label ``(K,)``.
        alpha: ``lam ~ Beta(alpha, alpha)``.
        lam: Fixed mixing weight instead of a draw.
        permute: Apply the random permutation ``P`` to the result.

    Returns:
        ``(ws, y)``: the mixed weight space and the mixed soft label ``(K,)``.

    Raises:
        ValueError: If the networks' architectures or the labels' shapes differ.
    """
    key_mix, key_perm = jax.random.split(key)
    ws, y = _mix(key_mix, ws_a, y_a, ws_b, y_b, alpha, lam, _identity)
    return (permutation(key_perm, ws) if permute else ws), y


def label_smoothing(key, ws_a, y_a, ws_b, y_b, alpha: float = 1.0, lam: float | None = None):
    """Table 5 ablation: MixUp's labels only; the weights stay ``ws_a``."""
    return _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, _identity, mix_weights=False)


def input_mixup(key, ws_a, y_a, ws_b, y_b, alpha: float = 1.0, lam: float | None = None):
    """Table 5 ablation: MixUp's weight averaging only; the label stays ``y_a``."""
    return _mix(key, ws_a, y_a, ws_b, y_b, alpha, lam, _identity, mix_labels=False)
