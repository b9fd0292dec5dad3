"""Throughput of every augmentation and of batched weight matching; template alignment against pairwise.

``python -m experiments.bench_augment [--batch 256] [--repeats 5] [--scipy-pairs 64] [--store DIR]``
prints one JSON line per augmentation (microseconds per sample, jitted batch of
FMNIST-sized 2-32-32-1 SIRENs, after warm-up), then alignment lines: pairs/s and
mean objective of the vmapped JAX weight matching vs a per-pair loop running the
same coordinate descent with scipy's ``linear_sum_assignment``, pairs/s of the
jitted, vmapped matching with each assignment solver (``dwsjax.matching.SOLVERS``),
a comparison of plain vs sign-aware alignment (objective, weight distance, and
how far the rendered MixUp midpoint is from the mean of the two rendered
images), and DWS training-step throughput without augmentation, with
``mixup_aligned`` (each solver; with the default solver also with partners
drawn from a pool on the host, ``--mixup-partners store``) and with
``mixup_prealigned``.

With ``--store`` (an INR store of 2-32-32-1 image INRs, e.g. from
``experiments.fit_inrs``) the step lines train on its INRs and two more lines
compare template alignment (``dwsjax.templates``) with exact pairwise matching
on ``--quality-pairs`` random pairs of its INRs, and time the template
alignment of all its INRs, extrapolated linearly to 55,000.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.augment import AUGMENTATIONS, PAIR_AUGMENTATIONS, apply_to_batch, build_pipeline, combination
from dwsjax.augment.mixup import interpolate
from dwsjax.batching import on_host, partner_indices
from dwsjax.matching import (
    SOLVERS,
    alignment_objective,
    mlp_permutation_spec,
    permute_neurons,
    resolve_solver,
    weight_matching,
    weight_matching_scipy,
)
from dwsjax.models import build_model
from dwsjax.optim import TrainRecipe
from dwsjax.siren import render_image, siren_init_batch
from dwsjax.store import InrBatch, InrStore, select
from dwsjax.template_store import align_store, apply_alignment
from dwsjax.templates import TemplateConfig, align_to, barycentre_round
from dwsjax.train import TrainConfig, create_state, train_step
from dwsjax.weights import batch_size, mlp_spec, weight_stats
from experiments.cli import make_parser, run_cli

SPEC = mlp_spec(2, 32, 32, 1)


def seconds_per_call(fn, *args, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up (compilation) call."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def augmentation_timings(key, ws, ws_b, labels, repeats: int, names=None) -> Iterator[dict]:
    """One row per augmentation (all registered ones and the combination, or ``names``):
    seconds per jitted call on the batch ``ws`` (paired with ``ws_b`` for MixUp variants)
    and microseconds per sample."""
    n = labels.shape[0]
    known = [*AUGMENTATIONS, *PAIR_AUGMENTATIONS, "combination"]
    chosen = known if names is None else list(names)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; known: {', '.join(known)}")
    keys = jax.random.split(key, n)
    for name in chosen:
        if name in AUGMENTATIONS:
            run = jax.jit(lambda k, w, fn=AUGMENTATIONS[name]: apply_to_batch(fn, k, w))
            t = seconds_per_call(run, key, ws, repeats=repeats)
        elif name in PAIR_AUGMENTATIONS:
            t = seconds_per_call(
                jax.jit(jax.vmap(PAIR_AUGMENTATIONS[name])), keys, ws, labels, ws_b, labels[::-1], repeats=repeats
            )
        else:
            t = seconds_per_call(jax.jit(combination()), key, ws, labels, repeats=repeats)
        row = dict(augmentation=name, batch=n, seconds=t, us_per_sample=1e6 * t / n)
        yield {**row, "pairs_per_s": n / t} if name in PAIR_AUGMENTATIONS else row


def bench_augmentations(key, ws, ws_b, labels, repeats: int) -> None:
    for row in augmentation_timings(key, ws, ws_b, labels, repeats):
        emit(**row)


def bench_alignment(ws_a, ws_b, repeats: int, scipy_pairs: int) -> None:
    n = ws_a.biases[0].shape[0]
    match = jax.jit(jax.vmap(functools.partial(weight_matching, solver="jax")))
    t_jax = seconds_per_call(match, ws_a, ws_b, repeats=repeats)
    jax_obj = np.asarray(match(ws_a, ws_b).objective)
    a_np, b_np = jax.tree.map(np.asarray, ws_a), jax.tree.map(np.asarray, ws_b)
    m = min(scipy_pairs, n)
    weight_matching_scipy(jax.tree.map(lambda x: x[0], a_np), jax.tree.map(lambda x: x[0], b_np))  # warm-up
    start = time.perf_counter()
    scipy_obj = np.array(
        [
            weight_matching_scipy(jax.tree.map(lambda x: x[i], a_np), jax.tree.map(lambda x: x[i], b_np)).objective
            for i in range(m)
        ]
    )
    t_scipy = (time.perf_counter() - start) / m
    emit(
        alignment="weight_matching",
        pairs=n,
        jax_pairs_per_s=n / t_jax,
        scipy_pairs_per_s=1 / t_scipy,
        speedup=(n / t_jax) * t_scipy,
        jax_mean_objective=float(jax_obj[:m].mean()),
        scipy_mean_objective=float(scipy_obj.mean()),
        objective_rel_diff=float(abs(jax_obj[:m].mean() - scipy_obj.mean()) / abs(scipy_obj.mean())),
        scipy_pairs=m,
    )


def bench_solvers(ws_a, ws_b, repeats: int) -> None:
    """Pairs/s of the jitted, vmapped weight matching with each assignment solver."""
    rates = {}
    for solver in SOLVERS:
        match = jax.jit(jax.vmap(functools.partial(weight_matching, solver=solver)))
        rates[solver] = batch_size(ws_a) / seconds_per_call(match, ws_a, ws_b, repeats=repeats)
    emit(
        alignment="weight_matching_jit",
        pairs=batch_size(ws_a),
        pairs_per_s=rates,
        auto=resolve_solver(),
        backend=jax.default_backend(),
    )


def step_cells() -> list[tuple[str, str | None, bool]]:
    """``(augmentation, solver, partners from a pool)`` of the training-step benchmark."""
    return [
        ("none", None, False),
        *(("mixup_aligned", solver, False) for solver in SOLVERS),
        ("mixup_aligned", "auto", True),
        ("mixup_prealigned", None, False),
    ]


def bench_steps(data: InrBatch, repeats: int, steps: int, batch: int = 64) -> None:
    """Samples/s of DWS-32 training steps (``dwsjax.train.train_step``, batch ``batch``) per
    :func:`step_cells` cell, best of ``repeats`` runs of ``steps`` steps after a warm-up step; a pool
    cell also draws each step's partners from ``data`` on the host and puts them on the device, as
    :func:`dwsjax.train.train_classifier` does with a partner pool."""
    model = build_model("dws", SPEC, 10)
    state = create_state(model, data, TrainConfig(TrainRecipe(learning_rate=1e-3, batch_size=batch)))
    stats = weight_stats(data.weights)
    rng = np.random.default_rng(0)
    n = len(data.labels)
    batches = [rng.choice(n, batch, replace=n < batch) for _ in range(steps)]
    inputs = [(jax.tree.map(lambda x: jnp.asarray(x[i]), data.weights), jnp.asarray(data.labels[i])) for i in batches]
    host = on_host(data)
    base = None
    for name, solver, pool in step_cells():
        augment = None if name == "none" else build_pipeline(name, solver=solver or "auto")

        def partners(key):
            idx = partner_indices(key, n, batch)
            return jax.tree.map(lambda x: jnp.asarray(x[idx]), host.weights), jnp.asarray(host.labels[idx])

        def run(state):
            for i, (ws, labels) in enumerate(inputs):
                key = jax.random.key(i)
                pairs = partners(key) if pool else None
                state, loss, _ = train_step(state, ws, labels, key, stats, 10, augment, pairs)
            return loss

        rate = batch * steps / seconds_per_call(run, state, repeats=repeats)
        base = rate if base is None else base
        emit(
            train_step="dws-32",
            augmentation=name,
            solver=solver,
            partners="pool" if pool else "batch",
            batch=batch,
            samples_per_s=round(rate, 1),
            cost_vs_none=round(base / rate, 3),
        )


def render_store(store: InrStore, ws) -> jax.Array:
    return render_image(ws, 28, 28, output_offset=store.output_offset)


def template_quality(store: InrStore, config: TemplateConfig, pairs: int, seed: int = 0) -> None:
    """Template alignment against exact pairwise weight matching on ``pairs`` random pairs ``(a, b)``
    of the store's INRs: objectives ``<a, T(b)>`` and rendered-midpoint errors (see docs/benchmarks.md)."""
    alignment = align_store(store, config)
    raw = store.load()
    aligned = apply_alignment(raw, alignment)
    rng = np.random.default_rng(seed)
    first = rng.choice(len(raw.labels), pairs, replace=pairs > len(raw.labels))
    second = (first + rng.integers(1, len(raw.labels), pairs)) % len(raw.labels)  # never the same INR
    a, b = select(raw, first).weights, select(raw, second).weights
    a_t, b_t = select(aligned, first).weights, select(aligned, second).weights
    match = jax.jit(jax.vmap(functools.partial(weight_matching, sign_aware=config.sign_aware)))
    result = match(a, b)
    pspec = mlp_permutation_spec(SPEC)
    b_p = jax.vmap(lambda w, p, s: permute_neurons(w, pspec, p, s))(b, result.perms, result.signs)
    objective = jax.vmap(alignment_objective)
    ratio = np.asarray(objective(a_t, b_t)) / np.asarray(result.objective)
    mean_image = 0.5 * (render_store(store, a) + render_store(store, b))

    def midpoint_mse(x, y):
        return float(jnp.mean((render_store(store, interpolate(x, y, 0.5)) - mean_image) ** 2))

    emit(
        template_quality=store.identity["dataset"],
        pairs=pairs,
        inrs=len(raw.labels),
        template=config._asdict(),
        objective_ratio_template_vs_pairwise={
            "mean": float(ratio.mean()),
            "median": float(np.median(ratio)),
            "min": float(ratio.min()),
        },
        mean_objective={
            "identity": float(objective(a, b).mean()),
            "template": float(objective(a_t, b_t).mean()),
            "pairwise": float(result.objective.mean()),
        },
        midpoint_render_mse_vs_mean_render={
            "identity": midpoint_mse(a, b),
            "template": midpoint_mse(a_t, b_t),
            "pairwise": midpoint_mse(a, b_p),
        },
        mean_render_variance=float(jnp.var(mean_image, axis=(1, 2, 3)).mean()),
    )


