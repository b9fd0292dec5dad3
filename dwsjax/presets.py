"""Per-dataset INR architectures.

2D gray images: SIREN 2-32-32-1 (as in the DWSNets INR datasets); CIFAR-10
2-32-32-3; 3D shapes: 3-32-32-32-32-1 (the augmentation paper's SDF INR). How
they are fitted is a :mod:`dwsjax.recipes` recipe, chosen per ``kind``.

:data:`PRESETS` is the registry of datasets: :data:`DATASETS` (its keys) is the one
list of dataset names that the data loaders, the run configuration
(:mod:`dwsjax.run`) and every command line tool's ``--dataset`` choices use.
"""

from __future__ import annotations

from typing import NamedTuple

from dwsjax.weights import MLPSpec


class InrPreset(NamedTuple):
    spec: MLPSpec
    data_range: float
    kind: str  # "image" or "shape": which variant of a fitting recipe applies


_IMAGE_GRAY = InrPreset(MLPSpec((2, 32, 32, 1)), data_range=1.0, kind="image")
_SHAPE = InrPreset(MLPSpec((3, 32, 32, 32, 32, 1)), data_range=2.0, kind="shape")

PRESETS: dict[str, InrPreset] = {
    "fmnist": _IMAGE_GRAY,
    "mnist": _IMAGE_GRAY,
    "cifar10": _IMAGE_GRAY._replace(spec=MLPSpec((2, 32, 32, 3))),
    "modelnet40": _SHAPE,
    "modelnet10": _SHAPE,
    "synthetic2d": _IMAGE_GRAY,
    "synthetic3d": _SHAPE,
}

# The dataset names, in the registry's order; image datasets are those fitted as 2D images.
DATASETS: tuple[str, ...] = tuple(PRESETS)
IMAGE_DATASETS: tuple[str, ...] = tuple(name for name, p in PRESETS.items() if p.kind == "image")


def preset(dataset: str) -> InrPreset:
    if dataset not in PRESETS:
        raise ValueError(f"no INR preset for dataset {dataset!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[dataset]
