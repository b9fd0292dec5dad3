"""What every experiment CLI shares: its parser (defaults in ``--help``, ``--debug``) and its entry point.

A user mistake (missing data, a bad flag value, a damaged file: our code raises
``ValueError`` or ``FileNotFoundError`` saying what is wrong and how to fix it)
ends the command with that one line on stderr and exit status 1, and warnings
(e.g. a damaged store shard being refitted) print as one line; ``--debug``
shows the traceback and the warnings' source lines instead.

On Linux with glibc, ``python -m experiments.<name>`` first restarts itself with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (:func:`huge_page_environment`; the
call is in ``experiments/__init__.py``, before any heavy import):
XLA's CPU runtime allocates every execution's temporary buffers afresh, glibc
maps large allocations anew, and touching fresh 4 KiB pages costs one page
fault each; with the tunable glibc asks for transparent huge pages instead
(the effect on training steps: ``docs/benchmarks.md``). The restart prints one
line to stderr saying so; ``DWSJAX_NO_HUGE_PAGES=1`` turns it off (see
``docs/design.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import typing
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

USER_ERRORS = (ValueError, FileNotFoundError)
HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1"
HUGE_PAGES_OPT_OUT = "DWSJAX_NO_HUGE_PAGES"
HUGE_PAGES_NOTICE = (
    f"dwsjax: restarting with GLIBC_TUNABLES={HUGE_PAGE_TUNABLE} (transparent huge pages, "
    f"~1.6x faster XLA on CPU); set {HUGE_PAGES_OPT_OUT}=1 to turn this off"
)


def shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` states this option's default: not for positionals, or defaults of
    ``None``/``False`` (unset options and flags that are off), whose help says what they mean."""
    unset = any(action.default is value for value in (None, False, argparse.SUPPRESS))
    return bool(action.option_strings) and not unset


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and appends ``(default: ...)`` to the help of every
    option that :func:`shows_default`, unless the help already explains its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "default" in help_text or not shows_default(action):
            return help_text
        return f"{help_text} (default: %(default)s)"


class CliParser(argparse.ArgumentParser):
    """An argument parser whose options without a help text still show their default."""

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.help is None and shows_default(action):
            action.help = "(default: %(default)s)"
        return action


def make_parser(description: str | None) -> CliParser:
    """A :class:`CliParser` with :class:`HelpFormatter` and the shared ``--debug`` flag."""
    parser = CliParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error, not one line")
    return parser


def config_flag(field: dataclasses.Field) -> str:
    """The command line flag of a config field: its metadata's ``flag`` or ``--field-name``."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def field_default(field: dataclasses.Field) -> Any:
    """A config field's default value (its default factory called)."""
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def comma_separated(kind: type) -> Callable[[str], tuple]:
    """The argparse type of a ``tuple[kind, ...]`` field: ``"0.05,0.2"`` -> ``(0.05, 0.2)``."""

    def parse(text: str) -> tuple:
        return tuple(kind(item) for item in text.split(",") if item.strip())

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_cls,
    names: Iterable[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """One flag per field of the dataclass ``config_cls`` (those in ``names``, in field order; default:
    all), typed by its annotation, with the help and choices of its metadata (``dwsjax.run.setting``):
    ``int``/``float``/``str`` fields take a value, ``tuple[kind, ...]`` fields comma-separated values,
    ``bool`` fields are switches (``--flag`` for a default of ``False``, ``--flag/--no-flag`` for
    ``None``, and a ``--no-...`` flag for a default of ``True``, whose value lands in ``no_<field>``, see
    :func:`config_from_args`). ``defaults`` replaces the fields' defaults on this command."""
    from dwsjax.run import base_type, field_types

    types = field_types(config_cls)
    wanted = None if names is None else set(names)
    for field in dataclasses.fields(config_cls):
        if wanted is not None and field.name not in wanted:
            continue
        default = defaults[field.name] if defaults and field.name in defaults else field_default(field)
        kind, meta = base_type(types[field.name]), field.metadata
        kwargs: dict[str, Any] = {"help": meta.get("help") or None}
        if kind is bool and default is True:
            parser.add_argument(config_flag(field), dest=f"no_{field.name}", action="store_true", **kwargs)
            continue
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if default is None else "store_true"
        elif typing.get_origin(kind) is tuple:
            kwargs["type"] = comma_separated(typing.get_args(kind)[0])
        else:
            kwargs.update(type=kind, choices=meta.get("choices"))
        parser.add_argument(config_flag(field), dest=field.name, default=default, **kwargs)


def config_argv(config) -> list[str]:
    """The flags of :func:`add_config_arguments` that make the dataclass ``config`` from its class's
    defaults, in field order: one per field that differs from its default (a tuple's items
    comma-separated, a switch alone, ``--no-<field>`` for a tri-state ``False``)."""
    argv = []
    for field in dataclasses.fields(config):
        value, default = getattr(config, field.name), field_default(field)
        if value == default:
            continue
        if isinstance(value, bool):
            argv.append(config_flag(field) if value or default is not None else f"--no-{config_flag(field)[2:]}")
        else:
            argv += [config_flag(field), ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return argv


def add_hidden_alias(parser: argparse.ArgumentParser, flag: str, dest: str, kind: type) -> None:
    """``flag`` as a second, undocumented name of the option stored in ``dest`` (an older flag name
    that documented commands still use)."""
    parser.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def config_from_args(config_cls, args: argparse.Namespace):
    """The ``config_cls`` of a parsed namespace: its fields' values (``no_<field>`` switches negated);
    namespace entries that are no field are ignored, fields missing from it keep their defaults."""
    return config_cls.from_values(vars(args))


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings`` format for the command line: ``warning: <message>``, no source location."""
    return f"warning: {message}\n"


def huge_page_environment(environ: dict[str, str], libc: str) -> dict[str, str] | None:
    """``environ`` with :data:`HUGE_PAGE_TUNABLE` appended to ``GLIBC_TUNABLES``, or ``None`` when
    nothing is to change: not glibc, a ``glibc.malloc.hugetlb`` tunable already set, or opted out."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if libc != "glibc" or "glibc.malloc.hugetlb" in tunables or environ.get(HUGE_PAGES_OPT_OUT):
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, [tunables, HUGE_PAGE_TUNABLE]))}


def restart_with_huge_pages() -> None:
    """Re-execute this command (same interpreter and arguments) under :func:`huge_page_environment`,
    saying so in one line on stderr (:data:`HUGE_PAGES_NOTICE`); glibc reads its tunables only when a
    process starts. Returns when there is nothing to change."""
    environ = huge_page_environment(dict(os.environ), platform.libc_ver()[0] if sys.platform == "linux" else "")
    if environ is not None:
        print(HUGE_PAGES_NOTICE, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environ)


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)`` (default: the command line); a user error becomes one line on
    stderr and exit status 1, and warnings print as ``warning: ...``, unless ``--debug`` is given."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" not in argv:
        warnings.formatwarning = one_line_warning
    try:
        main(argv)
    except USER_ERRORS as err:
        if "--debug" in argv:
            raise
        message = " ".join(str(err).split("\n"))
        sys.exit(f"error: {message} (rerun with --debug for the traceback)")
