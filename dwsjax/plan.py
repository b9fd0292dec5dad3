"""What runs will cost before they run: the work, FLOPs and projected time of each step.

A plan of classification runs (:class:`~dwsjax.run.RunConfig`) has one step per
INR store to fit (once however many runs read it; only the INRs it lacks) and
one per training run. Work is counted in INR-steps for fitting (INRs times the
recipe's step cap: an upper bound, as an INR stops early at the recipe's target
PSNR) and in samples for training (training INRs times epochs, plus the
validation and test INRs evaluated after every epoch). FLOPs come from XLA's
cost analysis of the jitted fitting step (one Adam step of a chunk of SIRENs,
:func:`dwsjax.fit.siren_mse_and_grad`) and training step
(:func:`dwsjax.train.train_step`, augmentations included, host-side weight
matching not counted); an evaluated sample counts as a third of a trained one
(its forward pass) in FLOPs and time; seconds come from a short timed probe of the same code on
the devices present (:func:`dwsjax.fit.fit_sirens` on random targets,
:func:`dwsjax.train.train_classifier` for two epochs on random SIRENs), plus
the compilation each step pays once.
Steps the probes share (same store recipe, same model and augmentation) are
probed once; a training step whose probe runs out of device memory is listed
with the allocation that failed and no time. Probe results are kept in
``<cache dir>/plan_probes.json`` under the machine they were measured on
(:func:`machine`), so the first plan on a machine takes minutes (compiling the
probed steps) and the next ones print in seconds; delete the file to measure again.
"""

from __future__ import annotations

import json
import math
import platform
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.data import load_targets
from dwsjax.files import atomic_write_text
from dwsjax.fit import FitConfig, adam_init, adam_step, fit_sirens, siren_mse_and_grad
from dwsjax.inr_datasets import InrDatasetConfig, missing_inrs
from dwsjax.presets import preset
from dwsjax.run import (
    RunConfig,
    check_object_counts,
    resolve_protocol,
    resolved_recipe,
    run_model,
    run_pipeline,
    store_configs,
    store_dir,
)
from dwsjax.siren import siren_init_batch
from dwsjax.store import InrBatch
from dwsjax.train import TrainConfig, create_state, train_classifier, train_step
from dwsjax.weights import weight_stats

PROBE_FIT_STEPS = 250
PROBE_FIT_CHUNKS = 4
PROBE_TRAIN_BATCHES = 16
PROBE_MIN_BATCHES = 4
PROBE_EPOCH_FLOPS = 1.05e11  # 16 steps of DWS-32 on Fashion-MNIST SIRENs (6.5 GFLOP at batch 64)
PROBES_FILE = "plan_probes.json"


class PlanStep(NamedTuple):
    """One step of a plan.

    Attributes:
        what: e.g. ``"fit fmnist/train, 10 views"`` or a run's name.
        work: INR-steps (fitting) or samples (training and evaluation).
        unit: ``"INR-steps"`` or ``"samples"``.
        gflop: the step's GFLOP (XLA cost analysis times work).
        seconds: projected wall time on the devices present.
        note: e.g. ``"cached"`` or how many INRs of a store are already fitted.
    """

    what: str
    work: int
    unit: str
    gflop: float
    seconds: float
    note: str = ""


def machine() -> str:
    """What a probe's time depends on besides the probed step: the JAX version, the devices, and on CPU the
    processor model (``/proc/cpuinfo``, else :func:`platform.processor`)."""
    devices = jax.devices()
    processor = platform.processor() or platform.machine()
    if devices[0].platform == "cpu" and Path("/proc/cpuinfo").exists():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        processor = names[0] if names else processor
    return f"jax {jax.__version__}, {len(devices)} x {devices[0].device_kind} ({devices[0].platform}), {processor}"


