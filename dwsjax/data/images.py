"""Image datasets as numpy arrays: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary, TFDS.

Every loader returns ``images`` uint8 ``(N, H, W, C)`` and ``labels`` int32 ``(N,)``.
Files may be gzipped (``*.gz``) or plain; corrupt or truncated files raise
:class:`ValueError` naming the file and the problem.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dwsjax.data.sources import read_bytes

FMNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASS_NAMES = tuple(str(d) for d in range(10))

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CIFAR10_SIDE = 32
CIFAR10_RECORD = 1 + 3 * CIFAR10_SIDE**2
TFDS_NAMES = {"fmnist": "fashion_mnist", "mnist": "mnist", "cifar10": "cifar10"}


def existing_file(directory: Path, stem: str) -> Path:
    """``directory/stem.gz`` if present, else ``directory/stem``."""
    gz = directory / f"{stem}.gz"
    return gz if gz.exists() else directory / stem


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode an IDX buffer: magic ``00 00 <dtype> <ndim>``, ``ndim`` big-endian int32 sizes, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{source}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = IDX_DTYPES.get(raw[2])
    if dtype is None:
        raise ValueError(f"{source}: unknown IDX data type code 0x{raw[2]:02x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{source}: IDX header says shape {shape} ({expected} data bytes) "
            f"but the file holds {len(raw) - header} data bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def load_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Array stored in an IDX file (optionally gzipped), checked to have ``ndim`` axes."""
    array = parse_idx(read_bytes(path), str(path))
    if array.ndim != ndim:
        raise ValueError(f"{path}: expected {ndim} IDX dimensions, found shape {array.shape}")
    return array


def load_idx_images(path: str | Path) -> np.ndarray:
    """uint8 images ``(N, H, W, 1)`` from an ``idx3-ubyte`` file."""
    return load_idx(path, 3).astype(np.uint8)[..., None]


def load_idx_labels(path: str | Path) -> np.ndarray:
    """int32 labels ``(N,)`` from an ``idx1-ubyte`` file."""
    return load_idx(path, 1).astype(np.int32)


def load_idx_dataset(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-format split (``"train"``/``"test"``): images ``(N, 28, 28, 1)``, labels ``(N,)``."""
    image_stem, label_stem = IDX_FILES[split]
    image_path = existing_file(Path(directory), image_stem)
    label_path = existing_file(Path(directory), label_stem)
    images, labels = load_idx_images(image_path), load_idx_labels(label_path)
    if len(images) != len(labels):
        raise ValueError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    return images, labels


def parse_cifar10_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode CIFAR-10 binary records (label byte, then R, G, B planes of 32x32)."""
    if len(raw) == 0 or len(raw) % CIFAR10_RECORD:
        raise ValueError(
            f"{source}: {len(raw)} bytes is not a whole number of {CIFAR10_RECORD}-byte "
            "CIFAR-10 records (truncated or corrupt)"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int32)
    if labels.max() > 9:
        raise ValueError(f"{source}: label {labels.max()} out of range 0..9 (corrupt file)")
    planes = records[:, 1:].reshape(-1, 3, CIFAR10_SIDE, CIFAR10_SIDE)
    return planes.transpose(0, 2, 3, 1), labels


def cifar10_batch_files(directory: str | Path, split: str) -> list[Path]:
    """Batch files of a split: all ``data_batch_*`` present for train, ``test_batch`` for test."""
    directory = Path(directory)
    pattern = "data_batch_*.bin*" if split == "train" else "test_batch.bin*"
    stems = sorted({f.name.removesuffix(".gz") for f in directory.glob(pattern)})
    return [existing_file(directory, stem) for stem in stems]


def load_cifar10(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 split: images uint8 ``(N, 32, 32, 3)``, labels int32 ``(N,)``.

    ``"train"`` concatenates whichever ``data_batch_*`` files are present (the
    offline copy holds only ``data_batch_1``: 10,000 images); ``"test"`` reads
    ``test_batch``. A gzipped batch is used when both forms exist.
    """
    files = cifar10_batch_files(directory, split)
    if not files:
        raise FileNotFoundError(f"no CIFAR-10 {split} batches in {directory}")
    parts = [parse_cifar10_batch(read_bytes(f), str(f)) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10_class_names(directory: str | Path) -> tuple[str, ...]:
    """Class names listed one per line in ``batches.meta.txt``."""
    lines = (Path(directory) / "batches.meta.txt").read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def tfds_installed() -> bool:
    """Whether ``tensorflow_datasets`` can be imported (without importing it)."""
    return importlib.util.find_spec("tensorflow_datasets") is not None


def load_tfds_images(name: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Online fallback via TFDS (downloads): images, labels and class names.

    ``name`` is ``"fmnist"``, ``"mnist"`` or ``"cifar10"``; TFDS's CIFAR-10
    ``"train"`` split holds all 50,000 training images.
    """
    import tensorflow_datasets as tfds

    data, info = tfds.load(TFDS_NAMES[name], split=split, batch_size=-1, with_info=True)
    arrays = tfds.as_numpy(data)
    names = tuple(info.features["label"].names)
    return arrays["image"].astype(np.uint8), arrays["label"].astype(np.int32), names
