"""dwsjax: learning in deep weight spaces with JAX.

Fit datasets of SIRENs (implicit neural representations), augment them in
weight space and train weight-space models on them: DWSNets (Navon et al.,
ICML 2023) and the weight-space augmentations of Shamsian et al. (ICML 2024).

Weight spaces are pytrees (:class:`WeightSpace`), SIRENs are pure functions,
every augmentation is a jittable function of an explicit PRNG key, and models
are Flax modules. The names below are the public API, grouped by topic;
lower-level helpers stay importable from their submodules
(:mod:`dwsjax.weights`, :mod:`dwsjax.siren`, :mod:`dwsjax.fit`,
:mod:`dwsjax.augment`, :mod:`dwsjax.models`, :mod:`dwsjax.train`, ...).

A first run: fit SIRENs to images, render them, build a model and an augmentation:

    import numpy as np
    import dwsjax

    targets = dwsjax.load_targets("synthetic2d", "train", limit=64)  # generated, no files needed
    spec = dwsjax.mlp_spec(2, 32, 32, 1)  # a 2-32-32-1 SIREN: (y, x) -> grey value
    config = dwsjax.FitConfig.from_recipe(spec, dwsjax.fit_recipe("dwsnets-fast", "image"))
    keys = dwsjax.inr_keys(0, targets.object_ids, np.zeros_like(targets.object_ids))
    fitted = dwsjax.fit_sirens(keys, targets.coords, targets.values, config)
    images = dwsjax.render_image(fitted.weights, 28, 28, output_offset=config.output_offset)
    model = dwsjax.build_model("dws", spec, num_classes=len(targets.class_names))
    augment = dwsjax.build_pipeline("translate,siren_negation,mixup_aligned")

:func:`train_classifier` then trains ``model`` on :class:`InrBatch` splits,
usually loaded from an :class:`InrStore` that :func:`build_inr_store` fitted.
A whole experiment (stores fitted or reused, model trained, results written) is
one typed configuration: ``dwsjax.run_classification(dwsjax.RunConfig(dataset="fmnist",
augment="mixup_aligned"))``, as ``python -m experiments.classify`` runs it.
"""

from dwsjax.augment import (
    AUGMENTATIONS,
    Pipeline,
    build_pipeline,
    gaussian_noise,
    masking,
    mixup,
    mixup_aligned,
    mixup_permuted,
    mixup_prealigned,
    quantile_masking,
    relu_scaling,
    rotate,
    scale,
    siren_bias,
    siren_negation,
    translate,
)
from dwsjax.data import load_targets
from dwsjax.fit import FitConfig, FitResult, fit_sirens, inr_keys
from dwsjax.function_probe import FunctionProbeConfig, linear_probe, rendered_functions, run_function_probe
from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.matching import align, weight_matching
from dwsjax.models import DWSClassifier, DWSLayer, GNNClassifier, build_model
from dwsjax.models.probes import ProbeConfig, neuron_activations
from dwsjax.optim import TRAIN_RECIPES, TrainRecipe, train_recipe
from dwsjax.recipes import RECIPES, FitRecipe, fit_recipe
from dwsjax.run import RunConfig, run_classification
from dwsjax.shape_quality import shape_quality
from dwsjax.siren import (
    grid_coords,
    image_coords,
    psnr,
    render_image,
    render_sdf,
    siren_apply,
    siren_init,
    siren_init_batch,
)
from dwsjax.ssl import pretrain_simclr, simclr_model
from dwsjax.ssl_run import SslConfig, run_simclr
from dwsjax.store import InrBatch, InrStore
from dwsjax.template_store import TemplateConfig, align_store, template_aligned
from dwsjax.train import TrainConfig, evaluate_store, train_classifier
from dwsjax.weights import (
    MLPSpec,
    WeightSpace,
    WeightStats,
    denormalize,
    flatten_weights,
    mlp_spec,
    normalize,
    unflatten_weights,
    weight_stats,
)

__version__ = "0.1.0"

__all__ = [
    # Weight spaces: MLP architectures, weights as pytrees, normalisation
    "MLPSpec",
    "mlp_spec",
    "WeightSpace",
    "WeightStats",
    "weight_stats",
    "normalize",
    "denormalize",
    "flatten_weights",
    "unflatten_weights",
    # SIRENs: initialisation, evaluation, coordinate grids, rendering
    "siren_init",
    "siren_init_batch",
    "siren_apply",
    "image_coords",
    "grid_coords",
    "render_image",
    "render_sdf",
    "psnr",
    # Fitting SIRENs to data, and the named fitting recipes
    "FitConfig",
    "FitResult",
    "fit_sirens",
    "inr_keys",
    "FitRecipe",
    "fit_recipe",
    "RECIPES",
    # Data: datasets as INR fitting targets
    "load_targets",
    # INR stores: fitted INR datasets on disk
    "InrDatasetConfig",
    "build_inr_store",
    "InrStore",
    "InrBatch",
    # Diagnostics: what the INRs' functions hold, how well 3D INRs hold their shapes
    "rendered_functions",
    "linear_probe",
    "shape_quality",
    "FunctionProbeConfig",
    "run_function_probe",
    # Augmentations and pipelines (Shamsian et al. 2024)
    "build_pipeline",
    "Pipeline",
    "AUGMENTATIONS",
    "siren_negation",
    "siren_bias",
    "relu_scaling",
    "gaussian_noise",
    "masking",
    "quantile_masking",
    "translate",
    "rotate",
    "scale",
    "mixup",
    "mixup_permuted",
    "mixup_aligned",
    "mixup_prealigned",
    # Weight matching and template alignment
    "weight_matching",
    "align",
    "TemplateConfig",
    "align_store",
    "template_aligned",
    # Models for weight spaces
    "build_model",
    "DWSClassifier",
    "DWSLayer",
    "GNNClassifier",
    "ProbeConfig",
    "neuron_activations",
    # Training, training recipes and SimCLR pre-training
    "TrainConfig",
    "train_classifier",
    "evaluate_store",
    "TrainRecipe",
    "train_recipe",
    "TRAIN_RECIPES",
    "simclr_model",
    "pretrain_simclr",
    # Whole experiments as typed configurations (what the experiments' command lines run)
    "RunConfig",
    "run_classification",
    "SslConfig",
    "run_simclr",
]
