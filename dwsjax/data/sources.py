"""Where datasets live on disk, and reading their (optionally gzipped) files.

The data root comes from an explicit argument (``data_dir=...`` / ``--data-dir``)
or else the ``DWSJAX_DATA_DIR`` environment variable; there is no implicit
default. Inside the root each dataset is looked up in a few conventional
sub-directories. A missing dataset raises :class:`FileNotFoundError` naming the
directories searched, the setting to change and where to get the files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

DATA_DIR_ENV = "DWSJAX_DATA_DIR"


class DatasetSource(NamedTuple):
    """Conventional sub-directories of the data root and how to obtain the files."""

    subdirs: tuple[str, ...]
    how_to_get: str


TFDS_HINT = "or install the TFDS fallback: pip install 'dwsjax[tfds]'"

SOURCES: dict[str, DatasetSource] = {
    "fmnist": DatasetSource(
        ("fashion-mnist", "fashion_mnist", "fmnist"),
        "the four IDX .gz files from https://github.com/zalandoresearch/fashion-mnist "
        f"(train-images-idx3-ubyte.gz, ...), {TFDS_HINT}",
    ),
    "mnist": DatasetSource(
        ("mnist",),
        "the four IDX .gz files from https://yann.lecun.com/exdb/mnist/ "
        f"(mirror: https://ossci-datasets.s3.amazonaws.com/mnist/), {TFDS_HINT}",
    ),
    "cifar10": DatasetSource(
        ("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "cifar10"),
        "the binary version https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz "
        f"(data_batch_*.bin, test_batch.bin, batches.meta.txt; gzipped files also work), {TFDS_HINT}",
    ),
    "modelnet40": DatasetSource(
        (
            "modelnet40/modelnet40_normal_resampled",
            "modelnet40/modelnet40_normal_resampled_subset",
            "modelnet40_normal_resampled",
            "modelnet40_normal_resampled_subset",
        ),
        "modelnet40_normal_resampled.zip (https://shapenet.cs.stanford.edu/media/"
        "modelnet40_normal_resampled.zip): <class>/<class>_<nnnn>.txt(.gz) and "
        "modelnet40_{train,test,shape_names}.txt",
    ),
    "modelnet10": DatasetSource(
        ("modelnet10", "."),
        "modelnet10_pcd1024.npz (points (N, 1024, 3), labels, split, shape_ids, class_names), "
        "sampled from the meshes of http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip",
    ),
}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$DWSJAX_DATA_DIR``; it must exist."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        raise FileNotFoundError(
            f"no data directory: pass data_dir=... (--data-dir) or set {DATA_DIR_ENV}, "
            f"e.g. {DATA_DIR_ENV}=../shared/data"
        )
    root = Path(chosen).expanduser()
    if not root.is_dir():
        origin = "data_dir argument" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise FileNotFoundError(f"data directory {root} (from the {origin}) does not exist")
    return root


def has_files(directory: Path, patterns: Sequence[str]) -> bool:
    """Whether every glob pattern matches at least one file in ``directory``."""
    return directory.is_dir() and all(any(directory.glob(p)) for p in patterns)


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None, patterns: Sequence[str]) -> Path:
    """First conventional sub-directory of the data root holding files matching ``patterns``."""
    source = SOURCES[name]
    try:
        root = data_root(data_dir)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{name}: {err}. To get the data: {source.how_to_get}") from None
    candidates = [root / sub for sub in source.subdirs]
    for directory in candidates:
        if has_files(directory, patterns):
            return directory
    raise FileNotFoundError(
        f"{name}: no directory with {', '.join(patterns)} among "
        f"{', '.join(str(c) for c in candidates)}. Point data_dir=... (--data-dir) or "
        f"{DATA_DIR_ENV} at the directory holding the datasets. To get the data: {source.how_to_get}"
    )


def read_bytes(path: str | os.PathLike) -> bytes:
    """File contents, gunzipped when the name ends in ``.gz``; a bad gzip stream is a ValueError."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({err})") from None
