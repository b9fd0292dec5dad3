"""Weight-space augmentations (Shamsian et al., ICML 2024) as pure, jittable functions.

Each acts on ONE network: ``(key, ws, ...) -> ws``, or for MixUp variants
``(key, ws_a, y_a, ws_b, y_b, ...) -> (ws, y)``. Use :func:`apply_to_batch` or a
:class:`Pipeline` for batches.
"""

from dwsjax.augment.data_agnostic import gaussian_noise, masking, quantile_masking
from dwsjax.augment.input_space import (
    rotate,
    sample_rotation,
    sample_scale,
    sample_translation,
    scale,
    transform_inputs,
    translate,
)
from dwsjax.augment.mixup import (
    input_mixup,
    interpolate,
    label_smoothing,
    mixup,
    mixup_aligned,
    mixup_permuted,
    mixup_prealigned,
    sample_lambda,
)
from dwsjax.augment.permutation import permutation, random_perms
from dwsjax.augment.pipeline import (
    ACTIVATIONS,
    AUGMENTATIONS,
    COMBINATION,
    COMBINATION_PREALIGNED,
    NEEDS_TEMPLATE,
    PAIR_AUGMENTATIONS,
    PRESERVES_FUNCTION_ONLY_FOR,
    PRESETS,
    Pipeline,
    Step,
    apply_to_batch,
    build_pipeline,
    check_activation,
    combination,
    make_step,
    mixes_pairs,
    needs_template,
    spec_label,
    spec_of_label,
    step_names,
)
from dwsjax.augment.symmetries import relu_scaling, siren_bias, siren_negation, siren_shift_biases

__all__ = [
    # Pipelines: composition, batching and the by-name registry
    "ACTIVATIONS",
    "AUGMENTATIONS",
    "COMBINATION",
    "COMBINATION_PREALIGNED",
    "NEEDS_TEMPLATE",
    "PAIR_AUGMENTATIONS",
    "PRESETS",
    "PRESERVES_FUNCTION_ONLY_FOR",
    "Pipeline",
    "Step",
    "apply_to_batch",
    "build_pipeline",
    "check_activation",
    "combination",
    "make_step",
    "mixes_pairs",
    "needs_template",
    "spec_label",
    "spec_of_label",
    "step_names",
    # Activation symmetries (function-preserving)
    "relu_scaling",
    "siren_bias",
    "siren_negation",
    "siren_shift_biases",
    # Data-agnostic: noise and masking
    "gaussian_noise",
    "masking",
    "quantile_masking",
    # Input space: affine transforms of the INR's coordinates
    "rotate",
    "sample_rotation",
    "sample_scale",
    "sample_translation",
    "scale",
    "transform_inputs",
    "translate",
    # MixUp variants (Eqs. 3-5) and Table 5 ablations
    "input_mixup",
    "interpolate",
    "label_smoothing",
    "mixup",
    "mixup_aligned",
    "mixup_permuted",
    "mixup_prealigned",
    "sample_lambda",
    # Random hidden-neuron permutations
    "permutation",
    "random_perms",
]
