"""Relational transformer (Diao & Loynd 2023) on neural graphs (Kofinas et al. 2024).

Nodes ``x (B, N, D)`` and edges ``e (B, N, K, E)`` in padded neighbour lists
(:mod:`dwsjax.models.graph`): slot ``k`` of node ``i`` is the edge to node
``j = n(i, k)``. Attention of node ``i`` over its neighbours, per head ``h``:

    q_i = W_q x_i,   k_ik = W_k x_j + K_e e_ik,   v_ik = W_v x_j + V_e e_ik
    a_ik = softmax_k(q_i . k_ik / sqrt(d_h)),    m_i = sum_k a_ik v_ik

The node parts ``q_i . W_k x_j`` and ``sum_k a_ik W_v x_j`` are dense ``N x N``
matmuls read at (gather) and written to (scatter) the slots; the edge parts are
applied without materialising ``(B, N, K, D)`` tensors:
``q_i . K_e e_ik = (K_e^T q_i) . e_ik`` and ``sum_k a_ik V_e e_ik = V_e sum_k a_ik e_ik``.
Edge update: ``e_ik <- LN(e_ik + MLP(e_ik, x_i, x_j))``. Readout: mean over all
nodes, then an MLP. Every operation is equivariant to node relabellings that
fix positions and edge types, so the classifier is invariant to hidden-neuron
permutations.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.models.dense import dense_last_axis
from dwsjax.models.graph import BACKWARD, FORWARD, NUM_EDGE_TYPES, NO_EDGE, neural_graph, num_positions
from dwsjax.models.inputs import check_model_input
from dwsjax.weights import MLPSpec, WeightSpace


class RelationalAttention(nn.Module):
    """Multi-head attention whose keys and values see edge features: ``(B,N,D) -> (B,N,D)``."""

    node_dim: int
    heads: int

    @nn.compact
    def __call__(self, x: jax.Array, e: jax.Array, neighbours: np.ndarray, mask: np.ndarray) -> jax.Array:
        head_dim = self.node_dim // self.heads
        edge_dim = e.shape[-1]
        split = lambda y: y.reshape(y.shape[:-1] + (self.heads, head_dim))
        q = split(nn.Dense(self.node_dim, name="query")(x))
        k = split(nn.Dense(self.node_dim, name="key")(x))
        v = split(nn.Dense(self.node_dim, name="value")(x))
        init = nn.initializers.lecun_normal(in_axis=-1, out_axis=(0, 1))
        key_edge = self.param("key_edge", init, (self.heads, head_dim, edge_dim))
        value_edge = self.param("value_edge", init, (self.heads, head_dim, edge_dim))

        slots = (slice(None), np.arange(len(neighbours))[:, None], neighbours)
        q_edge = jnp.einsum("bihd,hde->bihe", q, key_edge)
        logits = jnp.einsum("bihd,bjhd->bijh", q, k)[slots] + jnp.einsum("bihe,bike->bikh", q_edge, e)
        logits = jnp.where(mask[None, :, :, None], logits / head_dim**0.5, -1e9)
        attn = jax.nn.softmax(logits, axis=2)
        batch, nodes = x.shape[:2]
        node_attn = jnp.zeros((batch, nodes, nodes, self.heads), attn.dtype).at[slots].add(attn)
        out = jnp.einsum("bijh,bjhd->bihd", node_attn, v)
        out = out + jnp.einsum("bihe,hde->bihd", jnp.einsum("bikh,bike->bihe", attn, e), value_edge)
        return nn.Dense(self.node_dim, name="out")(out.reshape(x.shape))


class EdgeUpdate(nn.Module):
    """``e_ik <- LN(e_ik + W_2 relu(A e_ik + B x_i + C x_n(i,k)))``: ``(B,N,K,E)``."""

    @nn.compact
    def __call__(self, x: jax.Array, e: jax.Array, neighbours: np.ndarray) -> jax.Array:
        dim = e.shape[-1]
        hidden = (
            dense_last_axis(nn.Dense(dim, name="from_edge"), e)
            + nn.Dense(dim, use_bias=False, name="from_source")(x)[:, :, None]
            + nn.Dense(dim, use_bias=False, name="from_target")(x)[:, neighbours]
        )
        return nn.LayerNorm(name="norm")(e + dense_last_axis(nn.Dense(dim, name="out"), nn.relu(hidden)))


class RelationalTransformerLayer(nn.Module):
    """Post-norm transformer block with relational attention, optionally updating edges."""

    node_dim: int
    heads: int
    update_edges: bool

    @nn.compact
    def __call__(self, x, e, neighbours, mask, train: bool, dropout: float):
        drop = nn.Dropout(dropout, deterministic=not train)
        attention = RelationalAttention(self.node_dim, self.heads)(x, e, neighbours, mask)
        x = nn.LayerNorm(name="attn_norm")(x + drop(attention))
        ff = nn.Dense(self.node_dim, name="ff_out")(nn.relu(nn.Dense(2 * self.node_dim, name="ff_in")(x)))
        x = nn.LayerNorm(name="ff_norm")(x + drop(ff))
        if self.update_edges:
            e = EdgeUpdate(name="edges")(x, e, neighbours)
        return x, e


class GNNClassifier(nn.Module):
    """Relational transformer over the neural graph -> mean readout -> ``(B, num_classes)``."""

    spec: MLPSpec
    num_classes: int
    node_dim: int = 64
    edge_dim: int = 32
    depth: int = 4
    heads: int = 4
    dropout: float = 0.0
    head_hidden: int = 128

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False) -> jax.Array:
        check_model_input(ws, self.spec)
        graph = neural_graph(ws, self.spec)
        x = nn.Dense(self.node_dim, name="node_in")(graph.node_bias[..., None])
        x = x + nn.Embed(num_positions(self.spec), self.node_dim, name="position")(graph.node_position)
        direction = np.stack([graph.edge_type == FORWARD, graph.edge_type == BACKWARD], axis=-1)
        e = dense_last_axis(nn.Dense(self.edge_dim, name="edge_in"), graph.edge_weight[..., None] * direction)
        e = e + nn.Embed(NUM_EDGE_TYPES, self.edge_dim, name="edge_type")(graph.edge_type)
        mask = graph.edge_type != NO_EDGE
        for layer in range(self.depth):
            x, e = RelationalTransformerLayer(
                self.node_dim, self.heads, update_edges=layer < self.depth - 1, name=f"layer_{layer}"
            )(x, e, graph.neighbours, mask, train, self.dropout)
        features = nn.relu(nn.Dense(self.head_hidden, name="head_hidden")(jnp.mean(x, axis=1)))
        return nn.Dense(self.num_classes, name="head_out")(features)
