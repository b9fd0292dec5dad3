"""Run a named set of classification runs under the CPU protocol and tabulate them.

    python -m experiments.reproduce --set fmnist-augment --seeds 0,1,2
    python -m experiments.reproduce --set fmnist-augment --table-only
    python -m experiments.reproduce --set scale-fmnist --train-objects 55000 --seeds 0
    python -m experiments.reproduce --set scale-fmnist --train-objects 10000 --augment mixup_prealigned --epochs 200
    python -m experiments.reproduce --set ssl-fmnist --seeds 0,1,2   (see experiments.reproduce_ssl)

Each run is one :func:`dwsjax.run.run_classification` of the
:class:`~dwsjax.run.RunConfig` that a set's protocol and cell make
(:func:`run_config`; the same run from a shell is the ``experiments.classify``
command with one flag per config field). Finished runs are appended to
``results/<set>.csv`` (one row per run); a rerun skips runs already there (a row is read back as the
config it records and compared with the run's, :func:`is_done`) and
resumes a killed run from its checkpoint. After every run the markdown table
``results/<set>.md`` (mean and std over seeds, next to the paper's numbers for
the same cells where the paper reports them) is rendered again; a set with cells
run at several training-set sizes also gets ``results/<set>.png`` (accuracy against
training objects).

CPU protocol (2 cores, no GPU; see results/README.md): 2,000 training objects with
one view (500 validation and 2,000 test objects, one view), SIRENs fitted with
the default recipe (``--inr-recipe`` picks another), DWS with 32 channels (the
DWSNets MNIST setting; the augmentation paper uses 128), 40 epochs of each
model's training recipe (``dwsjax.optim.MODEL_RECIPES``), best validation epoch
reported. ``--epochs`` trains longer (the augmentation paper's trainer runs 200):
a run of a cell keeps one directory, so a longer run continues the finished
shorter one when its learning rate is constant, and both are rows of the CSV.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dwsjax.augment import mixes_pairs, spec_label, spec_of_label
from dwsjax.files import append_csv_rows, atomic_write_text, read_csv_rows
from dwsjax.optim import MODEL_RECIPES
from dwsjax.recipes import DEFAULT_RECIPE, INR_INITS, RECIPES
from dwsjax.run import DWS_LAYOUT, RunConfig, inr_store_name, run_classification  # noqa: F401
from experiments.cli import make_parser, run_cli
from experiments.reproduce_ssl import SSL_SETS, run_ssl_set
from experiments.tables import inr_recipe_name, mean_pm_std


class Protocol(NamedTuple):
    """Sizes shared by every run of a set (the CPU protocol); every field is a :class:`RunConfig` field,
    ``None`` meaning the config's default."""

    dataset: str
    train_objects: int
    val_objects: int
    test_objects: int
    epochs: int
    train_recipe: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    warmup_steps: int | None = None
    hidden: int | None = None
    normalization: str | None = None
    set_layer: str | None = None
    head_hidden: int | None = None
    store_views: int | None = None
    inr_steps: int | None = None
    inr_points: int | None = None
    inr_recipe: str = DEFAULT_RECIPE
    inr_init: str | None = None
    mixup_partners: str | None = None


class Run(NamedTuple):
    protocol: Protocol
    model: str
    augment: str
    views: int
    seed: int

    @property
    def name(self) -> str:
        partners = run_config(self).partners
        return (
            f"{self.model}_{spec_label(self.augment)}{'' if partners is None else f'_p{partners}'}_v{self.views}"
            f"_n{self.protocol.train_objects}_{self.protocol.inr_recipe}"
            f"{'_shared' if self.protocol.inr_init == 'shared' else ''}_s{self.seed}"
        )


