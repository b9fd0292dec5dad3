"""The augmentation gallery: one INR under every augmentation, and MixUp with and without alignment.

    python -m experiments.gallery --out docs/figures/gallery.png

Fits one SIREN to each of two test images of different classes (Fashion-MNIST
from ``--data-dir`` / ``$DWSJAX_DATA_DIR``; the synthetic 2D set when it is
missing), then renders the first INR after each augmentation of Shamsian et al.
(input-space ones move the image; SIREN negation, SIREN bias and permutation
keep the function while the weights change) and the MixUp of the two INRs at
several ``lambda``: directly (Eq. 3), after weight matching (Eq. 5), after
sign-aware weight matching, and the pixel-space blend for reference. Notebook
``02_augmentation_gallery`` uses the same functions.
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.augment import make_step, mixup, mixup_aligned
from dwsjax.data import load_targets_or_fallback
from dwsjax.devices import use_all_cpu_cores
from dwsjax.fit import fit_sirens, inr_keys
from dwsjax.inr_datasets import InrDatasetConfig
from dwsjax.matching import align
from dwsjax.plots import plot_image_grid, save_figure
from dwsjax.presets import IMAGE_DATASETS
from dwsjax.recipes import DEFAULT_RECIPE, RECIPES
from dwsjax.run import RunConfig
from dwsjax.siren import render_image
from dwsjax.weights import WeightSpace, flatten_weights
from experiments.cli import add_config_arguments, add_hidden_alias, make_parser, run_cli

GALLERY_AUGMENTATIONS = (
    "translate",
    "rotate",
    "scale",
    "gaussian_noise",
    "masking",
    "quantile_masking",
    "siren_negation",
    "siren_bias",
    "permutation",
)
FUNCTION_PRESERVING = ("siren_negation", "siren_bias", "permutation")
MIXUP_LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
MIXUP_ROWS = ("direct", "aligned", "aligned ±", "pixels")


class ExampleInrs(NamedTuple):
    """SIRENs fitted to a few images: ``weights`` batch ``(n,)``, ``images`` ``(n, H, W, C)``."""

    dataset: str
    weights: WeightSpace
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    psnr: np.ndarray
    output_offset: float  # render with it: the recipe's constant added to f(x)


class Panel(NamedTuple):
    """One rendered INR and how far it is from the original, in output and in weights."""

    name: str
    image: np.ndarray
    max_output_change: float
    weight_change: float


def distinct_class_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the first ``count`` objects whose labels all differ."""
    _, first = np.unique(labels, return_index=True)
    picked = np.sort(first)[:count]
    if len(picked) < count:
        raise ValueError(f"asked for {count} images of distinct classes, the data has {len(picked)} classes")
    return picked


def fit_example_inrs(
    count: int = 2,
    steps: int | None = None,
    dataset: str = "fmnist",
    data_dir=None,
    seed: int = 0,
    recipe: str = DEFAULT_RECIPE,
) -> ExampleInrs:
    """One SIREN per test image, for ``count`` distinct classes, fitted with ``recipe``
    (``steps`` overrides its step cap)."""
    name, targets = load_targets_or_fallback(dataset, "test", data_dir, limit=200)
    if targets.kind != "image":
        raise ValueError(f"the gallery renders images; {name} holds {targets.kind} targets")
    idx = distinct_class_indices(targets.labels, count)
    config = InrDatasetConfig(name, "test", recipe=recipe, steps=steps).fit_config()
    result = fit_sirens(
        inr_keys(seed, targets.object_ids[idx], np.zeros(count), "test"), targets.coords, targets.values[idx], config
    )
    return ExampleInrs(
        dataset=name,
        weights=result.weights,
        images=targets.values[idx].reshape((count,) + targets.shape),
        labels=targets.labels[idx],
        class_names=targets.class_names,
        psnr=np.asarray(result.psnr),
        output_offset=config.output_offset,
    )


def relative_weight_distance(ws_a: WeightSpace, ws_b: WeightSpace) -> jax.Array:
    """``||theta_a - theta_b|| / ||theta_a||`` over all weights and biases (batched over leading axes)."""
    a, b = flatten_weights(ws_a), flatten_weights(ws_b)
    return jnp.linalg.norm(a - b, axis=-1) / jnp.linalg.norm(a, axis=-1)


