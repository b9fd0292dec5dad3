"""Function-space probe (dwsjax.function_probe): grids, rendering and the linear classifier."""

import jax
import numpy as np
import pytest

from dwsjax.function_probe import linear_probe, occupancy_grid, rendered_functions
from dwsjax.siren import render_image, siren_init_batch
from dwsjax.weights import mlp_spec


def test_occupancy_grid_marks_the_cells_holding_points():
    points = np.array([[[-0.99, -0.99, -0.99], [0.99, 0.99, 0.99], [0.99, 0.99, 0.98]]], np.float32)
    grid = occupancy_grid(points, 4)
    assert grid.shape == (1, 64) and grid.sum() == 2
    assert grid[0, 0] == 1 and grid[0, 63] == 1


def test_rendered_functions_are_the_rendered_images_flattened():
    ws = siren_init_batch(jax.random.split(jax.random.key(0), 5), mlp_spec(2, 8, 8, 3))
    features = rendered_functions(ws, "image", (6, 7), output_offset=0.5, chunk=2)
    np.testing.assert_allclose(
        features, np.asarray(render_image(ws, 6, 7, output_offset=0.5)).reshape(5, -1), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(ValueError, match="kind"):
        rendered_functions(ws, "audio", (6,))


def test_linear_probe_separates_linearly_separable_classes_and_refuses_nan():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 20)) * 4

    def split(n):
        y = rng.integers(0, 3, n)
        return (centres[y] + rng.standard_normal((n, 20))).astype(np.float32), y

    result = linear_probe(split(300), split(100), split(100), 3, weight_decays=(1e-3,))
    assert result.test_accuracy > 0.95 and result.train_accuracy > 0.95
    bad = split(10)
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(split(30), split(10), bad, 3)
