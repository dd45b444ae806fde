"""Issue 13 item 10: state files are private from the first byte (connector.private_files).

The end-to-end check (migrate and serve under umask 022, every file under var/
private, WAL and SHM included) is in test_serve_command.py.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from processes import ROOT

from connector import private_files


@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_created_private_even_under_a_loose_umask(tmp_path, loose_umask):
    var = private_files.private_dir(tmp_path / "a" / "var")
    assert mode(var) == mode(tmp_path / "a") == 0o700
    key = private_files.write_private_once(var / "secret_key", "s3cret")
    assert key == "s3cret" and mode(var / "secret_key") == 0o600
    assert private_files.write_private_once(var / "secret_key", "other") == "s3cret"
    database = var / "connector.sqlite3"
    private_files.create_private_file(database)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
        # SQLite gives the log and its index the database file's mode.
        assert mode(var / "connector.sqlite3-wal") == 0o600
        assert mode(var / "connector.sqlite3-shm") == 0o600
    assert [p.name for p in var.iterdir() if mode(p) & 0o077] == []


def test_a_state_file_an_older_version_left_readable_is_tightened(tmp_path, loose_umask):
    old = tmp_path / "connector.sqlite3"
    old.write_text("")
    assert mode(old) == 0o644
    private_files.tighten(old)
    assert mode(old) == 0o600
    private_files.tighten(tmp_path / "missing")  # nothing to do


@pytest.mark.parametrize(("raw", "value"), [("", 0o077), ("027", 0o027), ("0o022", 0o022)])
def test_connector_umask(monkeypatch, raw, value):
    monkeypatch.setenv("CONNECTOR_UMASK", raw)
    assert private_files.umask_from_environment() == value


def test_a_bad_umask_stops_manage_py_with_one_line(tmp_path):
    env = {**os.environ, "CONNECTOR_VAR_DIR": str(tmp_path / "var"), "CONNECTOR_UMASK": "rw"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "CONNECTOR_UMASK must be an octal umask" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var").exists()  # refused before anything was made
