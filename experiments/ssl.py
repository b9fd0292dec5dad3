r"""SimCLR pre-training on unlabelled INRs, then classification with few labels
(Shamsian et al. ICML 2024, Sec. 5.4: Table 2 and Figure 5).

    python -m experiments.ssl --dataset fmnist --hidden 32 --train-objects 2000 --val-objects 300 \
        --test-objects 1000 --pretrain-epochs 12 --epochs 30 --batch-size 16

(the CPU protocol: roughly 10-15 minutes on 2 idle cores once the INR stores are
cached; per-epoch evaluation of the 8 classifier runs is about half of it.)

1. Pre-train the DWS encoder with SimCLR (:mod:`dwsjax.ssl`: NT-Xent on two
   ``--augment`` views of every INR) on all training INRs; labels are unused.
2. For every fraction ``f`` of ``--label-fractions`` take the first
   ``round(f * objects)`` training objects of a seeded shuffle (nested subsets)
   with their labels and train the classifier twice with identical settings:
   from scratch, and with its encoder initialised from the pre-trained one
   (fine-tuning the whole encoder and a fresh head, as in the paper). Both
   report the test accuracy of their best-validation epoch. A linear probe on
   the same labelled INRs measures the class information in the frozen
   representations of the pre-trained encoder and of its random initialisation.
3. Write ``results.json``, ``results.csv``, ``table.md`` (fraction x {scratch,
   SimCLR, both probes}), ``pretrain_history.csv`` and ``representations.png``: a 2-D PCA of
   the test INRs' representations, random vs pre-trained encoder, coloured by
   class (the paper's Figure 5 uses t-SNE).

All runs normalise weights with the statistics of all training INRs (no labels
needed). Data options and store caching are those of :mod:`experiments.classify`.
``--resume`` continues the pre-training or an unfinished classifier run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dwsjax.devices import use_all_cpu_cores
from dwsjax.files import atomic_write_text, removed_on_failure
from dwsjax.templates import TemplateConfig
from experiments.classify import (
    add_common_arguments,
    load_splits,
    resolve_protocol,
    resolved_recipe,
    template_aligned_if_needed,
    write_history_csv,
)
from experiments.cli import make_parser, run_cli

DEFAULT_FRACTIONS = "0.05,0.10,0.15,0.20"
# Test accuracies recorded per labelled fraction: both classifier arms, then the linear probes.
TEST_ACCURACIES = (
    "scratch_test_accuracy",
    "simclr_test_accuracy",
    "random_probe_test_accuracy",
    "simclr_probe_test_accuracy",
)


def parse_args(argv=None) -> argparse.Namespace:
    from dwsjax.ssl import DEFAULT_TEMPERATURE, SSL_AUGMENTATIONS

    p = make_parser(__doc__)
    add_common_arguments(p)
    p.add_argument("--model", default="dws", choices=["dws"], help="backbone (needs a features() method)")
    p.add_argument("--augment", default=SSL_AUGMENTATIONS, help="SimCLR view pipeline (see classify --augment)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="NT-Xent temperature")
    p.add_argument("--projection-dim", type=int, default=64, help="SimCLR projection head output size")
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--pretrain-batch-size", type=int, default=64)
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument(
        "--label-fractions",
        default=DEFAULT_FRACTIONS,
        help="comma-separated fractions of the training objects that keep their labels",
    )
    p.add_argument("--finetune-augment", default="none", help="augmentation of the classifier runs (both arms)")
    p.add_argument("--out", default=None, help="run directory (default: runs/ssl_<dataset>_<model>_s<seed>)")
    return resolve_protocol(p.parse_args(argv))


def parse_fractions(text: str) -> list[float]:
    fractions = [float(f) for f in text.split(",") if f.strip()]
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"--label-fractions must be comma-separated numbers in (0, 1], got {text!r}")
    return fractions


def labelled_mask(train, fraction: float, seed: int) -> np.ndarray:
    """Which training INRs ``(N,)`` keep their labels: those of the first
    ``round(fraction * objects)`` objects of a ``seed``-shuffle (at least one),
    so the subsets of growing fractions are nested."""
    objects = np.random.default_rng(seed).permutation(np.unique(train.object_ids))
    return np.isin(train.object_ids, objects[: max(1, round(fraction * len(objects)))])


def classifier_batch_size(requested: int, n: int) -> int:
    """``requested``, lowered to the largest multiple of the device count <= ``n`` for tiny subsets."""
    import jax

    devices = jax.local_device_count()
    size = min(requested, n // devices * devices)
    if size < 1:
        raise ValueError(f"{n} labelled INRs cannot fill a batch on {devices} devices; raise --label-fractions")
    return size


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection ``(N, 2)`` of centred ``x`` ``(N, F)`` on its two leading principal axes (SVD)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_representations(path: Path, panels: dict[str, np.ndarray], labels: np.ndarray, class_names) -> None:
    """Figure 5: one scatter per encoder of the 2-D PCA of its representations, coloured by class."""
    import matplotlib.pyplot as plt

    from dwsjax.plots import save_figure

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
    save_figure(fig, path)


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| labelled | train INRs | scratch | SimCLR | probe: random encoder | probe: SimCLR encoder |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r['fraction']:.0%}", str(r["labelled_inrs"]), *(f"{100 * r[key]:.1f}" for key in TEST_ACCURACIES)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_linear_probes(rows: list[dict], features: dict, train, test, seed: int) -> None:
    """Add ``<encoder>_probe_test_accuracy`` to every fraction's row: a linear probe
    (:func:`dwsjax.ssl.linear_probe_accuracy`) on that fraction's labelled INRs, per
    encoder of ``features`` (name -> (train features, test features))."""
    from dwsjax.ssl import linear_probe_accuracy

    for row in rows:
        mask = labelled_mask(train, row["fraction"], seed)
        for name, (train_features, test_features) in features.items():
            row[f"{name}_probe_test_accuracy"] = linear_probe_accuracy(
                train_features[mask], train.labels[mask], test_features, test.labels
            )


def compare_with_few_labels(
    args, recipe, fractions, backbone, pretrained, splits, num_classes, stats, augment, out: Path
):
    """Train ``backbone`` from scratch and from the ``pretrained`` encoder on every
    labelled fraction, both with the pipeline ``augment`` (or none): ``-> (rows, histories)``
    with each arm's best-validation epoch and its test accuracy; ``recipe`` trains both arms."""
    from dwsjax.store import select
    from dwsjax.train import TrainConfig, train_classifier

    train, val, test = splits
    rows, histories = [], {}
    for fraction in fractions:
        labelled = select(train, labelled_mask(train, fraction, args.seed))
        n = len(labelled.labels)
        config = TrainConfig(
            recipe._replace(batch_size=classifier_batch_size(recipe.batch_size, n)), epochs=args.epochs, seed=args.seed
        )
        row = {"fraction": fraction, "labelled_inrs": n, "batch_size": config.batch_size}
        for arm, init in (("scratch", None), ("simclr", pretrained)):
            if not args.no_progress:
                print(f"{arm} on {fraction:.0%} labels ({n} INRs)")
            history = train_classifier(
                backbone,
                labelled,
                val,
                test,
                num_classes,
                config,
                augment,
                checkpoint_dir=out / f"f{fraction:g}" / arm,
                resume=args.resume,
                progress=not args.no_progress,
                init_params=init,
                stats=stats,
            )
            histories[f"{arm}_f{fraction:g}"] = history["epochs"]
            row |= {
                f"{arm}_test_accuracy": history["best_test_accuracy"],
                f"{arm}_val_accuracy": history["best_val_accuracy"],
                f"{arm}_best_epoch": history["best_epoch"],
            }
        rows.append(row)
    return rows, histories


