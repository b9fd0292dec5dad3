"""Relational transformer on neural graphs, as Kofinas et al. (ICLR 2024) built it.

Facts from the reference (neural-graphs ``nn/relational_transformer.py``,
``nn/graph_constructor.py``, ``configs/model/rtransformer.yaml``):

* Inputs (:func:`graph_inputs`): every weight and bias ``w`` is encoded with
  random Fourier features ``[cos(2 pi w b), sin(2 pi w b)]``, ``b ~ N(0, 1)^128``
  fixed, then two linear layers; nodes add a learned position embedding
  (:mod:`dwsjax.models.graph`). Pairs without a weight encode ``w = 0``.
* Attention over **all** node pairs ``(i, j)`` with edge-conditioned queries,
  keys and values, per head:

      q_ij = Q x_i + Q_e e_ij,   k_ij = K x_j + K_e e_ij,   v_ij = (V x_j) * (M_e e_ij) + V_e e_ij
      a_ij = softmax_j(q_ij . k_ij / sqrt(d_attn)),    m_i = O sum_j a_ij v_ij

  (``d_attn`` is the width of all heads together, as in the reference).
* Block: ``x <- LN(x + drop(W m))``, ``x <- LN(x + drop(MLP(x)))`` (GELU), then
  the edge update ``e_ij <- LN(e_ij + drop(MLP(e_ij, e_ji, x_i, x_j)))``,
  ``e <- LN(e + drop(MLP(e)))``; the last block updates no edges.
* Readout: the output neurons' features concatenated (``pooling_method: cat``,
  ``pooling_layer_idx: last``), then Linear-ReLU-Linear.
* Initialisation: Xavier-uniform weights and zero biases in the blocks,
  PyTorch's default ``U(+-1/sqrt(fan_in))`` in the input encoders and the head.

Every operation commutes with node relabellings that fix position ids, and the
readout reads fixed (output) nodes only, so the classifier is invariant to
hidden-neuron permutations. Edges are dense ``(B, N, N, E)``: ``N = 67`` for a
2-32-32-1 SIREN.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.models.dense import dense_last_axis
from dwsjax.models.graph import node_biases, node_positions, num_positions, place_edges
from dwsjax.models.inputs import check_model_input
from dwsjax.models.probes import ProbeActivations, ProbeConfig, required_raw
from dwsjax.weights import MLPSpec, WeightSpace

LN_EPSILON = 1e-5  # PyTorch's nn.LayerNorm default


def torch_linear_bias_init(fan_in: int):
    """PyTorch's default ``nn.Linear`` bias init, ``U(+-1/sqrt(fan_in))``."""
    bound = 1.0 / np.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_linear(features: int, fan_in: int, name: str) -> nn.Dense:
    """``nn.Dense`` initialised like PyTorch's ``nn.Linear``: ``U(+-1/sqrt(fan_in))`` for both."""
    return nn.Dense(
        features,
        kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
        bias_init=torch_linear_bias_init(fan_in),
        name=name,
    )


def xavier_linear(features: int, name: str, use_bias: bool = True) -> nn.Dense:
    """The reference blocks' ``Linear``: Xavier-uniform kernel, zero bias."""
    return nn.Dense(features, use_bias=use_bias, kernel_init=nn.initializers.xavier_uniform(), name=name)


def layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPSILON, name=name)


def gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)


def fourier_features(x: jax.Array, frequencies: jax.Array) -> jax.Array:
    """``(..., ) -> (..., 2F)``: ``[cos(2 pi x b), sin(2 pi x b)]`` for ``b`` in ``frequencies (F,)``."""
    angles = 2 * jnp.pi * x[..., None] * frequencies
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class ScalarEncoder(nn.Module):
    """Random Fourier features of a scalar, then ``Linear(2F, D)`` and ``Linear(D, D)``:
    ``(...,) -> (..., D)``. The frequencies ``b ~ N(0, 1)^F`` are fixed (not trained),
    drawn from ``frequency_seed``."""

    features: int
    num_frequencies: int = 128
    frequency_seed: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        frequencies = jax.random.normal(jax.random.key(self.frequency_seed), (self.num_frequencies,), x.dtype)
        hidden = torch_linear(self.features, 2 * self.num_frequencies, "fourier")(fourier_features(x, frequencies))
        return torch_linear(self.features, self.features, "project")(hidden)


