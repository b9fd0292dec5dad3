r"""One SimCLR experiment, typed: :class:`SslConfig` and :func:`run_simclr` (SimCLR pre-training on
unlabelled INRs, then classification with few labels; Shamsian et al. ICML 2024, Sec. 5.4: Table 2 and
Figure 5).

    from dwsjax.ssl_run import SslConfig, run_simclr
    results = run_simclr(SslConfig(dataset="fmnist", hidden=32, train_objects=2000, val_objects=300,
                                   test_objects=1000, pretrain_epochs=12, epochs=30, batch_size=16))

1. Pre-train the DWS encoder with SimCLR (:mod:`dwsjax.ssl`: NT-Xent on two
   ``augment`` views of every INR) on all training INRs; labels are unused.
2. For every fraction ``f`` of ``label_fractions`` take the first
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
needed). The data, INR fitting and training recipe settings and store caching
are those of classification (:class:`dwsjax.run.CommonConfig`); ``resume``
continues the pre-training or an unfinished classifier run. ``experiments.ssl``
is the command line: one flag per field of :class:`SslConfig`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dwsjax.files import atomic_write_text, removed_on_failure
from dwsjax.run import (
    CommonConfig,
    load_splits,
    resolve_protocol,
    resolved_recipe,
    setting,
    template_aligned_if_needed,
    write_history_csv,
)
from dwsjax.ssl import DEFAULT_TEMPERATURE, SSL_AUGMENTATIONS
from dwsjax.templates import TemplateConfig

DEFAULT_FRACTIONS = (0.05, 0.10, 0.15, 0.20)
# Test accuracies recorded per labelled fraction: both classifier arms, then the linear probes.
TEST_ACCURACIES = (
    "scratch_test_accuracy",
    "simclr_test_accuracy",
    "random_probe_test_accuracy",
    "simclr_probe_test_accuracy",
)


@dataclass(frozen=True)
class SslConfig(CommonConfig):
    """Everything one SimCLR experiment depends on: the :class:`~dwsjax.run.CommonConfig` settings (data,
    INR fitting, and the training recipe and epochs of the classifier runs), then the backbone, the
    pre-training, the labelled fractions and the run directory."""

    model: str = setting("dws", choices=["dws"], help="backbone (needs a features() method)")
    augment: str = setting(SSL_AUGMENTATIONS, help="SimCLR view pipeline (see classify --augment)")
    temperature: float = setting(DEFAULT_TEMPERATURE, help="NT-Xent temperature")
    projection_dim: int = setting(64, help="SimCLR projection head output size")
    pretrain_epochs: int = setting(10)
    pretrain_batch_size: int = setting(64)
    pretrain_lr: float = setting(1e-3)
    label_fractions: tuple[float, ...] = setting(
        DEFAULT_FRACTIONS,
        help="comma-separated fractions of the training objects that keep their labels "
        f"(default: {','.join(map(str, DEFAULT_FRACTIONS))})",
    )
    finetune_augment: str = setting("none", help="augmentation of the classifier runs (both arms)")
    out: str | None = setting(help="run directory (default: runs/ssl_<dataset>_<model>_s<seed>)")

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("runs") / f"ssl_{self.dataset}_{self.model}_s{self.seed}")


def check_fractions(fractions: tuple[float, ...]) -> None:
    """Refuse labelled fractions that are none or not all in ``(0, 1]``."""
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"--label-fractions must be numbers in (0, 1], got {','.join(map(str, fractions))!r}")


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


def markdown_table(rows: list[dict]) -> str:
    """Test accuracy (%) per labelled fraction: both classifier arms and both linear probes."""
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
    config: SslConfig, recipe, backbone, pretrained, splits, num_classes, stats, augment, out: Path
):
    """Train ``backbone`` from scratch and from the ``pretrained`` encoder on every labelled
    fraction of ``config``, both with the pipeline ``augment`` (or none): ``-> (rows, histories)``
    with each arm's best-validation epoch and its test accuracy; ``recipe`` trains both arms."""
    from dwsjax.store import select
    from dwsjax.train import TrainConfig, train_classifier

    train, val, test = splits
    rows, histories = [], {}
    for fraction in config.label_fractions:
        labelled = select(train, labelled_mask(train, fraction, config.seed))
        n = len(labelled.labels)
        train_config = TrainConfig(
            recipe._replace(batch_size=classifier_batch_size(recipe.batch_size, n)),
            epochs=config.epochs,
            seed=config.seed,
        )
        row = {"fraction": fraction, "labelled_inrs": n, "batch_size": train_config.batch_size}
        for arm, init in (("scratch", None), ("simclr", pretrained)):
            if config.progress:
                print(f"{arm} on {fraction:.0%} labels ({n} INRs)")
            history = train_classifier(
                backbone,
                labelled,
                val,
                test,
                num_classes,
                train_config,
                augment,
                checkpoint_dir=out / f"f{fraction:g}" / arm,
                resume=config.resume,
                progress=config.progress,
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


def run_simclr(config: SslConfig) -> dict:
    """One SimCLR experiment: resolve the protocol defaults, fit or reuse the INR stores, pre-train, then
    train both classifier arms (pre-trained and random encoder) and the linear probes per labelled fraction.

    Args:
        config: every setting of the experiment; ``None`` fields take the protocol's or recipe's default.

    Returns:
        The results, also written to ``<out>/results.json``: the resolved settings and, per labelled
        fraction, the test accuracies of both arms and both linear probes. The run directory is removed
        again if the run fails before writing anything else; ``resume`` continues it.
    """
    from dwsjax.devices import use_all_cpu_cores

    config = resolve_protocol(config)
    check_fractions(config.label_fractions)
    use_all_cpu_cores()
    out = config.out_dir
    with removed_on_failure(out):
        return run_simclr_in(config, out)


def run_simclr_in(config: SslConfig, out: Path) -> dict:
    """:func:`run_simclr` in the directory ``out`` of a resolved ``config``; ``-> results``."""
    from dwsjax.augment import build_pipeline
    from dwsjax.checkpoints import refuse_overwrite
    from dwsjax.models import build_model, width_config
    from dwsjax.optim import TrainRecipe
    from dwsjax.plots import plot_representations, save_figure
    from dwsjax.ssl import pretrain_simclr, representations, simclr_model
    from dwsjax.train import TrainConfig, create_state
    from dwsjax.weights import weight_stats

    refuse_overwrite(out / "pretrain", config.resume)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test, train_store = load_splits(config)
    class_names = train_store.metadata["class_names"]
    train, _ = template_aligned_if_needed(
        [config.augment, config.finetune_augment], train, train_store, TemplateConfig(), "auto", config.progress
    )
    view_augment = build_pipeline(config.augment, activation=train_store.activation)
    finetune_augment = (
        None
        if config.finetune_augment == "none"
        else build_pipeline(config.finetune_augment, activation=train_store.activation)
    )
    stats = weight_stats(train.weights)
    recipe_name, recipe = resolved_recipe(config)
    # SimCLR pre-training carries no BatchNorm statistics (dwsjax.ssl), so the backbone has none
    backbone = build_model(
        config.model,
        train_store.spec,
        len(class_names),
        dropout=recipe.dropout,
        normalization="none",
        **width_config(config.model, config.hidden),
    )
    simclr = simclr_model(backbone, projection_dim=config.projection_dim)

    pretrain_recipe = TrainRecipe(
        learning_rate=config.pretrain_lr, weight_decay=recipe.weight_decay, batch_size=config.pretrain_batch_size
    )
    pretrain_config = TrainConfig(pretrain_recipe, epochs=config.pretrain_epochs, seed=config.seed)
    start = time.perf_counter()
    pretrained, pretrain_history = pretrain_simclr(
        simclr,
        train,
        pretrain_config,
        view_augment,
        config.temperature,
        stats,
        checkpoint_dir=out / "pretrain",
        resume=config.resume,
        progress=config.progress,
    )
    pretrain_seconds = time.perf_counter() - start

    start = time.perf_counter()
    rows, histories = compare_with_few_labels(
        config,
        recipe,
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
    add_linear_probes(rows, features, train, test, config.seed)
    panels = {"random encoder": features["random"][1], "SimCLR encoder": features["simclr"][1]}
    save_figure(plot_representations(panels, test.labels, class_names), out / "representations.png")

    last = pretrain_history["epochs"][-1] if pretrain_history["epochs"] else {}
    results = {
        "dataset": config.dataset,
        "model": config.model,
        "hidden": config.hidden,
        "seed": config.seed,
        "augment": config.augment,
        "temperature": config.temperature,
        "projection_dim": config.projection_dim,
        "pretrain_epochs": config.pretrain_epochs,
        "pretrain_batch_size": config.pretrain_batch_size,
        "pretrain_lr": config.pretrain_lr,
        "epochs": config.epochs,
        "train_recipe": recipe_name,
        **recipe._asdict(),
        "finetune_augment": config.finetune_augment,
        "train_inrs": len(train.labels),
        "val_inrs": len(val.labels),
        "test_inrs": len(test.labels),
        "pretrain_final_loss": last.get("loss"),
        "pretrain_final_contrastive_accuracy": last.get("contrastive_accuracy"),
        "pretrain_seconds": pretrain_seconds,
        "classify_seconds": classify_seconds,
        "inr_recipe": config.inr_recipe,
        "inr_init": config.inr_init,
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