class Probes:
    """Probe results by key, measured once per :func:`machine` and kept in ``path`` (none: this plan only).

    ``get(key, measure)`` returns the stored result of ``key`` on this machine or stores ``measure()``;
    ``measured`` and ``read`` count both kinds. An unreadable file is reported and measured over.
    """

    def __init__(self, path: Path | None):
        self.path, self.values, self.measured, self.read = path, {}, 0, 0
        self.machine = machine()
        if path is not None and path.exists():
            try:
                self.values = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                warnings.warn(f"{path} is not a probe file ({err}); measuring again and writing it anew", stacklevel=2)

    def get(self, key: str, measure: Callable[[], tuple]) -> tuple:
        key = f"{self.machine} | {key}"
        if key in self.values:
            self.read += 1
            return tuple(self.values[key])
        value = measure()
        self.measured += 1
        self.values[key] = list(value)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.values, indent=1))
        return value


def step_flops(jitted, *args) -> float:
    """FLOPs of one call of the jitted function on ``args`` as XLA's cost analysis of the lowered program
    counts them (no compilation)."""
    cost = jitted.lower(*args).cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))


def fit_probe(fit_config: FitConfig, points: int) -> tuple[float, float, float]:
    """``(FLOPs per INR-step, INR-steps per second, compile seconds)`` of fitting SIRENs of ``fit_config``
    to ``points`` values each: the cost of one Adam step of a chunk, and :func:`fit_sirens` on
    :data:`PROBE_FIT_CHUNKS` chunks per device for :data:`PROBE_FIT_STEPS` steps, timed on its second
    call (the first one's extra time is the compilation)."""
    spec, chunk = fit_config.spec, fit_config.chunk_size
    n = PROBE_FIT_CHUNKS * chunk * len(jax.devices())
    coords = jax.random.uniform(jax.random.key(0), (points, spec.widths[0]), minval=-1.0, maxval=1.0)
    targets = jax.random.uniform(jax.random.key(1), (n, points, spec.widths[-1]))
    ws = siren_init_batch(jax.random.split(jax.random.key(2), chunk), spec)

    @jax.jit
    def one_step(ws, adam, targets):
        _, grads = siren_mse_and_grad(ws, coords, targets, fit_config.w0)
        return adam_step(ws, grads, adam, fit_config.learning_rate)

    flops = step_flops(one_step, ws, adam_init(ws, chunk), targets[:chunk]) / chunk
    config = fit_config._replace(steps=PROBE_FIT_STEPS, target_psnr=None)
    keys = jax.random.split(jax.random.key(3), n)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready(fit_sirens(keys, coords, targets, config))
        seconds.append(time.perf_counter() - start)
    return flops, n * PROBE_FIT_STEPS / seconds[1], max(seconds[0] - seconds[1], 0.0)


def random_inrs(spec, n: int, num_classes: int, seed: int = 0) -> InrBatch:
    """``n`` freshly initialised SIRENs of ``spec`` with labels ``0, 1, ..., num_classes - 1, 0, ...``."""
    ws = siren_init_batch(jax.random.split(jax.random.key(seed), n), spec)
    ids = np.arange(n)
    return InrBatch(jax.tree.map(np.asarray, ws), ids % num_classes, ids, np.zeros(n, np.int64))


class DoesNotFit(Exception):
    """A training probe ran out of device memory: ``flops`` per sample, the ``needed`` bytes of the failed
    allocation, at ``batch`` samples per step."""

    def __init__(self, flops: float, needed: int, batch: int):
        super().__init__(f"out of memory: {needed / 2**30:.1f} GiB for one step at batch {batch}")
        self.flops, self.needed, self.batch = flops, needed, batch


