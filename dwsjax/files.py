"""Files a killed job cannot corrupt.

Whole files are written to a temporary file beside the target, synced, then
renamed over it, so a killed job leaves either the old file or the new one,
never half of one. Results tables grow by whole synced CSV rows. Directories a
failed job created are removed when it left nothing of value in them. Jobs that
write the same directory (two processes fitting or aligning one INR store) take
turns through an exclusive lock.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary binary file, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV file with a header, as strings; ``[]`` if it does not exist yet."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_csv_rows(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    """Append the ``columns`` of ``rows`` to a CSV in one synced write (header written with the first rows).

    A file written before some of ``columns`` existed is first rewritten (atomically) with them, left
    empty in its rows; a file with columns not in ``columns`` is refused: its rows would be misread.
    """
    new = not Path(path).exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if not set(header) <= set(columns):
            raise ValueError(f"{path} has columns {header}, expected {columns}; move it aside to start a new table")
        if header != columns:
            atomic_write_text(path, csv_text(read_csv_rows(path), columns))
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """``rows`` as CSV text with header ``columns``; columns a row lacks are empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def first_missing_ancestor(path: Path) -> Path | None:
    """The outermost directory of ``path`` (itself included) that does not exist yet, or ``None``."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            return missing
        missing = candidate
    return missing


def holds_only(directory: Path, disposable: Sequence[str]) -> bool:
    """Whether every file under ``directory`` (recursively) has a name in ``disposable``."""
    return all(p.is_dir() or p.name in disposable for p in directory.rglob("*"))


@contextlib.contextmanager
def removed_on_failure(directory: str | os.PathLike, disposable: Sequence[str] = ()) -> Iterator[Path]:
    """Run a block that creates ``directory``; if the block raises, remove what it created
    (``directory`` and new parents) unless files other than ``disposable`` names were written there."""
    directory = Path(directory)
    created = first_missing_ancestor(directory.absolute())
    try:
        yield directory
    except BaseException:
        if created is not None and created.exists() and holds_only(created, disposable):
            shutil.rmtree(created)
        raise


LOCK = ".lock"


@contextlib.contextmanager
def exclusive_lock(directory: str | os.PathLike, what: str | None, name: str = LOCK) -> Iterator[None]:
    """Hold the exclusive lock ``name`` of ``directory`` (a file, created with the directory if absent)
    for the block. Another process asking for it meanwhile waits, saying on stderr that it waits for
    ``what`` (silently for ``None``); the lock goes with its holder's process (an advisory ``flock``),
    so a killed holder never leaves a stale one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if what is not None:
                print(f"dwsjax: waiting for another process {what} ({directory})", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
