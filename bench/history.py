"""What the status history costs the worker's hot path: claim and finish.

In this process, on a fresh SQLite database (the embedded default), queues
``--actions`` no-op actions and drains them one claim and one finish at a
time, as a worker slot does, in rounds that alternate between the real queue
and the queue with its history inserts switched off. The two figures differ
only by those inserts; alternating the rounds spreads the noise of a shared
machine over both. Prints the median drain rate of each and the difference,
per second of wall time and per second of this process's CPU time (SQLite
runs in the process; CPU time hardly moves when other work shares the cores).

    python bench/history.py [--actions 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="connector-bench-history-") as tmp:
        var = Path(tmp) / "var"
        os.environ.update(
            {
                "CONNECTOR_VAR_DIR": str(var),
                "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
                "LOG_LEVEL": "WARNING",
                "DJANGO_SETTINGS_MODULE": "connector.settings",
            }
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        from connector import queue
        from connector.models import Action

        call_command("migrate", verbosity=0)
        real_insert = queue._insert_transitions

        def no_history(*args: object) -> None:
            return None

        def drain_rates() -> tuple[float, float]:
            Action.objects.all().delete()
            for _ in range(args.actions):
                queue.submit_action(fetch_action="NOOP", params={})
            start, start_cpu = time.perf_counter(), time.process_time()
            while claimed := queue.claim_actions(queue="fetch", worker="bench", limit=1):
                (action,) = claimed
                queue.finish_action(
                    pk=action.pk, worker="bench", counts={}, result={}, progress=100
                )
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            return args.actions / wall, args.actions / cpu

        names = ("without history", "with history")
        rates: dict[tuple[str, str], list[float]] = {
            (name, clock): [] for name in names for clock in ("wall", "CPU")
        }
        for _ in range(args.rounds):
            for name, insert in zip(names, (no_history, real_insert), strict=True):
                queue._insert_transitions = insert  # type: ignore[assignment]
                wall_rate, cpu_rate = drain_rates()
                rates[name, "wall"].append(wall_rate)
                rates[name, "CPU"].append(cpu_rate)
        queue._insert_transitions = real_insert

    print(f"Claim + finish, one at a time, {args.actions} actions x {args.rounds} rounds (SQLite)")
    for clock in ("wall", "CPU"):
        for name in names:
            values = rates[name, clock]
            shown = ", ".join(f"{v:.0f}" for v in values)
            median = statistics.median(values)
            print(f"  {name:16} median {median:6.0f} actions/{clock} s  ({shown})")
        without = statistics.median(rates["without history", clock])
        added = statistics.median(rates["with history", clock])
        print(f"  history costs {100 * (without - added) / without:.1f} % ({clock} time)")


if __name__ == "__main__":
    main()
