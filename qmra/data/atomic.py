"""Atomic file writes: a reader (or a crash) never sees a half-written file.

The finished file gets the permissions a plain ``open(path, "w")`` would give it: ``0666`` less the
umask (and the folder's default ACL) for a new file, the old file's mode when it replaces one.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_ATTEMPTS = 100  # random names tried before giving up (a clash is already one in 2**32)
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def temporary_sibling(path: str | Path) -> Path:
    """A new, unique, empty file beside ``path`` (same folder, so a rename onto ``path`` is atomic).

    It keeps ``path``'s suffix so that writers that pick a format by extension work. Unlike
    ``tempfile.mkstemp`` (always 0600) it is created with mode 0666 filtered by the umask, exactly
    as ``open()`` creates files, so the rename publishes a file with the usual permissions; reading
    the umask would mean setting it, which races with other threads creating files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        temporary = path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}"
        try:
            # O_EXCL: never open a file (or symlink) someone else placed under this name.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return temporary
    raise FileExistsError(f"cannot create a temporary file beside {path}: {_ATTEMPTS} names were taken")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files a killed writer left for ``path`` (a file: those beside it named
    for it; a folder: every one in it). Only for a writer that owns ``path``; returns what it removed."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in path.iterdir() if _TEMPORARY.match(p.name)]
    else:
        found = [p for p in path.parent.glob(f".{path.stem}.*.tmp{path.suffix}") if _TEMPORARY.match(p.name)]
    for stale in found:
        stale.unlink(missing_ok=True)
    return found


def publish(temporary: str | Path, path: str | Path, mode: int | None = None) -> None:
    """Move a finished temporary file onto ``path`` in one rename.

    When ``path`` already exists its mode is kept, as rewriting it in place would keep it; else the
    file gets ``mode`` when given: the mode its temporary was created with, for writers that replace
    the temporary file with one of their own (safetensors does, with mode 0600). Modes are set only
    now: a read-only mode set before writing would stop the writer.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        pass
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it replaces ``path`` in one rename.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is left as it was.
    """
    temporary_path = temporary_sibling(path)
    try:
        mode = stat.S_IMODE(os.stat(temporary_path).st_mode)
        yield temporary_path
        publish(temporary_path, path, mode)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
