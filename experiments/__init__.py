"""Experiment commands, run as ``python -m experiments.<name>``.

Such a command restarts itself with glibc's huge-page tunable
(:func:`experiments.cli.restart_with_huge_pages`) here, while its package is
being imported (``sys.argv[0]`` is ``"-m"`` until the module is found), so the
restart comes before JAX and the command's own imports are loaded.
"""

import sys

from experiments.cli import restart_with_huge_pages

if sys.argv[:1] == ["-m"]:
    restart_with_huge_pages()