def template_cost(store: InrStore, config: TemplateConfig, solver: str, target_inrs: int = 55_000) -> None:
    """Seconds of the barycentre rounds and of aligning all the store's INRs to the template
    (compiled beforehand, no disk I/O), and the linear extrapolation to ``target_inrs``."""
    ws = store.load().weights
    members = jax.tree.map(lambda x: x[: config.template_inrs], ws)
    template = jax.tree.map(lambda x: x[0], ws)
    align_to(template, members, config, solver)  # compile
    start = time.perf_counter()
    for _ in range(config.rounds):
        template = barycentre_round(template, members, config, solver)
    rounds_seconds = time.perf_counter() - start
    start = time.perf_counter()
    align_to(template, ws, config, solver)
    align_seconds = time.perf_counter() - start
    n = batch_size(ws)
    emit(
        template_cost=store.identity["dataset"],
        solver=solver,
        inrs=n,
        template=config._asdict(),
        rounds_seconds=round(rounds_seconds, 2),
        align_seconds=round(align_seconds, 2),
        inrs_per_s=round(n / align_seconds, 1),
        extrapolated_inrs=target_inrs,
        extrapolated_seconds=round(rounds_seconds + align_seconds * target_inrs / n, 1),
    )


def compare_sign_alignment(ws_a, ws_b) -> None:
    """Identity vs plain vs sign-aware alignment of ``ws_b`` to ``ws_a``."""
    pspec = mlp_permutation_spec(SPEC)

    @functools.partial(jax.jit, static_argnums=0)
    def metrics(sign_aware: bool | None):
        if sign_aware is None:
            aligned = ws_b
        else:
            result = jax.vmap(lambda a, b: weight_matching(a, b, sign_aware=sign_aware))(ws_a, ws_b)
            aligned = jax.vmap(lambda b, p, s: permute_neurons(b, pspec, p, s))(ws_b, result.perms, result.signs)
        render = lambda w: render_image(w, 28, 28)  # noqa: E731
        midpoint = render(interpolate(ws_a, aligned, 0.5))
        target = 0.5 * (render(ws_a) + render(ws_b))
        dist = sum(
            jnp.sum((x - y) ** 2, axis=tuple(range(1, x.ndim)))
            for x, y in zip(jax.tree.leaves(ws_a), jax.tree.leaves(aligned))
        )
        return (
            jnp.mean(jax.vmap(alignment_objective)(ws_a, aligned)),
            jnp.mean(jnp.sqrt(dist)),
            jnp.mean((midpoint - target) ** 2),
        )

    for label, sign_aware in (("identity", None), ("permutation", False), ("permutation+sign", True)):
        objective, dist, mse = metrics(sign_aware)
        emit(
            alignment_comparison=label,
            mean_objective=float(objective),
            mean_weight_distance=float(dist),
            midpoint_render_mse_vs_mean_render=float(mse),
        )


