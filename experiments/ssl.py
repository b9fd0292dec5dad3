r"""SimCLR pre-training on unlabelled INRs, then classification with few labels
(Shamsian et al. ICML 2024, Sec. 5.4: Table 2 and Figure 5).

    python -m experiments.ssl --dataset fmnist --hidden 32 --train-objects 2000 --val-objects 300 \
        --test-objects 1000 --pretrain-epochs 12 --epochs 30 --batch-size 16

(the CPU protocol: roughly 10-15 minutes on 2 idle cores once the INR stores are
cached; per-epoch evaluation of the 8 classifier runs is about half of it.)

A thin command line over :func:`dwsjax.ssl_run.run_simclr`: one flag per field
of :class:`dwsjax.ssl_run.SslConfig` (``--field-name``, its help from the
field's description), parsed into a config and run. The run pre-trains the DWS
encoder with SimCLR on all training INRs (labels unused), then trains the
classifier from scratch and from the pre-trained encoder on every fraction of
``--label-fractions`` of the labelled training objects, and probes both
encoders linearly; it writes ``results.json``, ``results.csv``, ``table.md``,
``pretrain_history.csv`` and ``representations.png`` (see
:mod:`dwsjax.ssl_run`). Data options and store caching are those of
:mod:`experiments.classify`. ``--resume`` continues the pre-training or an
unfinished classifier run.
"""

from __future__ import annotations

import argparse

from dwsjax.ssl_run import SslConfig, run_simclr
from experiments.cli import add_config_arguments, config_from_args, make_parser, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = make_parser(__doc__)
    add_config_arguments(p, SslConfig)
    return p.parse_args(argv)


def config_of(args: argparse.Namespace) -> SslConfig:
    """The :class:`SslConfig` of parsed flags."""
    return config_from_args(SslConfig, args)


def main(argv=None) -> dict:
    return run_simclr(config_of(parse_args(argv)))


if __name__ == "__main__":
    run_cli(main)