def train_probe(config: RunConfig, spec, num_classes: int, activation: str) -> tuple[float, float, float]:
    """``(FLOPs per training sample, training samples per second, compile seconds)`` of the run's model,
    recipe and augmentation: :func:`train_step`'s cost on one batch, and two epochs of
    :func:`train_classifier` on :func:`probe_batches` batches of random SIRENs, validated and tested on
    one batch each: the second epoch's wall time, evaluation counted as training (dispatch is
    asynchronous, so only whole epochs time honestly), and the first epoch's extra time."""
    _, recipe = resolved_recipe(config)
    model = run_model(config, spec, num_classes, activation, recipe)
    augment = run_pipeline(config, activation)
    one_batch = random_inrs(spec, recipe.batch_size, num_classes)
    pairs = None if config.partners is None else (one_batch.weights, jnp.asarray(one_batch.labels))
    train_config = TrainConfig(recipe, epochs=2, seed=0)
    args = (create_state(model, one_batch, train_config), one_batch.weights, jnp.asarray(one_batch.labels))
    args += (jax.random.key(0), weight_stats(one_batch.weights), num_classes, augment, pairs)
    flops = step_flops(train_step, *args) / recipe.batch_size
    n = recipe.batch_size * probe_batches(flops * recipe.batch_size)
    data = random_inrs(spec, n, num_classes)
    partners = None if config.partners is None else data
    try:
        history = train_classifier(
            model, data, one_batch, one_batch, num_classes, train_config, augment, progress=False, partners=partners
        )
    except jax.errors.JaxRuntimeError as err:
        needed = re.search(r"[Oo]ut of memory allocating (\d+) bytes", str(err))
        if needed is None:
            raise
        raise DoesNotFit(flops, int(needed.group(1)), recipe.batch_size) from None
    first, second = (e["epoch_seconds"] for e in history["epochs"])
    return flops, n / second, max(first - second, 0.0)


def probe_batches(step_flops: float) -> int:
    """Training batches per probe epoch: :data:`PROBE_TRAIN_BATCHES`, fewer for a model whose step costs
    more than :data:`PROBE_EPOCH_FLOPS` / 16 (the relational transformer: a probe of a fixed work, not a
    fixed step count), never below :data:`PROBE_MIN_BATCHES` (the epoch also evaluates two batches)."""
    return int(np.clip(round(PROBE_EPOCH_FLOPS / step_flops), PROBE_MIN_BATCHES, PROBE_TRAIN_BATCHES))


def object_counts(config: RunConfig) -> tuple[int, int, int]:
    """``(train, val, test)`` objects of a run whose counts are all given."""
    counts = (config.train_objects, config.val_objects, config.test_objects)
    if None in counts:
        raise ValueError(
            f"a plan needs the object counts of every run; {config.run_name} leaves train/val/test objects "
            f"{counts} to the split's size: give --train-objects, --val-objects and --test-objects"
        )
    return counts


def points_per_inr(store: InrDatasetConfig, data_dir: str | None) -> int:
    """Fitting targets per INR: an image's pixels, or a shape's distance samples."""
    if preset(store.dataset).kind == "shape":
        return store.n_points
    return int(np.prod(load_targets(store.dataset, "test", data_dir, limit=1).shape[:2]))


def fit_plan(configs: list[RunConfig], probes: Probes) -> list[PlanStep]:
    """One step per INR store the runs read (the largest object count asked of each), for the INRs the
    store in the runs' cache lacks; ``probes`` keeps :func:`fit_probe` results."""
    needed: dict[str, tuple[InrDatasetConfig, int, str, str | None]] = {}
    for config in configs:
        check_object_counts(config)
        train, val, test = object_counts(config)
        for store, objects in zip(store_configs(config), (train + val, test)):
            path = str(store_dir(config.cache_dir, store[0].identity()))
            if path not in needed or needed[path][1] < objects:
                needed[path] = (store[0], objects, path, config.data_dir)
    steps = []
    for store, objects, path, data_dir in needed.values():
        fit_config = store.fit_config()
        points = points_per_inr(store, data_dir)
        flops, rate, compile_seconds = probes.get(
            f"fit {fit_config!r}, {points} points", lambda: fit_probe(fit_config, points)
        )
        missing = missing_inrs(path, store, objects)
        total = objects * store.views
        work = missing * fit_config.steps
        note = "cached" if missing == 0 else ("" if missing == total else f"{total - missing} of {total} cached")
        what = f"fit {store.dataset}/{store.split}: {objects} objects x {store.views} views ({store.recipe})"
        seconds = work / rate + (compile_seconds if work else 0.0)
        steps.append(PlanStep(what, work, "INR-steps", work * flops / 1e9, seconds, note))
    return steps


