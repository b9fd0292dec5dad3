"""Classify INRs by their weights: fit (or reuse) INR stores, train a weight-space model, report.

    python -m experiments.classify --dataset fmnist --model dws --augment mixup_aligned

Train INRs are the first ``--train-objects`` objects of the train split
(``--views`` views each), validation INRs the next ``--val-objects`` objects
(view 0), test INRs the first ``--test-objects`` of the test split (view 0), as
in the paper's protocol (train on N views, validate and test on one). Stores
are cached under ``--cache-dir`` by their configuration. The run directory
gets ``results.json``, ``history.csv``, ``curves.png`` (``--plot``) and orbax
checkpoints; ``--resume`` continues a killed run. Augmentations that mix
template-aligned INRs (``mixup_prealigned``, ``combination_prealigned``) get
training INRs aligned to the training store's template, computed once and
cached with the store (``dwsjax.template_store``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
from pathlib import Path

from dwsjax.augment import spec_label
from dwsjax.devices import use_all_cpu_cores
from dwsjax.files import removed_on_failure
from dwsjax.models.dws import NORMALIZATIONS, SET_LAYERS
from dwsjax.optim import DECAYS, MODEL_RECIPES, TRAIN_RECIPES, TrainRecipe, train_recipe
from dwsjax.plots import plot_curves
from dwsjax.presets import DATASETS as PRESET_DATASETS
from dwsjax.recipes import DEFAULT_RECIPE, RECIPES
from dwsjax.templates import TemplateConfig
from experiments.cli import make_parser, run_cli

DATASETS = list(PRESET_DATASETS)  # the registry of dwsjax.presets
DEFAULT_EPOCHS = 10
# The augmentation paper's ModelNet40 protocol (Shamsian et al. 2024, App. B): its 3D INR recipe (dwsjax.recipes
# "dwsnets": AdamW, lr 1e-4, 1,000 steps) and 250 epochs; taken by default when the whole official split is present.
PAPER_MODELNET40 = {"inr_recipe": "dwsnets", "epochs": 250}


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Data, training and run options shared by the experiment CLIs (:func:`load_splits` reads them)."""
    p.add_argument("--dataset", default="synthetic2d", choices=DATASETS)
    p.add_argument("--hidden", type=int, default=None,
                   help="model width (dws channels / gnn node dim / ...; default: the model's)")
    p.add_argument("--views", type=int, default=1, help="training views per object")
    p.add_argument("--store-views", type=int, default=None,
                   help="views fitted per training object (default: --views); runs with fewer --views train on the "
                        "first ones, so runs of different view counts share one store")
    p.add_argument("--train-objects", type=int, default=None, help="default: all but the validation objects")
    p.add_argument("--val-objects", type=int, default=None, help="default: 1/12 of the train split (5K of 60K)")
    p.add_argument("--test-objects", type=int, default=None, help="default: the whole test split")
    p.add_argument("--inr-recipe", default=None, choices=sorted(RECIPES),
                   help=f"INR fitting recipe (dwsjax.recipes): init, output offset, Adam schedule (default: "
                        f"{DEFAULT_RECIPE}, or the paper's on a full ModelNet40 directory)")
    p.add_argument("--inr-steps", type=int, default=None, help="INR step cap (default: the recipe's)")
    p.add_argument("--inr-lr", type=float, default=None, help="INR Adam learning rate (default: the recipe's)")
    p.add_argument("--inr-target-psnr", type=float, default=None,
                   help="stop fitting an INR at this PSNR (default: the recipe's)")
    p.add_argument("--inr-points", type=int, default=4096, help="SDF/UDF samples per 3D shape")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default: {DEFAULT_EPOCHS}, or the paper's protocol on a full ModelNet40 directory "
                        f"({PAPER_MODELNET40['epochs']})")
    add_training_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="training seed (INRs are fitted with seed 0)")
    p.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    p.add_argument("--cache-dir", default=os.environ.get("DWSJAX_CACHE_DIR", "cache"), help="INR store cache")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """``--train-recipe`` and the optimiser flags that override its fields (dwsjax.optim)."""
    defaults = ", ".join(f"{m} {r}" for m, r in MODEL_RECIPES.items())
    p.add_argument("--train-recipe", default=None, choices=sorted(TRAIN_RECIPES),
                   help=f"optimiser recipe (dwsjax.optim); default: the model's ({defaults})")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default: the recipe's)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warmup steps (default: the recipe's)")
    p.add_argument("--decay", default=None, choices=DECAYS, help="after warmup (default: the recipe's)")
    p.add_argument("--clip-norm", type=float, default=None,
                   help="clip gradients to this global norm, 0 = off (default: the recipe's)")
    p.add_argument("--amsgrad", action=argparse.BooleanOptionalAction, default=None,
                   help="AMSGrad second moments (default: the recipe's)")
    p.add_argument("--dropout", type=float, default=None, help="model dropout (default: the recipe's)")


