"""Benchmark of the operations queries on a big action table: /metrics scrape and retention.

Fills a fresh database with ``--actions`` actions (queued over the last
``--days`` days, most of them final, one log line each), then measures:

- a /metrics scrape (the database collector and the text exposition), median
  and max of ``--scrapes`` scrapes;
- a retention run deleting the final actions older than 30 days: actions per
  second, and the longest batch (one transaction: how long its locks are held).

SQLite by default (a fresh file in a temporary folder); ``--postgres URL``
creates a throwaway database on that server and drops it at the end.

    python bench/ops.py [--actions 200000] [--postgres postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def throwaway_postgres(url: str) -> Iterator[str]:
    import psycopg

    name = f"bench_ops_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")


def fill(n: int, days: float) -> None:
    from django.utils import timezone

    from connector.models import Action, ActionLogLine, Status

    now = timezone.now()
    rng = random.Random(5)
    statuses = [Status.FINISHED] * 80 + [Status.ERROR] * 8 + [Status.CANCELLED] * 4
    statuses += [Status.STOPPED] * 4 + [Status.QUEUED] * 3 + [Status.PROCESSING]
    batch = 5000
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            status = rng.choice(statuses)
            queued = now - timedelta(seconds=rng.uniform(0, days * 86400))
            started = queued + timedelta(seconds=rng.uniform(0, 2))
            final = status not in (Status.QUEUED, Status.PROCESSING)
            finished = started + timedelta(seconds=rng.uniform(0, 30)) if final else None
            rows.append(
                Action(
                    token=f"bench-{i}",
                    fetch_action="NOOP",
                    params={"FetchAction": "NoOp"},
                    status=status,
                    queued_at=queued,
                    started_at=started if status != Status.QUEUED else None,
                    finished_at=finished,
                    stop_requested=status == Status.STOPPED,
                    stop_requested_at=finished - timedelta(seconds=0.01)
                    if status == Status.STOPPED and finished
                    else None,
                )
            )
        created = Action.objects.bulk_create(rows)
        ActionLogLine.objects.bulk_create(
            ActionLogLine(action_id=a.pk, logged_at=now, level="INFO", message="done")
            for a in created
        )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry

    from connector import retention
    from connector.models import Action
    from connector.ops.metrics import DatabaseCollector

    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    fill(args.actions, args.days)
    fill_seconds = time.perf_counter() - t
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    scrapes = []
    size = 0
    for _ in range(args.scrapes):
        t = time.perf_counter()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector())
        size = len(generate_latest(registry))
        scrapes.append(time.perf_counter() - t)

    batch_times: list[float] = []
    real_atomic = retention.transaction.atomic

    @contextlib.contextmanager
    def timed_atomic(*a: Any, **k: Any) -> Iterator[None]:
        started = time.perf_counter()
        with real_atomic(*a, **k):
            yield
        batch_times.append(time.perf_counter() - started)

    retention.transaction.atomic = timed_atomic  # type: ignore[assignment]
    try:
        t = time.perf_counter()
        deleted = retention.delete_old_actions(days=30, batch_size=args.batch)
        delete_seconds = time.perf_counter() - t
    finally:
        retention.transaction.atomic = real_atomic  # type: ignore[assignment]

    return {
        "database": f"{connection.vendor} {connection.Database.sqlite_version}"
        if connection.vendor == "sqlite"
        else f"{connection.vendor} {connection.pg_version}",
        "actions": args.actions,
        "fill_seconds": fill_seconds,
        "scrape_median_ms": statistics.median(scrapes) * 1000,
        "scrape_max_ms": max(scrapes) * 1000,
        "scrape_bytes": size,
        "deleted": deleted,
        "left": Action.objects.count(),
        "delete_seconds": delete_seconds,
        "deleted_per_second": deleted / delete_seconds if delete_seconds else 0,
        "batches": len(batch_times),
        "batch_median_ms": statistics.median(batch_times) * 1000 if batch_times else 0,
        "batch_max_ms": max(batch_times) * 1000 if batch_times else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actions", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", default="", help="a server URL; a throwaway database is made")
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = "connector.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONNECTOR_VAR_DIR"] = tmp
        with contextlib.ExitStack() as stack:
            if args.postgres:
                os.environ["DATABASE_URL"] = stack.enter_context(throwaway_postgres(args.postgres))
            else:
                os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
            figures = measure(args)
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    for key, value in figures.items():
        print(f"{key:>20}: {value:,.1f}" if isinstance(value, float) else f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
