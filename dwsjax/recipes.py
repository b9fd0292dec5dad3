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
  up to 2,000 steps (40 dB early stop), a fifth of the exact recipe's step cap:
  cheaper INRs of the same init, chosen with ``experiments.fit_schedules``.
  How its INRs and classifiers compare with the exact recipe's: see
  ``docs/recipes.md``.
- ``sitzmann``: Sitzmann init with random biases, no offset, Adam at lr 1e-3 for
  500 steps (Sitzmann et al. 2020).

3D shapes (SDF/UDF, SIREN 3-32-32-32-32-1) have a variant of their own under
each name, with no output offset (distances are centred near zero) and no
early stopping (PSNR over a distance range of 2 is a weak stopping rule for
surfaces):

- ``dwsnets``'s shape variant is the augmentation paper's ModelNet40 recipe
  (Shamsian et al. 2024, Appendix B): AdamW at lr 1e-4 for 1,000 steps, with
  PyTorch's default AdamW weight decay 0.01 (the appendix names no value).
- ``dwsnets-fast``'s (the default) is our cheaper choice: Adam at lr 1e-3 for
  300 steps; how its INRs compare with the paper's recipe: ``docs/recipes.md``,
  "3D shapes".
- ``sitzmann``'s: Adam at lr 1e-3 for 1,000 steps.
"""

from __future__ import annotations

from typing import NamedTuple


class FitRecipe(NamedTuple):
    """How one kind of INR is initialised and fitted (the values of :data:`RECIPES`).

    Attributes:
        init: SIREN init scheme, ``"dwsnets"`` or ``"sitzmann"`` (:func:`dwsjax.siren.siren_init`).
        output_offset: Constant ``c`` the SIREN adds to its output, ``y = f(x) + c``.
        learning_rate: Adam's (or AdamW's) learning rate.
        steps: Step cap per INR.
        target_psnr: PSNR in dB at which an INR stops early; ``None``: never.
        weight_decay: Decoupled weight decay ``lambda``; ``> 0`` makes Adam AdamW (PyTorch's form).
    """

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
"""Fitting recipes by name, each with an ``"image"`` and a ``"shape"`` variant (see :mod:`dwsjax.recipes`)."""
DEFAULT_RECIPE = "dwsnets-fast"
# How INRs draw their initial weights -> what their keys are a function of (dwsjax.fit.inr_keys; recorded
# in store identities). "independent" is the papers'; "shared" starts view v of every object from one init.
INR_INITS = {"independent": "seed/split/object/view", "shared": "seed/view"}


def fit_recipe(name: str, kind: str) -> FitRecipe:
    """The ``kind`` variant of fitting recipe ``name``.

    Args:
        name: A key of :data:`RECIPES`: ``"dwsnets"``, ``"dwsnets-fast"`` or ``"sitzmann"``.
        kind: ``"image"`` or ``"shape"`` (SDF/UDF INRs).

    Returns:
        The :class:`FitRecipe`; :meth:`dwsjax.fit.FitConfig.from_recipe` turns it into a fit configuration.

    Raises:
        ValueError: If ``name`` is not a recipe or has no ``kind`` variant.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown INR recipe {name!r}; choose one of {', '.join(RECIPES)}")
    if kind not in RECIPES[name]:
        raise ValueError(f"INR recipe {name!r} has no {kind!r} variant; it has {', '.join(RECIPES[name])}")
    return RECIPES[name][kind]
