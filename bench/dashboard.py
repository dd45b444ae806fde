"""Benchmark of the operator dashboard: server time of its pages, and live latency.

Part 1 (pages). Fills a fresh SQLite database with ``--actions`` actions (raw
``executemany`` in big transactions: a mix of statuses, fetch actions, tasks,
parameters and times spread over 30 days, some log lines) and measures, in this
process through Django's test client as a signed-in operator (not a superuser,
so the permission checks run), the server time of ``--requests`` requests each
to: the overview, the list's first page, a filtered page (status and task), a
deep keyset page (the cursor 90 % of the way back) and a detail page (with a
long log and many identifiers), the Tasks page, a task's page and the Workers page
(``--documents`` datastore rows, most of one task); then each filter, the search
and each sort of the list alone (issue 16), those that match almost nothing included.
``--explain`` prints each page's SQL with SQLite's ``EXPLAIN QUERY PLAN``.

Part 2 (live). Starts ``manage.py serve`` (daphne and its worker, as
``tests/processes.py`` does) on another fresh database, opens the actions list
in Playwright's chromium (Debian's ``/usr/bin/chromium``), lets the worker run
short ``Sleep`` actions whose rows the page shows, and measures from the commit
of each status change (the ``started_at`` / ``finished_at`` the worker wrote,
taken just before its commit, so the figure slightly overstates) to the moment a
``MutationObserver`` in the page sees the row's status change. Both clocks are
this machine's wall clock.

    python bench/dashboard.py [--actions 1000000] [--requests 50] [--documents 250000]
                              [--live-batches 3] [--explain]
                              [--keep DIR] [--sql "CREATE INDEX ..."] [--skip-pages] [--skip-live]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"

STATUSES = [("Finished", 90.0), ("Error", 4.0), ("Cancelled", 4.0), ("Stopped", 2.0)]
FETCH_ACTIONS = [
    ("SYNCHRONIZE", 40), ("IDENTIFIERS", 15), ("COLLECT", 10), ("INSERT", 10),
    ("UPDATE", 10), ("DELETE", 8), ("HOLD", 4), ("RELEASEHOLD", 3),
]  # fmt: skip
TASKS = [f"TASK{n:02d}" for n in range(20)] + ["DOCS", "HR", "SALES", "LEGAL", "ARCHIVE"]
#: The newest actions are still waiting or running, as on a busy connector.
QUEUED_TAIL = 2_000
PROCESSING = 4
DAYS = 30
#: The detail page measured: a long log and many identifiers, the heaviest kind.
DETAIL_LOG_LINES = 150
DETAIL_IDENTIFIERS = 1_000


# --- Filling ----------------------------------------------------------------------------


def _db_time(moment: datetime) -> str:
    """As Django stores a DateTimeField on SQLite: naive UTC text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _rows(total: int, now: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    start = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / total
    statuses, status_weights = zip(*STATUSES, strict=True)
    actions, action_weights = zip(*FETCH_ACTIONS, strict=True)
    for n in range(total):
        queued = start + step * n
        fetch_action = rng.choices(actions, action_weights)[0]
        tasks = rng.sample(TASKS, 2) if rng.random() < 0.1 else [rng.choice(TASKS)]
        left = total - n
        if left <= PROCESSING:
            status = "Processing"
        elif left <= QUEUED_TAIL:
            status = "Queued"
        else:
            status = rng.choices(statuses, status_weights)[0]
        started = finished = None
        counts: dict[str, Any] = {}
        error = ""
        if status != "Queued":
            started = queued + timedelta(milliseconds=rng.randint(2, 5_000))
            seen = rng.randint(0, 5_000)
            counts = {tasks[0]: {"seen": seen, "added": seen // 10, "unchanged": seen - seen // 10}}
        if status not in {"Queued", "Processing"}:
            assert started is not None
            finished = started + timedelta(milliseconds=rng.randint(10, 600_000))
        if status == "Error":
            error = f"Cannot read {tasks[0].lower()}/folder-{n % 97}: permission denied"
        params = {"TaskSections": ",".join(tasks), "ResponseFormat": "xml"}
        action_id = f"nightly-{n}" if n % 3 == 0 else ""
        if action_id:
            params["ActionID"] = action_id
        yield (
            f"bench-token-{n:09d}-{rng.getrandbits(64):016x}",
            "fetch",
            fetch_action,
            json.dumps(params),
            ",".join(tasks),
            action_id,
            0 if n % 50 else rng.randint(1, 10),
            status,
            _db_time(queued),
            _db_time(started) if started else None,
            _db_time(finished) if finished else None,
            "bench-worker" if status == "Processing" else "",
            None,
            1 if started else 0,
            int(status == "Stopped"),
            _db_time(finished) if status == "Stopped" and finished else None,
            100 if finished else (rng.randint(0, 99) if started else 0),
            "done" if finished else "",
            json.dumps(counts),
            "{}",
            error,
            "operator" if n % 5 == 0 else "",
            "10.0.0.7" if n % 5 == 0 else "",
            "operator" if status == "Cancelled" else "",
            "10.0.0.7" if status == "Cancelled" else "",
            "operator" if status == "Stopped" else "",
            "10.0.0.7" if status == "Stopped" else "",
            "",
        )


ACTION_COLUMNS = (
    "token, queue, fetch_action, params, tasks, action_id, priority, status, queued_at, "
    "started_at, finished_at, worker, lease_expires_at, attempts, stop_requested, "
    "stop_requested_at, progress, stage, counts, result, error, submitted_by, submitted_from, "
    "cancelled_by, cancelled_from, stopped_by, stopped_from, writes"
)


def fill(db_path: Path, total: int, *, batch: int = 50_000) -> None:
    """Insert the actions with the table's indexes dropped, then build them again (faster)."""
    now = datetime.now(UTC)
    rng = random.Random(20261126)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            " AND tbl_name IN"
            " ('connector_action', 'connector_actionlogline', 'connector_actiontask')"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        insert = (
            f"INSERT INTO connector_action ({ACTION_COLUMNS})"
            f" VALUES ({', '.join('?' * len(ACTION_COLUMNS.split(',')))})"
        )
        rows = _rows(total, now, rng)
        while True:
            chunk = [row for _, row in zip(range(batch), rows, strict=False)]
            if not chunk:
                break
            db.execute("BEGIN")
            db.executemany(insert, chunk)
            db.execute("COMMIT")
        # The action's task rows, as queue._queue_new writes them (one or two tasks here).
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO connector_actiontask (action_id, task)"
            " SELECT id, CASE WHEN instr(tasks, ',') THEN substr(tasks, 1, instr(tasks, ',') - 1)"
            " ELSE tasks END FROM connector_action WHERE tasks != ''"
        )
        db.execute(
            "INSERT INTO connector_actiontask (action_id, task)"
            " SELECT id, substr(tasks, instr(tasks, ',') + 1) FROM connector_action"
            " WHERE instr(tasks, ',')"
        )
        db.execute("COMMIT")
        # A few log lines for every tenth action, as the worker writes them.
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO connector_actionlogline (action_id, logged_at, level, message)"
            " SELECT id, coalesce(started_at, queued_at), 'INFO', 'Started ' || fetch_action"
            " FROM connector_action WHERE id % 10 = 0"
        )
        db.execute("COMMIT")
        for _, sql in indexes:
            db.execute(sql)
    finally:
        db.close()


def heavy_detail(db_path: Path) -> int:
    """Give one old finished action a long log and many identifiers; return its id."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        (pk,) = db.execute(
            "SELECT id FROM connector_action WHERE status = 'Finished' ORDER BY id LIMIT 1"
            " OFFSET (SELECT count(*) / 2 FROM connector_action)"
        ).fetchone()
        result = {
            "identifiers": [
                {"identifier": f"id-{n}", "type": "file", "path": f"/data/docs/{n}.txt"}
                for n in range(DETAIL_IDENTIFIERS)
            ]
        }
        db.execute("BEGIN")
        db.execute("UPDATE connector_action SET result = ? WHERE id = ?", [json.dumps(result), pk])
        db.executemany(
            "INSERT INTO connector_actionlogline (action_id, logged_at, level, message)"
            " VALUES (?, ?, 'INFO', ?)",
            [
                (pk, _db_time(datetime.now(UTC)), f"Read /data/docs/{n}.txt")
                for n in range(DETAIL_LOG_LINES)
            ],
        )
        db.execute("COMMIT")
        return int(pk)
    finally:
        db.close()


def add_tasks_and_workers(db_path: Path, *, documents: int = 250_000) -> None:
    """The Tasks and Workers pages' rows: a fetch task per task name of the actions (with
    schedules), ``documents`` datastore rows (most in DOCS) and a few workers, one late.

    Run once per database (skipped when tasks exist): the ORM for the few rows,
    ``executemany`` for the datastore.
    """
    from django.utils import timezone

    from connector.models import FetchTask, WorkerProcess

    if FetchTask.objects.exists():
        return
    now = timezone.now()
    for n, name in enumerate(TASKS):
        FetchTask.objects.create(
            name=name,
            directory_paths=[f"/srv/share/{name.lower()}"],
            file_match=["*.txt", "*.docx"],
            schedule_start_time="now" if n % 2 else "",
            schedule_repeat_secs=3600 if n % 2 else None,
            schedule_next_run_at=now + timedelta(minutes=n) if n % 2 else None,
            schedule_cycles=-1 if n % 4 == 1 else 48,
            schedule_paused=n % 6 == 1,
        )
    ids = dict(FetchTask.objects.values_list("name", "pk"))
    for n, age in enumerate([1, 2, 25, 4000]):
        WorkerProcess.objects.create(
            id=f"bench-host-{n}-{1000 + n}-abcdef",
            hostname=f"bench-host-{n}",
            pid=1000 + n,
            started_at=now - timedelta(hours=5),
            heartbeat_at=now - timedelta(seconds=age),
            threads={"fetch": 4},
            version="0.1.0",
            readers=[2000 + n, 3000 + n],
        )
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("BEGIN")
        rows = []
        for n in range(documents):
            task = "DOCS" if n < documents * 4 // 5 else TASKS[n % len(TASKS)]
            rows.append(
                (ids[task], f"{task}-doc-{n}", f"{task}-folder-{n % 500}",
                 f"/srv/share/{task.lower()}/{n}.txt", 1000 + n % 9000, n, "", "{}", 0,
                 _db_time(now - timedelta(seconds=documents - n)))
            )  # fmt: skip
        db.executemany(
            "INSERT INTO connector_datastoredocument (task_id, identifier, folder, path, size,"
            " modified_ns, content_hash, metadata, held, last_ingested_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    finally:
        db.close()


# --- Pages ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(get: Callable[[], Any], requests: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each request (CPU: this process's, which is the server).

    On a machine shared with other work the wall clock includes waiting for a
    core; the CPU time does not.
    """
    get()  # a warm-up: template compilation and the OS page cache are not what we measure
    wall, cpu = [], []
    for _ in range(requests):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = get()
        wall.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code} from {response.request['PATH_INFO']}")
    return wall, cpu


