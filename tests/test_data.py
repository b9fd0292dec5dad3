"""Data loaders, synthetic datasets and distance samples.

Real-data tests read ``$DWSJAX_DATA_DIR`` (CI: ``../shared/data``) and skip when
it is unset or the dataset is missing.
"""

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from dwsjax.data import (
    DATA_DIR_ENV,
    PointClouds,
    load_cifar10,
    load_idx_dataset,
    load_idx_images,
    load_modelnet10_points,
    load_modelnet40_points,
    load_off_mesh,
    load_targets,
    load_targets_or_fallback,
    normalise_shapes,
    object_rng,
    point_cloud_samples,
    sample_mesh_surface,
    signed_distance,
    synthetic3d,
)
from dwsjax.data.shapes import parse_off
from dwsjax.data.sources import find_dataset_dir
from dwsjax.siren import image_coords


def real_dir(*parts: str) -> Path:
    """``$DWSJAX_DATA_DIR/<parts>``, skipping the test when unavailable."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root:
        pytest.skip(f"{DATA_DIR_ENV} not set: real datasets unavailable")
    path = Path(root, *parts)
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def test_fmnist_train_images_md5():
    path = real_dir("fashion-mnist", "train-images-idx3-ubyte.gz")
    assert hashlib.md5(path.read_bytes()).hexdigest().startswith("8d4fb7e6")


@pytest.mark.parametrize(
    "name, first_labels, class0",
    [("fmnist", [9, 0, 0, 3], "T-shirt/top"), ("mnist", [5, 0, 4, 1], "0"), ("cifar10", [6, 9, 9, 4], "airplane")],
)
def test_real_image_targets(name, first_labels, class0):
    real_dir()
    targets = load_targets(name, "train", limit=5)
    height, width, channels = targets.shape
    assert targets.kind == "image" and targets.values.shape == (5, height * width, channels)
    assert targets.values.dtype == np.float32 and 0 <= targets.values.min() < targets.values.max() <= 1
    np.testing.assert_allclose(targets.coords, np.asarray(image_coords(height, width)))
    assert list(targets.labels[:4]) == first_labels and targets.labels.dtype == np.int32
    assert targets.class_names[0] == class0 and len(targets.class_names) == 10


def test_idx_and_cifar_full_splits():
    images, labels = load_idx_dataset(real_dir("fashion-mnist"), "test")
    assert images.shape == (10000, 28, 28, 1) and np.bincount(labels).tolist() == [1000] * 10
    images, labels = load_cifar10(real_dir("cifar10", "cifar-10-batches-bin"), "test")
    assert images.shape == (10000, 32, 32, 3) and np.bincount(labels).tolist() == [1000] * 10


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    raw = gzip.decompress(real_dir("mnist", "t10k-images-idx3-ubyte.gz").read_bytes())
    truncated = tmp_path / "t10k-images-idx3-ubyte.gz"
    truncated.write_bytes(gzip.compress(raw[:5000]))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_idx_images(truncated)
    cut_stream = tmp_path / "cut.gz"
    cut_stream.write_bytes(gzip.compress(raw)[:3000])
    with pytest.raises(ValueError, match="cut.gz.*gzip"):
        load_idx_images(cut_stream)
    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(b"\x01\x02" + raw[2:100])
    with pytest.raises(ValueError, match="magic"):
        load_idx_images(bad_magic)


def test_truncated_cifar_batch_is_a_clear_error(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(bytes(3073 * 2 + 10))
    with pytest.raises(ValueError, match="test_batch.bin.*3073"):
        load_cifar10(tmp_path, "test")


def test_missing_dataset_names_env_var_and_directories(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=DATA_DIR_ENV) as info:
        load_targets("modelnet40", "train")
    assert str(tmp_path / "modelnet40") in str(info.value) and "https://" in str(info.value)
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(FileNotFoundError, match=f"{DATA_DIR_ENV}.*tfds"):
        load_targets("fmnist", "test")


def test_no_implicit_data_dir(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        find_dataset_dir("mnist", None, ["*"])


def test_missing_dataset_falls_back_to_synthetic(tmp_path, monkeypatch):
    monkeypatch.setattr("dwsjax.data.images.tfds_installed", lambda: False)
    with pytest.warns(UserWarning, match="synthetic2d"):
        name, targets = load_targets_or_fallback("fmnist", "test", tmp_path, limit=3)
    assert name == "synthetic2d" and targets.values.shape[0] == 3 and targets.kind == "image"
    assert load_targets_or_fallback("synthetic2d", "test", limit=2)[0] == "synthetic2d"
    with pytest.raises(ValueError, match="fallback"):
        load_targets_or_fallback("fmnist", "test", tmp_path, fallback="mnist")


def test_modelnet40_points_and_sdf_targets():
    directory = real_dir("modelnet40", "modelnet40_normal_resampled_subset")
    clouds = load_modelnet40_points(directory, "test", limit=3)
    assert clouds.points.shape == (3, 10000, 3) and clouds.normals.shape == (3, 10000, 3)
    np.testing.assert_allclose(np.linalg.norm(clouds.normals, axis=-1), 1, atol=1e-2)
    assert len(clouds.class_names) == 40 and clouds.object_ids[0] >= 0
    targets = load_targets("modelnet40", "test", limit=3, n_points=1024)
    assert targets.kind == "sdf" and targets.coords.shape == (3, 1024, 3) and targets.values.shape == (3, 1024, 1)
    assert np.abs(targets.coords).max() <= 1
    assert np.mean(targets.values[:, 512:] > 0) > 0.7  # uniform locations are mostly outside


def test_modelnet10_points_are_unsigned_targets():
    path = real_dir("modelnet10", "modelnet10_pcd1024.npz")
    clouds = load_modelnet10_points(path, "test", limit=4)
    assert clouds.points.shape == (4, 1024, 3) and clouds.normals is None and len(clouds.class_names) == 10
    targets = load_targets("modelnet10", "train", limit=2, n_points=512)
    assert targets.kind == "udf" and targets.values.min() >= 0 and targets.values.shape == (2, 512, 1)


def test_modelnet_prefixes_mix_classes():
    """The split lists are grouped by class; a limited load must still sample every class."""
    path = real_dir("modelnet10", "modelnet10_pcd1024.npz")
    prefix = load_modelnet10_points(path, "train", limit=200)
    assert len(np.unique(prefix.labels)) == 10
    full = load_modelnet10_points(path, "train")
    np.testing.assert_array_equal(full.labels[:200], prefix.labels)
    assert sorted(full.object_ids) == list(range(len(full.object_ids)))
    with np.load(path) as archive:
        official = archive["labels"][archive["split"] == "train"]
    np.testing.assert_array_equal(official[full.object_ids], full.labels)
    directory = real_dir("modelnet40", "modelnet40_normal_resampled_subset")
    assert len(np.unique(load_modelnet40_points(directory, "train", limit=20).labels)) >= 10


def test_off_mesh_sampling():
    path = real_dir("modelnet40", "modelnet40_off_sample_airplane", "airplane_0001.off")
    vertices, triangles = load_off_mesh(path)
    assert vertices.shape == (27817, 3) and triangles.shape[1] == 3 and triangles.max() < len(vertices)
    points, normals = sample_mesh_surface(vertices, triangles, 500, object_rng(0, 0))
    assert points.shape == normals.shape == (500, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-4)


def test_off_glued_header_and_polygons():
    text = "OFF4 1 0\r\n0 0 0\r\n1 0 0\r\n1 1 0\r\n0 1 0\r\n4 0 1 2 3\r\n"
    vertices, triangles = parse_off(text, "quad.off")
    assert vertices.shape == (4, 3) and triangles.tolist() == [[0, 1, 2], [0, 2, 3]]
    with pytest.raises(ValueError, match="quad.off.*truncated"):
        parse_off(text.replace("4 1 0", "5 1 0"), "quad.off")


def sphere_cloud(n: int, radius: float, centre, rng) -> tuple[np.ndarray, np.ndarray]:
    normals = rng.standard_normal((n, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return (radius * normals + centre).astype(np.float32), normals.astype(np.float32)


def test_signed_distance_of_sampled_sphere():
    rng = np.random.default_rng(0)
    points, normals = sphere_cloud(5000, 0.5, 0.0, rng)
    query = rng.uniform(-1, 1, (2000, 3)).astype(np.float32)
    exact = np.linalg.norm(query, axis=-1) - 0.5
    sdf = signed_distance(query, points, normals)
    clear = np.abs(exact) > 0.02
    assert np.all(np.sign(sdf[clear]) == np.sign(exact[clear]))
    np.testing.assert_allclose(sdf, exact, atol=0.04)  # nearest-point distance: up to ~ the point spacing


def test_point_cloud_samples_normalise_shapes():
    rng = np.random.default_rng(1)
    points, normals = sphere_cloud(4000, 7.0, [100.0, -3.0, 2.0], rng)
    assert np.allclose(np.abs(normalise_shapes(points)).max(axis=0), 0.9, atol=0.02)
    clouds = PointClouds(points[None], normals[None], np.zeros(1, np.int32), np.zeros(1, np.int64), ("sphere",))
    coords, values = point_cloud_samples(clouds, n_points=2000)
    exact = np.linalg.norm(coords[0], axis=-1) - np.abs(normalise_shapes(points)).max()
    clear = np.abs(exact) > 0.03
    assert np.abs(coords).max() <= 1
    assert np.all(np.sign(values[0, clear, 0]) == np.sign(exact[clear]))


def test_synthetic_sphere_sdf_is_exact():
    coords, values, labels = synthetic3d("train", 5, seed=3, n_points=1000)
    radius = np.linalg.norm(coords[0], axis=-1) - values[0, :, 0]
    assert labels[0] == 0 and np.ptp(radius) < 1e-5 and 0.5 < radius[0] < 0.9
    assert np.mean(values[0, :500] < 0) > 0.2 and np.mean(np.abs(values[0, :500]) < 0.1) > 0.9


def test_synthetic_datasets_are_deterministic():
    first = load_targets("synthetic2d", "train", n=30, seed=7)
    again = load_targets("synthetic2d", "train", limit=10, seed=7)
    np.testing.assert_array_equal(first.values[:10], again.values)
    assert first.values.shape == (30, 784, 1) and first.shape == (28, 28, 1) and set(first.labels) == set(range(10))
    test_split = load_targets("synthetic2d", "test", n=10, seed=7)
    assert not np.array_equal(test_split.values, again.values)
    a = load_targets("synthetic3d", "test", n=6, n_points=256)
    b = load_targets("synthetic3d", "test", n=6, n_points=256)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.kind == "sdf" and a.coords.shape == (6, 256, 3) and len(a.class_names) >= 5


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 IDX file holding ``array``."""
    return bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes() + array.astype(np.uint8).tobytes()


def test_idx_labels_outside_the_classes_are_refused(tmp_path):
    directory = tmp_path / "mnist"
    directory.mkdir()
    (directory / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((4, 28, 28))))
    (directory / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([3, 200, 1, 200])))
    with pytest.raises(
        ValueError,
        match=r"mnist train labels in \S*mnist: 2 of 4 labels lie outside the 10 classes "
        r"0..9 \(first: label 200 at index 1\)",
    ):
        load_targets("mnist", "train", tmp_path)


def test_cifar_labels_beyond_the_listed_class_names_are_refused(tmp_path):
    directory = tmp_path / "cifar10"
    directory.mkdir()
    record = np.zeros(3073, np.uint8)
    record[0] = 7
    (directory / "test_batch.bin").write_bytes(record.tobytes())
    (directory / "batches.meta.txt").write_text("airplane\nautomobile\n")
    with pytest.raises(ValueError, match="1 of 1 labels lie outside the 2 classes"):
        load_targets("cifar10", "test", tmp_path)
