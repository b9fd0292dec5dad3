"""Throughput of every augmentation and of batched weight matching.

``python -m experiments.bench_augment [--batch 256] [--repeats 5] [--scipy-pairs 64]``
prints one JSON line per augmentation (microseconds per sample, jitted batch of
FMNIST-sized 2-32-32-1 SIRENs, after warm-up), then alignment lines: pairs/s and
mean objective of the vmapped JAX weight matching vs a per-pair loop running the
same coordinate descent with scipy's ``linear_sum_assignment``, and a comparison
of plain vs sign-aware alignment (objective, weight distance, and how far the
rendered MixUp midpoint is from the mean of the two rendered images).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.augment import AUGMENTATIONS, PAIR_AUGMENTATIONS, apply_to_batch, combination
from dwsjax.augment.mixup import interpolate
from dwsjax.matching import (
    alignment_objective,
    mlp_permutation_spec,
    permute_neurons,
    weight_matching,
    weight_matching_scipy,
)
from dwsjax.siren import render_image, siren_init_batch
from dwsjax.weights import mlp_spec
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
            t = seconds_per_call(jax.jit(jax.vmap(PAIR_AUGMENTATIONS[name])), keys, ws, labels, ws_b, labels[::-1],
                                 repeats=repeats)  # fmt: skip
        else:
            t = seconds_per_call(jax.jit(combination()), key, ws, labels, repeats=repeats)
        row = dict(augmentation=name, batch=n, seconds=t, us_per_sample=1e6 * t / n)
        yield {**row, "pairs_per_s": n / t} if name in PAIR_AUGMENTATIONS else row


def bench_augmentations(key, ws, ws_b, labels, repeats: int) -> None:
    for row in augmentation_timings(key, ws, ws_b, labels, repeats):
        emit(**row)


def bench_alignment(ws_a, ws_b, repeats: int, scipy_pairs: int) -> None:
    n = ws_a.biases[0].shape[0]
    match = jax.jit(jax.vmap(weight_matching))
    t_jax = seconds_per_call(match, ws_a, ws_b, repeats=repeats)
    jax_obj = np.asarray(match(ws_a, ws_b).objective)
    a_np, b_np = jax.tree.map(np.asarray, ws_a), jax.tree.map(np.asarray, ws_b)
    m = min(scipy_pairs, n)
    weight_matching_scipy(jax.tree.map(lambda x: x[0], a_np), jax.tree.map(lambda x: x[0], b_np))  # warm-up
    start = time.perf_counter()
    scipy_obj = np.array([
        weight_matching_scipy(jax.tree.map(lambda x: x[i], a_np), jax.tree.map(lambda x: x[i], b_np)).objective
        for i in range(m)
    ])
    t_scipy = (time.perf_counter() - start) / m
    emit(
        alignment="weight_matching", pairs=n, jax_pairs_per_s=n / t_jax, scipy_pairs_per_s=1 / t_scipy,
        speedup=(n / t_jax) * t_scipy, jax_mean_objective=float(jax_obj[:m].mean()),
        scipy_mean_objective=float(scipy_obj.mean()),
        objective_rel_diff=float(abs(jax_obj[:m].mean() - scipy_obj.mean()) / abs(scipy_obj.mean())),
        scipy_pairs=m,
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
        emit(alignment_comparison=label, mean_objective=float(objective), mean_weight_distance=float(dist),
             midpoint_render_mse_vs_mean_render=float(mse))


def main(argv=None) -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scipy-pairs", type=int, default=64)
    args = parser.parse_args(argv)
    key_a, key_b, key_aug = jax.random.split(jax.random.key(0), 3)
    ws_a = siren_init_batch(jax.random.split(key_a, args.batch), SPEC)
    ws_b = siren_init_batch(jax.random.split(key_b, args.batch), SPEC)
    labels = jax.nn.one_hot(jnp.arange(args.batch) % 10, 10)
    bench_augmentations(key_aug, ws_a, ws_b, labels, args.repeats)
    bench_alignment(ws_a, ws_b, args.repeats, args.scipy_pairs)
    compare_sign_alignment(ws_a, ws_b)


if __name__ == "__main__":
    run_cli(main)