def probe_key(config: RunConfig) -> RunConfig:
    """What a training probe depends on: the run without its seed, views, epochs, objects and places."""
    return config.replace(
        seed=0,
        views=1,
        store_views=None,
        epochs=None,
        train_objects=None,
        val_objects=None,
        test_objects=None,
        out=None,
        data_dir=None,
        cache_dir=None,
        resume=False,
        plot=False,
        progress=False,
    )


def train_plan(config: RunConfig, probes: Probes) -> PlanStep:
    """The training step of one run: its epochs over the training INRs, with validation and test after each;
    ``probes`` keeps :func:`train_probe` results by :func:`probe_key`."""
    train, val, test = object_counts(config)
    store = store_configs(config)[0][0]

    def measure() -> tuple:
        spec = preset(config.dataset).spec
        num_classes = len(load_targets(config.dataset, "test", config.data_dir, limit=1).class_names)
        try:
            return train_probe(config, spec, num_classes, "sine")
        except DoesNotFit as err:
            return err.flops, 0.0, math.inf, f"does not fit here: {err}"

    flops, rate, compile_seconds, *failure = probes.get(f"train {probe_key(config)!r}", measure)
    samples = train * config.views * config.epochs
    evaluated = (val + test) * config.epochs
    work = samples + evaluated / 3
    notes = failure + ([] if config.partners is None else [f"partners: {store.views} views"])
    what = f"train {config.run_name}: {config.epochs} epochs"
    seconds = work / rate + compile_seconds if rate else math.inf
    return PlanStep(what, samples + evaluated, "samples", work * flops / 1e9, seconds, "; ".join(notes))


def plan(configs: list[RunConfig], probes: Probes | None = None) -> list[PlanStep]:
    """The steps of running ``configs`` in order: fitting every store they read, then each training run.

    Args:
        configs: the runs; their object counts must be given (a plan does not read whole splits).
        probes: where probe results are kept (default: ``plan_probes.json`` in the first run's cache
            directory, none without one).

    Returns:
        :class:`PlanStep` s: one per store to fit, then one per run.

    Raises:
        ValueError: a run leaves an object count to the split's size, or asks for a store it cannot have.
    """
    from dwsjax.devices import use_all_cpu_cores

    use_all_cpu_cores()
    configs = [resolve_protocol(c) for c in configs]
    probes = kept_probes(configs) if probes is None else probes
    return fit_plan(configs, probes) + [train_plan(c, probes) for c in configs]


def kept_probes(configs: list[RunConfig]) -> Probes:
    """The probe results kept in the first run's cache directory (:data:`PROBES_FILE`; none without one)."""
    cache = configs[0].cache_dir if configs else None
    return Probes(None if cache is None else Path(cache) / PROBES_FILE)


def format_plan(steps: list[PlanStep]) -> str:
    """A markdown table of ``steps`` with their totals, times in hours and minutes."""

    def duration(seconds: float) -> str:
        if not math.isfinite(seconds):
            return "—"
        minutes = round(seconds / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{seconds / 60:.1f} min"

    lines = [
        f"devices: {len(jax.devices())} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
        "",
        "| step | work | TFLOP | projected here | |",
        "|---|---:|---:|---:|---|",
    ]
    for s in steps:
        lines.append(f"| {s.what} | {s.work:,} {s.unit} | {s.gflop / 1e3:.2f} | {duration(s.seconds)} | {s.note} |")
    total_s = sum(s.seconds for s in steps if math.isfinite(s.seconds))
    total_f = sum(s.gflop for s in steps) / 1e3
    left_out = sum(not math.isfinite(s.seconds) for s in steps)
    note = f"without the {left_out} steps that do not fit" if left_out else ""
    lines.append(f"| **total** | | **{total_f:.2f}** | **{duration(total_s)}** | {note} |")
    return "\n".join(lines)
