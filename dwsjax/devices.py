"""Local devices: one CPU device per core, and a 1-D mesh over all local devices."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh

BATCH_AXIS = "batch"
# XLA:CPU aborts the process when a device thread leaves a collective more than 40 s after the others,
# which happens on an oversubscribed CPU (two jobs on two cores); a slow step is not an error here.
COLLECTIVE_TERMINATE_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TERMINATE_SECONDS = 3600


def use_all_cpu_cores() -> None:
    """Expose one XLA CPU device per core (call before any JAX computation).

    Fitting thousands of tiny SIRENs is fastest as independent small problems,
    one per core, each small enough to stay in cache; XLA:CPU otherwise runs one
    device whose small operations do not spread well over cores. Has no effect on
    GPU/TPU, when ``XLA_FLAGS`` already sets a host device count, or once a
    backend is initialised (then a warning-free no-op). Also lets a CPU device
    wait up to an hour for the others in a collective (``XLA_FLAGS``), so that a
    run sharing its cores with other jobs is slowed down, not killed.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if COLLECTIVE_TERMINATE_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {COLLECTIVE_TERMINATE_FLAG}={COLLECTIVE_TERMINATE_SECONDS}".strip()
    if "xla_force_host_platform_device_count" in flags:
        return
    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:
        pass


def local_mesh() -> Mesh:
    """A 1-D mesh named ``"batch"`` over the process's local devices."""
    return Mesh(np.array(jax.local_devices()), (BATCH_AXIS,))
