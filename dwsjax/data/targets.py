"""What INRs are fitted to: :class:`FitTargets` and :func:`load_targets`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dwsjax.data import images, shapes, synthetic
from dwsjax.data.sources import find_dataset_dir
from dwsjax.presets import DATASETS
from dwsjax.siren import image_coords

# Default objects per split. synthetic2d is big enough for the README's first run to learn
# (how the size was chosen: docs/recipes.md, "The quick start's synthetic set").
SYNTHETIC_SIZES = {"synthetic2d": {"train": 2000, "test": 1000}, "synthetic3d": {"train": 1000, "test": 200}}
DATASET_NAMES = DATASETS  # the registry of dwsjax.presets


class FitTargets(NamedTuple):
    """Objects to fit, one INR each.

    ``coords``: ``(P, d)`` shared (images) or ``(N, P, d)`` per object (3D), float32
    in ``[-1, 1]``. ``values``: ``(N, P, c)`` float32, pixel values in ``[0, 1]`` or
    distances. ``object_ids``: index in the official split order. ``kind``:
    ``"image"``, ``"sdf"`` or ``"udf"``. ``shape``: ``(H, W, C)`` for images, ``()`` for 3D.
    Point-cloud shapes also carry held-out queries ``holdout_coords (N, Q, 3)``,
    ``holdout_values (N, Q, 1)`` (never fitted) and their normalised points
    ``surface (N, M, 3)``, for :mod:`dwsjax.shape_quality`; ``None`` otherwise.
    """

    coords: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    object_ids: np.ndarray
    class_names: tuple[str, ...]
    kind: str
    shape: tuple
    holdout_coords: np.ndarray | None = None
    holdout_values: np.ndarray | None = None
    surface: np.ndarray | None = None


def image_targets(pixels: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> FitTargets:
    """Targets from images ``(N, H, W, C)``: uint8 (scaled by 1/255) or float in ``[0, 1]``."""
    scale = 1 / 255 if pixels.dtype == np.uint8 else 1.0
    n, height, width, channels = pixels.shape
    return FitTargets(
        coords=np.asarray(image_coords(height, width), np.float32),
        values=(pixels.reshape(n, height * width, channels) * scale).astype(np.float32),
        labels=labels.astype(np.int32),
        object_ids=np.arange(n, dtype=np.int64),
        class_names=tuple(class_names),
        kind="image",
        shape=(height, width, channels),
    )


def check_labels(labels: np.ndarray, class_names: tuple[str, ...], source: str) -> None:
    """Refuse labels that index no class: one-hot targets would silently be all zero."""
    outside = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if outside.size:
        raise ValueError(
            f"{source}: {outside.size} of {len(labels)} labels lie outside the {len(class_names)} classes "
            f"0..{len(class_names) - 1} (first: label {labels[outside[0]]} at index {outside[0]}); the labels "
            "file is corrupt or belongs to another dataset: replace it with the original download"
        )


def local_or_tfds(name: str, split: str, data_dir, patterns, load_local) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Images, labels (checked against the class names), class names from the data
    directory, else from TFDS when installed."""
    try:
        directory = find_dataset_dir(name, data_dir, patterns)
    except FileNotFoundError:
        if not images.tfds_installed():
            raise
        pixels, labels, names = images.load_tfds_images(name, split)
        check_labels(labels, names, f"TFDS {name} {split}")
        return pixels, labels, names
    pixels, labels, names = load_local(directory)
    check_labels(labels, names, f"{name} {split} labels in {directory}")
    return pixels, labels, names


def load_idx_targets(name: str, split: str, data_dir, class_names: tuple[str, ...]) -> tuple:
    stems = images.IDX_FILES[split]
    return local_or_tfds(
        name,
        split,
        data_dir,
        [f"{stem}*" for stem in stems],
        lambda d: (*images.load_idx_dataset(d, split), class_names),
    )


def load_cifar10_targets(split: str, data_dir) -> tuple:
    pattern = "data_batch_*.bin*" if split == "train" else "test_batch.bin*"
    return local_or_tfds(
        "cifar10",
        split,
        data_dir,
        [pattern, "batches.meta.txt"],
        lambda d: (*images.load_cifar10(d, split), images.load_cifar10_class_names(d)),
    )


HOLDOUT_POINTS = 1024


def point_cloud_targets(clouds: shapes.PointClouds, signed: bool, seed: int, n_points: int, near_fraction: float):
    """Fitting samples, :data:`HOLDOUT_POINTS` held-out queries and the normalised points of each cloud."""
    coords, values = shapes.point_cloud_samples(clouds, seed, n_points, near_fraction, signed)
    holdout = shapes.point_cloud_samples(clouds, seed, HOLDOUT_POINTS, near_fraction, signed, shapes.HOLDOUT_STREAM)
    kind = "sdf" if signed else "udf"
    return FitTargets(
        coords,
        values,
        clouds.labels,
        clouds.object_ids,
        clouds.class_names,
        kind,
        (),
        *holdout,
        shapes.normalise_shapes(clouds.points),
    )


