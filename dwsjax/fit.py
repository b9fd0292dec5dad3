"""Fit many SIRENs at once: batched steps, per-INR Adam, early stopping with refilled slots.

Every INR ``n`` minimises its own ``MSE_n = mean_{p,c} (f(x_p; theta_n) + c - y_{n,p,c})^2``
(``c`` the recipe's output offset) with Adam. INRs are independent: each device
fits its share of them through ``chunk_size`` slots that step together as
batched matmuls (small enough that activations stay in cache), and devices run
in parallel (``shard_map`` over all local devices). When an INR reaches the
target PSNR or the step cap, its weights are written out and its slot takes the
next waiting INR (continuous batching), so the cost is the sum of the steps the
INRs need, not ``slots x`` the slowest one's. The gradient of the SIREN loss is
written out by hand (the backward pass reuses the forward's ``cos(u)``), with
:mod:`dwsjax.sine`'s fused polynomials instead of ``jnp.sin``.

Each INR's initial weights come from a key derived from ``(seed, split,
object_id, view)`` alone, and its Adam state is its own, so an INR's result does not
depend on which other INRs share its batch (up to float rounding of the batched
matmuls); for a given input and configuration the result is bitwise reproducible.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from dwsjax.devices import BATCH_AXIS, local_mesh
from dwsjax.recipes import INR_INITS, FitRecipe
from dwsjax.sine import fast_sin_cos
from dwsjax.siren import SIREN_W0, siren_init_batch
from dwsjax.weights import MLPSpec, WeightSpace

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8  # PyTorch's (and optax's) Adam defaults


class FitConfig(NamedTuple):
    """How INRs are fitted: at most ``steps`` Adam steps each, or until ``target_psnr``
    (``None``: no early stopping). Usually built from a recipe, :meth:`from_recipe`.

    Attributes:
        spec: SIREN architecture.
        steps: Step cap per INR.
        learning_rate: Adam's learning rate.
        w0: Frequency factor of the sine layers.
        init_scheme: ``"dwsnets"`` or ``"sitzmann"`` (:func:`dwsjax.siren.siren_init`).
        output_offset: Constant ``c`` of ``y = f(x) + c``: INRs fit ``targets - c``.
        target_psnr: PSNR in dB at which an INR stops; ``None``: never.
        data_range: Range of the targets in the PSNR (1 for images in ``[0, 1]``).
        chunk_size: INRs that step together on one device (slots).
    """

    spec: MLPSpec
    steps: int = 500
    learning_rate: float = 1e-3
    w0: float = SIREN_W0
    init_scheme: str = "dwsnets"
    output_offset: float = 0.0
    target_psnr: float | None = None
    data_range: float = 1.0
    chunk_size: int = 8
    weight_decay: float = 0.0

    @classmethod
    def from_recipe(cls, spec: MLPSpec, recipe: FitRecipe, data_range: float = 1.0, chunk_size: int = 8) -> FitConfig:
        """The fit configuration of a named recipe (:func:`dwsjax.recipes.fit_recipe`).

        Args:
            spec: SIREN architecture.
            recipe: Init scheme, output offset, learning rate, step cap and target PSNR.
            data_range: Range of the targets in the PSNR.
            chunk_size: INRs that step together on one device.

        Returns:
            The :class:`FitConfig`; override a field with ``config._replace(steps=...)``.
        """
        return cls(
            spec,
            steps=recipe.steps,
            learning_rate=recipe.learning_rate,
            init_scheme=recipe.init,
            output_offset=recipe.output_offset,
            target_psnr=recipe.target_psnr,
            data_range=data_range,
            chunk_size=chunk_size,
            weight_decay=recipe.weight_decay,
        )

    def to_json(self) -> dict:
        """JSON fields; ``weight_decay`` only when nonzero, so configs without it keep their identity."""
        fields = {**self._asdict(), "spec": list(self.spec.widths)}
        if not self.weight_decay:
            fields.pop("weight_decay")
        return fields

    @classmethod
    def from_json(cls, d: dict) -> FitConfig:
        return cls(**{**d, "spec": MLPSpec(tuple(d["spec"]))})


class FitResult(NamedTuple):
    """What :func:`fit_sirens` returns: fitted weights and per-INR results.

    Attributes:
        weights: Fitted SIRENs, batch shape ``(N,)``.
        mse: ``(N,)`` final MSE against ``targets - output_offset``.
        psnr: ``(N,)`` final PSNR in dB, ``10 log10(data_range^2 / mse)``.
        steps: ``(N,)`` Adam steps taken.
    """

    weights: WeightSpace
    mse: jax.Array
    psnr: jax.Array
    steps: jax.Array


SPLIT_KEY_STREAMS = {"train": 0, "test": 1}


def inr_keys(
    seed: int, object_ids: np.ndarray, views: np.ndarray, split: str = "train", init: str = "independent"
) -> jax.Array:
    """One PRNG key per INR, by ``init`` (:data:`INR_INITS`).

    ``"independent"`` (the papers'): ``fold_in(fold_in(fold_in(key(seed), split), object_id), view)``.
    The split is part of the key: object ``i`` of the test split must not start from
    the same weights as object ``i`` of the train split (after a short fit an INR still
    correlates strongly with its init, so shared inits would tie test INRs to
    training INRs, and on datasets whose labels follow the index, leak the label).

    ``"shared"``: ``fold_in(key(seed), view)``: view ``v`` of every object, in every split, starts
    from the same weights, so INRs differ only by what they were fitted to (no label can leak: the
    key ignores the object).

    Args:
        seed: Base seed.
        object_ids: ``(N,)`` non-negative object ids (index in the official split order).
        views: ``(N,)`` view index of each INR (several INRs of one object differ by view).
        split: ``"train"`` or ``"test"``.
        init: ``"independent"`` or ``"shared"``.

    Returns:
        ``(N,)`` typed PRNG keys.

    Raises:
        ValueError: If ``split`` or ``init`` is unknown.
    """
    if split not in SPLIT_KEY_STREAMS:
        raise ValueError(f"split must be one of {sorted(SPLIT_KEY_STREAMS)}, got {split!r}")
    if init not in INR_INITS:
        raise ValueError(f"init must be one of {sorted(INR_INITS)}, got {init!r}")
    object_ids = jnp.asarray(object_ids, jnp.uint32)
    if init == "shared":
        return jax.vmap(lambda v: jax.random.fold_in(jax.random.key(seed), v))(jnp.asarray(views, jnp.uint32))
    base = jax.random.fold_in(jax.random.key(seed), SPLIT_KEY_STREAMS[split])
    return jax.vmap(lambda o, v: jax.random.fold_in(jax.random.fold_in(base, o), v))(
        object_ids, jnp.asarray(views, jnp.uint32)
    )


def siren_mse_and_grad(
    ws: WeightSpace, coords: jax.Array, targets: jax.Array, w0: float = SIREN_W0
) -> tuple[jax.Array, WeightSpace]:
    """Per-INR MSE ``(*B,)`` and its gradient, by an explicit backward pass.

    ``coords`` ``(P, d_0)`` or ``(*B, P, d_0)``; ``targets`` ``(*B, P, d_L)``.
    With ``u_i = w0 (h_i W_i + b_i)`` and ``h_{i+1} = sin(u_i)``:
    ``dW_i = h_i^T g_i``, ``db_i = sum_p g_i``, ``g_{i-1} = (g_i W_i^T) * w0 cos(u_{i-1})``,
    starting from ``g_{L-1} = 2 (y - t) / (P d_L)``.
    """
    num_layers = len(ws.weights)
    h, hs, cosines = coords, [coords], []
    for w, b in zip(ws.weights[:-1], ws.biases[:-1]):
        h, cos_u = fast_sin_cos(w0 * (h @ w + b[..., None, :]))
        cosines.append(cos_u)
        hs.append(h)
    residual = h @ ws.weights[-1] + ws.biases[-1][..., None, :] - targets
    mse = jnp.mean(residual * residual, axis=(-2, -1))
    g = residual * (2.0 / (residual.shape[-2] * residual.shape[-1]))
    grad_w, grad_b = [None] * num_layers, [None] * num_layers
    for i in reversed(range(num_layers)):
        grad_w[i] = jnp.einsum("...pi,...pj->...ij", hs[i], g)
        grad_b[i] = jnp.sum(g, axis=-2)
        if i:
            g = (g @ jnp.swapaxes(ws.weights[i], -1, -2)) * (w0 * cosines[i - 1])
    return mse, WeightSpace(tuple(grad_w), tuple(grad_b))


def mse_to_psnr(mse: jax.Array, data_range: float) -> jax.Array:
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-20))


def psnr_to_mse(psnr: float | None, data_range: float) -> float:
    """The MSE at which an INR reaches ``psnr`` dB; ``-1`` (never) for ``None``."""
    return -1.0 if psnr is None else data_range**2 * 10.0 ** (-psnr / 10.0)


class AdamState(NamedTuple):
    """Adam moments (like the weights, batch ``(C,)``) and each INR's step count ``(C,)``."""

    mu: WeightSpace
    nu: WeightSpace
    count: jax.Array


def adam_init(ws: WeightSpace, batch: int) -> AdamState:
    zeros = jax.tree.map(jnp.zeros_like, ws)
    return AdamState(zeros, zeros, jnp.zeros((batch,), jnp.int32))


def adam_step(
    ws: WeightSpace, grads: WeightSpace, state: AdamState, lr: float, weight_decay: float = 0.0
) -> tuple[WeightSpace, AdamState]:
    """One Adam step (Kingma & Ba, Alg. 1) for each INR with its own step count ``t``:
    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``theta <- theta - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``; with ``weight_decay``
    ``lambda > 0`` first ``theta <- (1 - lr lambda) theta`` (AdamW, Loshchilov & Hutter, as PyTorch's)."""
    if weight_decay:
        ws = jax.tree.map(lambda w: w * (1.0 - lr * weight_decay), ws)
    count = state.count + 1
    t = count.astype(jnp.float32)
    step_size = lr / (1.0 - ADAM_B1**t)
    root_correction = jnp.sqrt(1.0 - ADAM_B2**t)

    def per_inr(x, leaf):
        return x.reshape(x.shape + (1,) * (leaf.ndim - 1))

    mu = jax.tree.map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * g * g, state.nu, grads)
    ws = jax.tree.map(
        lambda w, m, v: w - per_inr(step_size, w) * m / (jnp.sqrt(v) / per_inr(root_correction, w) + ADAM_EPS),
        ws,
        mu,
        nu,
    )
    return ws, AdamState(mu, nu, count)


