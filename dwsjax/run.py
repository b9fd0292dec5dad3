"""One classification run, typed: :class:`RunConfig` and :func:`run_classification`.

    from dwsjax.run import RunConfig, run_classification
    results = run_classification(RunConfig(dataset="fmnist", model="dws", augment="mixup_aligned"))

Train INRs are the first ``train_objects`` objects of the train split
(``views`` views each), validation INRs the next ``val_objects`` objects
(view 0), test INRs the first ``test_objects`` of the test split (view 0), as
in the paper's protocol (train on N views, validate and test on one). Stores
are cached under ``cache_dir`` by their configuration. The run directory
gets ``results.json``, ``history.csv``, ``curves.png`` (``plot``) and orbax
checkpoints; ``resume`` continues a killed run. Augmentations that mix
template-aligned INRs (``mixup_prealigned``, ``combination_prealigned``) get
training INRs aligned to the training store's template, computed once and
cached with the store (:mod:`dwsjax.template_store`).

MixUp partners (``mixup_partners``) are by default other samples of the same
batch; ``train`` draws each from all training INRs, ``store`` from every fitted
view of the training objects while the run trains on ``views`` of them (the
augmentation paper's released code), never from validation or test objects
(:func:`partner_pool`).

Every field of :class:`RunConfig` carries its description (``help``) and, where
it has them, its choices in the field's metadata: ``experiments.classify``
builds one command line flag per field from them (``--field-name``), so the
library and the command line share one list of settings. The fields of
:class:`CommonConfig`, its base (data, INR fitting, training recipe, places),
are shared with SimCLR's :class:`dwsjax.ssl_run.SslConfig`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from dwsjax.augment import mixes_pairs, spec_label
from dwsjax.files import removed_on_failure
from dwsjax.models.dws import NORMALIZATIONS, SET_LAYERS
from dwsjax.optim import DECAYS, MODEL_RECIPES, TRAIN_RECIPES, TrainRecipe, train_recipe
from dwsjax.presets import DATASETS
from dwsjax.recipes import DEFAULT_RECIPE, INR_INITS, RECIPES
from dwsjax.templates import TemplateConfig

MODEL_NAMES = ("dws", "gnn", "mlp", "transformer")  # the classifiers of dwsjax.models.MODELS
DEFAULT_EPOCHS = 10
# The augmentation paper's ModelNet40 protocol (Shamsian et al. 2024, App. B): its 3D INR recipe (dwsjax.recipes
# "dwsnets": AdamW, lr 1e-4, 1,000 steps) and 250 epochs; taken by default when the whole official split is present.
PAPER_MODELNET40 = {"inr_recipe": "dwsnets", "epochs": 250}
# DWS layout options (DWSClassifier fields) that results record, resolved to the model's defaults.
DWS_LAYOUT = ("normalization", "set_layer", "head_hidden")
# Where MixUp partners come from (partner_pool): the batch, all training INRs, or every fitted view of the
# training objects.
MIXUP_PARTNERS = ("batch", "train", "store")
# What identifies a finished run in a results table: the fields every results row records (resolved, typed).
RESULT_IDENTITY = (
    "dataset",
    "model",
    "augment",
    "views",
    "seed",
    "train_objects",
    "epochs",
    "inr_recipe",
    "inr_init",
    "train_recipe",
    *DWS_LAYOUT,
    "probe_points",
    "probe_inputs",
    "mixup_partners",
)


def setting(default: Any = None, help: str = "", choices=None, flag: str | None = None, **metadata) -> Any:
    """A config field (:class:`CommonConfig`) with its description, choices and (when not ``--field-name``) flag."""
    meta = {"help": help, "choices": None if choices is None else list(choices), "flag": flag, **metadata}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def default_cache_dir() -> str:
    return os.environ.get("DWSJAX_CACHE_DIR", "cache")


_TRAIN_RECIPE_DEFAULTS = ", ".join(f"{m} {r}" for m, r in MODEL_RECIPES.items())


@dataclass(frozen=True)
class CommonConfig:
    """The settings every run on INR stores shares: data and objects, INR fitting, training recipe, seed
    and where things are. :class:`RunConfig` (classification) and :class:`dwsjax.ssl_run.SslConfig`
    (SimCLR) extend it with their own; ``None`` means "the default" (the recipe's, the model's, or the
    protocol's, see each field's help). Field order is the order of ``--help``."""

    # data and objects
    dataset: str = setting("synthetic2d", choices=DATASETS)
    hidden: int | None = setting(help="model width (dws channels / gnn node dim / ...; default: the model's)")
    views: int = setting(1, help="training views per object")
    store_views: int | None = setting(
        help="views fitted per training object (default: --views); runs with fewer --views train on the "
        "first ones, so runs of different view counts share one store"
    )
    train_objects: int | None = setting(help="default: all but the validation objects")
    val_objects: int | None = setting(help="default: 1/12 of the train split (5K of 60K)")
    test_objects: int | None = setting(help="default: the whole test split")
    # INR fitting
    inr_recipe: str | None = setting(
        choices=sorted(RECIPES),
        help=f"INR fitting recipe (dwsjax.recipes): init, output offset, Adam schedule (default: {DEFAULT_RECIPE}, "
        "or the paper's on a full ModelNet40 directory)",
    )
    inr_init: str = setting(
        "independent",
        choices=sorted(INR_INITS),
        help="INR inits: independent per INR (the papers') or shared by every object (one per view; "
        "dwsjax.fit.inr_keys)",
    )
    inr_steps: int | None = setting(help="INR step cap (default: the recipe's)")
    inr_lr: float | None = setting(help="INR Adam learning rate (default: the recipe's)")
    inr_target_psnr: float | None = setting(help="stop fitting an INR at this PSNR (default: the recipe's)")
    inr_points: int = setting(4096, help="SDF/UDF samples per 3D shape")
    epochs: int | None = setting(
        help=f"default: {DEFAULT_EPOCHS}, or the paper's protocol on a full ModelNet40 directory "
        f"({PAPER_MODELNET40['epochs']})"
    )
    # training recipe and its overrides (dwsjax.optim)
    train_recipe: str | None = setting(
        choices=sorted(TRAIN_RECIPES),
        help=f"optimiser recipe (dwsjax.optim); default: the model's ({_TRAIN_RECIPE_DEFAULTS})",
    )
    batch_size: int | None = setting(help="default: the recipe's")
    lr: float | None = setting(help="peak learning rate (default: the recipe's)")
    weight_decay: float | None = setting(help="AdamW weight decay (default: the recipe's)")
    warmup_steps: int | None = setting(help="linear warmup steps (default: the recipe's)")
    decay: str | None = setting(choices=DECAYS, help="after warmup (default: the recipe's)")
    clip_norm: float | None = setting(help="clip gradients to this global norm, 0 = off (default: the recipe's)")
    amsgrad: bool | None = setting(help="AMSGrad second moments (default: the recipe's)")
    dropout: float | None = setting(help="model dropout (default: the recipe's)")
    seed: int = setting(0, help="training seed (INRs are fitted with seed 0)")
    # where things are
    data_dir: str | None = setting(help="dataset root (default: $DWSJAX_DATA_DIR)")
    cache_dir: str = setting(default_cache_dir, help="INR store cache")
    resume: bool = setting(False, help="continue the run in --out from its last checkpoint")
    progress: bool = setting(True, flag="--no-progress", help="hide the progress bars (default: shown)")

    def replace(self, **changes) -> Self:
        return dataclasses.replace(self, **changes)

    def key(self, fields: tuple[str, ...]) -> tuple:
        """The typed values of ``fields``."""
        return tuple(getattr(self, f) for f in fields)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Self:
        """A config of the keys of ``values`` that are fields (others ignored; a ``no_<field>`` key
        sets ``<field>`` to its negation, as ``--no-progress`` does), e.g. an ``argparse.Namespace``'s ``vars``."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in values.items() if k in names}
        given.update({name: not values[f"no_{name}"] for name in names if f"no_{name}" in values})
        return cls(**given)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Self:
        """The config fields a CSV row of results records, parsed to their types (an empty cell is
        ``None``, or the field's default when it has no ``None``); other columns are ignored."""
        annotations = field_types(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in row:
                value = parse_value(row[f.name], annotations[f.name])
                if value is not None or type(None) in typing.get_args(annotations[f.name]):
                    values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class RunConfig(CommonConfig):
    """Everything one classification run depends on: the :class:`CommonConfig` settings, then the model,
    the augmentation and the run directory."""

    # the model
    model: str = setting("dws", choices=MODEL_NAMES)
    depth: int | None = setting(help="DWS layers / transformer blocks (default: the model's)")
    normalization: str | None = setting(
        choices=NORMALIZATIONS,
        help="DWS: BatchNorm before / LayerNorm after every ReLU, or none (default: the model's)",
    )
    head_hidden: int | None = setting(
        help="DWS: hidden width of the MLP head, 0 = one linear map (default: the model's)"
    )
    set_layer: str | None = setting(
        choices=SET_LAYERS,
        help="DWS: map of each hidden layer's neuron features, linear or set attention (default: the model's)",
    )
    probe_points: int = setting(
        0,
        help="dws/gnn: probe features, each neuron's activations at this many input points "
        "(dwsjax.models.probes); 0 = none",
    )
    probe_inputs: str = setting(
        "learned",
        choices=["learned", "fixed"],
        help="probe input points trained with the model or kept at their U[-1, 1] draw",
    )
    # augmentation
    augment: str = setting(
        "none",
        help="none, an augmentation name, a preset ('combination', 'combination_prealigned'), "
        "or a comma-separated pipeline",
    )
    mixup_partners: str = setting(
        "batch",
        choices=MIXUP_PARTNERS,
        help="where MixUp partners come from: another sample of the batch; any training INR; or any "
        "fitted view of the training objects (--store-views of them) while anchors keep --views, as the "
        "augmentation paper's released code draws them",
    )
    matching_solver: str = setting(
        "auto",
        choices=["auto", "jax", "scipy"],
        help="assignment solver of weight matching (auto: scipy on CPU, JAX on GPU/TPU)",
    )
    template_rounds: int = setting(
        TemplateConfig().rounds, help="barycentre rounds of the template that mixup_prealigned's INRs are aligned to"
    )
    template_sign_aware: bool = setting(False, help="align INRs to the template with sign flips as well (SIRENs)")
    # the run directory
    out: str | None = setting(help="run directory (default: runs/<dataset>_<model>_<augment>_v<views>_s<seed>)")
    plot: bool = setting(False, help="write curves.png (loss and accuracy per epoch)")

    @property
    def run_name(self) -> str:
        partners = "" if self.partners is None else f"_p{self.partners}"
        return f"{self.dataset}_{self.model}_{spec_label(self.augment)}{partners}_v{self.views}_s{self.seed}"

    @property
    def partners(self) -> str | None:
        """``mixup_partners`` unless it is the default (``batch``) or the augmentation mixes no pairs."""
        if self.mixup_partners == "batch" or not mixes_pairs(self.augment):
            return None
        return self.mixup_partners

    @property
    def out_dir(self) -> Path:
        return Path(self.out or Path("runs") / self.run_name)

    @property
    def train_recipe_name(self) -> str:
        """The training recipe: the given one or the model's (dwsjax.optim.MODEL_RECIPES)."""
        return self.train_recipe or MODEL_RECIPES[self.model]

    def dws_layout(self) -> tuple:
        """``(normalization, set_layer, head_hidden)`` of a DWS run, the given ones or DWSClassifier's
        defaults; ``(None, None, None)`` for other models."""
        from dwsjax.models import DWSClassifier

        if self.model != "dws":
            return None, None, None
        return tuple(getattr(DWSClassifier, f) if getattr(self, f) is None else getattr(self, f) for f in DWS_LAYOUT)

    def key(self, fields: tuple[str, ...] = RESULT_IDENTITY) -> tuple:
        """The typed values of ``fields`` (default: what identifies a run in a results table), resolved as
        results record them: the model's training recipe and DWS layout, no probe inputs without probes,
        no partner pool without MixUp (:attr:`partners`).
        ``epochs`` and ``inr_recipe`` are as given (see :func:`resolve_protocol`)."""
        resolved = {
            "train_recipe": self.train_recipe_name,
            **dict(zip(DWS_LAYOUT, self.dws_layout())),
            "probe_inputs": self.probe_inputs if self.probe_points else None,
            "mixup_partners": self.partners,
        }
        return tuple(resolved[f] if f in resolved else getattr(self, f) for f in fields)


def field_types(cls) -> dict[str, Any]:
    """Each field's resolved type annotation."""
    return typing.get_type_hints(cls)


def base_type(annotation) -> type:
    """``int | None`` -> ``int``; an annotation that is no union as it is (``tuple[float, ...]``)."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    return next(a for a in typing.get_args(annotation) if a is not type(None))


def parse_value(text: str, annotation) -> Any:
    """A CSV cell as a value of ``annotation``: ``""`` -> ``None``, ``"True"`` -> ``True``, ``"3"`` -> ``3``."""
    if text is None or text == "":
        return None
    kind = base_type(annotation)
    if kind is bool:
        return text.strip().lower() in ("true", "1", "yes")
    if kind is int:
        return int(float(text))
    return kind(text)


# --- the protocol defaults -------------------------------------------------------------------------


def modelnet40_subset_note(data_dir: str | None) -> str | None:
    """One line when the ModelNet40 directory lacks shapes of its official split lists, else ``None``."""
    from dwsjax.data.shapes import modelnet40_coverage
    from dwsjax.data.sources import find_dataset_dir

    directory = find_dataset_dir("modelnet40", data_dir, ["modelnet40_train.txt", "modelnet40_shape_names.txt"])
    (train, listed_train), (test, listed_test) = (modelnet40_coverage(directory, s) for s in ("train", "test"))
    if (train, test) == (listed_train, listed_test):
        return None
    return (
        f"note: {directory} holds {train} of {listed_train} train and {test} of {listed_test} test ModelNet40 "
        "shapes, a subset that exercises the pipeline end to end but is no benchmark; for the paper's protocol "
        "point --data-dir (or DWSJAX_DATA_DIR) at a full modelnet40_normal_resampled directory"
    )


def protocol_defaults(dataset: str, data_dir: str | None) -> dict[str, Any]:
    """``epochs`` and ``inr_recipe`` of runs that leave them unset: the paper's ModelNet40 protocol on a
    full ModelNet40 directory (:data:`PAPER_MODELNET40`), else :data:`DEFAULT_EPOCHS` and the default
    recipe. Prints the subset note for a partial ModelNet40 directory."""
    if dataset == "modelnet40":
        note = modelnet40_subset_note(data_dir)
        if note is None:
            return dict(PAPER_MODELNET40)
        print(note, flush=True)
    return {"epochs": DEFAULT_EPOCHS, "inr_recipe": DEFAULT_RECIPE}


def resolve_protocol(config: CommonConfig) -> CommonConfig:
    """``config`` with ``epochs`` and ``inr_recipe`` filled where unset (:func:`protocol_defaults`)."""
    if config.epochs is not None and config.inr_recipe is not None:
        return config
    defaults = protocol_defaults(config.dataset, config.data_dir)
    return config.replace(**{k: v for k, v in defaults.items() if getattr(config, k) is None})


# --- the pieces of a run ---------------------------------------------------------------------------


def resolved_recipe(config) -> tuple[str, TrainRecipe]:
    """``(name, recipe)``: ``train_recipe`` (default: the model's) with every given override applied."""
    name = config.train_recipe or MODEL_RECIPES[config.model]
    overrides = {
        "learning_rate": config.lr,
        "batch_size": config.batch_size,
        "weight_decay": config.weight_decay,
        "warmup_steps": config.warmup_steps,
        "decay": config.decay,
        "clip_norm": config.clip_norm,
        "amsgrad": config.amsgrad,
        "dropout": config.dropout,
    }
    return name, train_recipe(name)._replace(**{k: v for k, v in overrides.items() if v is not None})


def store_dir(cache_dir: str, identity: dict) -> Path:
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{identity['dataset']}_{identity['split']}_v{identity['views']}_{digest}"


def inr_store_name(config: CommonConfig) -> str:
    """The directory name of the training INR store a run reads, e.g. ``modelnet10_train_v1_3db96ab846``.
    Its digest changes with whatever changes the INRs (recipe, steps, points, init keys), so a results row
    that records it names the INRs behind its accuracy."""
    (train_config, _), _ = store_configs(config)
    return store_dir(".", train_config.identity()).name


def check_object_counts(config) -> None:
    """Refuse an object count below 1 (an empty split)."""
    for flag, value in (
        ("--train-objects", config.train_objects),
        ("--val-objects", config.val_objects),
        ("--test-objects", config.test_objects),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")


def failed_fits_hint(summary: dict) -> str:
    """Why fewer objects than asked for may be usable: INRs whose fit failed are left out."""
    failed = summary["nan"] + summary["diverged"]
    if not failed:
        return ""
    return (
        f" ({failed} of the store's {summary['inrs']} INRs failed to fit and are left out: "
        "raise --inr-steps or lower the fitting learning rate)"
    )


def store_configs(config: CommonConfig):
    """The INR stores a run reads: ``((train_config, objects), (test_config, objects))``, the
    :class:`~dwsjax.inr_datasets.InrDatasetConfig` of each and how many of its objects the run needs
    (``None``: the whole split). The training store holds the validation objects too."""
    from dwsjax.inr_datasets import InrDatasetConfig

    fitting = dict(
        recipe=config.inr_recipe or DEFAULT_RECIPE,
        steps=config.inr_steps,
        learning_rate=config.inr_lr,
        target_psnr=config.inr_target_psnr,
        n_points=config.inr_points,
        init=config.inr_init,
    )
    store_views = config.views if config.store_views is None else config.store_views
    if store_views < config.views:
        raise ValueError(
            f"--store-views {store_views} is fewer than --views {config.views}; "
            "fit at least as many views as the run trains on"
        )
    known = config.train_objects is not None and config.val_objects is not None
    return (
        (
            InrDatasetConfig(config.dataset, "train", views=store_views, **fitting),
            config.train_objects + config.val_objects if known else None,
        ),
        (InrDatasetConfig(config.dataset, "test", views=1, **fitting), config.test_objects),
    )


def load_splits(config: CommonConfig):
    """Train, validation and test :class:`InrBatch` es and the training store, fitting or reusing the
    stores: ``(train, val, test, train_store)``. ``config.inr_recipe`` must be resolved."""
    check_object_counts(config)
    import numpy as np

    from dwsjax.inr_datasets import build_inr_store
    from dwsjax.store import objects_in_order, select

    (train_cfg, objects), (test_cfg, test_objects) = store_configs(config)
    train_store = build_inr_store(
        store_dir(config.cache_dir, train_cfg.identity()), train_cfg, objects, config.data_dir, progress=config.progress
    )
    test_store = build_inr_store(
        store_dir(config.cache_dir, test_cfg.identity()),
        test_cfg,
        test_objects,
        config.data_dir,
        progress=config.progress,
    )
    fitted = train_store.load(views=config.views)
    object_ids = objects_in_order(fitted)
    n_val = max(1, len(object_ids) // 12) if config.val_objects is None else config.val_objects
    n_train = len(object_ids) - n_val if config.train_objects is None else config.train_objects
    if n_train < 1 or n_train + n_val > len(object_ids):
        raise ValueError(
            f"cannot take {n_train} train + {n_val} validation objects from the {len(object_ids)} "
            f"fitted objects of {config.dataset}; lower --train-objects/--val-objects"
            + failed_fits_hint(train_store.summary())
        )
    in_train = np.isin(fitted.object_ids, object_ids[:n_train])
    in_val = np.isin(fitted.object_ids, object_ids[n_train : n_train + n_val]) & (fitted.view_ids == 0)
    test = test_store.load(views=1)
    if config.test_objects is not None:  # a shared cached store may hold more objects than asked for
        test = select(test, np.isin(test.object_ids, objects_in_order(test)[: config.test_objects]))
    return select(fitted, in_train), select(fitted, in_val), test, train_store


def partner_pool(config: RunConfig, train, train_store):
    """The MixUp partner pool of a run (:attr:`RunConfig.partners`): ``None`` (partners from the batch),
    ``train`` itself (``"train"``), or every fitted view of ``train``'s objects (``"store"``): the
    training objects only, never the validation objects that share their store."""
    import numpy as np

    from dwsjax.store import select

    if config.partners is None:
        return None
    if config.partners == "train":
        return train
    every_view = train_store.load()
    return select(every_view, np.isin(every_view.object_ids, train.object_ids))


def template_aligned_if_needed(augments: list[str], train, train_store, config, solver: str, progress: bool):
    """``(train, config)``: the training INRs aligned to their store's template (computed once, cached)
    when a pipeline of ``augments`` mixes template-aligned INRs, else ``(train, None)``."""
    from dwsjax.augment import needs_template
    from dwsjax.template_store import template_aligned

    if not any(needs_template(a) for a in augments if a != "none"):
        return train, None
    return template_aligned(train, train_store, config, solver, progress), config


def dws_config(config) -> dict:
    """``normalization`` / ``head_hidden`` / ``set_layer`` as DWS model config (refused for other models)."""
    given = (
        ("normalization", config.normalization),
        ("head_hidden", config.head_hidden),
        ("set_layer", config.set_layer),
    )
    options = {k: v for k, v in given if v is not None}
    if options and config.model != "dws":
        raise ValueError(f"--normalization, --head-hidden and --set-layer are DWS options; --model is {config.model}")
    if options.get("head_hidden", 0) < 0:
        raise ValueError(f"--head-hidden must be >= 0, got {config.head_hidden}")
    return options


def probe_config(config, activation: str) -> dict:
    """``probe_points`` / ``probe_inputs`` as model config ``{"probe": ProbeConfig}`` (dws and gnn only)."""
    from dwsjax.models.probes import ProbeConfig

    if config.probe_points == 0:
        return {}
    if config.model not in ("dws", "gnn"):
        raise ValueError(f"--probe-points adds probe features to the dws and gnn models; --model is {config.model}")
    if config.probe_points < 0:
        raise ValueError(f"--probe-points must be >= 0, got {config.probe_points}")
    return {"probe": ProbeConfig(config.probe_points, config.probe_inputs == "learned", activation)}


def run_model(config: RunConfig, spec, num_classes: int, activation: str, recipe: TrainRecipe):
    """The run's classifier: ``config.model`` for INRs of ``spec`` and ``activation`` with the run's width,
    depth, DWS layout and probe features and the recipe's dropout."""
    from dwsjax.models import build_model, depth_config, width_config

    return build_model(
        config.model,
        spec,
        num_classes,
        dropout=recipe.dropout,
        **width_config(config.model, config.hidden),
        **depth_config(config.model, config.depth),
        **dws_config(config),
        **probe_config(config, activation),
    )


def run_pipeline(config: RunConfig, activation: str):
    """The run's augmentation :class:`~dwsjax.augment.Pipeline` (``None`` for ``augment="none"``)."""
    from dwsjax.augment import build_pipeline

    if config.augment == "none":
        return None
    return build_pipeline(config.augment, activation=activation, solver=config.matching_solver)


def run_facts(config: RunConfig, val, test, template, partners=None) -> dict:
    """What a resumed run must share with its checkpoint beyond the model, recipe and training INRs."""
    return {
        "dataset": config.dataset,
        "augment": config.augment,
        "views": config.views,
        "mixup_partners": config.mixup_partners,
        "partner_inrs": None if partners is None else len(partners.labels),
        "inr_recipe": config.inr_recipe,
        "inr_init": config.inr_init,
        "val_inrs": len(val.labels),
        "test_inrs": len(test.labels),
        "matching_solver": config.matching_solver,
        "template": None if template is None else template._asdict(),
    }


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


# --- the run ---------------------------------------------------------------------------------------


def run_classification(config: RunConfig) -> dict:
    """One classification run: resolve the protocol defaults, fit or reuse the INR stores, train, test.

    Args:
        config: every setting of the run; ``None`` fields take the protocol's, recipe's or model's default.

    Returns:
        The run's results, also written to ``<out>/results.json``: the resolved settings, ``test_accuracy``
        and ``val_accuracy`` at ``best_epoch`` (best validation accuracy), ``final_train_accuracy``,
        throughput and store facts. The run directory (``config.out_dir``) also gets ``history.csv``,
        checkpoints and, with ``plot``, ``curves.png``; it is removed again if the run fails before
        writing anything else, and ``resume`` continues it from its last checkpoint.
    """
    from dwsjax.devices import use_all_cpu_cores

    config = resolve_protocol(config)
    use_all_cpu_cores()
    out = config.out_dir
    with removed_on_failure(out):
        return run_in(config, out)


def run_in(config: RunConfig, out: Path) -> dict:
    """:func:`run_classification` in the directory ``out`` of a resolved ``config``; ``-> results``."""
    from dwsjax.checkpoints import refuse_overwrite
    from dwsjax.models import model_param_counts
    from dwsjax.plots import plot_curves
    from dwsjax.train import TrainConfig, train_classifier

    template_config = TemplateConfig(rounds=config.template_rounds, sign_aware=config.template_sign_aware).check()
    refuse_overwrite(out / "checkpoints", config.resume)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test, train_store = load_splits(config)
    class_names = train_store.metadata["class_names"]
    recipe_name, recipe = resolved_recipe(config)
    model = run_model(config, train_store.spec, len(class_names), train_store.activation, recipe)
    train_config = TrainConfig(recipe, epochs=config.epochs, seed=config.seed)
    augment = run_pipeline(config, train_store.activation)
    train, template = template_aligned_if_needed(
        [config.augment], train, train_store, template_config, config.matching_solver, config.progress
    )
    partners = partner_pool(config, train, train_store)
    if config.partners == "store":  # the other views, aligned to the same template
        partners, _ = template_aligned_if_needed(
            [config.augment], partners, train_store, template_config, config.matching_solver, config.progress
        )
    facts = run_facts(config, val, test, template, partners)
    history = train_classifier(
        model,
        train,
        val,
        test,
        len(class_names),
        train_config,
        augment,
        checkpoint_dir=out / "checkpoints",
        resume=config.resume,
        progress=config.progress,
        facts=facts,
        partners=partners,
    )
    best = history["epochs"][history["best_epoch"]] if history["epochs"] else {}
    results = {
        **facts,
        "model": config.model,
        "seed": config.seed,
        "epochs": config.epochs,
        "train_recipe": recipe_name,
        **recipe._asdict(),
        "hidden": config.hidden,
        "depth": config.depth,
        "normalization": getattr(model, "normalization", None),
        "head_hidden": getattr(model, "head_hidden", None),
        "set_layer": getattr(model, "set_layer", None),
        "probe_points": config.probe_points,
        "probe_inputs": config.probe_inputs if config.probe_points else None,
        "train_inrs": len(train.labels),
        "params": model_param_counts(model)["total"],
        "best_epoch": history["best_epoch"],
        "val_accuracy": history["best_val_accuracy"],
        "test_accuracy": best.get("test_accuracy"),
        "final_train_accuracy": history["epochs"][-1]["train_accuracy"],
        "train_samples_per_s": sum(e["train_samples_per_s"] for e in history["epochs"]) / len(history["epochs"]),
        "train_seconds": training_seconds(history["epochs"]),
        "inr_store_psnr": train_store.summary()["mean_psnr"],
        "inr_store": train_store.root.name,
    }
    (out / "results.json").write_text(json.dumps({**results, "history": history["epochs"]}, indent=1))
    write_history_csv(out / "history.csv", history["epochs"])
    if config.plot:
        plot_curves(out / "curves.png", history["epochs"], config.run_name)
    print(json.dumps(results))
    return results
