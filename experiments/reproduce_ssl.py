"""SimCLR sets of ``experiments.reproduce``: seeds of ``experiments.ssl`` under the CPU protocol.

    python -m experiments.reproduce --set ssl-fmnist --seeds 0,1,2

Each seed is one :func:`dwsjax.ssl_run.run_simclr` of the set's
:class:`~dwsjax.ssl_run.SslConfig` with that seed (:func:`seed_config`:
pre-training, then scratch vs fine-tuned classifiers on every labelled
fraction; the ``experiments.ssl`` command in the table's header) in
``<runs-dir>/<set>/s<seed>``; its rows (one per fraction) are appended to
``results/<set>.csv``, seeds already there are skipped (a row is read back as
the config fields it records and compared with the seed's, :func:`is_done`),
and ``results/<set>.md`` is rendered again: mean ± std over seeds per
fraction, the per-seed values, and how far pre-training got from chance
(NT-Xent ``log(2B - 1)`` and positive-pair accuracy ``1 / (2B - 1)`` for a
pre-training batch of ``B`` INRs, i.e. ``2B`` views).
"""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

import numpy as np

from dwsjax.files import append_csv_rows, atomic_write_text, read_csv_rows
from dwsjax.recipes import DEFAULT_RECIPE
from dwsjax.ssl_run import TEST_ACCURACIES, SslConfig, run_simclr
from experiments.cli import config_argv
from experiments.tables import mean_pm_std

# Set name -> the settings of its seeds (all but seed, INR recipe and places). The fmnist CPU protocol
# pre-trains on the 2,000 training objects of the classification protocol; fine-tuning and scratch runs use
# 5% and 20% of their labels (Table 2 of the paper uses 5-20%). ``ssl-fmnist-no-mixup`` drops aligned MixUp
# from the paper's views, to measure what MixUp adds (results/README.md, "SimCLR pre-training").
FMNIST_SSL = SslConfig(
    dataset="fmnist",
    hidden=32,
    train_objects=2000,
    val_objects=300,
    test_objects=1000,
    pretrain_epochs=12,
    epochs=30,
    batch_size=16,
    label_fractions=(0.05, 0.2),
)
SSL_SETS: dict[str, SslConfig] = {
    "ssl-fmnist": FMNIST_SSL,
    "ssl-fmnist-no-mixup": FMNIST_SSL.replace(augment="translate,gaussian_noise,quantile_masking,siren_negation"),
    "ssl-smoke": SslConfig(
        dataset="synthetic2d",
        hidden=4,
        train_objects=40,
        val_objects=20,
        test_objects=20,
        inr_steps=20,
        pretrain_epochs=1,
        pretrain_batch_size=20,
        epochs=1,
        batch_size=20,
        label_fractions=(0.25, 1.0),
        augment="translate,gaussian_noise",
    ),
}
# The config fields a set's CSV rows record, which tell its seeds' runs apart (the rest is the set's).
IDENTITY = ("seed", "inr_recipe")

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


def seed_config(
    set_name: str,
    seed: int,
    inr_recipe: str = DEFAULT_RECIPE,
    out: Path | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
) -> SslConfig:
    """The :class:`SslConfig` of one seed of a set: the set's settings with ``seed`` and ``inr_recipe``,
    resumed in ``out``."""
    places = {"data_dir": data_dir, "cache_dir": cache_dir, "out": None if out is None else str(out)}
    return SSL_SETS[set_name].replace(
        seed=seed, inr_recipe=inr_recipe, resume=True, **{k: v for k, v in places.items() if v is not None}
    )


def is_done(rows: list[dict], config: SslConfig) -> bool:
    """Whether a CSV row records the run of ``config``: the same typed :data:`IDENTITY` (seed, INR recipe)."""
    key = config.key(IDENTITY)
    return any(SslConfig.from_row({k: row[k] for k in IDENTITY}).key(IDENTITY) == key for row in rows)


def seed_rows(results: dict) -> list[dict]:
    """One CSV row per labelled fraction of a :func:`~dwsjax.ssl_run.run_simclr` result, with its seed and
    pre-training."""
    shared = {key: results[key] for key in COLUMNS if key in results}
    return [{**shared, **row} for row in results["fractions"]]


def percent(values) -> np.ndarray:
    return 100 * np.array([float(v) for v in values])


def markdown_table(rows: list[dict], pretrain_batch_size: int) -> str:
    """Per fraction: mean ± std test accuracy (%) of both arms and of the linear probes on the
    random and the pre-trained encoder over seeds, and each seed's pair of arms; then each
    seed's final pre-training loss and positive-pair accuracy against chance."""
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
    config = SSL_SETS[set_name].replace(inr_recipe=inr_recipe)
    command = shlex.join(["python", "-m", "experiments.ssl", *config_argv(config), "--seed", "S"])
    header = (
        f"# {set_name} (SimCLR pre-training, then fine-tuning vs scratch; test accuracy % at the "
        f"best validation epoch)\n\nPer seed S: `{command}`\n\n"
    )
    path = results_dir / f"{set_name}.md"
    rows = [r for r in read_csv_rows(results_dir / f"{set_name}.csv") if r["inr_recipe"] == inr_recipe]
    atomic_write_text(path, header + markdown_table(rows, config.pretrain_batch_size))
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
    """Run the set's missing seeds one by one (:func:`dwsjax.ssl_run.run_simclr` of each
    :func:`seed_config`), appending each to the CSV; ``-> the markdown table``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    csv_path = results_dir / f"{set_name}.csv"
    for i, seed in enumerate([] if table_only else seeds):
        out = runs_dir / set_name / f"s{seed}"
        config = seed_config(set_name, seed, inr_recipe, out, data_dir, cache_dir)
        if is_done(read_csv_rows(csv_path), config):
            print(f"[{i + 1}/{len(seeds)}] seed {seed}: already in {csv_path}, skipped")
            continue
        print(f"[{i + 1}/{len(seeds)}] {set_name} seed {seed}", flush=True)
        start = time.perf_counter()
        results = run_simclr(config)
        print(f"seed {seed} took {time.perf_counter() - start:.0f} s")
        append_csv_rows(csv_path, seed_rows(results), COLUMNS)
        write_table(results_dir, set_name, inr_recipe)
    return write_table(results_dir, set_name, inr_recipe)
