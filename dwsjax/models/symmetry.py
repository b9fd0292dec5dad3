"""Index structure of weight-space tensors under the hidden-neuron symmetry.

A weight space of spec ``(d_0, ..., d_L)`` is a list of *slots*: weights
``W_m`` indexed by neuron layers ``(m, m+1)`` and biases ``b_m`` indexed by
neuron layer ``m+1``. Neuron layers ``1 .. L-1`` are hidden and are permuted by
the group ``G = S_{d_1} x ... x S_{d_{L-1}}``; the input layer ``0`` and the
output layer ``L`` are not permuted (DWSNets, Navon et al. 2023, Sec. 4).

Inside the models a slot carries channels: ``(B, *dims, C)``. *Folding* moves
the non-permutable axes into the channel axis, giving ``(B, *hidden_dims, F)``
with ``F = C * prod(fixed dims)``. After folding, every linear ``G``-equivariant
map is a sum of "pool over some hidden axes -> channel-linear map -> broadcast",
because a non-permuted index behaves like a feature index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dwsjax.weights import MLPSpec, WeightSpace


class Slot(NamedTuple):
    """One weight or bias tensor: the neuron layers indexing its axes and their widths."""

    layers: tuple[int, ...]
    dims: tuple[int, ...]
    num_layers: int

    def is_hidden(self, layer: int) -> bool:
        return 0 < layer < self.num_layers

    @property
    def hidden_layers(self) -> tuple[int, ...]:
        """Permutable neuron layers, in axis order."""
        return tuple(k for k in self.layers if self.is_hidden(k))

    @property
    def hidden_dims(self) -> tuple[int, ...]:
        return tuple(d for k, d in zip(self.layers, self.dims) if self.is_hidden(k))

    @property
    def fixed_dims(self) -> tuple[int, ...]:
        return tuple(d for k, d in zip(self.layers, self.dims) if not self.is_hidden(k))

    def folded_features(self, channels: int) -> int:
        """``F = C * prod(fixed dims)``."""
        return channels * math.prod(self.fixed_dims)


def weight_space_slots(spec: MLPSpec) -> tuple[Slot, ...]:
    """Slots ``(W_0, ..., W_{L-1}, b_0, ..., b_{L-1})`` of a spec."""
    L = spec.num_layers
    weights = tuple(Slot((m, m + 1), shape, L) for m, shape in enumerate(spec.layer_shapes))
    biases = tuple(Slot((m + 1,), (d_out,), L) for m, (_, d_out) in enumerate(spec.layer_shapes))
    return weights + biases


def to_tensors(ws: WeightSpace) -> tuple[jax.Array, ...]:
    """Weight space with batch ``(B,)`` -> slot tensors with one channel ``(B, *dims, 1)``."""
    return tuple(x[..., None] for x in ws.weights + ws.biases)


def from_tensors(tensors: tuple[jax.Array, ...]) -> WeightSpace:
    """Inverse of :func:`to_tensors` (drops a single channel axis)."""
    L = len(tensors) // 2
    leaves = tuple(x[..., 0] for x in tensors)
    return WeightSpace(leaves[:L], leaves[L:])


def _hidden_then_fixed_axes(slot: Slot) -> list[int]:
    hidden = [1 + i for i, k in enumerate(slot.layers) if slot.is_hidden(k)]
    fixed = [1 + i for i, k in enumerate(slot.layers) if not slot.is_hidden(k)]
    return [0, *hidden, *fixed, 1 + len(slot.layers)]


def fold(x: jax.Array, slot: Slot) -> jax.Array:
    """``(B, *dims, C) -> (B, *hidden_dims, prod(fixed_dims) * C)``."""
    x = jnp.transpose(x, _hidden_then_fixed_axes(slot))
    return x.reshape(x.shape[: 1 + len(slot.hidden_dims)] + (-1,))


def unfold(x: jax.Array, slot: Slot) -> jax.Array:
    """Inverse of :func:`fold`: ``(B, *hidden_dims, F) -> (B, *dims, C)``."""
    x = x.reshape(x.shape[: 1 + len(slot.hidden_dims)] + slot.fixed_dims + (-1,))
    order = _hidden_then_fixed_axes(slot)
    inverse = [order.index(a) for a in range(len(order))]
    return jnp.transpose(x, inverse)


Reduction = Callable[..., jax.Array]


def nan_propagating_max(x: jax.Array, axis: tuple[int, ...]) -> jax.Array:
    """``jnp.max`` that is NaN wherever a reduced entry is NaN.

    XLA on CPU drops NaNs from some multi-axis max reductions (``(2, 32, 32, 4)``
    over axes ``(1, 2)`` returns the largest number), which would let a NaN weight
    yield finite predictions.
    """
    return jnp.where(jnp.any(jnp.isnan(x), axis=axis), jnp.nan, jnp.max(x, axis=axis))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, axis: tuple[int, ...]) -> jax.Array:
    """:func:`nan_propagating_max` whose gradient goes to every maximiser (one cheap
    select, not jax's count-and-divide)."""
    return nan_propagating_max(x, axis)


def _max_pool_fwd(x, axis):
    out = nan_propagating_max(x, axis)
    return out, (x, out)


def _max_pool_bwd(axis, residuals, grad):
    x, out = residuals
    return (jnp.where(x == jnp.expand_dims(out, axis), jnp.expand_dims(grad, axis), 0.0),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)

REDUCTIONS: dict[str, Reduction] = {
    "sum": jnp.sum,
    "mean": jnp.mean,
    "max": lambda x, axis: max_pool(x, axis),
}


def reduction(name: str) -> Reduction:
    if name not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {sorted(REDUCTIONS)}, got {name!r}")
    return REDUCTIONS[name]


def pool_all(x: jax.Array, slot: Slot, reduce: Reduction) -> jax.Array:
    """Folded ``(B, *hidden_dims, F) -> (B, F)``: reduce over every permutable axis."""
    return reduce(x, axis=tuple(range(1, 1 + len(slot.hidden_dims))))


def pool_to_layer(x: jax.Array, slot: Slot, layer: int, reduce: Reduction) -> jax.Array:
    """Folded ``(B, *hidden_dims, F) -> (B, d_layer, F)``: reduce the other permutable axes."""
    keep = 1 + slot.hidden_layers.index(layer)
    others = tuple(a for a in range(1, 1 + len(slot.hidden_dims)) if a != keep)
    return reduce(x, axis=others) if others else x


def broadcast_from_layer(x: jax.Array, slot: Slot, layer: int) -> jax.Array:
    """``(B, d_layer, F)`` -> broadcastable to the folded slot ``(B, *hidden_dims, F)``."""
    shape = [x.shape[0]] + [d if k == layer else 1 for k, d in zip(slot.hidden_layers, slot.hidden_dims)]
    return x.reshape(shape + [x.shape[-1]])


def broadcast_global(x: jax.Array, slot: Slot) -> jax.Array:
    """``(B, F)`` -> broadcastable to the folded slot ``(B, *hidden_dims, F)``."""
    return x.reshape((x.shape[0],) + (1,) * len(slot.hidden_dims) + (x.shape[-1],))
