"""3D INR quality figures (dwsjax.shape_quality) and the signs of point-cloud SDFs."""

import numpy as np
import pytest

from dwsjax.data.shapes import signed_distance
from dwsjax.shape_quality import chamfer_distance, level_set_points, near_surface_error, sign_accuracy
from dwsjax.siren import grid_coords


def cube_cloud(n_per_face: int, half: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Points on the six faces of the cube ``[-half, half]^3`` with outward normals."""
    points, normals = [], []
    for axis in range(3):
        for side in (-1.0, 1.0):
            p = rng.uniform(-half, half, (n_per_face, 3))
            p[:, axis] = side * half
            n = np.zeros((n_per_face, 3))
            n[:, axis] = side
            points.append(p)
            normals.append(n)
    return np.concatenate(points).astype(np.float32), np.concatenate(normals).astype(np.float32)


def test_signed_distance_of_a_cube_is_negative_inside_and_positive_outside():
    rng = np.random.default_rng(0)
    points, normals = cube_cloud(1500, 0.5, rng)
    query = rng.uniform(-1, 1, (3000, 3)).astype(np.float32)
    box = np.abs(query).max(axis=-1)
    clear = np.abs(box - 0.5) > 0.03
    sdf = signed_distance(query, points, normals)
    assert np.all((sdf[clear] < 0) == (box[clear] < 0.5))
    assert (box < 0.5).sum() > 100 and (box > 0.5).sum() > 100


def test_sign_accuracy_and_near_surface_error_on_an_analytic_sdf():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, 4000, 3))
    true = np.linalg.norm(x, axis=-1) - 0.5
    assert sign_accuracy(true, true)[0] == 1.0
    assert sign_accuracy(-true, true)[0] == 0.0
    shifted = true + 0.01
    assert near_surface_error(shifted, true)[0] == pytest.approx(0.01, abs=1e-9)
    flipped_near = np.where(np.abs(true) < 0.05, -true, true)
    assert near_surface_error(flipped_near, true)[0] == pytest.approx(2 * np.abs(true[np.abs(true) < 0.05]).mean())
    assert np.isnan(near_surface_error(true + 1.0, true + 1.0)[0])  # no query near the surface


def test_chamfer_distance_of_a_sphere_level_set_is_below_the_grid_spacing():
    resolution = 32
    grid = np.asarray(grid_coords(resolution, 3))
    sdf = np.linalg.norm(grid, axis=-1) - 0.6
    (level_set,) = level_set_points(sdf[None], resolution)
    rng = np.random.default_rng(2)
    directions = rng.standard_normal((5000, 3))
    sphere = 0.6 * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    spacing = 2 / (resolution - 1)
    assert 0 < chamfer_distance(level_set, sphere) < spacing
    assert chamfer_distance(sphere, sphere) == 0.0
    assert chamfer_distance(level_set, sphere + [0.2, 0, 0]) > 0.05
    assert chamfer_distance(np.zeros((0, 3)), sphere) == float("inf")


def test_a_shape_store_records_quality_figures(tmp_path):
    """Fitting real ModelNet40 shapes writes sign accuracy, near-surface error and Chamfer distance per INR."""
    from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
    from tests.test_data import real_dir

    real_dir("modelnet40")
    config = InrDatasetConfig("modelnet40", "train", steps=20, n_points=256)
    store = build_inr_store(tmp_path / "store", config, objects=2, progress=False)
    summary = store.summary()
    assert 0.0 <= summary["mean_sign_accuracy"] <= 1.0
    assert summary["mean_near_error"] > 0 and summary["median_chamfer"] > 0
    entry = store.manifest["shards"]["0"]
    assert len(entry["chamfer"]) == len(entry["psnr"]) == 2
    assert len(store.load().labels) == 2
