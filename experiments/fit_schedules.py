"""Which SIREN fitting schedule is cheapest without costing downstream accuracy?

    python -m experiments.fit_schedules --schedules 5e-4:2000,2e-3:1000 --seeds 0,1

Each schedule ``lr:steps`` (optionally ``lr:steps:psnr``; default early stop: the
recipe's 40 dB) fits Fashion-MNIST INRs with the DWSNets init and output offset
(``--inr-recipe dwsnets`` with the schedule's overrides), then trains DWS-32
under the CPU protocol (2,000 training, 500 validation and 1,000 test objects,
40 epochs) for each training seed. One row per schedule and seed goes to ``results/fit-schedules.csv``
(mean Adam steps per INR, the fitting cost, mean PSNR, the per-layer standard
deviation of the training INRs' weights next to the published statistics of
the reference Fashion-MNIST INR dataset, the correlation of the first layer
with its initial value, and test accuracy at the best validation epoch);
finished runs are skipped on a rerun, and ``results/fit-schedules.md`` (mean
and std of test accuracy over seeds) is rendered again after each.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dwsjax.devices import use_all_cpu_cores
from dwsjax.files import append_csv_rows, atomic_write_text, read_csv_rows
from dwsjax.run import RunConfig
from experiments.cli import make_parser, run_cli
from experiments.tables import mean_pm_std

# Per-layer standard deviation of the weights of the reference Fashion-MNIST INR dataset
# (the augmentation paper's release; as stated in issue 16).
REFERENCE_STD = {"W0": 0.078, "b0": 0.029, "W1": 0.032, "b1": 0.017, "W2": 0.135}
STD_FACTOR = 1.6  # a schedule is "faithful" when every layer's std is within this factor of the reference
PROTOCOL = dict(train_objects=2000, val_objects=500, test_objects=1000, epochs=40)
COLUMNS = [
    "schedule",
    "seed",
    "lr",
    "steps",
    "target_psnr",
    "fit_seconds",
    "fit_inrs",
    "mean_inr_steps",
    "mean_psnr",
    *(f"std_{k}" for k in REFERENCE_STD),
    "corr_W0_init",
    "std_within_factor",
    "test_accuracy",
    "val_accuracy",
    "best_epoch",
    "final_train_accuracy",
]


def parse_schedule(text: str) -> tuple[float, int, float]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"a schedule is lr:steps or lr:steps:psnr, got {text!r}")
    return float(parts[0]), int(parts[1]), float(parts[2]) if len(parts) == 3 else 40.0


def layer_stds(ws) -> dict[str, float]:
    """Standard deviation over all INRs and entries of each layer's weights and biases."""
    names = {f"W{i}": w for i, w in enumerate(ws.weights)} | {f"b{i}": b for i, b in enumerate(ws.biases)}
    return {k: float(np.std(np.asarray(names[k]))) for k in REFERENCE_STD}


def init_correlation(batch, seed: int, init_scheme: str) -> float:
    """Pearson correlation over all entries of the fitted first-layer weights with their initial values."""
    from dwsjax.fit import inr_keys
    from dwsjax.siren import siren_init_batch

    initial = siren_init_batch(inr_keys(seed, batch.object_ids, batch.view_ids), batch.weights.spec, scheme=init_scheme)
    a, b = np.asarray(batch.weights.weights[0]).ravel(), np.asarray(initial.weights[0]).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def markdown(rows: list[dict]) -> str:
    """One line per schedule: its INRs' statistics (from its first row) and test accuracy over seeds."""
    header = (
        "| schedule (lr:steps) | Adam steps per INR | PSNR (dB) | "
        + " | ".join(f"std {k}" for k in REFERENCE_STD)
        + " | corr W0, init | within 1.6x | test acc. (%) | seeds |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    lines.append(
        "| reference FMNIST INR dataset | | | " + " | ".join(f"{v:.3f}" for v in REFERENCE_STD.values()) + " | | | | |"
    )
    schedules: dict[str, list[dict]] = {}
    for r in rows:
        schedules.setdefault(r["schedule"], []).append(r)
    for name, runs in schedules.items():
        r = runs[0]
        stds = " | ".join(f"{float(r[f'std_{k}']):.3f}" for k in REFERENCE_STD)
        accuracy = mean_pm_std([100 * float(run["test_accuracy"]) for run in runs])
        lines.append(
            f"| {name} | {float(r['mean_inr_steps']):.0f} | "
            f"{float(r['mean_psnr']):.1f} | {stds} | {float(r['corr_W0_init']):.3f} | "
            f"{r['std_within_factor']} | {accuracy} | {len(runs)} |"
        )
    return "\n".join(lines) + "\n"


