r"""Fit a dataset split into an INR store (resumable, sharded, atomic).

    python -m experiments.fit_inrs --dataset fmnist --split train --objects 1024 \
        --views 2 --out stores/fmnist_train

The fitting flags are those of ``experiments.classify`` (``--inr-steps``,
``--inr-lr``, ``--inr-target-psnr``, ``--inr-points``; ``--steps``, ``--lr``,
``--target-psnr`` and ``--points`` still work).

Killed and rerun with the same arguments, it continues with the missing shards.
"""

from __future__ import annotations

import argparse
import json
import time

from dwsjax.devices import use_all_cpu_cores
from dwsjax.presets import DATASETS
from dwsjax.recipes import DEFAULT_RECIPE, RECIPES
from dwsjax.run import RunConfig
from experiments.cli import add_config_arguments, add_hidden_alias, make_parser, run_cli

# RunConfig's INR fitting fields -> the flag names this command had before it shared classify's.
INR_FLAG_ALIASES = {
    "inr_steps": "--steps",
    "inr_lr": "--lr",
    "inr_target_psnr": "--target-psnr",
    "inr_points": "--points",
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = make_parser(__doc__)
    parser.add_argument("--dataset", default="synthetic2d", choices=DATASETS)
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--objects", type=int, default=None, help="fit the first N objects (default: all)")
    parser.add_argument("--views", type=int, default=1, help="INRs per object, each from its own init key")
    parser.add_argument(
        "--inr-recipe",
        default=DEFAULT_RECIPE,
        choices=sorted(RECIPES),
        help="fitting recipe (dwsjax.recipes): init, output offset, Adam schedule",
    )
    # the INR fitting flags of experiments.classify (dwsjax.run.RunConfig), under their older names as well
    add_config_arguments(parser, RunConfig, [*INR_FLAG_ALIASES, "inr_init"])
    for field, alias in INR_FLAG_ALIASES.items():
        add_hidden_alias(parser, alias, field, int if field in ("inr_steps", "inr_points") else float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-objects", type=int, default=256, help="objects per shard file")
    parser.add_argument("--chunk-size", type=int, default=8, help="INRs fitted together per device")
    parser.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    parser.add_argument("--out", required=True, help="store directory (created or resumed)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_all_cpu_cores()
    from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store

    config = InrDatasetConfig(
        dataset=args.dataset,
        split=args.split,
        views=args.views,
        seed=args.seed,
        recipe=args.inr_recipe,
        steps=args.inr_steps,
        learning_rate=args.inr_lr,
        target_psnr=args.inr_target_psnr,
        shard_objects=args.shard_objects,
        n_points=args.inr_points,
        init=args.inr_init,
    )
    start = time.perf_counter()
    store = build_inr_store(args.out, config, args.objects, args.data_dir, args.chunk_size)
    summary = {"store": str(store.root), **store.summary(), "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    run_cli(main)
