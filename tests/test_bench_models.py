"""experiments.bench_models: every DWS layout's training step runs (BatchNorm statistics included)."""

import pytest

from experiments import bench_models


@pytest.mark.parametrize("name", ["dws32", "dws32-linear", "dws32-probe"])
def test_benchmark_runs_a_training_step(name):
    line = bench_models.benchmark(name, batch=4, steps=1)
    assert line["samples_per_s"] > 0 and line["params"] > 0 and line["gflop_per_sample"] > 0
    assert line["config"]["normalization"] == ("none" if name == "dws32-linear" else "batch")
