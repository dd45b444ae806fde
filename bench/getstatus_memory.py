"""Peak memory and size of the largest QueueInfo GetStatus answers (issue 13, item 7).

Fills a fresh SQLite database with finished Identifiers actions (``--actions``
of ``--identifiers`` identifiers each, and one of ``--big``), then sends each
request below in a fresh Python process through Django's test client and
reports the answer's size, its time, and how far the request raised the
process's peak RSS above what it was after a warm-up request.

    python bench/getstatus_memory.py [--actions 50] [--identifiers 10000] [--big 100000]

A request the code refuses shows as ERROR with its (small) error answer. Linux
only (the peak is read from /proc/self/status after resetting it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

BASE = "/action=QueueInfo&QueueName=fetch&QueueAction=GetStatus"

#: (label, query added to BASE); {big} is the token of the biggest action.
REQUESTS = (
    ("whole queue, defaults", ""),
    ("whole queue, MaxResults=1000", "&MaxResults=1000"),
    ("whole queue, MaxResults=100000 (old limit)", "&MaxResults=100000"),
    ("whole queue, MaxResults=1000&MaxIdentifiers=10", "&MaxResults=1000&MaxIdentifiers=10"),
    ("whole queue, MaxResults=10&MaxIdentifiers=1000", "&MaxResults=10&MaxIdentifiers=1000"),
    ("big action by token, defaults", "&Token={big}"),
    ("big action by token, MaxIdentifiers=10000", "&Token={big}&MaxIdentifiers=10000"),
    (
        "big action by token, MaxIdentifiers=100000 (old limit)",
        "&Token={big}&MaxIdentifiers=100000",
    ),
    ("big action by token, last page", "&Token={big}&Start=99001&MaxIdentifiers=1000"),
)


def identifiers(n: int, prefix: str) -> list[dict[str, object]]:
    return [
        {
            "identifier": f"{prefix}-{i:08d}-aGVsbG8gd29ybGQgaWRlbnRpZmllcg",
            "type": "document",
            "name": f"report-{i}.txt",
            "path": f"reports/2026/{prefix}/report-{i}.txt",
            "parent": f"{prefix}-parent-aGVsbG8",
            "size": 12345,
            "modified": "2026-11-26 14:01:02",
        }
        for i in range(n)
    ]


def fill(actions: int, per_action: int, big: int) -> None:
    from django.utils import timezone

    from connector.models import Action, Status
    from connector.tokens import new_token

    now = timezone.now()

    def action(name: str, items: int) -> Action:
        return Action(
            token=new_token(host="localhost", port=8000),
            fetch_action="IDENTIFIERS",
            params={"ConfigSection": "DOCS"},
            action_id=name,
            status=Status.FINISHED,
            queued_at=now,
            started_at=now,
            finished_at=now,
            progress=100,
            counts={"DOCS": {"seen": items}},
            result={"identifiers": identifiers(items, name)},
        )

    for i in range(actions):
        Action.objects.bulk_create([action(f"a{i}", per_action)])
    Action.objects.bulk_create([action("big", big)])


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the peak RSS to the current RSS and return it (KiB).

    ``ru_maxrss`` cannot be used: Linux carries a forking parent's peak into
    the child, so the filling process's peak would hide the request's.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return status_kib("VmRSS")


def measure(query: str) -> dict[str, object]:
    """In a fresh process: one warm-up request, then the measured one."""
    sys.path.insert(0, str(harness.ROOT))
    import django

    django.setup()
    import gc

    from django.test import Client

    from connector.models import Action

    client = Client(HTTP_HOST="localhost")
    # Only the token: loading the action would load its 100000 identifiers before the baseline.
    big = Action.objects.filter(action_id="big").values_list("token", flat=True).get()
    client.get("/action=QueueInfo&QueueName=fetch&QueueAction=QueueStatus")
    gc.collect()
    before = reset_peak_rss()
    started = time.perf_counter()
    response = client.get(BASE + query.replace("{big}", big))
    seconds = time.perf_counter() - started
    peak = status_kib("VmHWM")
    body = response.content
    return {
        "bytes": len(body),
        "seconds": round(seconds, 3),
        "rss_before_mib": round(before / 1024, 1),
        "peak_rise_mib": round((peak - before) / 1024, 1),
        "error": b"<response>ERROR</response>" in body,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=50)
    parser.add_argument("--identifiers", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="getstatus-memory-") as folder:
        harness.django_on_fresh_sqlite(Path(folder))
        started = time.perf_counter()
        fill(args.actions, args.identifiers, args.big)
        print(
            f"{args.actions} actions x {args.identifiers} identifiers and one of {args.big}"
            f" stored in {time.perf_counter() - started:.1f} s"
        )
        print("| Request | Answer | Time | Peak RSS rise |\n|---|---|---|---|")
        for label, query in REQUESTS:
            output = subprocess.run(
                [sys.executable, __file__, "--measure", query],
                env=os.environ.copy(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures = json.loads(output.strip().splitlines()[-1])
            size = (
                f"{figures['bytes'] / 1e6:.2f} MB"
                if figures["bytes"] > 10**5
                else (f"{figures['bytes'] / 1e3:.1f} kB")
            )
            if figures["error"]:
                size += " (ERROR)"
            print(
                f"| {label} | {size} | {figures['seconds']} s | +{figures['peak_rise_mib']} MiB |"
            )


if __name__ == "__main__":
    main()