SECTIONS = ("augmentations", "alignment", "steps", "template")


def main(argv=None) -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scipy-pairs", type=int, default=64)
    parser.add_argument(
        "--sections",
        default=None,
        help=f"benchmarks to run, comma-separated, of {','.join(SECTIONS)} (default: all; template only with --store)",
    )
    parser.add_argument("--store", default=None, help="INR store (2-32-32-1 image INRs) for the template lines")
    parser.add_argument("--quality-pairs", type=int, default=256)
    parser.add_argument("--step-count", type=int, default=10, help="training steps per timed run")
    parser.add_argument("--template-rounds", type=int, default=TemplateConfig().rounds)
    parser.add_argument("--template-sign-aware", action="store_true")
    args = parser.parse_args(argv)
    sections = args.sections.split(",") if args.sections else [n for n in SECTIONS if n != "template" or args.store]
    for flag, value in (("--quality-pairs", args.quality_pairs), ("--step-count", args.step_count)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {','.join(SECTIONS)}")
    store = None if args.store is None else InrStore.open(args.store)
    if store is not None and store.spec != SPEC:
        raise ValueError(f"--store holds {store.spec} INRs; the benchmark needs {SPEC} image INRs (e.g. fmnist)")
    if "template" in sections and store is None:
        raise ValueError(
            "the template section needs --store DIR (fit one with python -m experiments.fit_inrs "
            "--dataset fmnist --objects 2048 --out DIR), or leave it out of --sections"
        )
    key_a, key_b, key_aug = jax.random.split(jax.random.key(0), 3)
    ws_a = siren_init_batch(jax.random.split(key_a, args.batch), SPEC)
    ws_b = siren_init_batch(jax.random.split(key_b, args.batch), SPEC)
    labels = jax.nn.one_hot(jnp.arange(args.batch) % 10, 10)
    if "augmentations" in sections:
        bench_augmentations(key_aug, ws_a, ws_b, labels, args.repeats)
    if "alignment" in sections:
        bench_alignment(ws_a, ws_b, args.repeats, args.scipy_pairs)
        bench_solvers(ws_a, ws_b, args.repeats)
        compare_sign_alignment(ws_a, ws_b)
    if "steps" in sections:
        data = (
            store.load()
            if store is not None
            else InrBatch(ws_a, np.arange(args.batch) % 10, np.arange(args.batch), np.zeros(args.batch, int))
        )
        bench_steps(data, args.repeats, args.step_count)
    if "template" in sections:
        config = TemplateConfig(rounds=args.template_rounds, sign_aware=args.template_sign_aware).check()
        template_quality(store, config, args.quality_pairs)
        for solver in SOLVERS:
            template_cost(store, config, solver)


if __name__ == "__main__":
    run_cli(main)
