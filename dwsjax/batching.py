"""Batches of INRs for training and evaluation, split over the local devices.

Data parallelism through ``jax.sharding``: batches are split along their first
axis over the devices of :func:`dwsjax.devices.data_parallel_mesh`, parameters
and optimiser state are replicated; on CPU one device trains with all cores.
Batches are gathered on the host.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from dwsjax.devices import BATCH_AXIS, data_parallel_mesh
from dwsjax.store import InrBatch

PARTNER_STREAM = 0x9A27  # folded into a step's key for its MixUp partners, apart from the step's own draws


def on_host(data: InrBatch) -> InrBatch:
    """``data`` with NumPy weights: batches are then gathered on the host, without
    compiling a device gather for every dataset size."""
    return data._replace(weights=jax.tree.map(np.asarray, data.weights))


def batch_shardings() -> tuple[NamedSharding, NamedSharding]:
    """``(batch, replicated)`` shardings over the training devices (``data_parallel_mesh``):
    batches are split along their first axis, parameters and optimizer state are replicated."""
    mesh = data_parallel_mesh()
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS)), NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, n: int, sharding: NamedSharding) -> None:
    """Refuse a batch size below 1, not a multiple of the device count, or above ``n``.

    Args:
        batch_size: Training batch size.
        n: Number of training INRs.
        sharding: The batch sharding (:func:`batch_shardings`); its mesh gives the device count.

    Raises:
        ValueError: If the batch size does not suit the data or the devices.
    """
    devices = sharding.mesh.devices.size
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size} (--batch-size)")
    if batch_size % devices:
        raise ValueError(f"batch size {batch_size} must be a multiple of the {devices} local devices")
    if n < batch_size:
        raise ValueError(f"{n} training INRs are fewer than one batch of {batch_size}")


def shard(tree, sharding):
    """Put every leaf of ``tree`` (host arrays) on the devices with ``sharding``."""
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def padded_batches(n: int, batch_size: int, sharding: NamedSharding):
    """Evaluation batches covering ``range(n)``, all of one size.

    Args:
        n: Number of rows.
        batch_size: Batch size, rounded up to a multiple of the device count.
        sharding: The batch sharding (:func:`batch_shardings`).

    Returns:
        An iterator of ``(indices, mask)``, both ``(batch,)``: the last batch repeats row
        ``n - 1`` with ``mask = 0``.
    """
    devices = sharding.mesh.devices.size
    batch_size = math.ceil(batch_size / devices) * devices
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        yield np.minimum(idx, n - 1), (idx < n).astype(np.float32)


def epoch_batches(seed: int, epoch: int, n: int, batch_size: int) -> list[np.ndarray]:
    """Index batches of one epoch.

    Args:
        seed: The run's seed.
        epoch: The epoch (0-based).
        n: Number of training INRs.
        batch_size: Batch size.

    Returns:
        ``n // batch_size`` index arrays ``(batch_size,)``: a ``(seed, epoch)``-seeded
        shuffle of ``range(n)`` cut into full batches (the remainder is dropped).
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(n // batch_size)]


def partner_indices(key: jax.Array, pool_size: int, batch_size: int) -> np.ndarray:
    """MixUp partners of one training batch, drawn from a pool of INRs.

    Each sample's partner is drawn uniformly, with replacement, from the whole pool, independently of
    the batch (as the augmentation paper's released code does with ``random.randint`` over its
    dataset), from a NumPy generator seeded with the step's key: a resumed run draws the same partners.

    Args:
        key: The training step's PRNG key (:func:`dwsjax.loop.step_key`).
        pool_size: Number of INRs in the pool.
        batch_size: Batch size.

    Returns:
        ``(batch_size,)`` indices into the pool.
    """
    seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, PARTNER_STREAM)))
    return np.random.default_rng(seed).integers(0, pool_size, batch_size)
