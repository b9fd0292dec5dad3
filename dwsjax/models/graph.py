"""Neural graphs (Kofinas et al., ICLR 2024): an MLP's weight space as a dense graph.

Nodes are all neurons ``0 .. N-1`` (``N = sum_l d_l``), layer by layer, input
first. Node ``v`` of layer ``l > 0`` carries the bias feeding it; input neurons
carry ``0``. The edge ``(u, v)`` carries ``W_l[u, v]`` when ``u`` is in layer
``l`` and ``v`` in layer ``l + 1`` and ``0`` for every other pair, so the edge
tensor is the ``(N, N)`` block matrix of all weights ("forward" edges only, as
the reference's ``rev_edge_features=False``; its ``batch_to_graphs``).

Position ids follow the reference's ``pos_embed_layout``: input neuron ``i``
gets id ``i``, all neurons of hidden layer ``l`` share id ``d_0 + l - 1`` (so
they stay interchangeable) and output neuron ``j`` gets ``d_0 + L - 1 + j``.
A hidden-neuron permutation of the weight space is then a node relabelling
that fixes every position id: ``edges -> P edges P^T``, ``bias -> P bias``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.weights import MLPSpec, WeightSpace


class NeuralGraph(NamedTuple):
    """Batched dense neural graph: ``node_bias (B, N)``, ``edge_weight (B, N, N)``
    (``edge_weight[:, u, v] = W_l[u, v]``), ``node_position (N,)`` ids."""

    node_bias: jax.Array
    edge_weight: jax.Array
    node_position: np.ndarray


def layer_offsets(spec: MLPSpec) -> tuple[int, ...]:
    """Index of the first node of each neuron layer, plus the total ``N`` last."""
    return tuple(int(x) for x in np.cumsum((0,) + spec.widths))


def num_positions(spec: MLPSpec) -> int:
    """Size of the position-id vocabulary: ``d_0 + (L - 1) + d_L``."""
    return spec.widths[0] + spec.num_layers - 1 + spec.widths[-1]


def node_positions(spec: MLPSpec) -> np.ndarray:
    """``(N,)`` position ids: per-index for input/output neurons, per-layer for hidden ones."""
    d_in, d_out, L = spec.widths[0], spec.widths[-1], spec.num_layers
    hidden = [np.full(d, d_in + k - 1) for k, d in enumerate(spec.hidden_widths, start=1)]
    return np.concatenate([np.arange(d_in), *hidden, d_in + L - 1 + np.arange(d_out)])


def place_edges(blocks, spec: MLPSpec, fill: jax.Array) -> jax.Array:
    """Dense ``(B, N, N, ...)`` from per-layer blocks ``(B, d_l, d_{l+1}, ...)``; every
    other pair holds ``fill`` (broadcast over the trailing feature axes)."""
    offsets = layer_offsets(spec)
    first = blocks[0]
    shape = first.shape[:1] + (offsets[-1], offsets[-1]) + first.shape[3:]
    dense = jnp.broadcast_to(jnp.asarray(fill, first.dtype), shape)
    for k, block in enumerate(blocks):
        dense = dense.at[:, offsets[k] : offsets[k + 1], offsets[k + 1] : offsets[k + 2]].set(block)
    return dense


def node_biases(biases, spec: MLPSpec) -> jax.Array:
    """``(B, N, ...)``: zeros for the input neurons, then every layer's biases."""
    first = biases[0]
    inputs = jnp.zeros(first.shape[:1] + (spec.widths[0],) + first.shape[2:], first.dtype)
    return jnp.concatenate([inputs, *biases], axis=1)


def neural_graph(ws: WeightSpace, spec: MLPSpec) -> NeuralGraph:
    """Weight space with batch ``(B,)`` -> :class:`NeuralGraph`."""
    edges = place_edges(ws.weights, spec, jnp.zeros((), ws.weights[0].dtype))
    return NeuralGraph(node_biases(ws.biases, spec), edges, node_positions(spec))