def schedule_name(lr: float, steps: int, target_psnr: float) -> str:
    return f"{lr:g}:{steps}" + ("" if target_psnr == 40.0 else f":{target_psnr:g}")


def schedule_config(args, lr: float, steps: int, target_psnr: float, seed: int) -> RunConfig:
    """The DWS-32 run of a schedule and training seed under :data:`PROTOCOL`."""
    name = schedule_name(lr, steps, target_psnr)
    return RunConfig(
        dataset="fmnist",
        model="dws",
        inr_recipe="dwsnets",
        inr_lr=lr,
        inr_steps=steps,
        inr_target_psnr=target_psnr,
        seed=seed,
        **PROTOCOL,
        cache_dir=args.cache_dir,
        data_dir=args.data_dir or None,
        out=str(Path(args.runs_dir) / f"{name.replace(':', '_')}_s{seed}"),
        resume=True,
        plot=True,
        progress=False,
    )


def run_schedule(args, lr: float, steps: int, target_psnr: float, seed: int) -> dict:
    """Fit (or reuse) the schedule's INR stores, measure them, train DWS-32 with ``seed``: one CSV row."""
    from dwsjax.run import load_splits, resolve_protocol, run_classification

    name = schedule_name(lr, steps, target_psnr)
    config = resolve_protocol(schedule_config(args, lr, steps, target_psnr, seed))
    start = time.perf_counter()
    train, val, _, store = load_splits(config)
    fit_seconds = time.perf_counter() - start
    fitted = np.concatenate([s["steps"] for s in store.manifest["shards"].values()])
    stds = layer_stds(train.weights)
    results = run_classification(config)
    return {
        "schedule": name,
        "seed": seed,
        "lr": lr,
        "steps": steps,
        "target_psnr": target_psnr,
        "fit_seconds": round(fit_seconds, 1),
        "fit_inrs": int(fitted.size),
        "mean_inr_steps": round(float(fitted.mean()), 1),
        "mean_psnr": round(store.summary()["mean_psnr"], 2),
        **{f"std_{k}": round(v, 4) for k, v in stds.items()},
        "corr_W0_init": round(init_correlation(train, 0, store.identity["init_scheme"]), 4),
        "std_within_factor": all(
            REFERENCE_STD[k] / STD_FACTOR <= v <= REFERENCE_STD[k] * STD_FACTOR for k, v in stds.items()
        ),
        "test_accuracy": results["test_accuracy"],
        "val_accuracy": results["val_accuracy"],
        "best_epoch": results["best_epoch"],
        "final_train_accuracy": results["final_train_accuracy"],
    }


def is_done(rows: list[dict], lr: float, steps: int, target_psnr: float, seed: int) -> bool:
    """Whether a row records the schedule and seed: its ``lr``, ``steps``, ``target_psnr`` and ``seed``
    read as numbers (rows of older files without the schedule's columns by its name)."""
    for r in rows:
        if r.get("lr") and r.get("steps") and r.get("target_psnr"):
            if (float(r["lr"]), int(r["steps"]), float(r["target_psnr"]), int(r["seed"])) == (
                lr,
                steps,
                target_psnr,
                seed,
            ):
                return True
        elif (r["schedule"], int(r["seed"])) == (schedule_name(lr, steps, target_psnr), seed):
            return True
    return False


def main(argv=None) -> list[dict]:
    p = make_parser(__doc__)
    p.add_argument(
        "--schedules", default="5e-4:2000,1e-3:1000,2e-3:500", type=lambda t: [parse_schedule(s) for s in t.split(",")]
    )
    p.add_argument("--seeds", default="0", help="DWS training seeds, comma-separated")
    p.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    p.add_argument("--cache-dir", default=os.environ.get("DWSJAX_CACHE_DIR", "cache"))
    p.add_argument("--runs-dir", default="runs/fit-schedules")
    p.add_argument("--results-dir", default="results")
    args = p.parse_args(argv)
    use_all_cpu_cores()
    csv_path = Path(args.results_dir) / "fit-schedules.csv"
    rows = read_csv_rows(csv_path) if csv_path.exists() else []
    runs = [(schedule, int(seed)) for seed in args.seeds.split(",") for schedule in args.schedules]
    for (lr, steps, target), seed in runs:
        if is_done(rows, lr, steps, target, seed):
            continue
        row = run_schedule(args, lr, steps, target, seed)
        print(json.dumps(row), flush=True)
        append_csv_rows(csv_path, [row], COLUMNS)
        rows = read_csv_rows(csv_path)
        atomic_write_text(Path(args.results_dir) / "fit-schedules.md", markdown(rows))
    return rows


if __name__ == "__main__":
    run_cli(main)
