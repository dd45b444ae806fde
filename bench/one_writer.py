"""What one writer per task costs the claim: in-process drain rates.

Drains N actions through the queue's own hot path (one claim, then
``finish_and_claim`` per action, one thread, as a worker slot does) on a fresh
database, three ways:

- ``noop``: actions that write no task (the claim compares one column);
- ``writers``: Synchronize actions, each of its own task (every claim and
  finish also sets and clears a hold through the trigger);
- ``one task``: Synchronize actions all of one task, drained one at a time
  (each claim passes over nothing: the one before released the task in the
  same transaction).

It prints the rate and the process's CPU time per action: on SQLite that is
the database's work too, and it moves less than the rate when other programs
load the machine. On a PostgreSQL server of this machine it prints the CPU
time of the connection's server process per action too (read from /proc):
the database's share, as robust to load as the client's.

    python bench/one_writer.py [--actions 3000] [--database-url postgres://...]

Without ``--database-url`` it uses a SQLite file in a temporary folder (WAL,
as the connector configures it). With a PostgreSQL URL the database must
exist and be empty (it is migrated). Runs against the code of the tree it is
in, so the same script in an older checkout gives the figures before.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=3000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-one-writer-"))
    os.environ["CONNECTOR_VAR_DIR"] = str(var)
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{var / 'connector.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from connector import queue

    call_command("migrate", verbosity=0)

    def server_cpu() -> float | None:
        """CPU seconds of this connection's PostgreSQL process, if it runs here."""
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (pid,) = cursor.fetchone()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def drain(label: str, fetch_action: str, tasks_of: list[list[str]]) -> None:
        for tasks in tasks_of:
            queue.submit_action(fetch_action=fetch_action, params={}, tasks=tasks)
        ending = queue.Ending(counts={}, result={}, progress=100)
        server = server_cpu()
        start = time.perf_counter()
        cpu = time.process_time()
        done = 0
        claimed = queue.claim_actions(queue="fetch", worker="bench", limit=1)
        while claimed:
            claimed = queue.finish_and_claim(
                queue="fetch", pk=claimed[0].pk, worker="bench", ending=ending
            )
            done += 1
        elapsed = time.perf_counter() - start
        cpu_us = (time.process_time() - cpu) / done * 1e6
        assert done == len(tasks_of), (label, done)
        # The process's CPU time per action (on SQLite the database's work too)
        # moves less than the wall-clock rate on a loaded machine.
        line = f"{label:<32} {done / elapsed:6.0f} actions/s, {cpu_us:5.0f} us CPU each"
        after = server_cpu()
        if server is not None and after is not None:
            line += f", server {(after - server) / done * 1e6:5.0f} us"
        print(f"{line} ({done})")

    n = args.actions
    if connection.vendor == "postgresql":
        database = f"PostgreSQL {connection.pg_version}"
    else:
        database = f"SQLite {connection.Database.sqlite_version}"
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {database}")
    drain("noop (writes no task)", "NoOp", [[] for _ in range(n)])
    drain("writers, each of its own task", "Synchronize", [[f"T{i}"] for i in range(n)])
    drain("writers, all of one task", "Synchronize", [["DOCS"] for _ in range(n)])


if __name__ == "__main__":
    main()
