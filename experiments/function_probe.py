"""Function-space probe: a linear classifier on the INRs' rendered functions and on the source data.

    python -m experiments.function_probe --dataset modelnet10 --train-objects 3591 --val-objects 400 \\
        --inr-steps 300 --inr-points 1024

One flag per field of :class:`dwsjax.function_probe.FunctionProbeConfig`: the
splits and INR stores of ``experiments.classify`` with the same flags (the
stores are fitted or reused; :func:`dwsjax.function_probe.run_function_probe`).
Images are rendered at their size, shapes as a distance field on a
``--grid``^3 grid; the source data goes through the same grid (pixels, point
occupancy). The row is appended to
``results/function-probe.csv`` and ``results/function-probe.md`` is rendered
again, with the weight-space models that ``experiments.reproduce`` ran on the
same dataset, training-set size and INR recipe beside it: a model far below
the INR probe loses information its inputs hold (:mod:`dwsjax.function_probe`).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from dwsjax.devices import use_all_cpu_cores
from dwsjax.files import append_csv_rows, atomic_write_text, read_csv_rows
from experiments.cli import add_config_arguments, config_from_args, make_parser, run_cli
from experiments.tables import inr_recipe_name, mean_pm_std

COLUMNS = [
    "dataset",
    "train_objects",
    "val_objects",
    "test_objects",
    "inr_recipe",
    "inr_init",
    "inr_steps",
    "inr_points",
    "grid",
    "inr_store_psnr",
    "inr_store",
    "inr_test_accuracy",
    "inr_train_accuracy",
    "source_test_accuracy",
    "source_train_accuracy",
]


def parse_args(argv=None) -> argparse.Namespace:
    """One flag per field of :class:`dwsjax.function_probe.FunctionProbeConfig`, then where the tables go."""
    from dwsjax.function_probe import FunctionProbeConfig

    p = make_parser(__doc__)
    add_config_arguments(p, FunctionProbeConfig)
    p.add_argument("--results-dir", default="results", help="where function-probe.csv/.md and the sets' CSVs are")
    p.add_argument("--table-only", action="store_true", help="only render function-probe.md again")
    return p.parse_args(argv)


def model_rows(results_dir: Path, row: dict) -> list[str]:
    """Markdown lines of the weight-space models that reproduce sets ran on ``row``'s dataset, training
    objects and INR recipe: mean ± std of test accuracy over seeds, per set, model, augmentation."""
    groups = defaultdict(list)
    for path in sorted(results_dir.glob("*.csv")):
        if path.stem == "function-probe":
            continue
        for r in read_csv_rows(path):
            same = (r.get("dataset"), r.get("train_objects")) == (row["dataset"], str(row["train_objects"]))
            same = same and r.get("inr_recipe") and inr_recipe_name(r) == inr_recipe_name(row)
            if same and r.get("test_accuracy"):
                groups[(path.stem, r["model"], r["augment"], r["views"])].append(100 * float(r["test_accuracy"]))
    return [
        f"| [{s}]({s}.md) | {inr_recipe_name(row)} | {m} | {a} | {v} | {mean_pm_std(accs)} | {len(accs)} |"
        for (s, m, a, v), accs in sorted(groups.items())
    ]


def render_table(results_dir: Path) -> str:
    rows = read_csv_rows(results_dir / "function-probe.csv")
    lines = [
        "# Function-space probe",
        "",
        "A linear classifier on each INR's function sampled on a grid (images: pixels; shapes: the distance "
        "field on grid^3 points) and on the source data on the same grid (`python -m experiments.function_probe`, "
        "`dwsjax.function_probe`). Test accuracy in %.",
        "",
        "| dataset | train / val / test objects | INR recipe | INR steps | grid | INR PSNR (dB) | probe on INRs | "
        "probe on source data |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['train_objects']} / {r['val_objects']} / {r['test_objects']} | "
            f"{inr_recipe_name(r)} | {r['inr_steps']} | {r['grid']} | {float(r['inr_store_psnr']):.1f} | "
            f"{100 * float(r['inr_test_accuracy']):.1f} | "
            f"{100 * float(r['source_test_accuracy']):.1f} |"
        )
    lines += [
        "",
        "Weight-space models on the same split and INR recipe (`experiments.reproduce`):",
        "",
        "| set | INR recipe | model | augmentation | views | test acc. (%) | seeds |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    lines += dict.fromkeys(line for r in rows for line in model_rows(results_dir, r))
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    results_dir = Path(args.results_dir)
    if args.table_only:
        atomic_write_text(results_dir / "function-probe.md", render_table(results_dir))
        return {}
    use_all_cpu_cores()
    from dwsjax.function_probe import FunctionProbeConfig, run_function_probe

    row = run_function_probe(config_from_args(FunctionProbeConfig, args))
    append_csv_rows(results_dir / "function-probe.csv", [row], COLUMNS)
    atomic_write_text(results_dir / "function-probe.md", render_table(results_dir))
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    run_cli(main)
