"""What the audit entry costs a submit, the one hot path that writes one.

(The claim and the finish, the drain rate's path, write no audit entry and no
history row: see docs/audit.md.)

In this process, on a fresh SQLite database (the embedded default), submits
``--actions`` no-op actions through ``queue.submit_action`` per round, rounds
alternating between the real queue and the queue with its audit entry
switched off. Prints the median submit rate of each, per second of wall time
and per second of this process's CPU time (SQLite runs in the process; CPU
time hardly moves when other work shares the cores), and the difference.

    python bench/audit.py [--actions 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import django_on_fresh_sqlite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="connector-bench-audit-") as tmp:
        django_on_fresh_sqlite(Path(tmp))

        from connector import audit, queue

        real_record = audit.record_done

        def no_record(**kwargs: object) -> None:
            return None

        def submit_rates() -> tuple[float, float]:
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.actions):
                queue.submit_action(fetch_action="NOOP", params={}, submitted_from="127.0.0.1")
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            return args.actions / wall, args.actions / cpu

        names = ("without audit", "with audit")
        rates: dict[tuple[str, str], list[float]] = {
            (name, clock): [] for name in names for clock in ("wall", "CPU")
        }
        for _ in range(args.rounds):
            for name, record in zip(names, (no_record, real_record), strict=True):
                audit.record_done = record  # type: ignore[assignment]
                wall_rate, cpu_rate = submit_rates()
                rates[name, "wall"].append(wall_rate)
                rates[name, "CPU"].append(cpu_rate)
        audit.record_done = real_record

    print(f"submit_action, {args.actions} actions x {args.rounds} rounds (SQLite, in process)")
    for clock in ("wall", "CPU"):
        for name in names:
            values = rates[name, clock]
            shown = ", ".join(f"{v:.0f}" for v in values)
            median = statistics.median(values)
            print(f"  {name:14} median {median:6.0f} actions/{clock} s  ({shown})")
        without = statistics.median(rates["without audit", clock])
        added = statistics.median(rates["with audit", clock])
        print(f"  the audit entry costs {100 * (without - added) / without:.1f} % ({clock} time)")


if __name__ == "__main__":
    main()
