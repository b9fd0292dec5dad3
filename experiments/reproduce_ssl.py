"""SimCLR sets of ``experiments.reproduce``: seeds of ``experiments.ssl`` under the CPU protocol.

    python -m experiments.reproduce --set ssl-fmnist --seeds 0,1,2

Each seed is one ``experiments.ssl`` run (pre-training, then scratch vs
fine-tuned classifiers on every labelled fraction) in ``<runs-dir>/<set>/s<seed>``;
its rows (one per fraction) are appended to ``results/<set>.csv``, seeds already
there are skipped, and ``results/<set>.md`` is rendered again: mean ± std over
seeds per fraction, the per-seed values, and how far pre-training got from
chance (NT-Xent ``log(2B - 1)`` and positive-pair accuracy ``1 / (2B - 1)`` for
a pre-training batch of ``B`` INRs, i.e. ``2B`` views).
"""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

import numpy as np

from dwsjax.files import append_csv_rows, atomic_write_text, read_csv_rows
from dwsjax.recipes import DEFAULT_RECIPE
from experiments.tables import mean_pm_std

# Set name -> ``experiments.ssl`` arguments (all but seed and directories). The fmnist CPU protocol
# pre-trains on the 2,000 training objects of the classification protocol; fine-tuning and scratch
# runs use 5% and 20% of their labels (Table 2 of the paper uses 5-20%). ``ssl-fmnist-no-mixup`` drops
# aligned MixUp from the paper's views, to measure what MixUp adds (results/README.md, "SimCLR pre-training").
FMNIST_SSL = [
    "--dataset",
    "fmnist",
    "--hidden",
    "32",
    "--train-objects",
    "2000",
    "--val-objects",
    "300",
    "--test-objects",
    "1000",
    "--pretrain-epochs",
    "12",
    "--epochs",
    "30",
    "--batch-size",
    "16",
    "--label-fractions",
    "0.05,0.2",
]
SSL_SETS: dict[str, list[str]] = {
    "ssl-fmnist": FMNIST_SSL,
    "ssl-fmnist-no-mixup": FMNIST_SSL + ["--augment", "translate,gaussian_noise,quantile_masking,siren_negation"],
    "ssl-smoke": [
        "--dataset",
        "synthetic2d",
        "--hidden",
        "4",
        "--train-objects",
        "40",
        "--val-objects",
        "20",
        "--test-objects",
        "20",
        "--inr-steps",
        "20",
        "--pretrain-epochs",
        "1",
        "--pretrain-batch-size",
        "20",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--label-fractions",
        "0.25,1",
        "--augment",
        "translate,gaussian_noise",
    ],
}

ARMS = ("scratch", "simclr")
COLUMNS = [
    "seed",
    "fraction",
    "labelled_inrs",
    "batch_size",
    *(f"{arm}_{field}" for arm in ARMS for field in ("test_accuracy", "val_accuracy", "best_epoch")),
    "random_probe_test_accuracy",
    "simclr_probe_test_accuracy",
    "pretrain_final_loss",
    "pretrain_final_contrastive_accuracy",
    "pretrain_seconds",
    "classify_seconds",
    "inr_recipe",
]


def ssl_argv(set_name: str, seed: int, out: Path, data_dir: str | None, cache_dir: str, inr_recipe: str) -> list[str]:
    argv = SSL_SETS[set_name] + [
        "--seed",
        str(seed),
        "--inr-recipe",
        inr_recipe,
        "--cache-dir",
        cache_dir,
        "--out",
        str(out),
        "--resume",
    ]
    return argv if data_dir is None else argv + ["--data-dir", data_dir]


def seed_rows(results: dict) -> list[dict]:
    """One CSV row per labelled fraction of an ``experiments.ssl`` result, with its seed and pre-training."""
    shared = {key: results[key] for key in COLUMNS if key in results}
    return [{**shared, **row} for row in results["fractions"]]


def percent(values) -> np.ndarray:
    return 100 * np.array([float(v) for v in values])