FMNIST = Protocol("fmnist", train_objects=2000, val_objects=500, test_objects=2000, epochs=40)
# The paper's split (55k train, 5k validation, 10k test), subsampled for the smaller points of the scale curve.
FMNIST_PAPER_SPLIT = Protocol("fmnist", train_objects=55000, val_objects=5000, test_objects=10000, epochs=40)
SCALE_OBJECTS = (2000, 10000, 55000)
FMNIST_PAPER = FMNIST_PAPER_SPLIT._replace(
    epochs=300, hidden=128, store_views=10, inr_recipe="dwsnets", mixup_partners="store"
)
# CIFAR-10 and ModelNet40 as the paper ran them (App. B, D: exact INR recipes, DWS-128, 300 and 250 epochs), with
# validation carved from the official training split as for Fashion-MNIST (our choice: the paper states no
# validation size): CIFAR-10's last 5,000 of 50,000 training images, ModelNet40's last 984 (10 %) of its 9,843
# training shapes; all 10,000 / 2,468 official test objects. CIFAR-10: 5 views per training image, the paper's
# count for it (its released code ships only the Fashion-MNIST views).
CIFAR10_PAPER = Protocol(
    "cifar10",
    train_objects=45000,
    val_objects=5000,
    test_objects=10000,
    epochs=300,
    hidden=128,
    store_views=5,
    inr_recipe="dwsnets",
    mixup_partners="store",
)
MODELNET40_PAPER = Protocol(
    "modelnet40",
    train_objects=8859,
    val_objects=984,
    test_objects=2468,
    epochs=250,
    hidden=128,
    inr_recipe="dwsnets",
)
FMNIST_AUGMENTATIONS = (
    "none",
    "mixup_aligned",
    "translate",
    "siren_negation",
    "gaussian_noise",
    "masking",
    "mixup",
    "mixup_permuted",
    "combination",
)

# (dataset, model, augment, views) -> the paper's test accuracy (%), Shamsian et al. 2024.
PAPER = {
    ("fmnist", "dws", "none", 1): 68.3,
    ("fmnist", "dws", "mixup_aligned", 1): 75.7,
    ("fmnist", "dws", "none", 10): 76.0,
    ("modelnet40", "dws", "none", 1): 16.2,
    ("modelnet40", "dws", "mixup_aligned", 1): 27.4,
}

# Our cells that stand for a cell of the paper: template-aligned MixUp for aligned MixUp.
PAPER_CELL = {"mixup_prealigned": "mixup_aligned"}

# Cells whose seed-0 training curves are drawn together in results/<set>_curves.png (the paper's Figure 1).
FIGURE_CELLS = {name: [("dws", "none", 1), ("dws", "mixup_aligned", 1)] for name in ("fmnist-augment", "fmnist-long")}

Cells = list[tuple[str, str, int]]  # (model, augmentation, views)


def paper_set(protocol: Protocol, dws_cells: Cells) -> list[tuple[Protocol, Cells]]:
    """A paper-protocol set: the DWS cells at the protocol's width, and the relational transformer without and
    with aligned MixUp on one view at its own reference width and recipe (d_node 64, as in the augmentation
    paper's code; ``neural-graphs``): the protocol's ``hidden`` is DWS's channel count, so the GNN cells drop it."""
    return [(protocol, dws_cells), (protocol._replace(hidden=None), [("gnn", a, 1) for a in ("none", "mixup_aligned")])]


def paper_dws_cells(views: int) -> Cells:
    """The DWS cells of a paper set's image column: none, aligned MixUp and SIREN negation on one view, and
    none on the paper's ``views`` views per training object."""
    return [("dws", a, v) for a, v in (("none", 1), ("mixup_aligned", 1), ("siren_negation", 1), ("none", views))]


FMNIST_PARTNERS: list[tuple[Protocol, Cells]] = [
    (FMNIST._replace(store_views=10, mixup_partners="store"), [("dws", "mixup_aligned", 1)]),
    (
        FMNIST._replace(store_views=10),
        [("dws", "none", 1), ("dws", "mixup_aligned", 1), ("dws", "none", 10), ("dws", "mixup_aligned", 10)],
    ),
]