def _take(tree, index: jax.Array, n: int):
    """Rows ``index`` of every leaf (``n`` = idle slot, clamped to a valid row)."""
    safe = jnp.minimum(index, n - 1)
    return jax.tree.map(lambda x: x[safe], tree)


def _select(mask: jax.Array, new, old):
    """Per slot: ``new`` where ``mask`` ``(C,)`` else ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def _fit_queue(keys: jax.Array, coords: jax.Array, targets: jax.Array, config: FitConfig, slots: int) -> FitResult:
    """Fit the ``n = len(keys)`` INRs through ``slots`` slots, refilling each slot as its INR finishes.

    An INR finishes when its MSE reaches the target, after ``config.steps`` Adam
    steps, or when its MSE is not finite; its state at that moment is the result.
    """
    n = keys.shape[0]
    init = siren_init_batch(keys, config.spec, config.w0, config.init_scheme)
    targets = targets - config.output_offset
    per_inr_coords = coords.ndim == 3
    target_mse = psnr_to_mse(config.target_psnr, config.data_range)

    index = jnp.where(jnp.arange(slots) < n, jnp.arange(slots), n)
    ws = _take(init, index, n)
    out = FitResult(jax.tree.map(jnp.zeros_like, init), jnp.full((n,), jnp.inf), None, jnp.zeros((n,), jnp.int32))

    def cond(state):
        return jnp.any(state[0] < n)

    def body(state):
        index, next_inr, ws, adam, out = state
        mse, grads = siren_mse_and_grad(
            ws, _take(coords, index, n) if per_inr_coords else coords, _take(targets, index, n), config.w0
        )
        done = (index < n) & ((mse <= target_mse) | (adam.count >= config.steps) | ~jnp.isfinite(mse))
        dest = jnp.where(done, index, n)
        out = FitResult(
            jax.tree.map(lambda o, w: o.at[dest].set(w, mode="drop"), out.weights, ws),
            out.mse.at[dest].set(mse, mode="drop"),
            None,
            out.steps.at[dest].set(adam.count, mode="drop"),
        )
        ws, adam = adam_step(ws, grads, adam, config.learning_rate, config.weight_decay)
        queued = next_inr + jnp.cumsum(done) - 1
        index = jnp.where(done, jnp.minimum(queued, n), index)
        ws = _select(done, _take(init, index, n), ws)
        adam = _select(done, adam_init(ws, slots), adam)
        return index, next_inr + jnp.sum(done), ws, adam, out

    state = (index, jnp.minimum(slots, n), ws, adam_init(ws, slots), out)
    out = jax.lax.while_loop(cond, body, state)[-1]
    return out._replace(psnr=mse_to_psnr(out.mse, config.data_range))


def fit_sirens(keys: jax.Array, coords: jax.Array, targets: jax.Array, config: FitConfig) -> FitResult:
    """Fit one SIREN per key to its target.

    INR ``n`` starts from ``siren_init(keys[n])`` and minimises
    ``MSE_n = mean_{p,c} (f(x_p; theta_n) + output_offset - y_{n,p,c})^2`` with its own
    Adam, until ``config.target_psnr`` or ``config.steps`` (:mod:`dwsjax.fit`).
    INRs are padded to a multiple of the device count; padding is dropped from the result.

    Args:
        keys: ``(N,)`` PRNG keys (:func:`inr_keys`, or ``jax.random.split(key, N)``).
        coords: ``(P, d_0)`` coordinates shared by all INRs, or ``(N, P, d_0)`` per INR.
        targets: ``(N, P, d_L)`` values at the coordinates.
        config: The fit settings (:meth:`FitConfig.from_recipe`).

    Returns:
        :class:`FitResult` with weights of batch shape ``(N,)`` and per-INR ``mse``, ``psnr``, ``steps``.

    Raises:
        ValueError: If the shapes of ``coords`` or ``targets`` do not fit ``config.spec`` or ``N``.
    """
    n = keys.shape[0]
    spec = config.spec
    if targets.ndim != 3 or targets.shape[0] != n or targets.shape[-1] != spec.widths[-1]:
        raise ValueError(f"targets must be (N={n}, P, {spec.widths[-1]}) for spec {spec}; got {tuple(targets.shape)}")
    per_inr_coords = coords.ndim == 3
    if coords.shape[-1] != spec.widths[0] or (per_inr_coords and coords.shape[0] != n):
        raise ValueError(
            f"coords must be (P, {spec.widths[0]}) or (N={n}, P, {spec.widths[0]}) for spec "
            f"{spec}; got {tuple(coords.shape)}"
        )
    mesh = local_mesh()
    devices = mesh.devices.size
    slots = max(1, min(config.chunk_size, math.ceil(n / devices)))
    padded = math.ceil(n / devices) * devices

    def pad(x):
        return jnp.concatenate([x, jnp.repeat(x[-1:], padded - n, axis=0)]) if padded > n else x

    keys, targets = pad(keys), pad(targets)
    if per_inr_coords:
        coords = pad(coords)
    result = _fit_sharded(keys, coords, targets, config, mesh, slots, per_inr_coords)
    return jax.tree.map(lambda x: x[:n], result)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _fit_sharded(keys, coords, targets, config, mesh, slots, per_inr_coords):
    """Shard INRs over ``mesh``; each device fits its share through ``slots`` slots."""
    batch = PartitionSpec(BATCH_AXIS)
    in_specs = (batch, batch if per_inr_coords else PartitionSpec(), batch)
    fit = functools.partial(_fit_queue, config=config, slots=slots)
    # No collectives run inside, so replication (vma) checking has nothing to protect.
    return jax.shard_map(fit, mesh=mesh, in_specs=in_specs, out_specs=batch, check_vma=False)(keys, coords, targets)