def load_targets(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    *,
    seed: int = 0,
    n_points: int = 4096,
    near_fraction: float = 0.5,
    signed: bool | None = None,
    n: int | None = None,
) -> FitTargets:
    """Load a dataset split as INR fitting targets.

    Datasets: ``fmnist``, ``mnist``, ``cifar10`` (images, coords ``image_coords(H, W)``),
    ``modelnet40`` (SDF samples from points with normals; ``signed=False`` gives
    unsigned distances), ``modelnet10`` (unsigned only, ``kind="udf"``: its 1,024
    points per shape carry no normals, and orienting normals estimated from so few
    unoriented points on thin, non-watertight ModelNet shapes (chair legs, table
    tops) flips whole regions, so a sign would be guessed rather than measured),
    ``synthetic2d``, ``synthetic3d`` (generated, no files). CIFAR-10 ``"train"`` is every
    ``data_batch_*`` present (offline: ``data_batch_1`` only, 10,000 images).
    fmnist/mnist/cifar10 fall back to TFDS when the files are missing and
    ``tensorflow_datasets`` is installed.

    Args:
        name: The dataset, one of :data:`DATASET_NAMES`.
        split: ``"train"`` or ``"test"``.
        data_dir: Dataset root; overrides ``$DWSJAX_DATA_DIR``.
        limit: Keep the first ``limit`` objects.
        seed: 3D only: randomness of the sampled locations, per ``(seed, object_id)``.
        n_points: 3D only: sampled locations per shape.
        near_fraction: 3D only: fraction of the locations near the surface (:mod:`dwsjax.data.shapes`).
        signed: 3D only: signed (SDF) or unsigned (UDF) distances; default: signed for
            ``modelnet40``, unsigned for ``modelnet10``.
        n: Synthetic only: number of objects (default :data:`SYNTHETIC_SIZES`).

    Returns:
        :class:`FitTargets`: ``coords`` ``(P, d)`` shared (images) or ``(N, P, d)`` per object (3D),
        ``values`` ``(N, P, c)`` (pixels in ``[0, 1]`` or distances), labels, object ids,
        class names, ``kind`` and the object ``shape``.

    Raises:
        ValueError: If ``name`` or ``split`` is unknown.
        FileNotFoundError: If the dataset's files are missing (and no TFDS fallback applies).
    """
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    if name in ("fmnist", "mnist"):
        class_names = images.FMNIST_CLASS_NAMES if name == "fmnist" else images.MNIST_CLASS_NAMES
        pixels, labels, names = load_idx_targets(name, split, data_dir, class_names)
        return image_targets(pixels[:limit], labels[:limit], names)
    if name == "cifar10":
        pixels, labels, names = load_cifar10_targets(split, data_dir)
        return image_targets(pixels[:limit], labels[:limit], names)
    if name == "modelnet40":
        directory = find_dataset_dir(name, data_dir, [f"modelnet40_{split}.txt", "modelnet40_shape_names.txt"])
        clouds = shapes.load_modelnet40_points(directory, split, limit)
        return point_cloud_targets(clouds, signed is not False, seed, n_points, near_fraction)
    if name == "modelnet10":
        path = Path(find_dataset_dir(name, data_dir, ["modelnet10_pcd1024.npz"])) / "modelnet10_pcd1024.npz"
        clouds = shapes.load_modelnet10_points(path, split, limit)
        return point_cloud_targets(clouds, bool(signed), seed, n_points, near_fraction)
    count = SYNTHETIC_SIZES[name][split] if n is None else n
    count = count if limit is None else min(count, limit)
    if name == "synthetic2d":
        pixels, labels = synthetic.synthetic2d(split, count, seed)
        return image_targets(pixels, labels, synthetic.SYNTHETIC2D_CLASS_NAMES)
    if name == "synthetic3d":
        coords, values, labels = synthetic.synthetic3d(split, count, seed, n_points, near_fraction)
        ids = np.arange(len(labels), dtype=np.int64)
        return FitTargets(coords, values, labels, ids, synthetic.SYNTHETIC3D_CLASS_NAMES, "sdf", ())
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_NAMES)}")


def load_targets_or_fallback(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    fallback: str = "synthetic2d",
    **options,
) -> tuple[str, FitTargets]:
    """``(name, load_targets(name, ...))``, or ``(fallback, ...)`` with a warning when
    ``name``'s files are missing (no data directory and no TFDS).

    ``fallback`` must be a file-free dataset (``synthetic2d`` or ``synthetic3d``);
    ``options`` go to :func:`load_targets`. Notebooks and demos use this to run anywhere.
    """
    if fallback not in ("synthetic2d", "synthetic3d"):
        raise ValueError(f'fallback must be "synthetic2d" or "synthetic3d", got {fallback!r}')
    try:
        return name, load_targets(name, split, data_dir, limit, **options)
    except FileNotFoundError as err:
        warnings.warn(f"{err}\nUsing the synthetic dataset {fallback!r} instead.", stacklevel=2)
        return fallback, load_targets(fallback, split, None, limit, **options)


def mesh_targets(
    paths: list[str | os.PathLike], seed: int = 0, n_points: int = 4096, near_fraction: float = 0.5
) -> FitTargets:
    """SDF targets from ``.off`` meshes (:func:`dwsjax.data.shapes.mesh_distance_samples`).

    Object ``i`` is ``paths[i]``; labels index the sorted class names taken from
    the file names (``airplane_0001.off -> airplane``).
    """
    pairs = [
        shapes.mesh_distance_samples(*shapes.load_off_mesh(p), shapes.object_rng(seed, i), n_points, near_fraction)
        for i, p in enumerate(paths)
    ]
    classes = [shapes.shape_class(Path(p).name.split(".")[0]) for p in paths]
    class_names = tuple(sorted(set(classes)))
    return FitTargets(
        coords=np.stack([q for q, _ in pairs]),
        values=np.stack([d for _, d in pairs])[..., None],
        labels=np.asarray([class_names.index(c) for c in classes], np.int32),
        object_ids=np.arange(len(paths), dtype=np.int64),
        class_names=class_names,
        kind="sdf",
        shape=(),
    )