# A set is one or more protocols, each with the cells run under it.
SETS: dict[str, list[tuple[Protocol, Cells]]] = {
    # The last cell pairs the two strongest augmentations here (the paper's combination also carries translate).
    "fmnist-augment": [
        (
            FMNIST,
            [("dws", a, 1) for a in (*FMNIST_AUGMENTATIONS, "mixup_prealigned", "siren_negation,mixup_aligned")]
            + [("dws-probe", "none", 1), ("dws-probe-fixed", "none", 1)],
        )
    ],
    # The reference's 1,000 warmup steps scaled by the training-set size (1,000 x 2,000 / 55,000 ~ 36; ~1.1
    # epochs at batch 64), as in the relational-transformer runs of results/README.md: 1,000 would outlast
    # the whole run.
    "fmnist-gnn": [(FMNIST._replace(batch_size=64, warmup_steps=35), [("gnn", a, 1) for a in FMNIST_AUGMENTATIONS])],
    # One 10-view store serves every view count (its view 0 is the 1-view store's INR to float tolerance:
    # init keys are per view).
    "fmnist-views": [(FMNIST._replace(store_views=10), [("dws", "none", v) for v in (1, 5, 10)])],
    # Where aligned MixUp's partners come from: the released code of the augmentation paper draws them from every
    # view of the training split while its anchors keep --n-views (dwsjax.run.partner_pool). One 10-view store
    # serves every cell, as in fmnist-views (whose none cells are the same runs).
    "fmnist-partners": FMNIST_PARTNERS,
    # The same cells on INRs of the exact recipe (an accelerator's job; `--dry-run` prices it).
    "fmnist-partners-exact": [(p._replace(inr_recipe="dwsnets"), cells) for p, cells in FMNIST_PARTNERS],
    # Table 1's Fashion-MNIST column as the augmentation paper ran it (an accelerator's job; `--dry-run` prices it):
    # its split, exact INR recipe and 10 views per training image, DWS with 128 channels for 300 epochs (App. B, D),
    # MixUp partners from every view (its released code), the strongest other augmentation here.
    "fmnist-paper": paper_set(FMNIST_PAPER, paper_dws_cells(10)),
    # The same for CIFAR-10 (SIREN negation: the strongest other augmentation of the `cifar10` set) and ModelNet40
    # (1 view; the paper's cells without and with aligned MixUp). Accelerator jobs: `--dry-run` prices them.
    "cifar10-paper": paper_set(CIFAR10_PAPER, paper_dws_cells(5)),
    "modelnet40-paper": paper_set(MODELNET40_PAPER, [("dws", a, 1) for a in ("none", "mixup_aligned")]),
    # MixUp of template-aligned INRs against pairwise-aligned MixUp (dwsjax.template_store).
    "fmnist-prealigned": [(FMNIST, [("dws", a, 1) for a in ("none", "mixup_aligned", "mixup_prealigned")])],
    # Long enough for the unaugmented model to overfit, the regime in which the paper reports MixUp's gain.
    "fmnist-long": [(FMNIST._replace(epochs=120), [("dws", a, 1) for a in ("none", "mixup_aligned")])],
    # The headline cell against the number of training objects, up to the paper's 55k (results/scale-fmnist.png).
    # Template-aligned MixUp stands for aligned MixUp: equal accuracy at a fraction of the cost (fmnist-prealigned).
    "scale-fmnist": [
        (FMNIST_PAPER_SPLIT._replace(train_objects=n), [("dws", a, 1) for a in ("none", "mixup_prealigned")])
        for n in SCALE_OBJECTS
    ],
    # SIREN negation, the strongest augmentation on fmnist-augment, checks whether that finding carries over.
    "cifar10": [
        (
            Protocol("cifar10", train_objects=2000, val_objects=500, test_objects=2000, epochs=40),
            [("dws", a, 1) for a in ("none", "mixup_aligned", "mixup_prealigned", "siren_negation")],
        )
    ],
    # The full official split: 3,991 training shapes (the last 400 of our fixed order validate), 908 test shapes;
    # 8 epochs to fit the CPU budget (results/README.md, "ModelNet10": where the best epochs fall).
    "modelnet10": [
        (
            Protocol("modelnet10", train_objects=3591, val_objects=400, test_objects=908, epochs=8, inr_points=1024),
            [
                ("dws", "none", 1),
                ("dws", "mixup_aligned", 1),
                ("dws-probe", "none", 1),
                ("dws-probe-fixed", "none", 1),
                ("dws-probe", "mixup_aligned", 1),
                ("gnn-probe", "none", 1),
            ],
        )
    ],
    "smoke": [
        (
            Protocol(
                "synthetic2d", train_objects=48, val_objects=16, test_objects=32, epochs=2, batch_size=16, inr_steps=30
            ),
            [("dws", a, 1) for a in ("none", "mixup_aligned")],
        )
    ],
}

