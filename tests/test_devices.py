"""Devices: fitting on every CPU device, training on one unless DWSJAX_TRAIN_DEVICES says otherwise, and
data-parallel training equal to single-device training."""

import os
import subprocess
import sys

import pytest


def run_on_devices(script: str, devices: int, timeout: int = 120) -> None:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    env.pop("DWSJAX_TRAIN_DEVICES", None)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=timeout)


def test_fitting_uses_every_cpu_device_and_training_one():
    """Training on one CPU device needs no all-reduce, which XLA:CPU can deadlock on."""
    script = (
        "import os, pytest\n"
        "from dwsjax.devices import data_parallel_mesh, local_mesh\n"
        "assert local_mesh().devices.size == 2, local_mesh()\n"
        "assert data_parallel_mesh().devices.size == 1, data_parallel_mesh()\n"
        "os.environ['DWSJAX_TRAIN_DEVICES'] = '2'\n"
        "assert data_parallel_mesh().devices.size == 2, data_parallel_mesh()\n"
        "os.environ['DWSJAX_TRAIN_DEVICES'] = '3'\n"
        "with pytest.raises(ValueError, match='from 1 to 2'):\n"
        "    data_parallel_mesh()\n"
    )
    run_on_devices(script, 2)


DATA_PARALLEL = """
import os
import numpy as np
from dwsjax import TrainConfig, build_model, mlp_spec, train_recipe
from dwsjax.plan import random_inrs
from dwsjax.train import train_classifier

spec = mlp_spec(2, 8, 8, 1)
data = random_inrs(spec, 64, 4)


def history(devices):
    os.environ["DWSJAX_TRAIN_DEVICES"] = str(devices)
    model = build_model("dws", spec, 4, hidden=8)  # BatchNorm: statistics over the whole, split batch
    recipe = train_recipe("dwsnets")._replace(batch_size=16)
    epochs = train_classifier(model, data, data, data, 4, TrainConfig(recipe, epochs=2), None, progress=False)
    return np.array([[e["train_loss"], e["val_loss"], e["val_accuracy"]] for e in epochs["epochs"]])


# Summation order differs across devices; Adam's normalised steps carry that into the second epoch (~4e-4).
np.testing.assert_allclose(history(4), history(1), rtol=2e-3)
"""


@pytest.mark.slow
def test_data_parallel_training_on_four_devices_equals_one_device():
    """Batches split over 4 devices, parameters replicated: the same losses as on one device."""
    run_on_devices(DATA_PARALLEL, 4, timeout=600)
