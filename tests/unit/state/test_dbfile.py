"""SQLite files opened without touching them behind SQLite's back, and private (0600)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.spool.sqlite import statements as store
from gateway.spool.sqlite.reader import SpoolReader
from gateway.state.dbfile import connect_private
from gateway.state.sqlite import SQLiteState


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most shells have: files 0644 unless the code sees to it
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _in_other_process(path: Path, sql: str) -> list[list[object]]:
    """``sql``'s rows, read by another process through a connection it then closes."""
    code = ("import json, sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], timeout=5)\n"
            "print(json.dumps(db.execute(sys.argv[2]).fetchall()))\n"
            "db.close()\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), sql], capture_output=True,
                          text=True, timeout=30, check=True)
    rows: list[list[object]] = json.loads(done.stdout)
    return rows


def test_a_second_connection_in_the_process_keeps_the_first_one_s_locks(
        tmp_path: Path) -> None:
    """The gateway holds the spool open; a scrape opens and closes it again; then the
    ``gateway spool`` command, another process, reads and closes. Had the scrape dropped the
    gateway's locks, that process would think itself the last one, checkpoint and delete the
    WAL under the gateway, and the gateway's next commit would go to a deleted file."""
    path = tmp_path / "spool.db"
    gateway = store.connect(path)
    try:
        gateway.execute("INSERT INTO probe VALUES (1, 1)")
        store.connect(path).close()  # what every scrape did
        assert _in_other_process(path, "SELECT at FROM probe") == [[1.0]]
        assert (tmp_path / "spool.db-wal").exists(), "the WAL was deleted under the gateway"
        gateway.execute("UPDATE probe SET at = 2")  # committed after the other's close
        assert _in_other_process(path, "SELECT at FROM probe") == [[2.0]]
    finally:
        gateway.close()


def test_spool_and_wal_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "spool.db"
    db = store.connect(path)
    db.execute("INSERT INTO probe VALUES (1, 0)")
    try:
        for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name
    finally:
        db.close()


async def test_the_state_database_is_private(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "var" / "gateway.db"
    state = SQLiteState(path)
    await state.revoke("jti-1", 4_000_000_000.0)
    try:
        for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
            assert _mode(path.parent / name) == 0o600, name
    finally:
        await state.close()


def test_files_an_older_version_left_open_to_others_are_made_private(
        tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "gateway.db"
    first = sqlite3.connect(path)
    first.execute("PRAGMA journal_mode = WAL")
    first.execute("CREATE TABLE t (a)")
    assert _mode(path) == 0o644
    db = connect_private(path, timeout=1.0)
    try:
        assert _mode(path) == 0o600 and _mode(tmp_path / "gateway.db-wal") == 0o600
    finally:
        db.close()
        first.close()


async def test_a_reader_keeps_one_connection_across_scrapes(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store.connect(path).close()
    reader = SpoolReader(path)
    views = [await reader.view(write_probe=n % 2 == 0) for n in range(50)]
    assert reader.opened == 1 and all(v.items == 0 for v in views)


async def test_a_reader_reopens_after_an_error(tmp_path: Path) -> None:
    reader = SpoolReader(tmp_path / "missing-dir" / "sub" / "spool.db")
    (tmp_path / "missing-dir").write_text("a file, so no directory can be made under it")
    with pytest.raises((sqlite3.Error, OSError)):
        await reader.view()
    (tmp_path / "missing-dir").unlink()
    view = await asyncio.wait_for(reader.view(), 10)
    assert view.depth == 0 and reader.opened == 1