def graph_inputs(
    ws: WeightSpace, spec: MLPSpec, node_dim: int, edge_dim: int, num_frequencies: int
) -> tuple[jax.Array, jax.Array]:
    """Encoded nodes ``(B, N, node_dim)`` and edges ``(B, N, N, edge_dim)`` of a weight space.

    Must be called inside a compact module. Weights are encoded per layer and
    placed into the dense edge tensor; every pair without a weight gets the
    encoding of ``0``, computed once.
    """
    edge_encoder = ScalarEncoder(edge_dim, num_frequencies, frequency_seed=0, name="edge_in")
    node_encoder = ScalarEncoder(node_dim, num_frequencies, frequency_seed=1, name="node_in")
    blocks = [edge_encoder(w) for w in ws.weights]
    e = place_edges(blocks, spec, edge_encoder(jnp.zeros((), ws.weights[0].dtype)))
    x = node_encoder(node_biases(ws.biases, spec))
    position = nn.Embed(num_positions(spec), node_dim, embedding_init=nn.initializers.normal(1.0), name="position")
    return x + position(node_positions(spec)), e


class ResidualMLP(nn.Module):
    """``x <- LN(x + drop(W_2 gelu(W_1 x)))`` on the last axis, ``W_1`` without bias (the
    reference's node and edge MLPs)."""

    hidden: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = gelu(dense_last_axis(xavier_linear(self.hidden, "mlp_in", use_bias=False), x))
        out = dense_last_axis(xavier_linear(x.shape[-1], "mlp_out"), h)
        return layer_norm("norm")(x + nn.Dropout(self.dropout, deterministic=not train)(out))


class RelationalAttention(nn.Module):
    """All-pairs attention with edge-conditioned q/k/v: ``x (B,N,D), e (B,N,N,E) -> (B,N,D)``.

    The parameters are the reference's, one ``(E, 4 attn_dim)`` kernel
    ``qkv_edge`` holding ``[Q_e, K_e, V_e, M_e]`` per head. Computed without
    changing the layout of edge-sized tensors (pair axes first, heads last):
    each edge projection is its own 2-D matmul, and the values' edge term is
    applied after the attention average, ``sum_j a_ij V_e e_ij = V_e (sum_j
    a_ij e_ij)``, so ``V_e e`` is never formed.
    """

    attn_dim: int
    heads: int

    @nn.compact
    def __call__(self, x: jax.Array, e: jax.Array) -> jax.Array:
        head, edge_dim = self.attn_dim // self.heads, e.shape[-1]
        nodes = xavier_linear(3 * self.attn_dim, "qkv_node", use_bias=False)(x)
        q, k, v = jnp.split(nodes.reshape(x.shape[:2] + (self.heads, 3 * head)), 3, axis=-1)
        kernel = self.param("qkv_edge", nn.initializers.xavier_uniform(), (edge_dim, 4 * self.attn_dim))
        per_head = kernel.reshape(edge_dim, self.heads, 4, head)
        flat_edges = e.reshape(-1, edge_dim)

        def project(part: int) -> jax.Array:
            """``(B, N, N, heads, head)`` edge projection ``part`` of ``[Q_e, K_e, V_e, M_e]``."""
            return (flat_edges @ per_head[:, :, part].reshape(edge_dim, -1)).reshape(e.shape[:3] + (self.heads, head))

        q_ij, k_ij = q[:, :, None] + project(0), k[:, None, :] + project(1)
        attention = jax.nn.softmax(jnp.sum(q_ij * k_ij, axis=-1) / np.sqrt(self.attn_dim), axis=2)  # (B,N,N,H)
        node_values = jnp.sum(attention[..., None] * v[:, None, :] * project(3), axis=2)
        pooled_edges = jnp.einsum("bijh,bije->bihe", attention, e)
        edge_values = jnp.einsum("bihe,ehd->bihd", pooled_edges, per_head[:, :, 2])
        return xavier_linear(x.shape[-1], "out")((node_values + edge_values).reshape(x.shape[:2] + (self.attn_dim,)))


class EdgeUpdate(nn.Module):
    """``e_ij <- LN(e_ij + MLP(e_ij, e_ji, x_i, x_j))``, ``e <- LN(e + MLP(e))``: ``(B,N,N,E)``."""

    hidden: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, e: jax.Array, train: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        dim = e.shape[-1]
        both = jnp.concatenate([e, jnp.swapaxes(e, 1, 2)], axis=-1)
        h = (
            dense_last_axis(xavier_linear(self.hidden, "from_edges"), both)
            + xavier_linear(self.hidden, "from_source")(x)[:, :, None]
            + xavier_linear(self.hidden, "from_target")(x)[:, None, :]
        )
        e = layer_norm("norm_0")(e + drop(dense_last_axis(xavier_linear(dim, "out_0"), gelu(h))))
        return ResidualMLP(self.hidden, self.dropout, name="mlp")(e, train)


