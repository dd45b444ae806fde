"""What the history's trigger (connector/outcomes.py) adds to an action's finish.

Migrates a database, then times ``queue.end_action`` of 1,000 claimed NoOp actions
(one task each) with the trigger, then without it, twice. One thread, one process:
the time per finish is the statement's and its commit's, not a throughput.

    python bench/outcomes_trigger.py sqlite:////tmp/outcomes.sqlite3
    python bench/outcomes_trigger.py postgres://postgres@127.0.0.1:5432/some_db
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = 1_000


def main() -> None:
    os.environ.update(
        DATABASE_URL=sys.argv[1],
        DJANGO_SETTINGS_MODULE="connector.settings",
        LOG_LEVEL="ERROR",
        CONNECTOR_VAR_DIR=tempfile.mkdtemp(prefix="outcomes-bench-"),
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    import connector.fetch.diagnostics  # noqa: F401  (registers NoOp)
    from connector import outcomes, queue

    call_command("migrate", verbosity=0)

    def run(label: str) -> None:
        for _ in range(ACTIONS):
            queue.submit_action(fetch_action="NoOp", params={}, tasks=["DOCS"])
        claimed = queue.claim_actions(queue="fetch", worker="bench", limit=ACTIONS)
        ending = queue.Ending(counts={}, result={}, progress=100)
        began = time.perf_counter()
        for action in claimed:
            queue.end_action(pk=action.pk, worker="bench", ending=ending)
        took = time.perf_counter() - began
        print(f"{label}: {took / len(claimed) * 1e6:.0f} us per finish ({len(claimed)})")

    try:
        for _ in range(2):
            outcomes.install(connection)
            run("with the trigger")
            outcomes.uninstall(connection)
            run("without it")
    finally:
        outcomes.install(connection)


if __name__ == "__main__":
    main()