@functools.partial(jax.jit, static_argnames=("names", "height", "width", "output_offset"))
def augmented_renders(
    key: jax.Array, ws: WeightSpace, names: tuple[str, ...], height: int, width: int, output_offset: float = 0.0
):
    """One compiled program: the render of ``ws`` ``(H, W, C)``, the renders of its
    augmentations ``(len(names), H, W, C)`` and their relative weight changes ``(len(names),)``."""
    keys = jax.random.split(key, len(names))
    augmented = [make_step(name).augmentation(k, ws) for name, k in zip(names, keys)]
    images = jnp.stack([render_image(a, height, width, output_offset=output_offset) for a in augmented])
    changes = jnp.stack([relative_weight_distance(ws, a) for a in augmented])
    return render_image(ws, height, width, output_offset=output_offset), images, changes


def augmentation_gallery(
    key: jax.Array, ws: WeightSpace, height: int, width: int, names=GALLERY_AUGMENTATIONS, output_offset: float = 0.0
) -> list[Panel]:
    """The original INR ``ws`` (one network, no batch axis) and each augmentation of it, rendered."""
    renders = augmented_renders(key, ws, tuple(names), height, width, output_offset)
    original, images, weight_changes = jax.device_get(renders)
    output_changes = np.abs(images - original).max(axis=(1, 2, 3))
    return [Panel("original", original, 0.0, 0.0)] + [
        Panel(name, image, float(out), float(w))
        for name, image, out, w in zip(names, images, output_changes, weight_changes)
    ]


def panel_title(panel: Panel) -> str:
    if panel.name == "original":
        return "original"
    return f"{panel.name}\nmax|Δf| {panel.max_output_change:.1e}\n‖Δθ‖/‖θ‖ {panel.weight_change:.2f}"


def mixup_gallery(
    key: jax.Array,
    ws_a: WeightSpace,
    ws_b: WeightSpace,
    height: int,
    width: int,
    lambdas=MIXUP_LAMBDAS,
    output_offset: float = 0.0,
) -> dict[str, np.ndarray]:
    """Renders ``(len(lambdas), H, W, C)`` of ``lam f_a + (1 - lam) f_b`` for each way of mixing.

    ``direct``: MixUp of the raw weights (Eq. 3); ``aligned``: after weight
    matching ``b`` to ``a`` (Eq. 5); ``aligned ±``: sign-aware matching;
    ``pixels``: the blend of the two rendered images (what mixing "should" give).
    """
    lams = jnp.asarray(lambdas, jnp.float32)
    renders = jax.device_get(_mixup_renders(key, ws_a, ws_b, lams, height, width, output_offset))
    return {row: renders[row] for row in MIXUP_ROWS}  # pytrees sort dict keys; keep the row order


@functools.partial(jax.jit, static_argnames=("height", "width", "output_offset"))
def _mixup_renders(key, ws_a, ws_b, lams, height, width, output_offset):
    no_label = jnp.zeros((1,))
    render = functools.partial(render_image, height=height, width=width, output_offset=output_offset)

    def mixed(fn, **options):
        weights = jax.vmap(lambda lam: fn(key, ws_a, no_label, ws_b, no_label, lam=lam, **options)[0])(lams)
        return render(weights)

    image_a, image_b = render(ws_a), render(ws_b)
    return {
        "direct": mixed(mixup),
        "aligned": mixed(mixup_aligned),
        "aligned ±": mixed(mixup_aligned, sign_aware=True),
        "pixels": lams[:, None, None, None] * image_a + (1 - lams[:, None, None, None]) * image_b,
    }


def mixup_weight_distances(ws_a: WeightSpace, ws_b: WeightSpace) -> dict[str, float]:
    """``||theta_a - T(theta_b)|| / ||theta_a||`` for the ``T`` of each :func:`mixup_gallery` row."""
    return {row: float(d) for row, d in _alignment_distances(ws_a, ws_b).items()}


