"""Classify INRs by their weights: fit (or reuse) INR stores, train a weight-space model, report.

    python -m experiments.classify --dataset fmnist --model dws --augment mixup_aligned

A thin command line over :func:`dwsjax.run.run_classification`: one flag per
field of :class:`dwsjax.run.RunConfig` (``--field-name``, its help from the
field's description), parsed into a config and run. Train INRs are the first
``--train-objects`` objects of the train split (``--views`` views each),
validation INRs the next ``--val-objects`` objects (view 0), test INRs the
first ``--test-objects`` of the test split (view 0), as in the paper's
protocol (train on N views, validate and test on one). Stores are cached under
``--cache-dir`` by their configuration. The run directory gets
``results.json``, ``history.csv``, ``curves.png`` (``--plot``) and orbax
checkpoints; ``--resume`` continues a killed run. Augmentations that mix
template-aligned INRs (``mixup_prealigned``, ``combination_prealigned``) get
training INRs aligned to the training store's template, computed once and
cached with the store (``dwsjax.template_store``).
"""

from __future__ import annotations

import argparse

from dwsjax.run import RunConfig, run_classification
from experiments.cli import add_config_arguments, config_from_args, make_parser, run_cli

# The training recipe's flags (dwsjax.optim), shared with experiments.views.
TRAINING_FIELDS = (
    "train_recipe",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "decay",
    "clip_norm",
    "amsgrad",
    "dropout",
)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """``--train-recipe`` and the optimiser flags that override its fields (dwsjax.optim)."""
    add_config_arguments(p, RunConfig, TRAINING_FIELDS)


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_config_arguments(p, RunConfig)
    return p.parse_args(argv)


def config_of(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed flags."""
    return config_from_args(RunConfig, args)


def main(argv=None) -> dict:
    return run_classification(config_of(parse_args(argv)))


if __name__ == "__main__":
    run_cli(main)
