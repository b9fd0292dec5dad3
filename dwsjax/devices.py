"""Local devices: one CPU device per core, and a 1-D mesh over all local devices."""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh

BATCH_AXIS = "batch"


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
