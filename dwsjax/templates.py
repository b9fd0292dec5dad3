"""Template alignment: align every INR of a set to one reference network, once.

Exact pairwise weight matching (:func:`dwsjax.matching.weight_matching`) costs
about as much per pair as a DWS training step per sample, so aligning every
MixUp pair in the step makes training several times slower. Instead, every INR
is aligned once to a *template* ``T``, a weight-matching barycentre of the set
(Ainsworth et al., 2022, "merging many models"):

    T_0     = ws_0                                   (the first INR)
    T_{r+1} = mean_i pi_i^r(ws_i),   pi_i^r = argmax_pi <T_r, pi(ws_i)>

over the first ``template_inrs`` INRs for ``rounds`` rounds, where ``pi`` runs
over (signed, for ``sign_aware``) hidden-neuron permutations. Every INR ``i``
is then stored as ``pi_i(ws_i)`` with ``pi_i = argmax_pi <T, pi(ws_i)>``: the
same function, in the template's neuron order. Two template-aligned INRs are
(approximately) aligned to each other, so their MixUp is plain interpolation
(:func:`dwsjax.augment.mixup_prealigned`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.matching import Alignment, mlp_permutation_spec, permute_neurons, weight_matching
from dwsjax.weights import WeightSpace, batch_size, finite_rows, spec_of


class TemplateConfig(NamedTuple):
    """What decides a template alignment (its identity).

    Attributes:
        rounds: Barycentre rounds ``T_{r+1} = mean_i pi_i^r(ws_i)`` (see :mod:`dwsjax.templates`).
        template_inrs: The template is the barycentre of the first ``template_inrs`` INRs.
        sign_aware: Signed permutations (SIRENs: sine is odd).
        max_sweeps: Coordinate-descent sweeps of every weight matching.
    """

    rounds: int = 3
    template_inrs: int = 1024
    sign_aware: bool = False
    max_sweeps: int = 10

    def check(self) -> TemplateConfig:
        """``self``, or a ``ValueError`` naming the first setting out of range."""
        for name, low in (("rounds", 0), ("template_inrs", 1), ("max_sweeps", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"template {name} must be >= {low}, got {getattr(self, name)}")
        return self


@functools.cache
def _matcher(sign_aware: bool, max_sweeps: int, solver: str):
    """Jitted ``(template, ws (B, ...)) -> (Alignment, aligned ws)`` for one setting."""

    def one(template, ws):
        result = weight_matching(template, ws, max_sweeps=max_sweeps, sign_aware=sign_aware, solver=solver)
        aligned = permute_neurons(ws, mlp_permutation_spec(spec_of(ws)), result.perms, result.signs)
        return result, aligned

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def _rows(ws: WeightSpace, index: np.ndarray) -> WeightSpace:
    return jax.tree.map(lambda x: x[index], ws)


def _where_rows(mask: np.ndarray, new, old):
    """Row ``i`` of ``new`` where ``mask[i]``, else of ``old`` (pytrees with batch ``(n,)``)."""
    return jax.tree.map(lambda a, b: np.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


def align_to(
    template: WeightSpace, ws: WeightSpace, config: TemplateConfig, solver: str = "auto", batch: int = 256
) -> tuple[Alignment, WeightSpace]:
    """Match every INR of ``ws`` (batch ``(n,)``) to ``template`` (unbatched), ``batch`` at a
    time: ``(alignment with leaves (n, ...), aligned ws)``. INRs with NaN/inf weights keep
    their order (identity permutation, unit signs) and their weights."""
    n = batch_size(ws)
    batch = min(batch, n)
    finite = finite_rows(ws)
    clean = _where_rows(finite, ws, jax.tree.map(np.zeros_like, ws))
    match = _matcher(config.sign_aware, config.max_sweeps, solver)
    results, aligned = [], []
    for start in range(0, n, batch):
        index = np.minimum(np.arange(start, start + batch), n - 1)  # pad the last chunk: one compilation
        result, chunk = match(template, _rows(clean, index))
        keep = slice(0, min(batch, n - start))
        results.append(jax.tree.map(lambda x: np.asarray(x)[keep], result))
        aligned.append(jax.tree.map(lambda x: np.asarray(x)[keep], chunk))
    result = jax.tree.map(lambda *xs: np.concatenate(xs), *results)
    aligned = jax.tree.map(lambda *xs: np.concatenate(xs), *aligned)
    aligned = _where_rows(finite, aligned, ws)
    return result, aligned


def barycentre_round(template: WeightSpace, ws: WeightSpace, config: TemplateConfig, solver: str = "auto"):
    """``mean_i pi_i(ws_i)`` over the finite INRs of ``ws``, every ``pi_i`` matching ``ws_i`` to
    ``template``: one barycentre round."""
    finite = finite_rows(ws)
    if not finite.any():
        raise ValueError("a template needs at least one INR with finite weights; refit the INRs")
    _, aligned = align_to(template, ws, config, solver)
    return jax.tree.map(lambda x: jnp.asarray(np.mean(x[finite], axis=0)), aligned)
