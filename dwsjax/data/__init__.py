"""Datasets as INR fitting targets: real images and shapes from disk, synthetic ones from code.

Entry point: :func:`load_targets` returning :class:`FitTargets`. The data root is
``data_dir=...`` or ``$DWSJAX_DATA_DIR``; lower-level loaders return numpy arrays.
"""

from dwsjax.data.images import (
    FMNIST_CLASS_NAMES,
    MNIST_CLASS_NAMES,
    load_cifar10,
    load_cifar10_class_names,
    load_idx,
    load_idx_dataset,
    load_idx_images,
    load_idx_labels,
    load_tfds_images,
    parse_cifar10_batch,
    parse_idx,
)
from dwsjax.data.shapes import (
    PointClouds,
    distance_samples,
    load_modelnet10_points,
    load_modelnet40_points,
    load_off_mesh,
    load_point_normals,
    mesh_distance_samples,
    normalise_shapes,
    object_rng,
    point_cloud_samples,
    sample_locations,
    sample_mesh_surface,
    signed_distance,
    unsigned_distance,
)
from dwsjax.data.sources import DATA_DIR_ENV, data_root, find_dataset_dir
from dwsjax.data.synthetic import (
    SYNTHETIC2D_CLASS_NAMES,
    SYNTHETIC3D_CLASS_NAMES,
    synthetic2d,
    synthetic3d,
)
from dwsjax.data.targets import (
    DATASET_NAMES,
    FitTargets,
    image_targets,
    load_targets,
    load_targets_or_fallback,
    mesh_targets,
)

__all__ = [
    # Entry point: datasets as INR fitting targets
    "DATASET_NAMES",
    "FitTargets",
    "image_targets",
    "load_targets",
    "load_targets_or_fallback",
    "mesh_targets",
    # Image datasets (IDX: MNIST, Fashion-MNIST; CIFAR-10; TFDS)
    "FMNIST_CLASS_NAMES",
    "MNIST_CLASS_NAMES",
    "load_cifar10",
    "load_cifar10_class_names",
    "load_idx",
    "load_idx_dataset",
    "load_idx_images",
    "load_idx_labels",
    "load_tfds_images",
    "parse_cifar10_batch",
    "parse_idx",
    # 3D shapes: ModelNet point clouds and meshes, distance samples
    "PointClouds",
    "distance_samples",
    "load_modelnet10_points",
    "load_modelnet40_points",
    "load_off_mesh",
    "load_point_normals",
    "mesh_distance_samples",
    "normalise_shapes",
    "object_rng",
    "point_cloud_samples",
    "sample_locations",
    "sample_mesh_surface",
    "signed_distance",
    "unsigned_distance",
    # Synthetic datasets generated in code
    "SYNTHETIC2D_CLASS_NAMES",
    "SYNTHETIC3D_CLASS_NAMES",
    "synthetic2d",
    "synthetic3d",
    # Where the data lives
    "DATA_DIR_ENV",
    "data_root",
    "find_dataset_dir",
]
