"""Benchmark of FetchAction=Synchronize against a bare walk, side by side in one run.

Builds a tree of small files in a temporary folder, then measures in this
process, on a fresh SQLite database:

- a bare Python walk that stats every file (``os.scandir``), the floor;
- the first Synchronize (everything added and written to IDX batches);
- a second Synchronize with nothing changed;

and prints files per second for each (wall clock, and per CPU second of this
process and its reader processes), the ratios to the walk, the CPU per file
of the worker and of the readers, and the peak resident memory after each
phase. ``--profile first`` or ``--profile no-change`` also prints where the
worker spends its time in that run (``BENCH_SORT=cumulative`` to sort by
cumulative time). ``CONNECTOR_SYNCHRONIZE_READERS=0`` runs everything in the
worker. ``--readers-running`` starts the reader processes before the first
Synchronize, as in a worker that has synchronized before (they start on a
worker's first large run and stay); without it the first run starts them.

    python bench/synchronize.py [--files 100000] [--profile first|no-change] [--readers-running]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import tempfile
import threading
import time
from pathlib import Path

from harness import django_on_fresh_sqlite, process_cpu_seconds


def build_tree(root: Path, files: int, per_folder: int = 500) -> None:
    for n in range(files):
        folder = root / f"d{n // per_folder:04d}"
        if n % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"f{n:06d}.txt").write_text(f"document {n}\n")


def bare_walk(root: Path) -> int:
    seen = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    seen += 1
    return seen


def cpu_seconds() -> tuple[float, float]:
    """User and system CPU of this process, and of its reader processes (those
    running, and those that have ended)."""
    from connector.ingest import readers

    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = sum(process_cpu_seconds(pid) for pid in readers.process_ids())
    return own.ru_utime + own.ru_stime, ended.ru_utime + ended.ru_stime + running


class Timing:
    """Wall-clock and CPU seconds (this process and its reader processes) of a ``with`` block.

    The machine is shared, so wall-clock rates move with other work; the CPU
    rates move much less. The walk uses one core and a large Synchronize two
    (the worker and its reader processes), so the wall-clock ratio is the
    issue's figure, and the CPU ratio says what the work costs.
    """

    def __enter__(self) -> Timing:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        own, children = cpu_seconds()
        self.own_cpu, self.readers_cpu = own - self._cpu[0], children - self._cpu[1]
        self.cpu = self.own_cpu + self.readers_cpu


def start_readers() -> None:
    """Start every reader process now and wait until each has run something."""
    from concurrent.futures import wait

    from django.conf import settings

    from connector.ingest import readers

    pool = readers._get_pool()
    if pool is None:
        return
    started = time.perf_counter()
    # One submission per process starts it; a few more so that each has answered.
    wait([pool.submit(os.getpid) for _ in range(4 * settings.CONNECTOR_SYNCHRONIZE_READERS)])
    print(
        f"Reader processes {readers.process_ids()} started in {time.perf_counter() - started:.2f} s"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def readers_peak_rss_mib() -> str:
    """Peak RSS of each reader process running now."""
    from connector.ingest import readers

    peaks = []
    for pid in readers.process_ids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(f"{int(line.split()[1]) / 1024:.0f}")
    return "/".join(peaks) + " MiB" if peaks else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument(
        "--profile",
        choices=("first", "no-change"),
        help="also print where that Synchronize spends its time (cProfile; slows it down)",
    )
    parser.add_argument(
        "--readers-running",
        action="store_true",
        help="start the reader processes before the first Synchronize",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="connector-bench-sync-") as tmp:
        var = django_on_fresh_sqlite(Path(tmp))
        from django.db import connection

        from connector import queue
        from connector.fetch.base import execute
        from connector.models import Action, DatastoreDocument, FetchTask
        from connector.worker.checkpointer import WalCheckpointer

        tree = Path(tmp) / "tree"
        started = time.perf_counter()
        build_tree(tree, args.files)
        print(f"Built {args.files} files in {time.perf_counter() - started:.1f} s")
        FetchTask.objects.create(name="BENCH", directory_paths=[str(tree)])

        def synchronize(profile: bool = False) -> tuple[Timing, dict[str, int]]:
            action = queue.submit_action(
                fetch_action="Synchronize", params={"TaskSections": "BENCH"}, tasks=["BENCH"]
            )
            (claimed,) = queue.claim_actions(queue="fetch", worker="bench", limit=1)
            profiler = cProfile.Profile() if profile else None
            with Timing() as timing:
                if profiler:
                    profiler.enable()
                execute(claimed, worker="bench", stop_event=threading.Event())
                if profiler:
                    profiler.disable()
            if profiler:
                pstats.Stats(profiler).sort_stats(
                    os.environ.get("BENCH_SORT", "tottime")
                ).print_stats(30)
            done = Action.objects.get(pk=action.pk)
            if done.status != "Finished":
                raise SystemExit(f"Synchronize ended {done.status}: {done.error}")
            return timing, done.counts["BENCH"]

        print(f"{'Phase':<28} {'files/s':>9} {'of walk':>8} {'CPU files/s':>12} {'of walk':>8}"
              f" {'peak RSS':>9}")  # fmt: skip

        def report(
            label: str, files: int, timing: Timing, walk: Timing, walked: int, note: str = ""
        ) -> None:
            rate, cpu_rate = files / timing.wall, files / timing.cpu
            walk_rate, walk_cpu_rate = walked / walk.wall, walked / walk.cpu
            print(
                f"{label:<28} {rate:9.0f} {rate / walk_rate:8.3f} {cpu_rate:12.0f}"
                f" {cpu_rate / walk_cpu_rate:8.3f} {peak_rss_mib():5.0f} MiB  {note}"
                f" (CPU us/file: worker {timing.own_cpu / files * 1e6:.1f},"
                f" readers {timing.readers_cpu / files * 1e6:.1f}; readers' peak RSS"
                f" {readers_peak_rss_mib()})"
            )

        def best_walk() -> tuple[Timing, int]:
            """The best of three walks: the floor a phase's ratios are taken against.

            Taken again right before each phase: this virtual machine's speed
            drifts over minutes, and a ratio should compare the same minutes.
            """
            walks = []
            for _ in range(3):
                with Timing() as walk:
                    walked = bare_walk(tree)
                walks.append(walk)
            return min(walks, key=lambda timing: timing.wall), walked

        # As in a worker on SQLite: the WAL is checkpointed every second, off
        # the action's path (connector/worker/checkpointer.py).
        checkpointer = WalCheckpointer()
        checkpointer.start()
        if args.readers_running:
            start_readers()
        walk, walked = best_walk()
        report("Bare walk (scandir + stat)", walked, walk, walk, walked)
        first, counts = synchronize(args.profile == "first")
        report("First Synchronize", counts["seen"], first, walk, walked,
               f"added {counts.get('added', 0)}")  # fmt: skip
        # Between two runs of a task the worker's checkpointer has long caught up.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        walk, walked = best_walk()
        report("Bare walk again", walked, walk, walk, walked)
        second, counts = synchronize(args.profile == "no-change")
        report(
            "No-change Synchronize", counts["seen"], second, walk, walked,
            f"unchanged {counts.get('unchanged', 0)}",
        )  # fmt: skip
        checkpointer.stop()
        database = sum(path.stat().st_size for path in var.glob("bench.sqlite3*"))
        print(
            f"Targets: first >= 0.33, no-change >= 0.50 of the walk. Datastore:"
            f" {DatastoreDocument.objects.count()} rows, SQLite files {database / 2**20:.0f} MiB."
            f" Load average {os.getloadavg()[0]:.1f}."
        )


if __name__ == "__main__":
    main()