# Model variants a cell may name: their RunConfig fields (the model and its options). Probe features: 64 probe
# inputs as in the neural-graphs reference (dwsjax.models.probes), learned unless "fixed".
MODEL_VARIANTS: dict[str, dict[str, Any]] = {
    **{m: {"model": m} for m in ("dws", "gnn", "mlp", "transformer")},
    "dws-probe": {"model": "dws", "probe_points": 64},
    "dws-probe-fixed": {"model": "dws", "probe_points": 64, "probe_inputs": "fixed"},
    "gnn-probe": {"model": "gnn", "probe_points": 64},
}

COLUMNS = [
    "dataset",
    "model",
    "augment",
    "views",
    "seed",
    "test_accuracy",
    "val_accuracy",
    "best_epoch",
    "epochs",
    "final_train_accuracy",
    "train_objects",
    "train_inrs",
    "mixup_partners",
    "partner_inrs",
    "params",
    "normalization",
    "set_layer",
    "head_hidden",
    "train_samples_per_s",
    "inr_recipe",
    "inr_init",
    "train_recipe",
    "batch_size",
    "learning_rate",
    "warmup_steps",
    "inr_store_psnr",
    "inr_store",
    "train_seconds",
    "wall_seconds",
]


def runs_of(
    set_name: str,
    seeds: list[int],
    augments: list[str] | None = None,
    train_objects: list[int] | None = None,
    models: list[str] | None = None,
    views: list[int] | None = None,
) -> list[Run]:
    """The set's runs, seed by seed; ``augments`` keeps only the cells with those augmentations,
    ``train_objects`` only the protocols with those training-set sizes, ``models`` only the cells of
    those models (:data:`MODEL_VARIANTS`), ``views`` only the cells training on that many views."""
    if set_name not in SETS:
        raise ValueError(f"unknown set {set_name!r}; choose one of {sorted(SETS)}")
    groups = SETS[set_name]
    if models is not None:
        available = {model for _, cells in groups for model, _, _ in cells}
        if set(models) - available:
            raise ValueError(
                f"set {set_name!r} has no cells of model {sorted(set(models) - available)}; "
                f"its cells use {sorted(available)}"
            )
        groups = [(protocol, [c for c in cells if c[0] in models]) for protocol, cells in groups]
    if augments is not None:
        available = {augment for _, cells in groups for _, augment, _ in cells}
        unknown = sorted(set(augments) - available)
        if unknown:
            raise ValueError(
                f"set {set_name!r} has no cells with augmentation {unknown}; its cells use {sorted(available)}"
            )
    if train_objects is not None:
        unknown = sorted(set(train_objects) - {protocol.train_objects for protocol, _ in groups})
        if unknown:
            raise ValueError(
                f"set {set_name!r} has no protocol with {unknown} training objects; its protocols "
                f"use {sorted(protocol.train_objects for protocol, _ in groups)}"
            )
        groups = [(protocol, cells) for protocol, cells in groups if protocol.train_objects in train_objects]
    return [
        Run(protocol, model, augment, cell_views, seed)
        for seed in seeds
        for protocol, cells in groups
        for model, augment, cell_views in cells
        if (augments is None or augment in augments) and (views is None or cell_views in views)
    ]


def run_config(
    run: Run, out: Path | None = None, data_dir: str | None = None, cache_dir: str | None = None
) -> RunConfig:
    """The :class:`RunConfig` of a run: its protocol's settings, its cell's model variant
    (:data:`MODEL_VARIANTS`), augmentation, views and seed, the model's training recipe when the protocol
    names none; resumed in ``out`` and plotted."""
    protocol = {k: v for k, v in run.protocol._asdict().items() if v is not None}
    places = {"data_dir": data_dir, "cache_dir": cache_dir, "out": None if out is None else str(out)}
    return RunConfig(
        **protocol,
        **MODEL_VARIANTS[run.model],
        augment=run.augment,
        views=run.views,
        seed=run.seed,
        train_recipe=train_recipe_of(run),
        resume=True,
        plot=True,
        **{k: v for k, v in places.items() if v is not None},
    )


def train_recipe_of(run: Run) -> str:
    """The protocol's training recipe, or the model's own (dwsjax.optim.MODEL_RECIPES)."""
    return run.protocol.train_recipe or MODEL_RECIPES[MODEL_VARIANTS[run.model]["model"]]


