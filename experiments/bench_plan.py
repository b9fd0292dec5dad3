"""How close a plan's projection comes to the run it plans, on this machine.

    python -m experiments.bench_plan --dataset fmnist --train-objects 500 --epochs 5 --augment none,mixup_aligned

Plans (:func:`dwsjax.plan.plan`) a small set of classification runs on a fresh
INR cache, then runs them: the stores are fitted (timed together, as one
:func:`dwsjax.run.load_splits`) and each run trained (its ``train_seconds``:
training and evaluation wall time). Prints one JSON line per step with the
projected and measured seconds and their ratio, and the plan's table.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from experiments.cli import make_parser, run_cli


def main(argv=None) -> list[dict]:
    parser = make_parser(__doc__)
    parser.add_argument("--dataset", default="fmnist")
    parser.add_argument("--train-objects", type=int, default=500)
    parser.add_argument("--val-objects", type=int, default=100)
    parser.add_argument("--test-objects", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--inr-steps", type=int, default=None, help="INR step cap (default: the recipe's)")
    parser.add_argument("--augment", default="none,mixup_aligned", help="comma-separated, one run each")
    parser.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    args = parser.parse_args(argv)

    from dwsjax.plan import format_plan, plan
    from dwsjax.run import RunConfig, load_splits, resolve_protocol, run_classification

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = [
            resolve_protocol(
                RunConfig(
                    dataset=args.dataset,
                    train_objects=args.train_objects,
                    val_objects=args.val_objects,
                    test_objects=args.test_objects,
                    epochs=args.epochs,
                    inr_steps=args.inr_steps,
                    augment=augment,
                    data_dir=args.data_dir,
                    cache_dir=str(Path(tmp) / "cache"),
                    out=str(Path(tmp) / augment),
                    progress=False,
                )
            )
            for augment in args.augment.split(",")
        ]
        start = time.perf_counter()
        steps = plan(configs)
        plan_seconds = time.perf_counter() - start
        fits = [s for s in steps if s.unit == "INR-steps"]
        start = time.perf_counter()
        load_splits(configs[0])
        measured = [("fit", sum(s.seconds for s in fits), time.perf_counter() - start)]
        for config, step in zip(configs, steps[len(fits) :]):
            measured.append((step.what, step.seconds, run_classification(config)["train_seconds"]))
        for what, projected, seconds in measured:
            row = {
                "step": what,
                "projected_s": round(projected, 1),
                "measured_s": round(seconds, 1),
                "ratio": round(seconds / projected, 2),
            }
            rows.append(row)
            print(json.dumps(row))
        print(json.dumps({"plan_seconds": round(plan_seconds, 1)}))
        print(format_plan(steps))
    return rows


if __name__ == "__main__":
    run_cli(main)
