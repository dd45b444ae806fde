"""Benchmark of FetchAction=Synchronize against a bare walk, side by side in one run.

Builds a tree of small files in a temporary folder, then measures in this
process, on a fresh SQLite database:

- a bare Python walk that stats every file (``os.scandir``), the floor;
- the first Synchronize (everything added and written to IDX batches);
- a second Synchronize with nothing changed;

and prints files per second for each, the ratios to the walk, and the peak
resident memory after each phase.

    python bench/synchronize.py [--files 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="connector-bench-sync-") as tmp:
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
        from connector.fetch.base import execute
        from connector.models import Action, FetchTask

        call_command("migrate", verbosity=0)
        tree = Path(tmp) / "tree"
        started = time.perf_counter()
        build_tree(tree, args.files)
        print(f"Built {args.files} files in {time.perf_counter() - started:.1f} s")
        FetchTask.objects.create(name="BENCH", directory_paths=[str(tree)])

        def synchronize() -> tuple[float, dict[str, int]]:
            action = queue.submit_action(
                fetch_action="Synchronize", params={"TaskSections": "BENCH"}, tasks=["BENCH"]
            )
            (claimed,) = queue.claim_actions(queue="fetch", worker="bench", limit=1)
            began = time.perf_counter()
            execute(claimed, worker="bench", stop_event=threading.Event())
            elapsed = time.perf_counter() - began
            done = Action.objects.get(pk=action.pk)
            if done.status != "Finished":
                raise SystemExit(f"Synchronize ended {done.status}: {done.error}")
            return elapsed, done.counts["BENCH"]

        def report(label: str, rate: float, note: str = "") -> None:
            print(f"{label:<28} {rate:10.0f} files/s  peak RSS {peak_rss_mib():4.0f} MiB  {note}")

        began = time.perf_counter()
        walked = bare_walk(tree)
        walk_rate = walked / (time.perf_counter() - began)
        report("Bare walk (scandir + stat):", walk_rate)
        first, counts = synchronize()
        first_rate = counts["seen"] / first
        report(
            "First Synchronize:",
            first_rate,
            f"({first_rate / walk_rate:.3f} of the walk; added {counts.get('added', 0)})",
        )
        second, counts = synchronize()
        second_rate = counts["seen"] / second
        report(
            "No-change Synchronize:",
            second_rate,
            f"({second_rate / walk_rate:.3f} of the walk; unchanged {counts.get('unchanged', 0)})",
        )


if __name__ == "__main__":
    main()
