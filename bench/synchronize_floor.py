"""What a first Synchronize cannot do without: each step alone, per file, against the walk.

Builds a tree of small files (as ``bench/synchronize.py`` does) and times, in
this process, one step at a time over every file, best of three:

- the bare walk (``os.scandir`` and a stat per file), the figure the issue's
  ratios are taken against;
- reading each file as a folder job does (``scan.read_small_document``:
  open without following links, fstat, read, close);
- its sha256;
- formatting its IDX document (``idx.format_file_document``);
- recording it in the datastore (``datastore.record``, batches of 1000 in a
  transaction, on a fresh SQLite database with the real schema).

It prints the CPU microseconds per file of each step and the best ratio to
the walk that a first Synchronize could reach if it did nothing but these
steps, on one core and on two (perfectly shared). The gap between that and
``bench/synchronize.py``'s figure is the Python around the steps.

It also times a datastore this project does not have, to size a redesign:
one row per folder holding its documents' (name, size, time, hash) as JSON
(a scratch table in the same database), written as a first run would and
read back as a no-change run would, against reading a folder's rows as
``datastore.folder_rows`` does; and prints the ceiling with it.

Last, where gcc, SQLite's and OpenSSL's headers are there, it builds
``bench/first_run_floor.c`` and runs the same steps in C on the same tree and
database (plus writing and fsyncing the IDX batches), beside the Python
figures: the floor that no Python around the steps can go under, set by the
system calls and SQLite themselves.

    python bench/synchronize_floor.py [--files 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import ROOT, django_on_fresh_sqlite
from synchronize import bare_walk, build_tree


def best_of_three(step: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        started = time.process_time()
        step()
        times.append(time.process_time() - started)
    return min(times)


def compiled_steps(tmp: Path, tree: Path, database: str, task: int) -> dict[str, float] | None:
    """CPU microseconds a file of each step in C (``bench/first_run_floor.c``), or
    None if it cannot be built here."""
    source = ROOT / "bench" / "first_run_floor.c"
    program = tmp / "first_run_floor"
    if shutil.which("gcc") is None:
        print("(the C floor was not built: no gcc)")
        return None
    built = subprocess.run(
        ["gcc", "-O2", "-o", str(program), str(source), "-lsqlite3", "-lcrypto"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        print(f"(the C floor was not built: {built.stderr.strip().splitlines()[-1]})")
        return None
    output = tmp / "batches"
    output.mkdir()
    ran = subprocess.run(
        [str(program), str(tree), database, str(task), str(output)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures = dict(line.split() for line in ran.stdout.splitlines())
    return {step: float(value) for step, value in figures.items() if step != "files"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="connector-bench-floor-") as tmp:
        django_on_fresh_sqlite(Path(tmp))
        from django.db import transaction
        from django.utils import timezone

        from connector.ingest import datastore, scan
        from connector.ingest.idx import format_file_document
        from connector.models import DatastoreDocument, FetchTask

        tree = Path(tmp) / "tree"
        build_tree(tree, args.files)
        task = FetchTask.objects.create(name="BENCH", directory_paths=[str(tree)])
        folders = sorted(tree.iterdir())
        contents: list[bytes] = []

        def read() -> None:
            contents.clear()
            for folder in folders:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    for name in sorted(os.listdir(fd)):
                        contents.append(scan.read_small_document(fd, name)[1] or b"")
                finally:
                    os.close(fd)

        def digest() -> None:
            for data in contents:
                hashlib.sha256(data).hexdigest()

        def format_documents() -> None:
            for n, data in enumerate(contents):
                format_file_document(
                    identifier="RlMxAEJFTkNIADAAZDAwMDAvZjAwMDAwMC50eHQ", task="BENCH",
                    path=f"d{n // 500:04d}/f{n:06d}.txt", name=f"f{n:06d}.txt", size=len(data),
                    modified="2026-12-01T00:00:00Z", content_hash="ab" * 32,
                    text=data.decode(), metadata=None,
                )  # fmt: skip

        def record() -> None:
            DatastoreDocument.objects.all().delete()
            now = timezone.now()
            for start in range(0, len(contents), 1000):
                rows: list[tuple[str, scan.Record]] = [
                    (f"FOLDER{n // 500:04d}", ("added", f"ID{n:07d}", f"d/f{n:06d}.txt", 15,
                                               1_764_000_000_000_000_000 + n, "ab" * 32,
                                               None))
                    for n in range(start, min(start + 1000, len(contents)))
                ]  # fmt: skip
                with transaction.atomic():
                    datastore.record(task, rows, now)

        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE bench_manifest (task integer, folder text, entries text,"
                " PRIMARY KEY (task, folder))"
            )

        def manifest_entries(folder: int) -> list[list[object]]:
            first = folder * 500
            return [
                [f"f{n:06d}.txt", 15, 1_764_000_000_000_000_000 + n, "ab" * 32]
                for n in range(first, min(first + 500, args.files))
            ]

        def record_manifests() -> None:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM bench_manifest")
            for start in range(0, args.files, 1000):
                with transaction.atomic(), connection.cursor() as cursor:
                    # A first run's batch of 1000 fills two folders of 500.
                    for folder in range(start // 500, (start + 999) // 500 + 1):
                        cursor.execute(
                            "INSERT OR REPLACE INTO bench_manifest VALUES (%s, %s, %s)",
                            [task.pk, f"FOLDER{folder:04d}", json.dumps(manifest_entries(folder))],
                        )

        folder_count = (args.files + 499) // 500

        def read_manifests() -> None:
            with connection.cursor() as cursor:
                for folder in range(folder_count):
                    cursor.execute(
                        "SELECT entries FROM bench_manifest WHERE task = %s AND folder = %s",
                        [task.pk, f"FOLDER{folder:04d}"],
                    )
                    {entry[0]: entry[1:] for entry in json.loads(cursor.fetchone()[0])}

        def read_rows() -> None:
            for folder in range(folder_count):
                datastore.folder_rows(task, f"FOLDER{folder:04d}")

        walk = best_of_three(lambda: bare_walk(tree)) / args.files * 1e6
        steps = {
            "read (open, fstat, read, close)": best_of_three(read),
            "sha256": best_of_three(digest),
            "format the IDX document": best_of_three(format_documents),
            "record in the datastore": best_of_three(record),
        }
        print(f"{'Step':<34} {'CPU us/file':>11}")
        print(f"{'bare walk (scandir + stat)':<34} {walk:11.2f}")
        total = 0.0
        for label, seconds in steps.items():
            per_file = seconds / args.files * 1e6
            total += per_file
            print(f"{label:<34} {per_file:11.2f}")
        print(f"{'the steps together':<34} {total:11.2f}")
        print(
            f"Best ratio to the walk with nothing else: {walk / total:.3f} on one core,"
            f" {2 * walk / total:.3f} on two. Load average {os.getloadavg()[0]:.1f}."
        )
        record_rows = steps["record in the datastore"] / args.files * 1e6
        manifest = {
            "record as folder manifests": best_of_three(record_manifests) / args.files * 1e6,
            "read folder manifests": best_of_three(read_manifests) / args.files * 1e6,
            "read folder rows (folder_rows)": best_of_three(read_rows) / args.files * 1e6,
        }
        print("A datastore of one row per folder (not the product's):")
        for label, per_file in manifest.items():
            print(f"  {label:<32} {per_file:11.2f}")
        with_manifest = total - record_rows + manifest["record as folder manifests"]
        print(
            f"  Best ratio with it: {walk / with_manifest:.3f} on one core,"
            f" {2 * walk / with_manifest:.3f} on two."
        )

        DatastoreDocument.objects.all().delete()
        database = str(connection.settings_dict["NAME"])
        compiled = compiled_steps(Path(tmp), tree, database, task.pk)
        if compiled is None:
            return
        print("The same steps in C (bench/first_run_floor.c), CPU us/file:")
        labels = {
            "walk": "walk (readdir + fstatat)",
            "read": "read (openat, fstat, read, close)",
            "sha256": "sha256 (OpenSSL)",
            "format": "format the IDX document",
            "batch": "write and fsync IDX batches",
            "record": "record in the datastore",
        }
        for step, label in labels.items():
            print(f"  {label:<34} {compiled[step]:9.2f}")
        floor = sum(value for step, value in compiled.items() if step != "walk")
        print(f"  {'the steps together':<34} {floor:9.2f}")
        print(
            f"  Best ratio to the Python walk with nothing else: {walk / floor:.3f} on one"
            f" core, {2 * walk / floor:.3f} on two."
        )


if __name__ == "__main__":
    main()
