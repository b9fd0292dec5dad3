"""Fit many SIRENs at once: ``vmap``-style batching, a step loop, Adam, early stopping.

Every INR ``n`` minimises its own ``MSE_n = mean_{p,c} (f(x_p; theta_n) - y_{n,p,c})^2``
with Adam. INRs are independent, so they are fitted in chunks of ``chunk_size``
per device (small enough that activations stay in cache), chunks run one after
another on each device (``lax.map``), and devices run in parallel
(``shard_map`` over all local devices). The gradient of the SIREN loss is
written out by hand (the backward pass of ``sin(w0 * z)`` reuses ``w0 * z``),
with :mod:`dwsjax.sine`'s fused polynomials instead of ``jnp.sin``.

Each INR's initial weights come from a key derived from ``(seed, object_id,
view)`` alone, so results do not depend on how a dataset is chunked, sharded
or resumed.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from dwsjax.devices import BATCH_AXIS, local_mesh
from dwsjax.sine import fast_cos, fast_sin
from dwsjax.siren import SIREN_W0, siren_init_batch
from dwsjax.weights import MLPSpec, WeightSpace


class FitConfig(NamedTuple):
    """How INRs are fitted. ``target_psnr=None`` disables early stopping."""

    spec: MLPSpec
    steps: int = 500
    learning_rate: float = 1e-3
    w0: float = SIREN_W0
    init_scheme: str = "sitzmann"
    target_psnr: float | None = None
    data_range: float = 1.0
    chunk_size: int = 8

    def to_json(self) -> dict:
        return {**self._asdict(), "spec": list(self.spec.widths)}

    @classmethod
    def from_json(cls, d: dict) -> "FitConfig":
        return cls(**{**d, "spec": MLPSpec(tuple(d["spec"]))})


class FitResult(NamedTuple):
    """Fitted weights (batch ``(N,)``) and per-INR final ``mse``, ``psnr``, ``steps``."""

    weights: WeightSpace
    mse: jax.Array
    psnr: jax.Array
    steps: jax.Array


def inr_keys(seed: int, object_ids: np.ndarray, views: np.ndarray) -> jax.Array:
    """One key per INR: ``fold_in(fold_in(key(seed), object_id), view)``; shapes ``(N,)``."""
    base = jax.random.key(seed)
    return jax.vmap(lambda o, v: jax.random.fold_in(jax.random.fold_in(base, o), v))(
        jnp.asarray(object_ids, jnp.uint32), jnp.asarray(views, jnp.uint32)
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
    h, hs, us = coords, [coords], []
    for w, b in zip(ws.weights[:-1], ws.biases[:-1]):
        u = w0 * (h @ w + b[..., None, :])
        h = fast_sin(u)
        us.append(u)
        hs.append(h)
    residual = h @ ws.weights[-1] + ws.biases[-1][..., None, :] - targets
    mse = jnp.mean(residual * residual, axis=(-2, -1))
    g = residual * (2.0 / (residual.shape[-2] * residual.shape[-1]))
    grad_w, grad_b = [None] * num_layers, [None] * num_layers
    for i in reversed(range(num_layers)):
        grad_w[i] = jnp.einsum("...pi,...pj->...ij", hs[i], g)
        grad_b[i] = jnp.sum(g, axis=-2)
        if i:
            g = (g @ jnp.swapaxes(ws.weights[i], -1, -2)) * (w0 * fast_cos(us[i - 1]))
    return mse, WeightSpace(tuple(grad_w), tuple(grad_b))


def mse_to_psnr(mse: jax.Array, data_range: float) -> jax.Array:
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-20))


def _fit_chunk(keys: jax.Array, coords: jax.Array, targets: jax.Array, config: FitConfig) -> FitResult:
    """Fit ``len(keys)`` INRs with Adam; an INR stops updating once it reaches the target PSNR."""
    optimizer = optax.adam(config.learning_rate)
    ws = siren_init_batch(keys, config.spec, config.w0, config.init_scheme)
    target_mse = (
        -1.0
        if config.target_psnr is None
        else config.data_range**2 * 10.0 ** (-config.target_psnr / 10.0)
    )

    def active_of(mse):
        return mse > target_mse

    def cond(state):
        step, _, _, mse, _ = state
        return (step < config.steps) & jnp.any(active_of(mse))

    def body(state):
        step, ws, opt_state, mse, steps_taken = state
        mse, grads = siren_mse_and_grad(ws, coords, targets, config.w0)
        active = active_of(mse)
        updates, new_opt_state = optimizer.update(grads, opt_state, ws)
        new_ws = optax.apply_updates(ws, updates)

        def keep_active(new, old):
            mask = active.reshape(active.shape + (1,) * (new.ndim - 1)) if new.ndim else True
            return jnp.where(mask, new, old)

        ws = jax.tree.map(keep_active, new_ws, ws)
        opt_state = jax.tree.map(keep_active, new_opt_state, opt_state)
        return step + 1, ws, opt_state, mse, steps_taken + active

    per_inr = targets[:, 0, 0]
    init = (0, ws, optimizer.init(ws), jnp.full_like(per_inr, jnp.inf), jnp.zeros_like(per_inr, jnp.int32))
    _, ws, _, _, steps_taken = jax.lax.while_loop(cond, body, init)
    mse, _ = siren_mse_and_grad(ws, coords, targets, config.w0)
    return FitResult(ws, mse, mse_to_psnr(mse, config.data_range), steps_taken)


def fit_sirens(
    keys: jax.Array, coords: jax.Array, targets: jax.Array, config: FitConfig
) -> FitResult:
    """Fit one SIREN per key to its target.

    ``keys`` ``(N,)`` (see :func:`inr_keys`); ``coords`` ``(P, d_0)`` shared or
    ``(N, P, d_0)`` per INR; ``targets`` ``(N, P, d_L)``. INRs are padded to a
    multiple of ``devices * chunk_size``; padding is dropped from the result.
    """
    n = keys.shape[0]
    spec = config.spec
    if targets.ndim != 3 or targets.shape[0] != n or targets.shape[-1] != spec.widths[-1]:
        raise ValueError(
            f"targets must be (N={n}, P, {spec.widths[-1]}) for spec {spec}; got {tuple(targets.shape)}"
        )
    per_inr_coords = coords.ndim == 3
    if coords.shape[-1] != spec.widths[0] or (per_inr_coords and coords.shape[0] != n):
        raise ValueError(
            f"coords must be (P, {spec.widths[0]}) or (N={n}, P, {spec.widths[0]}) for spec "
            f"{spec}; got {tuple(coords.shape)}"
        )
    mesh = local_mesh()
    devices = mesh.devices.size
    chunk = max(1, min(config.chunk_size, math.ceil(n / devices)))
    padded = math.ceil(n / (devices * chunk)) * devices * chunk

    def pad(x):
        return jnp.concatenate([x, jnp.repeat(x[-1:], padded - n, axis=0)]) if padded > n else x

    keys, targets = pad(keys), pad(targets)
    if per_inr_coords:
        coords = pad(coords)
    result = _fit_sharded(keys, coords, targets, config, mesh, chunk, per_inr_coords)
    return jax.tree.map(lambda x: x[:n], result)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _fit_sharded(keys, coords, targets, config, mesh, chunk, per_inr_coords):
    """Shard INRs over ``mesh``; each device fits its share ``chunk`` INRs at a time."""
    batch = PartitionSpec(BATCH_AXIS)

    def per_device(keys, coords, targets):
        def chunked(x):
            return x.reshape((-1, chunk) + x.shape[1:])

        def fit_one(args):
            k, t, c = args
            return _fit_chunk(k, coords if c is None else c, t, config)

        xs = (chunked(keys), chunked(targets), chunked(coords) if per_inr_coords else None)
        out = jax.lax.map(fit_one, xs)
        return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out)

    in_specs = (batch, batch if per_inr_coords else PartitionSpec(), batch)
    return jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=batch)(
        keys, coords, targets
    )
