"""Issue 14 item 5: on SQLite a returned token survives a power loss (synchronous=FULL)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection
from processes import ROOT

from connector import queue

pytestmark = pytest.mark.django_db(transaction=True)

FULL, NORMAL = 2, 1


def test_the_connection_that_stores_a_submission_syncs_every_commit():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL commits are durable (synchronous_commit on)")
    queue.submit_action(queue="fetch", fetch_action="Identifiers", params={})
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == FULL
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


@pytest.mark.parametrize(("value", "level"), [("", FULL), ("normal", NORMAL), ("FULL", FULL)])
def test_connector_sqlite_synchronous_chooses_the_level(tmp_path, value, level):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"CONNECTOR_VAR_DIR": str(tmp_path), "CONNECTOR_SQLITE_SYNCHRONOUS": value})
    code = (
        "from django.db import connection\n"
        "c = connection.cursor(); c.execute('PRAGMA synchronous'); print(c.fetchone()[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(level)


def test_a_bad_value_stops_the_start_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"CONNECTOR_VAR_DIR": str(tmp_path), "CONNECTOR_SQLITE_SYNCHRONOUS": "off"})
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "CONNECTOR_SQLITE_SYNCHRONOUS must be one of full, normal" in done.stderr
    assert "Traceback" not in done.stderr