def markdown_table(rows: list[dict], pretrain_batch_size: int) -> str:
    """Per fraction: mean ± std test accuracy (%) of both arms and of the linear probes on the
    random and the pre-trained encoder over seeds, and each seed's pair of arms; then each
    seed's final pre-training loss and positive-pair accuracy against chance."""
    from experiments.ssl import TEST_ACCURACIES

    lines = [
        "| labelled | train INRs | scratch | SimCLR | probe: random encoder | probe: SimCLR encoder | seeds "
        "| per seed (scratch / SimCLR) |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for fraction in sorted({float(r["fraction"]) for r in rows}):
        cell = [r for r in rows if float(r["fraction"]) == fraction]
        scratch, simclr, random_probe, simclr_probe = (percent(r[key] for r in cell) for key in TEST_ACCURACIES)
        pairs = ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(scratch, simclr))
        lines.append(
            f"| {fraction:.0%} | {cell[0]['labelled_inrs']} | {mean_pm_std(scratch)} "
            f"| {mean_pm_std(simclr)} | {mean_pm_std(random_probe)} | {mean_pm_std(simclr_probe)} "
            f"| {len(cell)} | {pairs} |"
        )
    pretrained = {r["seed"]: r for r in rows if r.get("pretrain_final_loss")}
    if pretrained:
        views = 2 * pretrain_batch_size
        losses = ", ".join(f"{float(r['pretrain_final_loss']):.2f}" for r in pretrained.values())
        accuracy = ", ".join(f"{float(r['pretrain_final_contrastive_accuracy']):.1%}" for r in pretrained.values())
        lines += [
            "",
            f"Final pre-training NT-Xent per seed {', '.join(pretrained)}: {losses} (chance "
            f"log({views - 1}) = {math.log(views - 1):.2f}); positive-pair accuracy: {accuracy} "
            f"(chance {1 / (views - 1):.1%}). Wall time (pre-training + classifier runs): "
            + ", ".join(
                f"{float(r['pretrain_seconds']):.0f} + {float(r['classify_seconds']):.0f} s"
                for r in pretrained.values()
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def write_table(results_dir: Path, set_name: str, inr_recipe: str = DEFAULT_RECIPE) -> Path:
    """The markdown table of the set's runs on INRs of ``inr_recipe``."""
    from experiments import ssl

    args = ssl.parse_args(SSL_SETS[set_name])
    command = shlex.join(
        ["python", "-m", "experiments.ssl", *SSL_SETS[set_name], "--inr-recipe", inr_recipe, "--seed", "S"]
    )
    header = (
        f"# {set_name} (SimCLR pre-training, then fine-tuning vs scratch; test accuracy % at the "
        f"best validation epoch)\n\nPer seed S: `{command}`\n\n"
    )
    path = results_dir / f"{set_name}.md"
    rows = [r for r in read_csv_rows(results_dir / f"{set_name}.csv") if r["inr_recipe"] == inr_recipe]
    atomic_write_text(path, header + markdown_table(rows, args.pretrain_batch_size))
    return path


def run_ssl_set(
    set_name: str,
    seeds: list[int],
    results_dir: Path,
    runs_dir: Path,
    data_dir: str | None,
    cache_dir: str,
    table_only: bool = False,
    inr_recipe: str = DEFAULT_RECIPE,
) -> Path:
    """Run the set's missing seeds one by one, appending each to the CSV; ``-> the markdown table``."""
    from experiments import ssl

    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path = results_dir / f"{set_name}.csv"
    for i, seed in enumerate([] if table_only else seeds):
        if (str(seed), inr_recipe) in {(r["seed"], r["inr_recipe"]) for r in read_csv_rows(csv_path)}:
            print(f"[{i + 1}/{len(seeds)}] seed {seed}: already in {csv_path}, skipped")
            continue
        print(f"[{i + 1}/{len(seeds)}] {set_name} seed {seed}", flush=True)
        start = time.perf_counter()
        out = runs_dir / set_name / f"s{seed}"
        results = ssl.main(ssl_argv(set_name, seed, out, data_dir, cache_dir, inr_recipe))
        print(f"seed {seed} took {time.perf_counter() - start:.0f} s")
        append_csv_rows(csv_path, seed_rows(results), COLUMNS)
        write_table(results_dir, set_name, inr_recipe)
    return write_table(results_dir, set_name, inr_recipe)
