"""Neural graphs (Kofinas et al. 2024; Lim et al. 2024): an MLP's weight space as a graph.

Nodes are all neurons ``0 .. N-1`` (``N = sum_l d_l``), layer by layer, input
first. Node ``v`` in layer ``l`` carries the bias feeding it (``0`` for input
neurons) and a position id: input neurons ``i`` get id ``i``, hidden layer ``l``
gets one shared id ``d_0 + l - 1`` (so its neurons stay interchangeable) and
output neuron ``j`` gets id ``d_0 + L - 1 + j``. A weight ``W_l[u, v]`` links
``u -> v`` (FORWARD) and ``v -> u`` (BACKWARD); every node also has a SELF edge.

Edges are stored as padded neighbour lists: node ``i``'s ``K`` slots (``K`` =
largest degree) list its neighbours in index order, then padding (``NO_EDGE``).
Only the ``sum_l 2 d_l d_{l+1} + N`` real edges are computed on, not all ``N^2``
node pairs (2,345 slots instead of 4,489 pairs for a 2-32-32-1 SIREN).
A hidden-neuron permutation of the weight space is a node relabelling that
fixes every position id and permutes each node's slots, which makes graph
networks that sum over slots invariant.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.weights import MLPSpec, WeightSpace

NO_EDGE, FORWARD, BACKWARD, SELF = 0, 1, 2, 3
NUM_EDGE_TYPES = 4


class NeuralGraph(NamedTuple):
    """Batched neural graph with padded neighbour lists.

    ``node_bias (B, N)``; ``neighbours (N, K)`` node ids (``0`` in padding slots);
    ``edge_type (N, K)`` in ``{NO_EDGE, FORWARD, BACKWARD, SELF}``;
    ``edge_weight (B, N, K)`` the weight joining node ``i`` and ``neighbours[i, k]``
    (``W_l[i, j]`` for FORWARD, ``W_l[j, i]`` for BACKWARD, ``0`` otherwise);
    ``node_position (N,)`` ids.
    """

    node_bias: jax.Array
    edge_weight: jax.Array
    neighbours: np.ndarray
    edge_type: np.ndarray
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
    hidden = [np.full(d, d_in + l - 1) for l, d in enumerate(spec.hidden_widths, start=1)]
    return np.concatenate([np.arange(d_in), *hidden, d_in + L - 1 + np.arange(d_out)])


def edge_type_matrix(spec: MLPSpec) -> np.ndarray:
    """``(N, N)`` edge types: FORWARD on ``u -> v`` weights, BACKWARD on their transpose, SELF on the diagonal."""
    offsets = layer_offsets(spec)
    types = np.full((offsets[-1], offsets[-1]), NO_EDGE, dtype=np.int32)
    for l in range(spec.num_layers):
        rows = slice(offsets[l], offsets[l + 1])
        cols = slice(offsets[l + 1], offsets[l + 2])
        types[rows, cols] = FORWARD
        types[cols, rows] = BACKWARD
    np.fill_diagonal(types, SELF)
    return types


def neighbour_lists(spec: MLPSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(neighbours, edge_type)``, both ``(N, K)``: each node's neighbours in index order, padded."""
    types = edge_type_matrix(spec)
    degree = int((types != NO_EDGE).sum(axis=1).max())
    neighbours = np.zeros((len(types), degree), dtype=np.int32)
    slot_types = np.full((len(types), degree), NO_EDGE, dtype=np.int32)
    for i, row in enumerate(types):
        (nodes,) = np.nonzero(row != NO_EDGE)
        neighbours[i, : len(nodes)] = nodes
        slot_types[i, : len(nodes)] = row[nodes]
    return neighbours, slot_types


def neural_graph(ws: WeightSpace, spec: MLPSpec) -> NeuralGraph:
    """Weight space with batch ``(B,)`` -> :class:`NeuralGraph`."""
    offsets = layer_offsets(spec)
    batch = ws.biases[0].shape[0]
    forward = jnp.zeros((batch, offsets[-1], offsets[-1]), ws.weights[0].dtype)
    for l, w in enumerate(ws.weights):
        forward = forward.at[:, offsets[l] : offsets[l + 1], offsets[l + 1] : offsets[l + 2]].set(w)
    neighbours, edge_type = neighbour_lists(spec)
    rows = np.arange(offsets[-1])[:, None]
    weight = jnp.where(edge_type != NO_EDGE, (forward + jnp.swapaxes(forward, 1, 2))[:, rows, neighbours], 0)
    bias = jnp.concatenate([jnp.zeros((batch, spec.widths[0]), ws.biases[0].dtype), *ws.biases], axis=-1)
    return NeuralGraph(bias, weight, neighbours, edge_type, node_positions(spec))
