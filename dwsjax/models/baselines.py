"""Baselines that ignore the hidden-neuron symmetry.

* :class:`FlatMLP`: an MLP on ``flatten_weights(ws)`` ``(B, P)``.
* :class:`NeuronTransformer`: a transformer over one token per neuron of every
  layer (Schürholt et al. 2021). The token of output neuron ``j`` of layer ``m``
  is ``[W_m[:, j], b_m[j]]`` (``d_m + 1`` numbers), projected to ``dim`` by a
  per-layer linear map, plus a learned embedding per token position: the
  position embedding breaks permutation invariance on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dwsjax.models.inputs import check_model_input
from dwsjax.weights import MLPSpec, WeightSpace, flatten_weights


class FlatMLP(nn.Module):
    """``(B, P) -> ReLU MLP -> (B, num_classes)``."""

    spec: MLPSpec
    num_classes: int
    hidden: Sequence[int] = (256, 256, 256)
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False) -> jax.Array:
        check_model_input(ws, self.spec)
        x = flatten_weights(ws)
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(width, name=f"dense_{i}")(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="out")(x)


def neuron_tokens(ws: WeightSpace) -> list[jax.Array]:
    """Per layer ``m``: tokens ``(B, d_{m+1}, d_m + 1)`` = incoming weights and bias of each neuron."""
    return [jnp.concatenate([jnp.swapaxes(w, -1, -2), b[..., None]], axis=-1) for w, b in zip(ws.weights, ws.biases)]


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``(B, T, D) -> (B, T, D)``."""

    heads: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout, deterministic=not train)
        dim = x.shape[-1]
        x = x + drop(nn.MultiHeadDotProductAttention(self.heads, name="attn")(nn.LayerNorm()(x)))
        hidden = nn.relu(nn.Dense(2 * dim, name="ff_in")(nn.LayerNorm()(x)))
        return x + drop(nn.Dense(dim, name="ff_out")(hidden))


class NeuronTransformer(nn.Module):
    """Transformer over per-neuron tokens with learned positions -> mean pool -> logits."""

    spec: MLPSpec
    num_classes: int
    dim: int = 64
    depth: int = 4
    heads: int = 4
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False) -> jax.Array:
        check_model_input(ws, self.spec)
        tokens = jnp.concatenate(
            [nn.Dense(self.dim, name=f"embed_layer_{m}")(t) for m, t in enumerate(neuron_tokens(ws))], axis=1
        )
        positions = self.param("positions", nn.initializers.normal(0.02), tokens.shape[1:])
        x = tokens + positions
        for i in range(self.depth):
            x = TransformerBlock(self.heads, self.dropout, name=f"block_{i}")(x, train)
        return nn.Dense(self.num_classes, name="out")(nn.LayerNorm()(x).mean(axis=1))
