"""Local devices: one CPU device per core for fitting, 1-D meshes for fitting and training, and this
process's share of work split over the processes of a ``jax.distributed`` job."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh

BATCH_AXIS = "batch"
TRAIN_DEVICES = "DWSJAX_TRAIN_DEVICES"


def use_all_cpu_cores() -> None:
    """Expose one XLA CPU device per core (call before any JAX computation).

    Fitting thousands of tiny SIRENs is fastest as independent small problems,
    one per core, each small enough to stay in cache; XLA:CPU otherwise runs one
    device whose small operations do not spread well over cores. Has no effect on
    GPU/TPU, when ``XLA_FLAGS`` already sets a host device count, or once a
    backend is initialised (then a warning-free no-op).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:
        pass


def local_mesh() -> Mesh:
    """A 1-D mesh named ``"batch"`` over the process's local devices."""
    return Mesh(np.array(jax.local_devices()), (BATCH_AXIS,))


def data_parallel_mesh() -> Mesh:
    """A 1-D mesh named ``"batch"`` for training: all local accelerators, or one CPU device.

    Data parallelism needs an all-reduce of the gradients in every step. XLA:CPU runs
    it inside its intra-op thread pool, and with one device per core that deadlocks
    now and then on a busy machine (all threads waiting in the rendezvous; XLA aborts
    after 40 s). One CPU device needs no collective and its matrix products still use
    every core. Fitting (``local_mesh``) has no collectives and keeps one device per core.
    ``DWSJAX_TRAIN_DEVICES=n`` trains on the first ``n`` local devices instead, CPU included.
    """
    devices = jax.local_devices()
    wanted = os.environ.get(TRAIN_DEVICES)
    if wanted:
        if not wanted.isdigit() or not 1 <= int(wanted) <= len(devices):
            raise ValueError(f"{TRAIN_DEVICES}={wanted!r}: give a device count from 1 to {len(devices)}")
        devices = devices[: int(wanted)]
    elif devices[0].platform == "cpu":
        devices = devices[:1]
    return Mesh(np.array(devices), (BATCH_AXIS,))


def process_worker(worker: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process among those sharing a job's shards: ``worker`` as given, by
    default this process among the processes of a ``jax.distributed`` job (``(0, 1)`` alone).

    Raises:
        ValueError: If the index does not lie in ``[0, count)``.
    """
    index, count = (jax.process_index(), jax.process_count()) if worker is None else worker
    if not 0 <= index < count:
        raise ValueError(f"worker {index} of {count}: the index must lie in [0, {count})")
    return index, count