def row_config(row: dict[str, str]) -> RunConfig | None:
    """The :class:`RunConfig` a results row records (typed; its model column names a
    :data:`MODEL_VARIANTS` variant), or ``None`` for a row of a model variant not known here."""
    if row.get("model") not in MODEL_VARIANTS:
        return None
    return RunConfig.from_row({k: v for k, v in row.items() if k != "model"}).replace(**MODEL_VARIANTS[row["model"]])


def is_done(rows: list[dict], run: Run) -> bool:
    """Whether a row of ``rows`` records ``run``: the same :meth:`RunConfig.key` (dataset, model variant,
    augmentation, views, seed, training objects, epochs, INR and training recipes, DWS layout, probes, MixUp
    partners) and the same INR store (:func:`~dwsjax.run.inr_store_name`; a row written before rows
    recorded it counts for any store)."""
    config = run_config(run)
    key, store = config.key(), inr_store_name(config)
    return any(
        recorded is not None and recorded.key() == key and row.get("inr_store") in (None, "", store)
        for row, recorded in zip(rows, map(row_config, rows))
    )


def layout_name(row: dict) -> str:
    """A DWS row's layout, e.g. ``batch, sab, head 128``; ``—`` for other models."""
    if not row["normalization"]:
        return "—"
    return f"{row['normalization']}, {row['set_layer']}, head {row['head_hidden']}"


def partners_name(row: dict) -> str:
    """Where a MixUp row's partners came from, e.g. ``store (20000 INRs)``; ``batch`` for the default,
    ``—`` without MixUp."""
    config = row_config(row)
    partners = None if config is None else config.partners
    if partners is None:
        return "batch" if mixes_pairs(row["augment"]) else "—"
    return f"{partners} ({row['partner_inrs']} INRs)" if row.get("partner_inrs") else partners


def inr_labels(rows: list[dict]) -> list[str]:
    """Each row's INR recipe (:func:`~experiments.tables.inr_recipe_name`), followed by its store's digest
    where rows of one recipe came from several stores (a refit draws other INRs), e.g.
    ``dwsnets-fast, store 3db96ab846``, or ``store not recorded`` for rows written before rows recorded it."""
    stores: dict[str, set[str]] = {}
    for r in rows:
        stores.setdefault(inr_recipe_name(r), set()).add(r.get("inr_store") or "")
    labels = []
    for r in rows:
        name, store = inr_recipe_name(r), r.get("inr_store") or ""
        suffix = f"store {store.rsplit('_', 1)[-1]}" if store else "store not recorded"
        labels.append(name if len(stores[name]) == 1 else f"{name}, {suffix}")
    return labels


def markdown_table(rows: list[dict]) -> str:
    """Mean ± std of test accuracy (%) over seeds per (dataset, model, augment, views, training objects,
    epochs, INR recipe and store, training recipe, DWS layout, MixUp partners) cell."""
    cells: dict[tuple, list[dict]] = {}
    for r, inr in zip(rows, inr_labels(rows)):
        key = (
            r["dataset"],
            r["model"],
            r["augment"],
            int(r["views"]),
            int(r["train_objects"]),
            int(r["epochs"]),
            inr,
            r["train_recipe"],
            layout_name(r),
            partners_name(r),
        )
        cells.setdefault(key, []).append(r)
    lines = [
        "| dataset | model | augmentation | views | train objects | epochs | INR recipe | training recipe "
        "| DWS layout | MixUp partners | test acc. (%) | train acc. (%) | seeds | paper (%) |",
        "|---|---|---|---:|---:|---:|---|---|---|---|---:|---:|---:|---:|",
    ]
    for key, runs in cells.items():
        test = 100 * np.array([float(r["test_accuracy"]) for r in runs])
        train = 100 * np.array([float(r["final_train_accuracy"]) for r in runs])
        paper = PAPER.get(key[:4])
        lines.append(
            f"| {' | '.join(map(str, key))} | {mean_pm_std(test)} | "
            f"{train.mean():.1f} | {len(runs)} | {'—' if paper is None else f'{paper:.1f}'} |"
        )
    return "\n".join(lines) + "\n"


