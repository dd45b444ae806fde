"""One writer per task, with real worker processes on SQLite and on PostgreSQL.

Issue 14: two Synchronize actions of one task, both queued while the queue was
paused, started together once it resumed and ingested every document twice.
Here three Synchronize actions, an Update and a Hold of one task are queued on
a paused queue, two ``runworker fetch`` processes with two slots each wait,
and the queue resumes: the five writers must run one after the other, in the
order they were queued, and the ingest output must hold each document once
(plus the one the Update sent again), while an action that writes no task runs
alongside them.

The PostgreSQL run uses a database of its own, made from
``CONNECTOR_SCALEOUT_POSTGRES_URL`` (default the machine's 127.0.0.1:5432) and
dropped at the end; without PostgreSQL it is skipped.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from processes import Site

pytestmark = pytest.mark.processes

POSTGRES_URL = os.environ.get(
    "CONNECTOR_SCALEOUT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
FOLDERS = 15
PER_FOLDER = 100
DOCUMENTS = FOLDERS * PER_FOLDER
WRITERS = ("SYNCHRONIZE", "UPDATE", "HOLD")


class PostgresSite(Site):
    """A ``Site`` whose processes share a PostgreSQL database of their own."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.database_url = url
        super().__init__(tmp)

    def manage(self, *args: str) -> str:
        # Before Site's own migrate runs, and for every process started after it.
        self.env["DATABASE_URL"] = self.database_url
        return super().manage(*args)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            return db.execute(sql.replace("?", "%s"), params).fetchall()

    def action(self, pk: int) -> dict[str, Any]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, row_factory=dict_row) as db:
            found = db.execute("SELECT * FROM connector_action WHERE id = %s", [pk]).fetchone()
            assert found is not None
            return dict(found)


def _postgres_database(name: str) -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {error}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            parts = urlsplit(POSTGRES_URL)
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def writer_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    if request.param == "sqlite":
        site = Site(tmp_path)
        try:
            yield site
        finally:
            site.stop_all()
        return
    for url in _postgres_database(f"one_writer_{os.getpid()}"):
        site = PostgresSite(tmp_path, url)
        try:
            yield site
        finally:
            site.stop_all()


def _make_repository(root: Path) -> None:
    for folder in range(FOLDERS):
        path = root / f"f{folder:02d}"
        path.mkdir(parents=True)
        for n in range(PER_FOLDER):
            (path / f"doc{n:03d}.txt").write_text(f"Document {folder}/{n}.\n")


def _setup(site: Site, repository: Path, ingest: Path) -> list[str]:
    """The task DOCS, a paused queue; returns the identifiers of two of its documents."""
    code = (
        "from connector import queue\n"
        "from connector.models import FetchTask\n"
        "from connector.repositories import repository_for\n"
        f"task = FetchTask.objects.create(name='DOCS', directory_paths=[{str(repository)!r}],"
        f" ingest_directory={str(ingest)!r})\n"
        "queue.set_paused(queue='fetch', paused=True)\n"
        "repository = repository_for(task)\n"
        "print(*(repository.identifier(0, p) for p in ['f00/doc000.txt', 'f01/doc001.txt']))\n"
    )
    return site.manage("shell", "-c", code).strip().splitlines()[-1].split()


def _time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=None)


def test_writers_of_one_task_run_one_at_a_time_on_two_workers(writer_site, tmp_path):
    site = writer_site
    repository, ingest = tmp_path / "repository", tmp_path / "ingest"
    _make_repository(repository)
    updated, held = _setup(site, repository, ingest)
    sync = {"fetch_action": "Synchronize", "params": {"TaskSections": "DOCS"}, "tasks": ["DOCS"]}
    update_xml = (
        f'<identifiersXML><identifier value="{updated}">'
        '<metadata name="DEPARTMENT" value="Sales"/></identifier></identifiersXML>'
    )
    pks = site.submit(
        sync,
        sync,
        {
            "fetch_action": "Update",
            "params": {"ConfigSection": "DOCS", "IdentifiersXML": update_xml},
            "tasks": ["DOCS"],
        },
        {
            "fetch_action": "Hold",
            "params": {"ConfigSection": "DOCS", "Identifiers": held},
            "tasks": ["DOCS"],
        },
        sync,
        {"fetch_action": "Sleep", "params": {"Seconds": "1", "Steps": "10"}},
    )
    writers, sleep = pks[:-1], pks[-1]
    two_slots = {"CONNECTOR_FETCH_THREADS": "2", "CONNECTOR_SYNCHRONIZE_READERS": "0"}
    workers = [site.start("runworker", "fetch", **two_slots) for _ in range(2)]
    for worker in workers:
        site.wait_for_worker(worker)
    site.manage(
        "shell", "-c", "from connector import queue; queue.set_paused(queue='fetch', paused=False)"
    )
    site.wait_for(
        lambda: all(s in {"Finished", "Error", "Stopped"} for s in site.statuses(pks)),
        90,
        "every action to end",
    )
    assert site.statuses(pks) == ["Finished"] * len(pks), site.logs()

    rows = {
        pk: (fetch_action, _time(started), _time(finished), worker, json.loads(counts or "{}")
             if isinstance(counts, str) else counts)
        for pk, fetch_action, started, finished, worker, counts in site.query(
            "SELECT id, fetch_action, started_at, finished_at, worker, counts"
            " FROM connector_action"
        )
    }  # fmt: skip
    # At no moment two writers of the task Processing: their spells, in the
    # order they started, do not overlap. (Queue order holds but for two claims
    # at the same instant, which may start the next two in either order:
    # docs/ingest.md.)
    spells = sorted((rows[pk][1], rows[pk][2]) for pk in writers)
    for (_, end), (start, _) in itertools.pairwise(spells):
        assert end <= start, (spells, site.logs())
    # The Sleep (no task written) was not held back by the writers.
    assert rows[sleep][1] < spells[-1][1]

    syncs = [rows[pk][4]["DOCS"] for pk in writers if rows[pk][0] == "SYNCHRONIZE"]
    assert sum(c.get("added", 0) for c in syncs) == DOCUMENTS, syncs
    # The Update's document goes again once, with its metadata; nothing else twice.
    assert sum(c.get("updated", 0) for c in syncs) == 1, syncs
    references = [
        line
        for batch in sorted(ingest.glob("*.idx"))
        for line in batch.read_text().splitlines()
        if line.startswith("#DREREFERENCE ")
    ]
    assert len(references) == DOCUMENTS + 1
    assert len(set(references)) == DOCUMENTS
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, site.logs()
