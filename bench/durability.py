"""What a durable token costs on SQLite: synchronous=NORMAL against FULL.

With ``PRAGMA synchronous=NORMAL`` in WAL mode SQLite syncs the log only at
checkpoints, so a power loss can drop the last commits, including Fetches
whose tokens were already returned. ``FULL`` syncs the log at every commit.
This starts ``manage.py serve`` (the embedded default, bench/run.py's
``Server``) once per mode, in a folder on the disk under test (``--dir``, not
a tmpfs, where a sync costs nothing), and measures:

- submit rate through the endpoint with the queue paused (each Fetch is one
  insert and one commit), 1 and 4 clients;
- drain rate of those no-op actions by the worker (each end-and-claim is one
  commit).

    python bench/durability.py [--submits 1000] [--rounds 2] [--dir var/bench]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import run  # bench/run.py: Server, submit_many, measure_drain, machine


def measure(mode: str, folder: Path, submits: int) -> tuple[float, float, float]:
    os.environ["CONNECTOR_SQLITE_SYNCHRONOUS"] = mode
    with tempfile.TemporaryDirectory(prefix=f"durability-{mode}-", dir=folder) as tmp:
        server = run.Server(Path(tmp), run.free_port())
        try:
            server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")
            one = run.submit_many(server, submits // 2, clients=1)
            four = run.submit_many(server, submits // 2, clients=4)
            _, drain = run.measure_drain(server)
        finally:
            server.stop()
    return one, four, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per mode")
    parser.add_argument("--dir", type=Path, default=run.ROOT / "var" / "bench")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    print(f"Machine: {run.machine()}")
    print(f"Folder:  {args.dir.resolve()}")
    results: dict[str, list[tuple[float, float, float]]] = {"normal": [], "full": []}
    for _ in range(args.rounds):
        for mode in results:  # alternated, so a noisy minute hits both
            results[mode].append(measure(mode, args.dir, args.submits))
    print(f"{'synchronous':<12} {'submit 1 client':>16} {'submit 4 clients':>17} {'drain':>10}")
    for mode, runs in results.items():
        one, four, drain = (statistics.median(column) for column in zip(*runs, strict=True))
        print(f"{mode.upper():<12} {one:>12.0f} /s {four:>13.0f} /s {drain:>7.0f} /s")


if __name__ == "__main__":
    main()