def write_table(results_dir: Path, set_name: str) -> Path:
    """``<set>.md``: the set's protocols, then :func:`markdown_table` of every row of ``<set>.csv`` (rows run
    with ``--inr-recipe`` or ``--epochs`` say so in their columns)."""
    rows = read_csv_rows(results_dir / f"{set_name}.csv")
    path = results_dir / f"{set_name}.md"
    header = f"# {set_name}\n\n" + "".join(f"Protocol: `{json.dumps(p._asdict())}`\n\n" for p, _ in SETS[set_name])
    atomic_write_text(path, header + markdown_table(rows))
    return path


def write_curves(results_dir: Path, runs_dir: Path, set_name: str, runs: list[Run]) -> Path | None:
    """The seed-0 curves of the set's :data:`FIGURE_CELLS` that have finished, in one figure."""
    from dwsjax.plots import plot_training_curves, save_figure

    histories = {}
    for run in runs:
        path = runs_dir / set_name / run.name / "results.json"
        if run.seed == 0 and (run.model, run.augment, run.views) in FIGURE_CELLS.get(set_name, []) and path.exists():
            histories[f"{run.model} {run.augment} v{run.views}"] = json.loads(path.read_text())["history"]
    if not histories:
        return None
    out = results_dir / f"{set_name}_curves.png"
    save_figure(plot_training_curves(histories, f"{set_name} (seed 0)"), out)
    return out


def write_scale_curve(results_dir: Path, set_name: str) -> Path | None:
    """``<set>.png``: test accuracy against training objects for each cell run at several training-set sizes
    (a cell as in :func:`markdown_table`: INRs of another recipe or store are another cell), with the paper's
    accuracy of each cell (at its full training set) as a reference line; no figure (an old one is removed)
    when no cell was run at two sizes."""
    from dwsjax.plots import plot_scale_curve, save_figure

    rows = read_csv_rows(results_dir / f"{set_name}.csv")
    out = results_dir / f"{set_name}.png"
    cells: dict[tuple, dict[int, list[float]]] = {}
    for r, inr in zip(rows, inr_labels(rows)):
        cell = (r["dataset"], r["model"], r["augment"], int(r["views"]), layout_name(r), int(r["epochs"]), inr)
        cells.setdefault(cell, {}).setdefault(int(r["train_objects"]), []).append(100 * float(r["test_accuracy"]))
    cells = {cell: points for cell, points in cells.items() if len(points) > 1}
    if not cells:
        out.unlink(missing_ok=True)
        return None
    layouts, epoch_counts, inrs = ({cell[i] for cell in cells} for i in (4, 5, 6))
    series, references = {}, {}
    for (dataset, model, augment, views, layout, epochs, inr), points in cells.items():
        details = (
            [layout] * (len(layouts) > 1) + [f"{epochs} epochs"] * (len(epoch_counts) > 1) + [inr] * (len(inrs) > 1)
        )
        name = f"{model} {augment}" + (f" ({', '.join(details)})" if details else "")
        series[name] = [(n, np.mean(acc), np.std(acc)) for n, acc in points.items()]
        paper_cell = (dataset, model, PAPER_CELL.get(augment, augment), views)
        if paper_cell in PAPER:
            references[name] = (f"paper (its full training set), {model} {paper_cell[2]}", PAPER[paper_cell])
    save_figure(plot_scale_curve(series, references, f"{set_name}: test accuracy vs training objects"), out)
    return out


