"""Neural graphs (Kofinas et al. 2024; Lim et al. 2024): an MLP's weight space as a graph.

Nodes are all neurons ``0 .. N-1`` (``N = sum_l d_l``), layer by layer, input
first. Node ``v`` in layer ``l`` carries the bias feeding it (``0`` for input
neurons) and a position id: input neurons ``i`` get id ``i``, hidden layer ``l``
gets one shared id ``d_0 + l - 1`` (so its neurons stay interchangeable) and
output neuron ``j`` gets id ``d_0 + L - 1 + j``. Edges ``u -> v`` carry
``W_l[u, v]``; the adjacency is dense ``(B, N, N)`` plus a static edge-type map.
A hidden-neuron permutation of the weight space is a node relabelling of the
graph that fixes every position id, which makes graph networks invariant.
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
    """Dense batched neural graph.

    ``node_bias (B, N)``, ``edge_weight (B, N, N)`` with ``edge_weight[b, u, v] = W[u, v]``
    for the layer linking ``u -> v`` (0 elsewhere), ``node_position (N,)`` ids,
    ``edge_type (N, N)`` in ``{NO_EDGE, FORWARD, BACKWARD, SELF}``.
    """

    node_bias: jax.Array
    edge_weight: jax.Array
    node_position: np.ndarray
    edge_type: np.ndarray


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


def edge_types(spec: MLPSpec) -> np.ndarray:
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


def neural_graph(ws: WeightSpace, spec: MLPSpec) -> NeuralGraph:
    """Weight space with batch ``(B,)`` -> dense :class:`NeuralGraph`."""
    offsets = layer_offsets(spec)
    batch = ws.biases[0].shape[0]
    edges = jnp.zeros((batch, offsets[-1], offsets[-1]), ws.weights[0].dtype)
    for l, w in enumerate(ws.weights):
        edges = edges.at[:, offsets[l] : offsets[l + 1], offsets[l + 1] : offsets[l + 2]].set(w)
    bias = jnp.concatenate([jnp.zeros((batch, spec.widths[0]), ws.biases[0].dtype), *ws.biases], axis=-1)
    return NeuralGraph(bias, edges, node_positions(spec), edge_types(spec))