def main(argv=None) -> dict:
    args = parse_args(argv)
    fractions = parse_fractions(args.label_fractions)
    use_all_cpu_cores()
    out = Path(args.out or Path("runs") / f"ssl_{args.dataset}_{args.model}_s{args.seed}")
    with removed_on_failure(out):
        return run(args, fractions, out)


def run(args: argparse.Namespace, fractions: list[float], out: Path) -> dict:
    """Pre-train, train both arms per label fraction, write the run directory ``out``; ``-> results``."""
    from dwsjax.augment import build_pipeline
    from dwsjax.checkpoints import refuse_overwrite
    from dwsjax.models import build_model, width_config
    from dwsjax.optim import TrainRecipe
    from dwsjax.ssl import pretrain_simclr, representations, simclr_model
    from dwsjax.train import TrainConfig, create_state
    from dwsjax.weights import weight_stats

    refuse_overwrite(out / "pretrain", args.resume)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test, train_store = load_splits(args)
    class_names = train_store.metadata["class_names"]
    train, _ = template_aligned_if_needed(
        [args.augment, args.finetune_augment], train, train_store, TemplateConfig(), "auto", not args.no_progress
    )
    view_augment = build_pipeline(args.augment, activation=train_store.activation)
    finetune_augment = (
        None
        if args.finetune_augment == "none"
        else build_pipeline(args.finetune_augment, activation=train_store.activation)
    )
    stats = weight_stats(train.weights)
    recipe_name, recipe = resolved_recipe(args)
    # SimCLR pre-training carries no BatchNorm statistics (dwsjax.ssl), so the backbone has none
    backbone = build_model(
        args.model,
        train_store.spec,
        len(class_names),
        dropout=recipe.dropout,
        normalization="none",
        **width_config(args.model, args.hidden),
    )
    simclr = simclr_model(backbone, projection_dim=args.projection_dim)
    progress = not args.no_progress

    pretrain_recipe = TrainRecipe(
        learning_rate=args.pretrain_lr, weight_decay=recipe.weight_decay, batch_size=args.pretrain_batch_size
    )
    pretrain_config = TrainConfig(pretrain_recipe, epochs=args.pretrain_epochs, seed=args.seed)
    start = time.perf_counter()
    pretrained, pretrain_history = pretrain_simclr(
        simclr,
        train,
        pretrain_config,
        view_augment,
        args.temperature,
        stats,
        checkpoint_dir=out / "pretrain",
        resume=args.resume,
        progress=progress,
    )
    pretrain_seconds = time.perf_counter() - start

    start = time.perf_counter()
    rows, histories = compare_with_few_labels(
        args,
        recipe,
        fractions,
        backbone,
        pretrained["backbone"],
        (train, val, test),
        len(class_names),
        stats,
        finetune_augment,
        out,
    )
    classify_seconds = time.perf_counter() - start

    encoders = {
        "random": create_state(simclr, train, pretrain_config).params["backbone"],
        "simclr": pretrained["backbone"],
    }
    features = {
        name: tuple(representations(backbone, params, split.weights, stats) for split in (train, test))
        for name, params in encoders.items()
    }
    add_linear_probes(rows, features, train, test, args.seed)
    panels = {"random encoder": features["random"][1], "SimCLR encoder": features["simclr"][1]}
    plot_representations(out / "representations.png", panels, test.labels, class_names)

    last = pretrain_history["epochs"][-1] if pretrain_history["epochs"] else {}
    results = {
        "dataset": args.dataset,
        "model": args.model,
        "hidden": args.hidden,
        "seed": args.seed,
        "augment": args.augment,
        "temperature": args.temperature,
        "projection_dim": args.projection_dim,
        "pretrain_epochs": args.pretrain_epochs,
        "pretrain_batch_size": args.pretrain_batch_size,
        "pretrain_lr": args.pretrain_lr,
        "epochs": args.epochs,
        "train_recipe": recipe_name,
        **recipe._asdict(),
        "finetune_augment": args.finetune_augment,
        "train_inrs": len(train.labels),
        "val_inrs": len(val.labels),
        "test_inrs": len(test.labels),
        "pretrain_final_loss": last.get("loss"),
        "pretrain_final_contrastive_accuracy": last.get("contrastive_accuracy"),
        "pretrain_seconds": pretrain_seconds,
        "classify_seconds": classify_seconds,
        "inr_recipe": args.inr_recipe,
        "inr_store_psnr": train_store.summary()["mean_psnr"],
        "fractions": rows,
    }
    full = {**results, "pretrain_history": pretrain_history["epochs"], "histories": histories}
    atomic_write_text(out / "results.json", json.dumps(full, indent=1))
    write_history_csv(out / "results.csv", rows)
    if pretrain_history["epochs"]:
        write_history_csv(out / "pretrain_history.csv", pretrain_history["epochs"])
    atomic_write_text(out / "table.md", markdown_table(rows))
    print(markdown_table(rows))
    return results


if __name__ == "__main__":
    run_cli(main)