class RelationalTransformerLayer(nn.Module):
    """Post-norm block: relational attention and node MLP, then (optionally) the edge update."""

    attn_dim: int
    heads: int
    node_hidden: int
    edge_hidden: int
    update_edges: bool
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, e: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        dim = x.shape[-1]
        attention = RelationalAttention(self.attn_dim, self.heads, name="attention")(x, e)
        x = layer_norm("attn_norm")(x + drop(xavier_linear(dim, "attn_out")(attention)))
        x = ResidualMLP(self.node_hidden, self.dropout, name="mlp")(x, train)
        if self.update_edges:
            e = EdgeUpdate(self.edge_hidden, self.dropout, name="edges")(x, e, train)
        return x, e


class GNNClassifier(nn.Module):
    """Relational transformer over the neural graph -> output-node readout -> ``(B, num_classes)``.

    Kofinas et al. (ICLR 2024), see :mod:`dwsjax.models.gnn`. Defaults are the reference's
    ``rtransformer.yaml``; ``dropout`` 0.2 is its Fashion-MNIST script's (``fmnist_cls_rt.sh``).
    ``probe`` (:class:`dwsjax.models.probes.ProbeConfig`) adds the reference's probe features:
    each neuron's ``K`` activations, mapped by a linear layer to ``node_dim`` and added to its node
    features; the model then needs the raw weights (``raw=``).

    Attributes:
        spec: Architecture of the input weight spaces; the graph has ``N = sum(spec.widths)`` nodes.
        num_classes: Number of classes (logits).
        node_dim: Width ``D`` of node features.
        edge_dim: Width ``E`` of edge features.
        attn_dim: Width of all attention heads together.
        node_hidden: Hidden width of the node MLP.
        edge_hidden: Hidden width of the edge MLPs.
        head_hidden: Hidden width of the readout head.
        depth: Number of relational transformer blocks.
        heads: Attention heads.
        dropout: Dropout rate in every block.
        num_frequencies: Random Fourier features per scalar of the input encoding.
        probe: Probe features, or ``None``.
    """

    spec: MLPSpec
    num_classes: int
    node_dim: int = 64
    edge_dim: int = 32
    attn_dim: int = 128
    node_hidden: int = 128
    edge_hidden: int = 64
    head_hidden: int = 128
    depth: int = 4
    heads: int = 8
    dropout: float = 0.2
    num_frequencies: int = 128
    probe: ProbeConfig | None = None

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False, raw: WeightSpace | None = None) -> jax.Array:
        """Classify a batch of weight spaces.

        Args:
            ws: Weight spaces of architecture ``spec`` with batch shape ``(B,)``.
            train: Training mode: dropout (pass ``rngs={"dropout": key}``).
            raw: The same INRs unnormalised, read by probe features only (required with ``probe``).

        Returns:
            Logits ``(B, num_classes)``, invariant to hidden-neuron permutations of ``ws``.

        Raises:
            ValueError: If ``ws`` does not have architecture ``spec``, or ``raw`` is missing with ``probe``.
        """
        check_model_input(ws, self.spec)
        x, e = graph_inputs(ws, self.spec, self.node_dim, self.edge_dim, self.num_frequencies)
        if self.probe is not None:
            raw = required_raw(raw, type(self).__name__)
            check_model_input(raw, self.spec)
            activations = jnp.concatenate(ProbeActivations(self.probe, name="probe")(raw), axis=1)
            x = x + xavier_linear(self.node_dim, "probe_in")(activations.astype(x.dtype))
        for layer in range(self.depth):
            x, e = RelationalTransformerLayer(
                self.attn_dim,
                self.heads,
                self.node_hidden,
                self.edge_hidden,
                update_edges=layer < self.depth - 1,
                dropout=self.dropout,
                name=f"layer_{layer}",
            )(x, e, train)
        outputs = x[:, -self.spec.widths[-1] :].reshape(x.shape[0], -1)
        features = nn.relu(torch_linear(self.head_hidden, outputs.shape[-1], "head_hidden")(outputs))
        return torch_linear(self.num_classes, self.head_hidden, "head_out")(features)
