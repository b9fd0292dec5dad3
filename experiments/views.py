"""The views study (Shamsian et al. 2024, Sec. 3): does a weight-space model learn objects or INRs?

    python -m experiments.views --dataset fmnist --objects 1000 --max-views 5 --views-list 1,2,5

A "view" is one INR of an object; views differ only by the fitting seed. One
multi-view store of the train split (``--max-views`` views of each of the first
objects) is fitted once and every run trains on a subset of it:

1. *One vs many views*: the first ``--objects`` objects with ``V`` views each, for
   ``V`` in ``--views-list``; reports accuracy on the training INRs ("train").
2. *Internal vs external generalisation*: the same runs evaluated on the views
   ``>= V`` of their training objects ("internal": new INRs of seen objects) and
   on one view of unseen test-split objects ("external" = test).
3. *More views or more objects*: ``N`` objects x ``V`` views at a fixed budget
   ``N * V = --budget`` INRs, for each ``V`` of ``--views-list`` dividing it.

Validation uses view 0 of held-out train-split objects and selects the epoch;
all reported accuracies use the best-validation parameters. Every run trains
``--epochs`` epochs, or with ``--equal-steps`` as many optimiser steps as
``--epochs`` epochs over the largest training set (so fewer INRs do not also
mean less training). A run is one
``(objects, views, seed)``; runs shared by experiments 1 and 3 are trained
once. ``--out`` gets ``results.json`` (settings, runs, per-epoch histories),
``results.csv`` (one row per run), ``results.md`` and ``views.png``; a rerun
skips runs already in ``results.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import time
from pathlib import Path

from dwsjax.files import atomic_write_text, read_csv_rows, removed_on_failure
from dwsjax.presets import DATASETS
from dwsjax.recipes import DEFAULT_RECIPE, RECIPES
from dwsjax.run import MODEL_NAMES, RunConfig, resolved_recipe
from experiments.classify import add_training_arguments
from experiments.cli import add_config_arguments, make_parser, run_cli

RUN_FIELDS = [
    "objects",
    "views",
    "seed",
    "train_inrs",
    "internal_inrs",
    "epochs",
    "best_epoch",
    "train_accuracy",
    "internal_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_samples_per_s",
    "seconds",
]
SETTINGS = [
    "dataset",
    "model",
    "hidden",
    "max_views",
    "val_objects",
    "test_objects",
    "inr_recipe",
    "inr_steps",
    "inr_points",
    "epochs",
    "equal_steps",
]


def int_list(text: str, minimum: int = 1) -> list[int]:
    """``"5,1,2"`` -> ``[1, 2, 5]``; every value at least ``minimum``."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < minimum:
        raise argparse.ArgumentTypeError(f"expected integers >= {minimum} like '1,2,5', got {text!r}")
    return values