def resolved_recipe(args: argparse.Namespace) -> tuple[str, TrainRecipe]:
    """``(name, recipe)``: ``--train-recipe`` (default: the model's) with every given flag applied."""
    name = args.train_recipe or MODEL_RECIPES[args.model]
    flags = {"learning_rate": args.lr, "batch_size": args.batch_size, "weight_decay": args.weight_decay,
             "warmup_steps": args.warmup_steps, "decay": args.decay, "clip_norm": args.clip_norm,
             "amsgrad": args.amsgrad, "dropout": args.dropout}  # fmt: skip
    return name, train_recipe(name)._replace(**{k: v for k, v in flags.items() if v is not None})


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_common_arguments(p)
    p.add_argument("--model", default="dws", choices=["dws", "gnn", "mlp", "transformer"])
    p.add_argument("--depth", type=int, default=None, help="DWS layers / transformer blocks (default: the model's)")
    p.add_argument("--normalization", default=None, choices=NORMALIZATIONS,
                   help="DWS: BatchNorm before / LayerNorm after every ReLU, or none (default: the model's)")
    p.add_argument("--head-hidden", type=int, default=None,
                   help="DWS: hidden width of the MLP head, 0 = one linear map (default: the model's)")
    p.add_argument("--set-layer", default=None, choices=SET_LAYERS,
                   help="DWS: map of each hidden layer's neuron features, linear or set attention "
                        "(default: the model's)")
    p.add_argument("--probe-points", type=int, default=0,
                   help="dws/gnn: probe features, each neuron's activations at this many input points "
                        "(dwsjax.models.probes); 0 = none")
    p.add_argument("--probe-inputs", default="learned", choices=["learned", "fixed"],
                   help="probe input points trained with the model or kept at their U[-1, 1] draw")
    p.add_argument("--augment", default="none",
                   help="none, an augmentation name, a preset ('combination', 'combination_prealigned'), "
                        "or a comma-separated pipeline")
    p.add_argument("--matching-solver", default="auto", choices=["auto", "jax", "scipy"],
                   help="assignment solver of weight matching (auto: scipy on CPU, JAX on GPU/TPU)")
    p.add_argument("--template-rounds", type=int, default=TemplateConfig().rounds,
                   help="barycentre rounds of the template that mixup_prealigned's INRs are aligned to")
    p.add_argument("--template-sign-aware", action="store_true",
                   help="align INRs to the template with sign flips as well (SIRENs)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<dataset>_<model>_<augment>_v<views>_s<seed>)")
    p.add_argument("--plot", action="store_true", help="write curves.png (loss and accuracy per epoch)")
    return p.parse_args(argv)


def modelnet40_subset_note(data_dir: str | None) -> str | None:
    """One line when the ModelNet40 directory lacks shapes of its official split lists, else ``None``."""
    from dwsjax.data.shapes import modelnet40_coverage
    from dwsjax.data.sources import find_dataset_dir

    directory = find_dataset_dir("modelnet40", data_dir, ["modelnet40_train.txt", "modelnet40_shape_names.txt"])
    (train, listed_train), (test, listed_test) = (modelnet40_coverage(directory, s) for s in ("train", "test"))
    if (train, test) == (listed_train, listed_test):
        return None
    return (f"note: {directory} holds {train} of {listed_train} train and {test} of {listed_test} test ModelNet40 "
            "shapes, a subset that exercises the pipeline end to end but is no benchmark; for the paper's protocol "
            "point --data-dir (or DWSJAX_DATA_DIR) at a full modelnet40_normal_resampled directory")  # fmt: skip