def explain(client: Any, url: str) -> None:
    from django.db import connection

    statements: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        client.get(url)
    print(f"\n{url}")
    for sql, params in statements:
        # The session and permission look-ups are the same on every page.
        if not sql.lstrip().upper().startswith("SELECT") or '"connector_' not in sql:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = "; ".join(str(row[-1]) for row in cursor.fetchall())
        print(f"  {sql[:160]}{'...' if len(sql) > 160 else ''}\n    -> {plan}")


def pages(args: argparse.Namespace, tmp: Path) -> None:
    var = args.keep or tmp / "pages"
    db_path = var / "bench.sqlite3"
    os.environ.update(
        {
            "CONNECTOR_VAR_DIR": str(var),
            "CONNECTOR_DEMO_DIR": str(var / "demo"),
            "DATABASE_URL": f"sqlite:///{db_path}",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "connector.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    # Before Django's set-up, which may already create an empty database file.
    reuse = db_path.exists() and db_path.stat().st_size > 0
    import django

    django.setup()
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from dashboard import outcome_history
    from dashboard.queries import ActionFilters, Cursor, action_page

    if reuse:
        (detail_pk,) = (
            sqlite3.connect(db_path)
            .execute("SELECT action_id FROM connector_actionlogline ORDER BY id DESC LIMIT 1")
            .fetchone()
        )
        print(f"Reusing the filled database {db_path}")
    else:
        call_command("migrate", verbosity=0)
        connection.close()
        began = time.perf_counter()
        fill(db_path, args.actions)
        detail_pk = heavy_detail(db_path)
        print(
            f"Filled {args.actions:,} actions in {time.perf_counter() - began:.0f} s"
            f" ({db_path.stat().st_size / 2**20:.0f} MiB)"
        )
        # The fill inserts final actions directly, which the rollup's trigger (on a
        # change of status) does not see: count them as the migration does.
        from connector import outcomes

        began = time.perf_counter()
        outcomes.backfill(connection)
        print(f"Backfilled the history's rollup in {time.perf_counter() - began:.0f} s")
    if args.analyze:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    for statement in args.sql:
        with connection.cursor() as cursor:
            began = time.perf_counter()
            cursor.execute(statement)
            print(f"Ran {statement!r} in {time.perf_counter() - began:.1f} s")

    add_tasks_and_workers(db_path, documents=args.documents)

    operator, _ = User.objects.get_or_create(username="operator")
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_action", "change_action"])
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(operator)

    def cursor_at(offset: int) -> str:
        """The cursor of the row at ``offset`` (newest first), as the "Older" link has it."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT queued_at, id FROM connector_action ORDER BY queued_at DESC, id DESC"
                " LIMIT 1 OFFSET %s",
                [offset],
            )
            queued_at, pk = cursor.fetchone()
        if isinstance(queued_at, str):
            queued_at = datetime.fromisoformat(queued_at)
        return Cursor(queued_at.replace(tzinfo=UTC), int(pk)).encode()

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM connector_action")
        (total,) = cursor.fetchone()
    deep = total * 9 // 10
    urls = {
        "Overview": "/dashboard/",
        "List, first page": "/dashboard/actions/",
        "List, status + task": "/dashboard/actions/?status=Error&task=SALES",
        "List, page 2 (cursor)": f"/dashboard/actions/?after={cursor_at(49)}",
        "List, deep cursor (90 %)": f"/dashboard/actions/?after={cursor_at(deep)}",
        "Detail (150 log lines, 1,000 ids)": f"/dashboard/actions/{detail_pk}/",
        # Issue 16: the Tasks page (25 tasks), a task with most of the datastore, the workers.
        "Tasks (25 tasks)": "/dashboard/tasks/",
        "Task DOCS (most documents)": "/dashboard/tasks/DOCS/",
        "Workers (4, one late, one lost)": "/dashboard/workers/",
        # Issue 16 item 1: the history (the overview above has each queue's last hour).
        "History, hour (per minute)": "/dashboard/history/",
        "History, day (per hour)": "/dashboard/history/?range=day",
        "History, week (per day)": "/dashboard/history/?range=week",
        "History, week, queue fetch": "/dashboard/history/?range=week&queue=fetch",
        "History, week, task SALES": "/dashboard/history/?range=week&task=SALES",
        "History, day, task NOSUCH": "/dashboard/history/?range=day&task=NOSUCH",
    }
    # What a bar links to: the list of exactly its actions (finished between its bounds).
    # The fill's actions end up to 10 minutes after "now" of the fill, so the history is
    # drawn at the newest ending.
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(finished_at) FROM connector_action")
        (newest_end,) = cursor.fetchone()
    if isinstance(newest_end, str):
        newest_end = datetime.fromisoformat(newest_end).replace(tzinfo=UTC)
    hour = outcome_history.history("hour", queue="fetch", now=newest_end)
    week = outcome_history.history("week", queue="fetch", now=newest_end)
    minute_bar = next(bar for bar in reversed(hour.bars) if bar.segments[1].count)
    day_bar = week.bars[-2]
    urls |= {
        f"Bar: a minute's Error ({minute_bar.segments[1].count})": minute_bar.segments[1].url,
        f"Bar: a day's Finished ({day_bar.segments[0].count:,})": day_bar.segments[0].url,
        f"Bar: a day's Stopped ({day_bar.segments[3].count:,})": day_bar.segments[3].url,
        f"Legend: a week's Error ({week.totals['Error']:,})": week.total_urls["Error"],
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(queued_at), min(queued_at) FROM connector_action")
        newest, oldest = (
            datetime.fromisoformat(value) if isinstance(value, str) else value
            for value in cursor.fetchone()
        )
        cursor.execute("SELECT token FROM connector_action WHERE id = %s", [total // 3])
        (token,) = cursor.fetchone()
    hour_ago = (newest - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    day_two = (oldest + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    first = action_page(ActionFilters(), sort="-priority")
    assert first.older is not None
    second = action_page(ActionFilters(), sort="-priority", after=first.older)
    assert second.newer is not None
    priority_after, priority_before = first.older.encode(), second.newer.encode()
    # The pages really are what they say: the deep page follows on, the filter matches.
    older = client.get(urls["List, deep cursor (90 %)"])
    assert b'rel="next"' in older.content and b"status-" in older.content
    assert b"status-error" in client.get(urls["List, status + task"]).content

    if args.explain:
        for url in urls.values():
            explain(client, url)
        print()
    print(
        f"{'Page':<36} {'wall p50':>9} {'p95':>7} {'CPU p50':>8} {'p95':>7}  ({args.requests} each)"
    )
    for label, url in urls.items():
        wall, cpu = measure(lambda url=url: client.get(url), args.requests)  # type: ignore[misc]
        print(
            f"{label:<36} {statistics.median(wall):7.1f}ms {percentile(wall, 0.95):5.1f}ms"
            f" {statistics.median(cpu):6.1f}ms {percentile(cpu, 0.95):5.1f}ms"
        )
    # Every filter, the search and every sort (issue 16 items 4 and 5): those that match
    # few or no rows too, which used to read every row.
    lists = {
        "Filter status=Error": "?status=Error",
        "Filter status=Processing": "?status=Processing",
        "Filter fetch_action=HOLD": "?fetch_action=HOLD",
        "Filter task=SALES (4 %)": "?task=SALES",
        "Filter task=NOSUCH (none)": "?task=NOSUCH",
        "Filter queue=fetch": "?queue=fetch",
        "Filter queued_from (last hour)": f"?queued_from={hour_ago}",
        "Filter queued_to (before day 2)": f"?queued_to={day_two}",
        "Filter status=Stopped+fetch=HOLD": "?status=Stopped&fetch_action=HOLD",
        "Filter task=SALES+status=Queued": "?task=SALES&status=Queued",
        "Search one ActionID": "?q=nightly-123456",
        "Search one token": f"?q={token}",
        "Search text matching nothing": "?q=no-such-text",
        "Invalid filter (status=Nope)": "?status=Nope",
        "Sort queued, oldest first": "?sort=queued",
        "Sort started, newest first": "?sort=-started",
        "Sort started, oldest first": "?sort=started",
        "Sort priority, highest first": "?sort=-priority",
        "Sort priority, lowest first": "?sort=priority",
        "Sort priority, page 2 (Older)": "?sort=-priority&after=" + priority_after,
        "Sort priority, Newer from page 2": "?sort=-priority&before=" + priority_before,
        "Sort duration, longest first": "?sort=-duration",
        "Sort duration, shortest first": "?sort=duration",
        "Sort priority + status=Error": "?sort=-priority&status=Error",
        "Sort started + task=SALES": "?sort=-started&task=SALES",
        "Retry matching count (status=Error)": "RETRY?status=Error",
    }
    for label, query in lists.items():
        url = (
            query.replace("RETRY", "/dashboard/actions/retry-matching/")
            if query.startswith("RETRY")
            else f"/dashboard/actions/{query}"
        )
        if args.explain:
            explain(client, url)
        wall, cpu = measure(lambda url=url: client.get(url), args.requests)  # type: ignore[misc]
        print(
            f"{label:<36} {statistics.median(wall):7.1f}ms {percentile(wall, 0.95):5.1f}ms"
            f" {statistics.median(cpu):6.1f}ms {percentile(cpu, 0.95):5.1f}ms"
        )
    print(f"Load average at the end: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")


# --- Live latency -----------------------------------------------------------------------

OBSERVER = """
() => {
  window.__changes = [];
  window.__messages = [];
  document.addEventListener("htmx:wsBeforeMessage", (event) => {
    window.__messages.push([Date.now(), String(event.detail.message)]);
  });
  const seen = {};
  const look = () => {
    const now = Date.now();
    document.querySelectorAll("tr[id^='action-'] .status").forEach((span) => {
      const pk = span.closest("tr").id.slice(7);
      const status = span.textContent.trim();
      if (seen[pk] !== status) {
        if (seen[pk] !== undefined) window.__changes.push([pk, status, now]);
        seen[pk] = status;
      }
    });
  };
  look();
  new MutationObserver(look).observe(
    document.body, {childList: true, subtree: true, characterData: true});
}
"""


def _epoch_ms(db_text: str) -> float:
    return datetime.fromisoformat(db_text).replace(tzinfo=UTC).timestamp() * 1000


def live(args: argparse.Namespace, tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from playwright.sync_api import sync_playwright
    from processes import Server, Site

    site = Site(tmp / "live")
    try:
        # One slot thread: the changes come one after another, as on a steady connector.
        server = Server(site, CONNECTOR_FETCH_THREADS="1")
        password = server.admin_password()
        latencies: list[float] = []
        to_socket: list[float] = []
        to_dom: list[float] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(base_url=server.base)
            page.goto("/accounts/login/?next=/dashboard/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", password)
            page.click("button:has-text('Sign in')")
            page.wait_for_url("**/dashboard/")
            for _ in range(args.live_batches):
                server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")
                tokens = [
                    server.aci("Fetch", FetchAction="Sleep", Seconds="0.05", Steps="1")[
                        "responsedata"
                    ]["token"]
                    for _ in range(args.live_batch_size)
                ]
                page.goto("/dashboard/actions/")
                page.wait_for_selector("#live-state[data-live='yes']")
                page.evaluate(OBSERVER)
                server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")
                for token in tokens:
                    server.wait_for_status(token, "Finished", timeout=60)
                page.wait_for_function(
                    "n => document.querySelectorAll('tr .status-finished').length >= n",
                    arg=len(tokens),
                    timeout=30_000,
                )
                seen = page.evaluate("window.__changes")
                messages = page.evaluate("window.__messages")
                for pk, status, at in seen:
                    row = site.action(int(pk))
                    committed = {"Processing": row["started_at"], "Finished": row["finished_at"]}
                    if not committed.get(status):
                        continue
                    latencies.append(at - _epoch_ms(committed[status]))
                    # When the socket brought that row in that status, to split the figure.
                    pushed = re.compile(f'id="action-{pk}".*?status-{status.lower()}', re.DOTALL)
                    arrived = [t for t, text in messages if pushed.search(text)]
                    if arrived:
                        to_socket.append(arrived[0] - _epoch_ms(committed[status]))
                        to_dom.append(at - arrived[0])
            browser.close()
    finally:
        site.stop_all()
    print(
        f"\nLive: {len(latencies)} status changes (Processing and Finished) of"
        f" {args.live_batches * args.live_batch_size} Sleep actions, commit to row change:"
        f" p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms,"
        f" max {max(latencies):.1f} ms"
    )
    print(
        f"  of which commit to the socket's message: p50 {statistics.median(to_socket):.1f} ms,"
        f" p95 {percentile(to_socket, 0.95):.1f} ms; message to row change:"
        f" p50 {statistics.median(to_dom):.1f} ms, p95 {percentile(to_dom, 0.95):.1f} ms"
    )
    print(f"Load average at the end: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--documents", type=int, default=250_000, help="datastore rows (most of them in DOCS)"
    )
    parser.add_argument("--live-batches", type=int, default=3)
    parser.add_argument("--live-batch-size", type=int, default=40)
    parser.add_argument("--explain", action="store_true", help="print each page's query plans")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE after the fill")
    parser.add_argument(
        "--sql", action="append", default=[], help="SQL to run after the fill (an index to try)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="a folder for the pages' database, kept and reused (filled only if new)",
    )
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="connector-bench-dashboard-") as name:
        tmp = Path(name)
        if not args.skip_live:
            # First: the live part's Playwright must not start inside Django's set-up below.
            live(args, tmp)
        if not args.skip_pages:
            pages(args, tmp)


if __name__ == "__main__":
    main()