def seed_list(text: str) -> list[int]:
    return int_list(text, minimum=0)


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("--dataset", default="fmnist", choices=DATASETS)
    p.add_argument("--model", default="dws", choices=MODEL_NAMES)
    p.add_argument("--hidden", type=int, default=None, help="model width (default: the model's)")
    p.add_argument("--max-views", type=int, default=5, help="views fitted per train-split object")
    p.add_argument(
        "--views-list",
        type=int_list,
        default=None,
        help="views per training object to compare (default: 1,2,5,10 up to --max-views)",
    )
    p.add_argument("--objects", type=int, default=500, help="training objects of experiments 1-2")
    p.add_argument("--budget", type=int, default=None, help="training INRs of experiment 3 (default: --objects)")
    p.add_argument("--val-objects", type=int, default=200, help="held-out train-split objects (view 0)")
    p.add_argument("--test-objects", type=int, default=1000, help="test-split objects (view 0)")
    p.add_argument(
        "--inr-recipe",
        default=DEFAULT_RECIPE,
        choices=sorted(RECIPES),
        help="INR fitting recipe (dwsjax.recipes): init, output offset, Adam schedule",
    )
    add_config_arguments(p, RunConfig, ["inr_steps", "inr_points"])  # the INR flags of experiments.classify
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument(
        "--equal-steps",
        action="store_true",
        help="give every run the optimiser steps of --epochs epochs over the largest training set "
        "(smaller sets get more epochs); default: --epochs epochs for every run",
    )
    add_training_arguments(p)
    p.add_argument("--seeds", type=seed_list, default=[0], help="training seeds, e.g. 0,1,2")
    p.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    p.add_argument("--cache-dir", default=os.environ.get("DWSJAX_CACHE_DIR", "cache"), help="INR store cache")
    p.add_argument("--out", default=None, help="output directory (default: runs/views_<dataset>_<model>)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.views_list is None:
        args.views_list = [v for v in (1, 2, 5, 10) if v <= args.max_views]
    if args.budget is None:
        args.budget = args.objects
    if args.views_list[-1] > args.max_views:
        p.error(f"--views-list goes up to {args.views_list[-1]} but --max-views is {args.max_views}")
    if min(args.objects, args.budget, args.val_objects, args.test_objects) < 1:
        p.error("--objects, --budget, --val-objects and --test-objects must be positive")
    return args


def planned_runs(args) -> list[tuple[int, int, int]]:
    """``(objects, views, seed)`` of experiments 1-2 (``--objects`` x each V) and 3 (``N * V = budget``)."""
    pairs = [(args.objects, v) for v in args.views_list]
    pairs += budget_pairs(args.budget, args.views_list)
    unique = sorted(set(pairs), key=lambda p: (p[0] != args.objects, p[1], -p[0]))
    return [(n, v, seed) for seed in args.seeds for n, v in unique]


def budget_pairs(budget: int, views_list: list[int]) -> list[tuple[int, int]]:
    """``(N, V)`` with ``N * V == budget`` for each ``V`` of ``views_list`` that divides the budget."""
    pairs = [(budget // v, v) for v in views_list if budget % v == 0]
    if not pairs:
        raise ValueError(f"no views count in {views_list} divides the budget of {budget} INRs")
    return pairs


def run_epochs(args, train_inrs: int, largest_inrs: int) -> int:
    """``--epochs``, or with ``--equal-steps`` ``ceil(epochs * largest_inrs / train_inrs)`` so that
    runs on fewer INRs are not also trained for fewer steps."""
    return math.ceil(args.epochs * largest_inrs / train_inrs) if args.equal_steps else args.epochs


def run_key(objects: int, views: int, seed: int) -> str:
    return f"n{objects}_v{views}_s{seed}"


def split_run(pool, objects: int, views: int):
    """Training INRs (first ``objects`` objects, views ``< views``) and their unseen views (``>= views``)."""
    import numpy as np

    from dwsjax.store import objects_in_order, select

    object_ids = objects_in_order(pool)
    if objects > len(object_ids):
        raise ValueError(f"asked for {objects} training objects but only {len(object_ids)} were fitted")
    seen_object = np.isin(pool.object_ids, object_ids[:objects])
    return select(pool, seen_object & (pool.view_ids < views)), select(pool, seen_object & (pool.view_ids >= views))


def train_run(
    args, recipe, model, pool, val, test, num_classes: int, objects: int, views: int, seed: int, largest_inrs: int
) -> dict:
    """Train ``model`` on ``objects x views`` INRs; accuracies with the best-validation parameters.

    One ``model`` object serves all runs so that the jitted steps compile once.
    """
    from dwsjax.train import TrainConfig, train_classifier

    train, internal = split_run(pool, objects, views)
    config = TrainConfig(recipe, epochs=run_epochs(args, len(train.labels), largest_inrs), seed=seed)
    final_eval = {"train": train, **({"internal": internal} if len(internal.labels) else {})}
    start = time.perf_counter()
    history = train_classifier(
        model, train, val, test, num_classes, config, progress=not args.no_progress, final_eval=final_eval
    )
    best = history["epochs"][history["best_epoch"]]
    final = history["final_eval"]
    row = {
        "objects": objects,
        "views": views,
        "seed": seed,
        "train_inrs": len(train.labels),
        "internal_inrs": len(internal.labels),
        "epochs": config.epochs,
        "best_epoch": history["best_epoch"],
        "train_accuracy": final["train"]["accuracy"],
        "internal_accuracy": final["internal"]["accuracy"] if "internal" in final else math.nan,
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "train_samples_per_s": sum(e["train_samples_per_s"] for e in history["epochs"]) / len(history["epochs"]),
        "seconds": time.perf_counter() - start,
    }
    return {"row": row, "history": history["epochs"]}


def parse_cell(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: Path) -> list[dict]:
    """Rows of ``results.csv`` with numbers parsed; ``[]`` before the first run."""
    return [{k: parse_cell(v) for k, v in row.items()} for row in read_csv_rows(path)]


def rows_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RUN_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def load_previous(out: Path, settings: dict) -> tuple[list[dict], dict]:
    """Rows of ``results.csv`` and histories of ``results.json``; refuses other settings."""
    rows = read_rows(out / "results.csv")
    histories = {}
    if (out / "results.json").exists():
        saved = json.loads((out / "results.json").read_text())
        if saved["settings"] != settings:
            diff = sorted(k for k in settings if saved["settings"].get(k) != settings[k])
            raise ValueError(
                f"{out} holds results with other settings ({', '.join(diff)}); use another --out "
                "or delete it to start over"
            )
        histories = saved["histories"]
    return rows, histories


def mean_std(rows: list[dict], field: str) -> tuple[float, float]:
    import numpy as np

    values = np.array([r[field] for r in rows], float)
    if np.isnan(values).all():
        return math.nan, math.nan
    return float(np.nanmean(values)), float(np.nanstd(values))


def group(rows: list[dict], pairs: list[tuple[int, int]]) -> list[tuple[int, int, list[dict]]]:
    """Rows of each ``(objects, views)`` pair (over seeds), in the order of ``pairs``; empty pairs dropped."""
    grouped = [(n, v, [r for r in rows if (r["objects"], r["views"]) == (n, v)]) for n, v in pairs]
    return [g for g in grouped if g[2]]


def cell(rows: list[dict], field: str) -> str:
    mean, std = mean_std(rows, field)
    if math.isnan(mean):
        return "-"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if len(rows) > 1 else f"{100 * mean:.1f}"


def markdown(args, rows: list[dict]) -> str:
    views_groups = group(rows, [(args.objects, v) for v in args.views_list])
    budget_groups = group(rows, budget_pairs(args.budget, args.views_list))
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"# Views study: {args.dataset}, {args.model}" + (f" (hidden {args.hidden})" if args.hidden else ""),
        "",
        f"Accuracy (%) with the best-validation parameters, mean ± std over seeds {seeds}; {args.epochs} "
        f"epochs{' over the largest training set, equal steps for all runs' if args.equal_steps else ''}; "
        f"{args.max_views} views fitted per train-split object; validation: view 0 of "
        f"{args.val_objects} held-out train objects; external = test: view 0 of {args.test_objects} "
        "test-split objects; internal: the unseen views (>= V) of the training objects.",
        "",
        f"## 1-2. One vs many views ({args.objects} training objects)",
        "",
        "| views V | train INRs | epochs | train | internal (new views, seen objects) | external (test) "
        "| train - test |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, v, g in views_groups:
        gap = [{"gap": r["train_accuracy"] - r["test_accuracy"]} for r in g]
        lines.append(
            f"| {v} | {g[0]['train_inrs']} | {g[0]['epochs']} | {cell(g, 'train_accuracy')} "
            f"| {cell(g, 'internal_accuracy')} | {cell(g, 'test_accuracy')} "
            f"| {cell(gap, 'gap')} |"
        )
    lines += [
        "",
        f"## 3. More views or more objects ({args.budget} training INRs)",
        "",
        "| objects N | views V | epochs | train | external (test) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, v, g in budget_groups:
        lines.append(f"| {n} | {v} | {g[0]['epochs']} | {cell(g, 'train_accuracy')} | {cell(g, 'test_accuracy')} |")
    return "\n".join(lines) + "\n"


def plot(path: Path, args, rows: list[dict]) -> None:
    """Left: accuracy vs views (train / internal / external). Right: test accuracy vs (N, V) at a fixed budget."""
    import matplotlib.pyplot as plt

    from dwsjax.plots import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    views_groups = group(rows, [(args.objects, v) for v in args.views_list])
    for field, label in (
        ("train_accuracy", "train (seen INRs)"),
        ("internal_accuracy", "internal (new views)"),
        ("test_accuracy", "external (new objects)"),
    ):
        stats = [(v, *mean_std(g, field)) for _, v, g in views_groups]
        stats = [s for s in stats if not math.isnan(s[1])]
        if stats:
            x, mean, std = zip(*stats)
            left.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
    left.set_xscale("log")
    left.set_xticks(args.views_list, [str(v) for v in args.views_list])
    left.set_xlabel("training views per object")
    left.set_ylabel("accuracy")
    left.set_title(f"{args.objects} training objects")
    left.grid(alpha=0.3)
    left.legend()
    budget_groups = group(rows, budget_pairs(args.budget, args.views_list))
    labels = [f"{n}x{v}" for n, v, _ in budget_groups]
    stats = [mean_std(g, "test_accuracy") for _, _, g in budget_groups]
    if stats:
        right.bar(labels, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=3, color="tab:green")
        low = min(m for m, _ in stats)
        right.set_ylim(max(0.0, low - 0.1), min(1.0, max(m for m, _ in stats) + 0.05))
    right.set_xlabel("objects x views")
    right.set_ylabel("test accuracy")
    right.set_title(f"fixed budget of {args.budget} training INRs")
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(f"views study: {args.dataset}, {args.model}")
    fig.tight_layout()
    save_figure(fig, path)


def write_results(out: Path, settings: dict, rows: list[dict], histories: dict) -> None:
    """``results.json`` (strict JSON: NaN -> null) and ``results.csv``, each written atomically."""
    runs = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]
    atomic_write_text(
        out / "results.json", json.dumps({"settings": settings, "runs": runs, "histories": histories}, indent=1)
    )
    atomic_write_text(out / "results.csv", rows_csv(rows))


def main(argv=None) -> dict:
    args = parse_args(argv)
    from dwsjax.devices import use_all_cpu_cores

    use_all_cpu_cores()
    out = Path(args.out or Path("runs") / f"views_{args.dataset}_{args.model}")
    with removed_on_failure(out):
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> dict:
    """Fit or reuse the stores, train the planned runs missing from ``out``, write ``out``; ``-> results``."""
    from tqdm.auto import tqdm

    from dwsjax.batching import on_host
    from dwsjax.models import build_model, width_config
    from dwsjax.run import load_splits

    out.mkdir(parents=True, exist_ok=True)
    runs = planned_runs(args)
    pool_objects = max(n for n, _, _ in runs)
    largest_inrs = max(n * v for n, v, _ in runs)
    # the validation objects follow the pool's objects: a run compares only with the same pool
    recipe_name, recipe = resolved_recipe(args)
    settings = {
        **{k: getattr(args, k) for k in SETTINGS},
        "pool_objects": pool_objects,
        "train_recipe": recipe_name,
        **recipe._asdict(),
    }
    rows, histories = load_previous(out, settings)
    done = {run_key(r["objects"], r["views"], r["seed"]) for r in rows}
    pending = [r for r in runs if run_key(*r) not in done]
    if pending:
        # the pool: --max-views views of the first pool_objects objects, validated on the next ones
        store_config = RunConfig.from_values({**vars(args), "views": args.max_views, "train_objects": pool_objects})
        pool, val, test, store = load_splits(store_config)
        pool, val, test = on_host(pool), on_host(val), on_host(test)
        num_classes = len(store.metadata["class_names"])
        model = build_model(
            args.model, store.spec, num_classes, dropout=recipe.dropout, **width_config(args.model, args.hidden)
        )
    bar = tqdm(pending, desc="views runs", unit="run", disable=args.no_progress)
    for objects, views, seed in bar:
        bar.set_postfix(run=run_key(objects, views, seed))
        result = train_run(args, recipe, model, pool, val, test, num_classes, objects, views, seed, largest_inrs)
        rows.append(result["row"])
        histories[run_key(objects, views, seed)] = result["history"]
        write_results(out, settings, rows, histories)
    planned = {run_key(*r) for r in runs}
    report_rows = [r for r in rows if run_key(r["objects"], r["views"], r["seed"]) in planned]
    write_results(out, settings, rows, histories)
    atomic_write_text(out / "results.md", markdown(args, report_rows))
    plot(out / "views.png", args, report_rows)
    print(markdown(args, report_rows))
    return {"settings": settings, "runs": report_rows, "skipped": len(runs) - len(pending)}


if __name__ == "__main__":
    run_cli(main)