def parse_augments(text: str) -> list[str]:
    """``"none,siren_negation+mixup_aligned"`` -> ``["none", "siren_negation,mixup_aligned"]``: the cells'
    augmentations, a pipeline's steps joined by ``+`` on the command line and by ``,`` in a cell."""
    return [spec_of_label(a.strip()) for a in text.split(",") if a.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--set", required=True, choices=sorted(SETS) + sorted(SSL_SETS))
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument(
        "--augment",
        default=None,
        help="only the cells with these augmentations (comma-separated, a pipeline's steps joined "
        "by '+', e.g. none,siren_negation+mixup_aligned; default: all)",
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"only the cells of these models (comma-separated, of {', '.join(MODEL_VARIANTS)}; default: all)",
    )
    p.add_argument("--views", default=None, help="only the cells training on these view counts (comma-separated)")
    p.add_argument(
        "--train-objects",
        default=None,
        help="only the protocols with these training-set sizes (comma-separated; default: all)",
    )
    p.add_argument("--results-dir", default="results", help="where <set>.csv and <set>.md go")
    p.add_argument("--runs-dir", default="runs/reproduce", help="run directories (checkpoints, curves)")
    p.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    p.add_argument("--cache-dir", default=os.environ.get("DWSJAX_CACHE_DIR", "cache"), help="INR store cache")
    p.add_argument(
        "--inr-recipe",
        default=None,
        choices=sorted(RECIPES),
        help=f"INR fitting recipe of every run (default: the set's, {DEFAULT_RECIPE} for all sets)",
    )
    p.add_argument(
        "--inr-init",
        default=None,
        choices=sorted(INR_INITS),
        help="INR inits of every run: independent per INR (the papers', every set's default) or shared by "
        "every object (dwsjax.fit.inr_keys)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="train the selected runs this many epochs instead of their protocol's; under a constant "
        "learning rate a finished shorter run of the same cell is extended, not repeated (its "
        "epochs are the longer run's first ones), and both rows are kept",
    )
    p.add_argument("--table-only", action="store_true", help="only render the markdown table")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan of the runs not done yet (work, FLOPs and projected time of every fitting and "
        "training step, from short timed probes here; dwsjax.plan) and run nothing",
    )
    return p.parse_args(argv)


def main(argv=None) -> Path | None:
    import time

    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.set in SSL_SETS:
        if args.augment is not None:
            raise ValueError(f"--augment selects cells of classification sets; {args.set!r} is a SimCLR set")
        path = run_ssl_set(
            args.set,
            seeds,
            Path(args.results_dir),
            Path(args.runs_dir),
            args.data_dir,
            args.cache_dir,
            args.table_only,
            args.inr_recipe or DEFAULT_RECIPE,
        )
        print(path.read_text())
        return path
    augments = None if args.augment is None else parse_augments(args.augment)
    train_objects = None if args.train_objects is None else [int(n) for n in args.train_objects.split(",")]
    models = None if args.model is None else [m.strip() for m in args.model.split(",")]
    views = None if args.views is None else [int(v) for v in args.views.split(",")]
    set_runs = runs_of(args.set, seeds, augments, train_objects, models, views)
    given = {"inr_recipe": args.inr_recipe, "inr_init": args.inr_init, "epochs": args.epochs}
    overrides = {field: value for field, value in given.items() if value is not None}
    runs = [run._replace(protocol=run.protocol._replace(**overrides)) for run in set_runs]
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path = results_dir / f"{args.set}.csv"
    if args.dry_run:
        from dwsjax.plan import format_plan, kept_probes, plan

        todo = [run for run in runs if not is_done(read_csv_rows(csv_path), run)]
        runs_dir = Path(args.runs_dir) / args.set
        configs = [run_config(r, runs_dir / r.name, args.data_dir, args.cache_dir) for r in todo]
        probes = kept_probes(configs)
        text = format_plan(plan(configs, probes))
        kept = f"; probes: {probes.measured} measured, {probes.read} read from {probes.path}" if probes.path else ""
        print(f"{args.set}: {len(todo)} of {len(runs)} runs to do{kept}\n\n{text}")
        return None
    if not args.table_only:
        for i, run in enumerate(runs):
            if is_done(read_csv_rows(csv_path), run):
                print(f"[{i + 1}/{len(runs)}] {run.name}: already in {csv_path}, skipped")
                continue
            print(f"[{i + 1}/{len(runs)}] {run.name}", flush=True)
            start = time.perf_counter()
            out = Path(args.runs_dir) / args.set / run.name
            results = run_classification(run_config(run, out, args.data_dir, args.cache_dir))
            row = {
                **results,
                "model": run.model,
                "train_objects": run.protocol.train_objects,
                "wall_seconds": round(time.perf_counter() - start, 1),
            }
            append_csv_rows(csv_path, [row], COLUMNS)
            write_table(results_dir, args.set)
    path = write_table(results_dir, args.set)
    write_curves(results_dir, Path(args.runs_dir), args.set, set_runs)
    write_scale_curve(results_dir, args.set)
    print(path.read_text())
    return path


if __name__ == "__main__":
    run_cli(main)