@jax.jit
def _alignment_distances(ws_a, ws_b):
    return {
        "direct": relative_weight_distance(ws_a, ws_b),
        "aligned": relative_weight_distance(ws_a, align(ws_a, ws_b)),
        "aligned ±": relative_weight_distance(ws_a, align(ws_a, ws_b, sign_aware=True)),
    }


def mixup_titles(mixups: dict[str, np.ndarray], lambdas=MIXUP_LAMBDAS) -> list[str]:
    """Per image: ``lambda`` and the MSE of the mixed INR's render to the pixel-space blend."""
    titles = []
    for row, images in mixups.items():
        mse = ((images - mixups["pixels"]) ** 2).mean(axis=(1, 2, 3))
        titles += [f"λ={lam:g}" if row == "pixels" else f"λ={lam:g}  MSE {e:.3f}" for lam, e in zip(lambdas, mse)]
    return titles


def mixup_row_labels(mixups: dict[str, np.ndarray], distances: dict[str, float]) -> list[str]:
    return [f"{row}\n‖Δθ‖/‖θ‖ {distances[row]:.2f}" if row in distances else row for row in mixups]


def plot_gallery(
    panels: list[Panel],
    mixups: dict[str, np.ndarray],
    distances: dict[str, float],
    lambdas=MIXUP_LAMBDAS,
    suptitle: str = "",
):
    """Augmentation panels (5 per row) above the MixUp rows (one column per ``lambda``)."""
    import matplotlib.pyplot as plt

    ncols = len(lambdas)
    aug_rows = -(-len(panels) // ncols)
    fig = plt.figure(figsize=(1.9 * ncols, 2.3 * aug_rows + 1.9 * len(mixups) + 0.8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.3 * aug_rows, 1.9 * len(mixups) + 0.4])
    plot_image_grid([p.image for p in panels], [panel_title(p) for p in panels], ncols=ncols, title_size=7, fig=top)
    top.suptitle("augmentations of INR a (rendered)", fontsize=10)
    plot_image_grid(
        np.concatenate(list(mixups.values())),
        mixup_titles(mixups, lambdas),
        ncols=ncols,
        row_labels=mixup_row_labels(mixups, distances),
        title_size=7,
        fig=bottom,
    )
    bottom.suptitle("MixUp λ·a + (1 − λ)·T(b): direct (Eq. 3) vs weight-matching aligned (Eq. 5)", fontsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--out", default="docs/figures/gallery.png", help="figure path (.png, .pdf, .svg)")
    p.add_argument("--dataset", default="fmnist", choices=IMAGE_DATASETS)
    p.add_argument("--inr-recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES), help="INR fitting recipe")
    add_config_arguments(p, RunConfig, ["inr_steps"])  # the flag of experiments.classify
    add_hidden_alias(p, "--steps", "inr_steps", int)  # its older name
    p.add_argument("--seed", type=int, default=0, help="INR initialisation and augmentation seed")
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_all_cpu_cores()
    inrs = fit_example_inrs(2, args.inr_steps, args.dataset, args.data_dir, args.seed, args.inr_recipe)
    height, width = inrs.images.shape[1:3]
    ws_a, ws_b = (jax.tree.map(lambda x, i=i: x[i], inrs.weights) for i in range(2))
    key_aug, key_mix = jax.random.split(jax.random.key(args.seed))
    panels = augmentation_gallery(key_aug, ws_a, height, width, output_offset=inrs.output_offset)
    mixups = mixup_gallery(key_mix, ws_a, ws_b, height, width, output_offset=inrs.output_offset)
    distances = mixup_weight_distances(ws_a, ws_b)
    a, b = (inrs.class_names[label] for label in inrs.labels)
    title = f"{inrs.dataset}: a = {a} ({inrs.psnr[0]:.1f} dB), b = {b} ({inrs.psnr[1]:.1f} dB)"
    save_figure(plot_gallery(panels, mixups, distances, suptitle=title), args.out, dpi=args.dpi)
    summary = {
        "out": args.out,
        "dataset": inrs.dataset,
        "psnr": inrs.psnr.round(2).tolist(),
        "augmentations": {
            p.name: {"max_output_change": p.max_output_change, "weight_change": p.weight_change} for p in panels[1:]
        },
        "mixup_weight_distance": distances,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    run_cli(main)
