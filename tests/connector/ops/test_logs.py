"""Every log line about an action carries its token; LOG_FORMAT=json writes JSON lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connector import queue
from connector.fetch.base import FetchAction, FetchContext, register
from connector.logs import ActionContextFilter, JsonFormatter, PlainFormatter, action_context
from connector.params import Params
from connector.worker.engine import WorkerEngine

ROOT = Path(__file__).resolve().parents[3]
module_logger = logging.getLogger("tests.ops.some_module")


@register
class LogFromAModule(FetchAction):
    """Logs through a module's own logger, as repositories and ingest code do."""

    name = "LOGFROMAMODULE"

    def validate(self, params: Params) -> list[str]:
        return []

    def run(self, ctx: FetchContext) -> None:
        module_logger.info("working on %s", ctx.action.pk)
        ctx.log.info("a line of the action's own log")


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("connector.x", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    ActionContextFilter().filter(made)
    return made


@pytest.mark.django_db
def test_a_line_logged_by_any_module_while_an_action_runs_carries_its_token():
    # A handler as the console's (settings.LOGGING), writing to a string.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ActionContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        first = queue.submit_action(fetch_action="LogFromAModule", params={})
        second = queue.submit_action(fetch_action="LogFromAModule", params={})
        module_logger.info("before any action runs")
        assert WorkerEngine().run_until_idle() == 2
        module_logger.info("after the actions ran")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message[f"working on {first.pk}"]["token"] == first.token
    assert by_message[f"working on {second.pk}"]["token"] == second.token
    own = [line for line in lines if line["message"] == "a line of the action's own log"]
    assert [line["token"] for line in own] == [first.token, second.token]
    # Outside an action: no token, not the last action's.
    assert "token" not in by_message["before any action runs"]
    assert "token" not in by_message["after the actions ran"]


def test_the_token_stays_with_the_thread_that_works_on_the_action():
    seen: dict[str, str] = {}
    ready = threading.Barrier(2)

    def work(token: str) -> None:
        with action_context(token):
            ready.wait(5)
            seen[token] = getattr(record("x"), "token", "")

    threads = [threading.Thread(target=work, args=(t,)) for t in ("TOKEN-A", "TOKEN-B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert seen == {"TOKEN-A": "TOKEN-A", "TOKEN-B": "TOKEN-B"}


def test_plain_lines_show_the_token_only_when_there_is_one():
    formatter = PlainFormatter()
    with action_context("QUJD"):
        inside = formatter.format(record("claimed"))
    outside = formatter.format(record("idle"))
    assert inside.endswith(" INFO connector.x [QUJD] claimed")
    assert outside.endswith(" INFO connector.x idle")


def test_json_lines_hold_time_level_logger_message_token_and_exception():
    with action_context("QUJD"):
        try:
            raise ValueError("bad value")
        except ValueError:
            made = record("failed %s", args=None)
            made.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(made))
    assert line["level"] == "INFO"
    assert line["logger"] == "connector.x"
    assert line["message"] == "failed %s"
    assert line["token"] == "QUJD"
    assert line["time"].endswith("+00:00")
    assert "ValueError: bad value" in line["exception"]


def test_log_format_json_makes_the_worker_write_json_lines_with_tokens(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "CONNECTOR_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CONNECTOR_EXTRA_FETCH_ACTION_MODULES": "connector.fetch.diagnostics",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    manage("migrate", "--no-input", "-v", "0")
    # Seconds that are not a number fail inside run(): the framework logs the
    # exception through its module logger, with no token in its arguments.
    done = manage(
        "shell",
        "-c",
        "from connector import queue\n"
        "from connector.worker.engine import WorkerEngine\n"
        "a = queue.submit_action(fetch_action='Sleep', params={'Seconds': 'soon'})\n"
        "WorkerEngine().run_until_idle()\n"
        "print(a.token)\n",
    )
    token = done.stdout.strip().splitlines()[-1]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines, done.stderr
    failed = [line for line in lines if line["logger"] == "connector.fetch.base"]
    assert any("Traceback" in str(line.get("exception")) for line in failed)
    assert {line.get("token") for line in failed} == {token}


@pytest.mark.django_db
def test_recovery_logs_one_line_per_action_with_its_token():
    from datetime import timedelta

    from django.utils import timezone

    from connector.models import Action, Status

    lost = Action.objects.create(
        token="TOKEN-OF-LOST",
        fetch_action="NOOP",
        status=Status.PROCESSING,
        queued_at=timezone.now(),
        started_at=timezone.now(),
        worker="gone-1",
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ActionContextFilter())
    handler.setFormatter(JsonFormatter())
    logging.getLogger("connector.queue").addHandler(handler)
    try:
        queue.recover_expired()
    finally:
        logging.getLogger("connector.queue").removeHandler(handler)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["token"] == "TOKEN-OF-LOST"
    assert line["message"] == f"Recovered action {lost.pk} of lost worker gone-1: queued again"
