"""dwsjax: learning in deep weight spaces with JAX.

Weight spaces are pytrees (:class:`WeightSpace`), SIRENs are pure functions, and
every augmentation is a jittable function of an explicit PRNG key
(:mod:`dwsjax.augment`), models are Flax modules (:mod:`dwsjax.models`).
"""

from dwsjax.data import load_targets
from dwsjax.fit import FitConfig, FitResult, fit_sirens, inr_keys
from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.matching import align, weight_matching
from dwsjax.siren import (
    SIREN_W0,
    grid_coords,
    image_coords,
    psnr,
    render_image,
    render_sdf,
    siren_apply,
    siren_init,
    siren_init_batch,
)
from dwsjax.store import InrBatch, InrStore
from dwsjax.weights import (
    MLPSpec,
    WeightSpace,
    WeightStats,
    batch_size,
    check_finite,
    check_weight_space,
    denormalize,
    flatten_weights,
    mlp_spec,
    normalize,
    spec_of,
    stack,
    stats_from_arrays,
    stats_to_arrays,
    unflatten_weights,
    weight_stats,
)

__version__ = "0.1.0"
