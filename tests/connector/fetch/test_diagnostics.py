"""The diagnostic fetch actions the scale-out tests count runs with."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import queue
from connector.fetch import diagnostics
from connector.models import Action, Status
from connector.worker.engine import WorkerEngine

pytestmark = pytest.mark.django_db(transaction=True)


def test_record_run_appends_one_line_per_run_with_its_token_and_worker(settings, tmp_path: Path):
    settings.VAR_DIR = tmp_path
    first = queue.submit_action(fetch_action="RecordRun", params={})
    second = queue.submit_action(fetch_action="RecordRun", params={})
    engine = WorkerEngine(worker_id="worker-1")

    assert engine.run_until_idle() == 2

    lines = (tmp_path / diagnostics.RUNS_LOG).read_text().splitlines()
    assert lines == [f"{first.token} worker-1", f"{second.token} worker-1"]
    for action in Action.objects.filter(pk__in=[first.pk, second.pk]):
        assert action.status == Status.FINISHED
        assert action.result == {"worker": "worker-1"}
