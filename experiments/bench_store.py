"""Peak memory of reading an INR store whole against shard by shard.

``python -m experiments.bench_store --store DIR [--make 70000]`` prints one JSON
line per way of reading the store, each measured in a fresh interpreter (peak
resident set size from ``getrusage``):

- ``baseline``: importing JAX and dwsjax, reading nothing;
- ``load``: :meth:`dwsjax.store.InrStore.load`, every INR at once (what training reads);
- ``shards``: :meth:`~dwsjax.store.InrStore.shard_batches`, one shard at a time, as
  :func:`dwsjax.train.evaluate_store` and template alignment read a store.

``--make N`` first writes a store of ``N`` random 2-32-32-1 SIRENs (the
Fashion-MNIST architecture) at ``DIR`` if there is none, without fitting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from experiments.cli import make_parser, run_cli

MODES = ("baseline", "load", "shards")

MEASURE = """
import json, resource, sys
import jax, numpy as np
from dwsjax.store import InrStore
store, mode = InrStore.open(sys.argv[1]), sys.argv[2]
inrs = 0
if mode == "load":
    inrs = len(store.load().labels)
elif mode == "shards":
    for batch in store.shard_batches():
        inrs += len(batch.labels)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": mode, "inrs": inrs, "peak_rss_mb": round(peak_mb, 1)}))
"""


def make_random_store(root: Path, n: int, shard_objects: int = 256) -> None:
    """A store of ``n`` random 2-32-32-1 SIRENs (DWSNets init), one view, written shard by shard."""
    import jax
    import numpy as np

    from dwsjax import mlp_spec, siren_init_batch
    from dwsjax.store import InrStore

    spec = mlp_spec(2, 32, 32, 1)
    identity = {"dataset": "random", "spec": list(spec.widths), "views": 1, "shard_objects": shard_objects, "seed": 0}
    store = InrStore.create_or_resume(root, identity)
    for index, start in enumerate(range(0, n, shard_objects)):
        if str(index) in store.manifest["shards"]:
            continue
        ids = np.arange(start, min(n, start + shard_objects))
        keys = jax.random.split(jax.random.fold_in(jax.random.key(0), index), len(ids))
        records = {
            "labels": ids % 10,
            "object_ids": ids,
            "view_ids": np.zeros(len(ids), int),
            "mse": np.zeros(len(ids)),
            "psnr": np.full(len(ids), 30.0),
            "steps": np.ones(len(ids), int),
            "status": np.full(len(ids), "ok"),
        }
        store.write_shard(index, records, siren_init_batch(keys, spec, scheme="dwsnets"))


def measure(store: Path, mode: str) -> dict:
    """One mode's JSON line, from a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(store), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    parser = make_parser(__doc__)
    parser.add_argument("--store", required=True, help="INR store directory (written first with --make)")
    parser.add_argument("--make", type=int, default=None, help="write a store of this many random SIRENs first")
    args = parser.parse_args(argv)
    if args.make:
        make_random_store(Path(args.store), args.make)
    lines = []
    for mode in MODES:
        lines.append(measure(Path(args.store), mode))
        print(json.dumps(lines[-1]), flush=True)
    return lines


if __name__ == "__main__":
    run_cli(main)
