"""Opening an SQLite database that only its owner may read, without touching the file
behind SQLite's back.

POSIX advisory locks belong to a process and a file, not to a descriptor: closing *any*
descriptor of the file releases every lock the process holds on it, including those of
its SQLite connections (https://www.sqlite.org/howtocorrupt.html, section 2.2). So nothing
here opens the database, its ``-wal`` or its ``-shm`` itself: SQLite creates the file, and
the mode is then set by path with ``chmod``, which opens no descriptor. The file is empty
at that moment; the ``-wal`` and ``-shm`` files SQLite creates later take the database
file's mode, and those left by an older run are set too. Every module that opens the spool
or the state database goes through ``connect_private``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

__all__ = ["PRIVATE_MODE", "connect_private", "make_private"]

PRIVATE_MODE = 0o600


def make_private(path: Path) -> None:
    """Mode 0600 for the database file and its ``-wal`` and ``-shm``, by path only."""
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(name), PRIVATE_MODE)


def connect_private(path: Path, *, timeout: float) -> sqlite3.Connection:
    """An autocommit connection to the database at ``path`` (created if missing, in a
    directory created 0700), with the database's files set to 0600 before anything is
    written to them."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        make_private(path)
    except OSError:
        db.close()
        raise
    return db
