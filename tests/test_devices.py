import os
import subprocess
import sys


def test_fitting_uses_every_cpu_device_and_training_one():
    """Training on one CPU device needs no all-reduce, which XLA:CPU can deadlock on."""
    script = (
        "from dwsjax.devices import data_parallel_mesh, local_mesh\n"
        "assert local_mesh().devices.size == 2, local_mesh()\n"
        "assert data_parallel_mesh().devices.size == 1, data_parallel_mesh()\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
