"""Probe features: what each neuron of an INR computes at a few input points.

The relational transformer of Kofinas et al. (ICLR 2024, "Graph Neural Networks
for Learning Equivariant Representations of Neural Networks", Sec. 3.3 "probe
features"; ``nn/probe_features.py`` of the reference) adds to each neuron's
node features its activations at ``K`` input points. For probe inputs
``X (K, d_0)`` and an INR with weights ``(W_l, b_l)``:

    h_0 = X,   h_l = sigma(h_{l-1} W_{l-1} + b_{l-1})  (0 < l < L),   h_L = h_{L-1} W_{L-1} + b_{L-1}

with ``sigma(z) = sin(w0 z)`` for SIRENs and ``relu`` for ReLU networks, so
``h_L`` is the INR's function at the probes. Neuron ``j`` of layer ``l`` gets the
feature vector ``h_l[:, j]`` of length ``K``. Permuting the hidden neurons of a
network permutes its activations alike, so the features move with their
neurons: a model equivariant on neurons stays exactly so (up to float rounding).
Probe inputs are drawn once from ``U[-1, 1]^{d_0}`` (a fixed key) and are either
kept (``learnable=False``) or trained with the model (``learnable=True``, the
reference's default).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dwsjax.siren import SIREN_W0
from dwsjax.weights import WeightSpace

PROBE_SEED = 0
ACTIVATIONS = ("sine", "relu")


class ProbeConfig(NamedTuple):
    """``points`` probe inputs (``K``), trained or fixed; the INRs' activation and SIREN ``w0``."""

    points: int = 64
    learnable: bool = True
    activation: str = "sine"
    w0: float = SIREN_W0

    def check(self) -> ProbeConfig:
        if self.points < 1:
            raise ValueError(f"probe features need at least 1 probe point, got {self.points}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"probe activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        return self


def neuron_activations(
    ws: WeightSpace, inputs: jax.Array, activation: str = "sine", w0: float = SIREN_W0
) -> tuple[jax.Array, ...]:
    """Activations ``h_0 .. h_L`` of a batch of MLPs at shared inputs.

    Args:
        ws: weight spaces with batch ``(B,)``: ``W_l (B, d_l, d_{l+1})``, ``b_l (B, d_{l+1})``.
        inputs: probe inputs ``(K, d_0)``.
        activation: ``"sine"`` (``sin(w0 z)``) or ``"relu"``.
        w0: SIREN frequency.

    Returns:
        ``L + 1`` arrays, layer ``l`` shaped ``(B, K, d_l)``; the last is the output without offset.
    """
    sigma = (lambda z: jnp.sin(w0 * z)) if activation == "sine" else jax.nn.relu
    h = jnp.broadcast_to(inputs, (ws.weights[0].shape[0],) + inputs.shape)
    layers = [h]
    last = len(ws.weights) - 1
    for layer, (w, b) in enumerate(zip(ws.weights, ws.biases)):
        z = jnp.einsum("bki,bio->bko", h, w) + b[:, None, :]
        h = sigma(z) if layer < last else z
        layers.append(h)
    return tuple(layers)


class ProbeActivations(nn.Module):
    """Per-neuron probe features of a batch of INRs: ``L + 1`` arrays ``(B, d_l, K)``.

    Holds the probe inputs ``(K, d_0)`` as the parameter ``inputs`` when learnable.
    """

    config: ProbeConfig

    @nn.compact
    def __call__(self, raw: WeightSpace) -> tuple[jax.Array, ...]:
        c = self.config.check()
        shape = (c.points, raw.weights[0].shape[1])

        def init(key=None, shape=shape, dtype=jnp.float32):
            return jax.random.uniform(jax.random.key(PROBE_SEED), shape, dtype, -1.0, 1.0)

        inputs = self.param("inputs", init, shape) if c.learnable else init()
        acts = neuron_activations(raw, inputs.astype(raw.weights[0].dtype), c.activation, c.w0)
        return tuple(jnp.swapaxes(a, 1, 2) for a in acts)


def required_raw(raw: WeightSpace | None, model: str) -> WeightSpace:
    """``raw``, or a clear error for a probe model called without the raw INR weights."""
    if raw is None:
        raise ValueError(
            f"{model} has probe features, which evaluate the INRs themselves: call it as "
            "model.apply(variables, normalised_ws, raw=ws) with the unnormalised weights "
            "(dwsjax.train does this for every model with probe features)"
        )
    return raw


def reads_raw_weights(model: nn.Module) -> bool:
    """Whether ``model`` takes the unnormalised INR weights as ``raw=`` (it has probe features)."""
    return getattr(model, "probe", None) is not None


def raw_kwargs(model: nn.Module, raw: WeightSpace) -> dict:
    """``{"raw": raw}`` for a model with probe features, ``{}`` otherwise: the keyword arguments that
    hand a model the unnormalised INRs beside its normalised input."""
    return {"raw": raw} if reads_raw_weights(model) else {}