def resolve_protocol(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``--epochs`` and ``--inr-recipe`` left unset: the paper's ModelNet40 protocol on a full
    ModelNet40 directory (:data:`PAPER_MODELNET40`), else :data:`DEFAULT_EPOCHS` and the default recipe.
    Prints the subset note for a partial ModelNet40 directory."""
    defaults = {"epochs": DEFAULT_EPOCHS, "inr_recipe": DEFAULT_RECIPE}
    if args.dataset == "modelnet40":
        note = modelnet40_subset_note(args.data_dir)
        if note is None:
            defaults = PAPER_MODELNET40
        else:
            print(note, flush=True)
    for field, value in defaults.items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    return args


def store_dir(cache_dir: str, identity: dict) -> Path:
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{identity['dataset']}_{identity['split']}_v{identity['views']}_{digest}"


def check_object_counts(args) -> None:
    """Refuse an object count below 1 (an empty split)."""
    for flag, value in (("--train-objects", args.train_objects), ("--val-objects", args.val_objects),
                        ("--test-objects", args.test_objects)):  # fmt: skip
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")


def failed_fits_hint(summary: dict) -> str:
    """Why fewer objects than asked for may be usable: INRs whose fit failed are left out."""
    failed = summary["nan"] + summary["diverged"]
    if not failed:
        return ""
    return (f" ({failed} of the store's {summary['inrs']} INRs failed to fit and are left out: "
            "raise --inr-steps or lower the fitting learning rate)")  # fmt: skip


def load_splits(args):
    """Train, validation and test :class:`InrBatch` es, fitting or reusing the stores."""
    check_object_counts(args)
    import numpy as np

    from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
    from dwsjax.store import objects_in_order, select

    fitting = dict(recipe=args.inr_recipe, steps=args.inr_steps, learning_rate=args.inr_lr,
                   target_psnr=args.inr_target_psnr, n_points=args.inr_points)  # fmt: skip
    store_views = args.views if args.store_views is None else args.store_views
    if store_views < args.views:
        raise ValueError(f"--store-views {store_views} is fewer than --views {args.views}; "
                         "fit at least as many views as the run trains on")  # fmt: skip
    train_cfg = InrDatasetConfig(args.dataset, "train", views=store_views, **fitting)
    test_cfg = InrDatasetConfig(args.dataset, "test", views=1, **fitting)
    known = args.train_objects is not None and args.val_objects is not None
    objects = args.train_objects + args.val_objects if known else None
    progress = not args.no_progress
    train_store = build_inr_store(store_dir(args.cache_dir, train_cfg.identity()), train_cfg, objects,
                                  args.data_dir, progress=progress)  # fmt: skip
    test_store = build_inr_store(store_dir(args.cache_dir, test_cfg.identity()), test_cfg, args.test_objects,
                                 args.data_dir, progress=progress)  # fmt: skip
    fitted = train_store.load(views=args.views)
    object_ids = objects_in_order(fitted)
    n_val = max(1, len(object_ids) // 12) if args.val_objects is None else args.val_objects
    n_train = len(object_ids) - n_val if args.train_objects is None else args.train_objects
    if n_train < 1 or n_train + n_val > len(object_ids):
        raise ValueError(
            f"cannot take {n_train} train + {n_val} validation objects from the {len(object_ids)} "
            f"fitted objects of {args.dataset}; lower --train-objects/--val-objects"
            + failed_fits_hint(train_store.summary())
        )
    in_train = np.isin(fitted.object_ids, object_ids[:n_train])
    in_val = np.isin(fitted.object_ids, object_ids[n_train : n_train + n_val]) & (fitted.view_ids == 0)
    test = test_store.load(views=1)
    if args.test_objects is not None:  # a shared cached store may hold more objects than asked for
        test = select(test, np.isin(test.object_ids, objects_in_order(test)[: args.test_objects]))
    return select(fitted, in_train), select(fitted, in_val), test, train_store


def template_aligned_if_needed(augments: list[str], train, train_store, config, solver: str, progress: bool):
    """``(train, config)``: the training INRs aligned to their store's template (computed once, cached)
    when a pipeline of ``augments`` mixes template-aligned INRs, else ``(train, None)``."""
    from dwsjax.augment import needs_template
    from dwsjax.template_store import template_aligned

    if not any(needs_template(a) for a in augments if a != "none"):
        return train, None
    return template_aligned(train, train_store, config, solver, progress), config


def dws_config(args: argparse.Namespace) -> dict:
    """``--normalization`` / ``--head-hidden`` / ``--set-layer`` as DWS model config (refused for other models)."""
    given = (("normalization", args.normalization), ("head_hidden", args.head_hidden), ("set_layer", args.set_layer))
    config = {k: v for k, v in given if v is not None}
    if config and args.model != "dws":
        raise ValueError(f"--normalization, --head-hidden and --set-layer are DWS options; --model is {args.model}")
    if config.get("head_hidden", 0) < 0:
        raise ValueError(f"--head-hidden must be >= 0, got {args.head_hidden}")
    return config


def probe_config(args: argparse.Namespace, activation: str) -> dict:
    """``--probe-points`` / ``--probe-inputs`` as model config ``{"probe": ProbeConfig}`` (dws and gnn only)."""
    from dwsjax.models.probes import ProbeConfig

    if args.probe_points == 0:
        return {}
    if args.model not in ("dws", "gnn"):
        raise ValueError(f"--probe-points adds probe features to the dws and gnn models; --model is {args.model}")
    if args.probe_points < 0:
        raise ValueError(f"--probe-points must be >= 0, got {args.probe_points}")
    return {"probe": ProbeConfig(args.probe_points, args.probe_inputs == "learned", activation)}


def run_facts(args: argparse.Namespace, val, test, template) -> dict:
    """What a resumed run must share with its checkpoint beyond the model, recipe and training INRs."""
    return {"dataset": args.dataset, "augment": args.augment, "views": args.views, "inr_recipe": args.inr_recipe,
            "val_inrs": len(val.labels), "test_inrs": len(test.labels), "matching_solver": args.matching_solver,
            "template": None if template is None else template._asdict()}  # fmt: skip


def training_seconds(epochs: list[dict]) -> float | None:
    """Wall time of all ``epochs`` (training plus evaluation), summed over resumed invocations; ``None``
    when an epoch comes from a checkpoint written before epochs recorded their time."""
    seconds = [e.get("epoch_seconds") for e in epochs]
    return None if None in seconds else round(sum(seconds), 1)


def write_history_csv(path: Path, epochs: list[dict]) -> None:
    """One row per epoch; a column every record has not (older checkpoints' records) is left empty there."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for e in epochs for k in e)))
        writer.writeheader()
        writer.writerows(epochs)


def main(argv=None) -> dict:
    args = resolve_protocol(parse_args(argv))
    use_all_cpu_cores()
    run_name = f"{args.dataset}_{args.model}_{spec_label(args.augment)}_v{args.views}_s{args.seed}"
    out = Path(args.out or Path("runs") / run_name)
    with removed_on_failure(out):
        return run(args, run_name, out)


def run(args: argparse.Namespace, run_name: str, out: Path) -> dict:
    """Fit or reuse the stores, train, write the run directory ``out``; ``-> results``."""
    from dwsjax.augment import build_pipeline
    from dwsjax.models import build_model, depth_config, model_param_counts, width_config
    from dwsjax.train import TrainConfig, refuse_overwrite, train_classifier

    template = TemplateConfig(rounds=args.template_rounds, sign_aware=args.template_sign_aware).check()
    refuse_overwrite(out / "checkpoints", args.resume)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test, train_store = load_splits(args)
    class_names = train_store.metadata["class_names"]
    recipe_name, recipe = resolved_recipe(args)
    model = build_model(args.model, train_store.spec, len(class_names), dropout=recipe.dropout,
                        **width_config(args.model, args.hidden), **depth_config(args.model, args.depth),
                        **dws_config(args), **probe_config(args, train_store.activation))  # fmt: skip
    config = TrainConfig(recipe, epochs=args.epochs, seed=args.seed)
    augment = None if args.augment == "none" else build_pipeline(
        args.augment, activation=train_store.activation, solver=args.matching_solver)
    train, template = template_aligned_if_needed([args.augment], train, train_store, template,
                                                 args.matching_solver, not args.no_progress)  # fmt: skip
    facts = run_facts(args, val, test, template)
    history = train_classifier(model, train, val, test, len(class_names), config, augment,
                               checkpoint_dir=out / "checkpoints", resume=args.resume,
                               progress=not args.no_progress, facts=facts)  # fmt: skip
    best = history["epochs"][history["best_epoch"]] if history["epochs"] else {}
    results = {
        **facts, "model": args.model, "seed": args.seed, "epochs": args.epochs, "train_recipe": recipe_name,
        **recipe._asdict(), "hidden": args.hidden, "depth": args.depth,
        "normalization": getattr(model, "normalization", None), "head_hidden": getattr(model, "head_hidden", None),
        "set_layer": getattr(model, "set_layer", None),
        "probe_points": args.probe_points, "probe_inputs": args.probe_inputs if args.probe_points else None,
        "train_inrs": len(train.labels), "params": model_param_counts(model)["total"],
        "best_epoch": history["best_epoch"], "val_accuracy": history["best_val_accuracy"],
        "test_accuracy": best.get("test_accuracy"),
        "final_train_accuracy": history["epochs"][-1]["train_accuracy"],
        "train_samples_per_s": sum(e["train_samples_per_s"] for e in history["epochs"]) / len(history["epochs"]),
        "train_seconds": training_seconds(history["epochs"]),
        "inr_store_psnr": train_store.summary()["mean_psnr"],
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps({**results, "history": history["epochs"]}, indent=1))
    write_history_csv(out / "history.csv", history["epochs"])
    if args.plot:
        plot_curves(out / "curves.png", history["epochs"], run_name)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    run_cli(main)
