"""Figures for notebooks and CLIs: image grids, training curves and representations (matplotlib).

Functions return the figure; notebooks display it, CLIs write it with
:func:`save_figure`. Nothing here selects a matplotlib backend (a headless
machine falls back to Agg by itself, a notebook keeps its inline backend).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure, SubFigure

SPLIT_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
RUN_LINESTYLES = ("-", "--", ":", "-.")


def as_display_image(image) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> what ``imshow`` takes: gray ``(H, W)`` or RGB."""
    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3):
        return image
    raise ValueError(f"an image must be (H, W), (H, W, 1) or (H, W, 3); got shape {image.shape}")


def plot_image_grid(
    images,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    row_labels: Sequence[str] | None = None,
    suptitle: str | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    size: float = 1.7,
    title_size: float = 8.0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Images in a grid of ``ncols`` columns (default: all in one row), row-major.

    ``images``: ``(N, H, W[, C])`` array or a list of ``(H, W[, C])`` arrays with
    ``C`` 1 (gray) or 3 (RGB), values in ``[vmin, vmax]``. ``titles``: one per
    image; ``row_labels``: one per row, written left of the row. ``fig`` draws
    into an existing figure or sub-figure instead of a new figure.
    """
    shown = [as_display_image(im) for im in images]
    n = len(shown)
    if n == 0:
        raise ValueError("plot_image_grid needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    ncols = n if ncols is None else ncols
    nrows = -(-n // ncols)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"got {len(row_labels)} row labels for {nrows} rows")
    if fig is None:
        fig = plt.figure(figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(np.clip(shown[i], vmin, vmax), cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=title_size)
    for label, row in zip(row_labels or (), axes):
        row[0].set_ylabel(label, fontsize=title_size + 1)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_training_curves(
    runs: Mapping[str, Sequence[dict]], title: str = "", splits: Sequence[str] = ("train", "val", "test")
) -> Figure:
    """The paper's Figure 1: loss and accuracy per epoch; colour = split, line style = run.

    Epochs are numbered from 0, as ``history.csv`` and ``best_epoch`` number them.

    ``runs`` maps a run name to its epoch records (``train_classifier``'s
    ``history["epochs"]``: ``epoch`` and ``{split}_loss``, ``{split}_accuracy``).
    A single run may be named ``""``.
    """
    if not runs:
        raise ValueError("plot_training_curves needs at least one run")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for r, (run, epochs) in enumerate(runs.items()):
        x = [e["epoch"] for e in epochs]
        for ax, metric in zip(axes, ("loss", "accuracy")):
            for split in splits:
                ax.plot(
                    x,
                    [e[f"{split}_{metric}"] for e in epochs],
                    label=f"{run} {split}".strip(),
                    color=SPLIT_COLOURS.get(split),
                    linestyle=RUN_LINESTYLES[r % len(RUN_LINESTYLES)],
                    marker="o",
                    markersize=3,
                )
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch (from 0, as in history.csv and best_epoch)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_scale_curve(
    series: Mapping[str, Sequence[tuple[int, float, float]]],
    references: Mapping[str, tuple[str, float]],
    title: str = "",
) -> Figure:
    """Test accuracy (%) against training objects (log axis), one line with error bars per cell.

    ``series`` maps a cell name to ``(objects, mean, std)`` points; ``references``
    maps a cell name to ``(label, accuracy)``, drawn as a dashed line in the
    colour of the first cell that has it (the paper's number; drawn once when several
    cells, e.g. two model layouts, share it).
    """
    if not series:
        raise ValueError("plot_scale_curve needs at least one series")
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    colours = {}
    for name, points in series.items():
        x, mean, std = zip(*sorted(points))
        line = ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
        colours[name] = line[0].get_color()
    drawn = set()
    for name, (label, value) in references.items():
        if (label, value) not in drawn:
            drawn.add((label, value))
            ax.axhline(
                value, linestyle="--", linewidth=1, color=colours.get(name, "gray"), label=f"{label}: {value:.1f}"
            )
    sizes = sorted({x for points in series.values() for x, _, _ in points})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training objects (1 view each)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection ``(N, 2)`` of centred ``x`` ``(N, F)`` on its two leading principal axes (SVD)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_representations(panels: Mapping[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str]) -> Figure:
    """One scatter per encoder of the 2-D PCA of its representations ``(N, F)``, coloured by class
    (the augmentation paper's Figure 5, which uses t-SNE)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (title, features) in zip(axes[0], panels.items()):
        xy = pca_2d(features)
        for c, name in enumerate(class_names):
            mine = labels == c
            ax.scatter(xy[mine, 0], xy[mine, 1], s=6, color=cmap(c % cmap.N), label=name, alpha=0.7)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("test INR representations, PCA")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> None:
    """Write ``fig`` atomically (temporary file, then rename; format from the suffix) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    plt.close(fig)


def plot_curves(path: str | os.PathLike, epochs: Sequence[dict], title: str) -> None:
    """One run's loss and accuracy curves (train, validation, test) written to ``path``."""
    save_figure(plot_training_curves({"": epochs}, title), path)
