"""DWSNets (Navon et al., ICML 2023): equivariant layers for weight spaces.

A weight space ``V = (W_0..W_{L-1}, b_0..b_{L-1})`` is acted on by
``G = S_{d_1} x ... x S_{d_{L-1}}`` (hidden neurons). Sec. 4 / Thm. 4.1 of the
paper: a linear ``G``-equivariant map ``V -> V`` splits into blocks
``W_j -> W_i``, ``W_j -> b_i``, ``b_j -> W_i``, ``b_j -> b_i``; each block's basis
corresponds to the orbits of ``G`` on pairs of (output, input) indices. For an
index shared by a hidden layer ``k`` in input and output the orbit is
"same neuron" or "any neuron"; indices of the non-permuted input/output layers
act as features (Sec. 4.2, "first and last layer"). Hence, with ``T`` the hidden
layers of a pair that are tied,

    L(V)_i = sum_j sum_{T ⊆ H_i ∩ H_j} broadcast_{H_i \\ T}( A_{ijT} pool_{H_j \\ T}(V_j) )

where ``H_i`` are the hidden layers indexing slot ``i`` and ``A_{ijT}`` is a
channel-linear map (Table 1 / Appendix A enumerate these terms). ``T = ∅``
covers non-neighbouring layers (full pooling); ``|T| = 1`` the same layer and
its neighbours; ``T = {m, m+1}`` the elementwise map ``W_m -> W_m``.

Grouping: all ``T = ∅`` terms of all pairs are one dense map from the
concatenated fully pooled slots; all ``T = {k}`` terms are one dense map from the
"neuron features" of layer ``k`` (every slot touching layer ``k`` pooled down to
``(B, d_k, F)``) to every slot touching ``k``. A layer therefore runs one einsum
per hidden neuron layer, one global one and one per hidden-hidden weight, all on
small pooled tensors except the last, and broadcast-adds the results.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dwsjax.models.dense import dense_last_axis
from dwsjax.models.inputs import check_model_input
from dwsjax.models.probes import ProbeActivations, ProbeConfig, required_raw
from dwsjax.models.symmetry import (
    broadcast_from_layer,
    broadcast_global,
    fold,
    from_tensors,
    pool_all,
    pool_to_layer,
    reduction,
    to_tensors,
    unfold,
    weight_space_slots,
)
from dwsjax.weights import MLPSpec, WeightSpace

Tensors = tuple[jax.Array, ...]


def _split(x: jax.Array, sizes: Sequence[int]) -> list[jax.Array]:
    offsets = [sum(sizes[:i]) for i in range(1, len(sizes))]
    return jnp.split(x, offsets, axis=-1)


def _hidden_layers(spec: MLPSpec) -> range:
    return range(1, spec.num_layers)


class SetAttention(nn.Module):
    """Set attention block over the neuron axis: ``(B, d, F_in) -> (B, d, features)``.

    The DWSNets reference's ``SAB`` (``nn/layers/base.py``, after Lee et al.,
    Set Transformer, ICML 2019), used there for every term indexed by the
    neurons of one layer (``set_layer="sab"``, 8 heads): ``Q, K, V`` are affine
    maps of the input, each of ``heads`` heads attends over the ``d`` neurons
    with ``softmax(Q_h K_h^T / sqrt(features))``, ``O = Q + A V`` and the output
    is ``O + relu(affine(O))``. Permuting the neurons permutes the output alike.
    The head count is the largest divisor of ``features`` up to ``heads``
    (``heads`` itself whenever the DWS width is a multiple of it, as for 32).
    """

    features: int
    heads: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        heads = max(h for h in range(1, self.heads + 1) if self.features % h == 0)
        q, k, v = (dense_last_axis(nn.Dense(self.features, name=n), x) for n in ("query", "key", "value"))

        def split(t):
            return t.reshape(t.shape[:-1] + (heads, self.features // heads))

        logits = jnp.einsum("bihf,bjhf->bhij", split(q), split(k)) / jnp.sqrt(self.features)
        attended = jnp.einsum("bhij,bjhf->bihf", jax.nn.softmax(logits, axis=-1), split(v))
        out = q + attended.reshape(q.shape)
        return out + nn.relu(dense_last_axis(nn.Dense(self.features, name="out"), out))


class DWSLayer(nn.Module):
    """Equivariant map between weight spaces with ``C_in -> out_channels`` channels (Navon et al., Sec. 4).

    ``L(V)_i = sum_j sum_{T ⊆ H_i ∩ H_j} broadcast_{H_i \\ T}(A_{ijT} pool_{H_j \\ T}(V_j))``, the basis
    of Thm. 4.1 (see :mod:`dwsjax.models.dws`). Affine: the global term carries a bias
    per output slot and fixed index (invariant, so equivariant).
    ``set_layer="linear"`` is the linear layer of the paper; ``"sab"`` maps the
    neuron features of each hidden layer with :class:`SetAttention` instead of a
    linear map (the reference code's default), which makes the layer nonlinear.

    Attributes:
        spec: Architecture of the input weight spaces.
        out_channels: Channels ``C_out`` of every output slot.
        reduction: Pooling over permuted axes, ``"max"``, ``"mean"`` or ``"sum"``.
        set_layer: ``"linear"`` (the paper's layer) or ``"sab"`` (set attention, the reference code's).
        heads: Attention heads of ``"sab"``.
    """

    spec: MLPSpec
    out_channels: int
    reduction: str = "max"
    set_layer: str = "linear"
    heads: int = 8

    @nn.compact
    def __call__(self, tensors: Tensors) -> Tensors:
        """Apply the layer.

        Args:
            tensors: Slot tensors ``(W_0..W_{L-1}, b_0..b_{L-1})`` shaped ``(B, d_m, d_{m+1}, C_in)`` and
                ``(B, d_{m+1}, C_in)`` (:func:`dwsjax.models.to_tensors` makes them from a weight space).

        Returns:
            Slot tensors of the same shapes with ``out_channels`` channels; permuting the hidden
            neurons of the input permutes the output the same way.

        Raises:
            ValueError: If ``set_layer`` is unknown.
        """
        slots = weight_space_slots(self.spec)
        reduce = reduction(self.reduction)
        folded = [fold(x, s) for x, s in zip(tensors, slots)]
        out_sizes = [s.folded_features(self.out_channels) for s in slots]

        pooled = jnp.concatenate([pool_all(x, s, reduce) for x, s in zip(folded, slots)], axis=-1)
        global_terms = _split(nn.Dense(sum(out_sizes), name="global")(pooled), out_sizes)
        outputs = [broadcast_global(t, s) for t, s in zip(global_terms, slots)]

        for k in _hidden_layers(self.spec):
            touching = [i for i, s in enumerate(slots) if k in s.hidden_layers]
            neurons = jnp.concatenate([pool_to_layer(folded[i], slots[i], k, reduce) for i in touching], axis=-1)
            sizes = [out_sizes[i] for i in touching]
            if self.set_layer == "sab":
                mixed = SetAttention(sum(sizes), self.heads, name=f"neurons_{k}")(neurons)
            elif self.set_layer == "linear":
                mixed = dense_last_axis(nn.Dense(sum(sizes), use_bias=False, name=f"neurons_{k}"), neurons)
            else:
                raise ValueError(f"set_layer must be one of {SET_LAYERS}, got {self.set_layer!r}")
            terms = _split(mixed, sizes)
            for i, t in zip(touching, terms):
                outputs[i] = outputs[i] + broadcast_from_layer(t, slots[i], k)

        for i, s in enumerate(slots):
            if len(s.hidden_layers) == 2:
                dense = nn.Dense(out_sizes[i], use_bias=False, name=f"elementwise_{i}")
                tied = dense_last_axis(dense, folded[i])
                outputs[i] = outputs[i] + tied

        return tuple(
            unfold(jnp.broadcast_to(y, x.shape[:-1] + y.shape[-1:]), s) for y, x, s in zip(outputs, folded, slots)
        )


class ChannelNorm(nn.Module):
    """Per-slot normalisation over the channel axis: "batch", "layer" or "none".

    * ``"batch"``: BatchNorm with one set of statistics per slot and channel,
      taken over the batch and every position of the slot (the DWSNets
      reference's ``BN`` layer: ``BatchNorm1d`` over ``(B, C, positions)`` per
      weight and bias, ``nn/layers/layers.py``), PyTorch's momentum 0.1 and
      epsilon 1e-5. Means over all positions are invariant to permutations of
      hidden neurons, so the layer stays equivariant in training and in
      evaluation mode (running averages; ``train=False``). The statistics live
      in the ``batch_stats`` collection.
    * ``"layer"``: LayerNorm over each position's channels.
    """

    kind: str = "none"

    @nn.compact
    def __call__(self, tensors: Tensors, train: bool = False) -> Tensors:
        if self.kind == "none":
            return tensors
        if self.kind == "layer":
            return tuple(nn.LayerNorm(name=f"slot_{i}")(x) for i, x in enumerate(tensors))
        if self.kind == "batch":
            return tuple(
                nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=f"slot_{i}")(x)
                for i, x in enumerate(tensors)
            )
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.kind!r}")


NORMALIZATIONS = ("none", "layer", "batch")
SET_LAYERS = ("linear", "sab")


class DWSEncoder(nn.Module):
    """``depth`` DWS layers, each followed by ReLU, normalisation and dropout.

    BatchNorm (``normalization="batch"``) comes before the ReLU, as in the
    DWSNets reference (``nn/models.py``: DWS layer, ``BN``, ReLU, dropout);
    LayerNorm after it.

    ``(B, ...)`` weight space with one channel -> slot tensors with ``hidden`` channels.
    """

    spec: MLPSpec
    hidden: int = 32
    depth: int = 4
    reduction: str = "max"
    normalization: str = "none"
    dropout: float = 0.0
    set_layer: str = "linear"
    heads: int = 8

    @nn.compact
    def __call__(self, tensors: Tensors, train: bool = False) -> Tensors:
        for layer in range(self.depth):
            tensors = DWSLayer(self.spec, self.hidden, self.reduction, self.set_layer, self.heads, name=f"dws_{layer}")(
                tensors
            )
            norm = ChannelNorm(self.normalization, name=f"norm_{layer}")
            if self.normalization == "batch":
                tensors = norm(tensors, train)
            tensors = tuple(nn.relu(x) for x in tensors)
            if self.normalization != "batch":
                tensors = norm(tensors, train)
            drop = nn.Dropout(self.dropout, deterministic=not train)
            tensors = tuple(drop(x) for x in tensors)
        return tensors


def invariant_pool(tensors: Tensors, spec: MLPSpec, reduce: str = "max") -> jax.Array:
    """Invariant features ``(B, sum_i F_i)``: every slot pooled over its permutable axes.

    Fixed (input/output) indices survive as features, e.g. ``W_0`` gives ``d_0 * C``.
    """
    slots = weight_space_slots(spec)
    fn = reduction(reduce)
    return jnp.concatenate([pool_all(fold(x, s), s, fn) for x, s in zip(tensors, slots)], axis=-1)


def with_probe_channels(tensors: Tensors, activations: Sequence[jax.Array]) -> Tensors:
    """Slot tensors with each bias slot ``b_{l-1} (B, d_l, 1)`` widened by the probe
    activations of layer ``l``, ``(B, d_l, K)``, to ``1 + K`` channels."""
    L = len(tensors) // 2
    biases = tuple(jnp.concatenate([b, a.astype(b.dtype)], axis=-1) for b, a in zip(tensors[L:], activations[1:]))
    return tensors[:L] + biases


class DWSClassifier(nn.Module):
    """DWSNet classifier (Navon et al. 2023): DWS encoder -> invariant pooling -> MLP head -> ``(B, num_classes)``.

    Defaults follow the DWSNets reference classifier (``experiments/mnist/trainer.py``):
    BatchNorm before every ReLU (``normalization="batch"``, the reference's
    ``bn=True``) and set attention for the neuron-indexed terms
    (``set_layer="sab"``, 8 heads, the reference's ``set_layer="sab"``).
    ``normalization="none", set_layer="linear"`` is the paper's linear layers
    (comparisons: see ``docs/recipes.md``). BatchNorm's running statistics are
    the ``batch_stats`` collection: apply with ``{"params", "batch_stats"}``, and
    with ``mutable=["batch_stats"]`` when ``train=True``
    (:func:`dwsjax.train.train_step` does). ``head_hidden=0`` makes the head one
    linear map, the reference's readout (``InvariantLayer`` with ``n_out_fc=1``,
    ``nn/layers/layers.py``).

    :meth:`features` is the representation before the head, ``(B, F)`` with
    ``F = sum_i F_i`` pooled channels (used for self-supervised pre-training).

    ``probe`` (:class:`dwsjax.models.probes.ProbeConfig`) adds probe features:
    the ``K`` activations of each neuron of layers ``1..L`` at the probe inputs
    become ``K`` extra input channels of the bias slot ``b_{l-1}`` indexed by that
    neuron, beside the bias itself. They are per-neuron features, so every DWS
    layer stays equivariant; the model then needs the raw weights (``raw=``).

    Attributes:
        spec: Architecture of the input weight spaces.
        num_classes: Number of classes (logits).
        hidden: Channels of every DWS layer (DWS-32: 32; the augmentation paper uses 128).
        depth: Number of DWS layers.
        reduction: Pooling over permuted axes, ``"max"``, ``"mean"`` or ``"sum"``.
        normalization: ``"batch"``, ``"layer"`` or ``"none"`` after every DWS layer.
        dropout: Dropout rate after every DWS layer and in the head.
        head_hidden: Width of the head's hidden layer; ``0``: a linear head.
        set_layer: ``"sab"`` or ``"linear"`` (:class:`DWSLayer`).
        heads: Attention heads of ``"sab"``.
        probe: Probe features (:class:`dwsjax.models.probes.ProbeConfig`), or ``None``.
    """

    spec: MLPSpec
    num_classes: int
    hidden: int = 32
    depth: int = 4
    reduction: str = "max"
    normalization: str = "batch"
    dropout: float = 0.0
    head_hidden: int = 128
    set_layer: str = "sab"
    heads: int = 8
    probe: ProbeConfig | None = None

    def setup(self):
        if self.probe is not None:
            self.probe_activations = ProbeActivations(self.probe)
        self.encoder = DWSEncoder(
            self.spec,
            self.hidden,
            self.depth,
            self.reduction,
            self.normalization,
            self.dropout,
            self.set_layer,
            self.heads,
        )
        if self.head_hidden:
            self.head_hidden_layer = nn.Dense(self.head_hidden, name="head_hidden")
        self.head_dropout = nn.Dropout(self.dropout)
        self.head_out = nn.Dense(self.num_classes)

    def features(self, ws: WeightSpace, train: bool = False, raw: WeightSpace | None = None) -> jax.Array:
        """Invariant representation of a batch of weight spaces, before the head.

        Args:
            ws: Weight spaces of architecture ``spec`` with batch shape ``(B,)`` (normalised, as
                :func:`dwsjax.weights.normalize` makes them).
            train: Training mode: batch statistics and dropout.
            raw: The same INRs unnormalised; read by probe features only (required with ``probe``).

        Returns:
            ``(B, F)`` features, ``F = sum_i F_i`` pooled channels over all slots; invariant to
            hidden-neuron permutations of ``ws`` (and of ``raw`` alike).

        Raises:
            ValueError: If ``ws`` does not have architecture ``spec``, or ``raw`` is missing with ``probe``.
        """
        check_model_input(ws, self.spec)
        tensors = to_tensors(ws)
        if self.probe is not None:
            raw = required_raw(raw, type(self).__name__)
            check_model_input(raw, self.spec)
            tensors = with_probe_channels(tensors, self.probe_activations(raw))
        tensors = self.encoder(tensors, train)
        return invariant_pool(tensors, self.spec, self.reduction)

    def __call__(self, ws: WeightSpace, train: bool = False, raw: WeightSpace | None = None) -> jax.Array:
        """Classify a batch of weight spaces.

        Args:
            ws: Weight spaces of architecture ``spec`` with batch shape ``(B,)``.
            train: Training mode: batch statistics (apply with ``mutable=["batch_stats"]``) and dropout
                (pass ``rngs={"dropout": key}``).
            raw: The same INRs unnormalised (probe features only, :meth:`features`).

        Returns:
            Logits ``(B, num_classes)``, invariant to hidden-neuron permutations of ``ws``.

        Raises:
            ValueError: If ``ws`` does not have architecture ``spec``, or ``raw`` is missing with ``probe``.
        """
        features = self.features(ws, train, raw)
        if self.head_hidden:
            features = nn.relu(self.head_hidden_layer(features))
        features = self.head_dropout(features, deterministic=not train)
        return self.head_out(features)


class DWSWeightModel(nn.Module):
    """Equivariant weight -> weight model: DWS encoder then a DWS layer to one channel.

    Returns a :class:`WeightSpace` of the same spec and batch ``(B,)``; permuting
    the hidden neurons of the input permutes the output the same way.
    """

    spec: MLPSpec
    hidden: int = 32
    depth: int = 4
    reduction: str = "max"
    normalization: str = "none"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False) -> WeightSpace:
        check_model_input(ws, self.spec)
        tensors = DWSEncoder(
            self.spec,
            self.hidden,
            self.depth,
            self.reduction,
            self.normalization,
            self.dropout,
            name="encoder",
        )(to_tensors(ws), train)
        return from_tensors(DWSLayer(self.spec, 1, self.reduction, name="dws_out")(tensors))
