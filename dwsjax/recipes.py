"""Named SIREN fitting recipes: how the INRs of a dataset are initialised and fitted.

A recipe is data: the init scheme (:func:`dwsjax.siren.siren_init`), the output
offset ``c`` in ``y = f(x) + c``, and Adam's learning rate, step cap and
early-stopping PSNR. Each name has an ``"image"`` and a ``"shape"`` variant
(:attr:`dwsjax.presets.InrPreset.kind`). A store records the recipe it was
fitted with in its identity, so INRs of different recipes never mix.

- ``dwsnets``: the recipe of the INR datasets of DWSNets (Navon et al. 2023) and
  of the augmentation paper (Shamsian et al. 2024, Appendix B), as in DWSNets'
  ``nn/inr.py``: DWSNets init, zero biases, ``y = f(x) + 0.5``, Adam at lr 5e-4
  for up to 10,000 steps, stopping an INR at 40 dB PSNR.
- ``dwsnets-fast`` (the default): the same init and offset, Adam at lr 1e-3 for
  up to 2,000 steps (40 dB early stop), a fifth of the exact recipe's step cap.
  Chosen by ``experiments.fit_schedules`` (``results/fit-schedules.md``): of the
  schedules tried, the cheapest whose INRs classify as well as those of lr 5e-4
  for 2,000 steps (DWS-32, 43.3 ± 0.9 % vs 42.5 ± 0.1 %, 2 seeds) with every
  layer's weight std within 1.6x of the reference dataset's; the 1,000-step
  schedules (lr 2e-3, 3e-3) cost 3-5 points. Measured later, the exact recipe
  (35.4 against 25.6 dB, weight stds within 3 % of the reference dataset's) is
  worth +3.5 points to the unaugmented DWS-32 at 5x the fitting time (README,
  "INR fitting recipes"): this default trades accuracy for cost, and every
  published table of the README was measured on it.
- ``sitzmann``: Sitzmann init with random biases, no offset, Adam at lr 1e-3 for
  500 steps: what dwsjax used before; its INRs hide the class (README).

3D shapes (SDF/UDF, SIREN 3-32-32-32-32-1) have a variant of their own under
each name, with no output offset (distances are centred near zero) and no
early stopping (PSNR over a distance range of 2 is a weak stopping rule for
surfaces):

- ``dwsnets``'s shape variant is the augmentation paper's ModelNet40 recipe
  (Shamsian et al. 2024, Appendix B): AdamW at lr 1e-4 for 1,000 steps, with
  PyTorch's default AdamW weight decay 0.01 (the appendix names no value).
- ``dwsnets-fast``'s (the default) is our choice: Adam at lr 1e-3 for 300
  steps, chosen by a measured sweep (``docs/recipes.md``, "3D recipes").
- ``sitzmann``'s: Adam at lr 1e-3 for 1,000 steps.
"""

from __future__ import annotations

from typing import NamedTuple


class FitRecipe(NamedTuple):
    """Init scheme, output offset ``c``, Adam learning rate and step cap, early-stopping PSNR
    (``None``: none) and decoupled weight decay (``> 0``: AdamW)."""

    init: str
    output_offset: float
    learning_rate: float
    steps: int
    target_psnr: float | None
    weight_decay: float = 0.0


_SHAPE = {"output_offset": 0.0, "target_psnr": None}

RECIPES: dict[str, dict[str, FitRecipe]] = {
    "dwsnets": {
        "image": FitRecipe("dwsnets", output_offset=0.5, learning_rate=5e-4, steps=10_000, target_psnr=40.0),
        "shape": FitRecipe("dwsnets", learning_rate=1e-4, steps=1000, weight_decay=0.01, **_SHAPE),
    },
    "dwsnets-fast": {
        "image": FitRecipe("dwsnets", output_offset=0.5, learning_rate=1e-3, steps=2000, target_psnr=40.0),
        "shape": FitRecipe("dwsnets", learning_rate=1e-3, steps=300, **_SHAPE),
    },
    "sitzmann": {
        "image": FitRecipe("sitzmann", output_offset=0.0, learning_rate=1e-3, steps=500, target_psnr=None),
        "shape": FitRecipe("sitzmann", learning_rate=1e-3, steps=1000, **_SHAPE),
    },
}
DEFAULT_RECIPE = "dwsnets-fast"


def fit_recipe(name: str, kind: str) -> FitRecipe:
    """The ``kind`` (``"image"`` or ``"shape"``) variant of recipe ``name``."""
    if name not in RECIPES:
        raise ValueError(f"unknown INR recipe {name!r}; choose one of {', '.join(RECIPES)}")
    if kind not in RECIPES[name]:
        raise ValueError(f"INR recipe {name!r} has no {kind!r} variant; it has {', '.join(RECIPES[name])}")
    return RECIPES[name][kind]
