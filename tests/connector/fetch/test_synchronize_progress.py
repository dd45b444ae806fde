"""A Synchronize's progress says only what is known (issue 16, item 6; connector/progress.py).

The two runs the issue describes: a first run (it showed 0 % all the way) and the
run after a stopped one (it showed 99 % at 14 % done, the percentage being of the
datastore's rows, which the stopped run left short).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from connector import progress, queue
from connector.aci.render import Element
from connector.aci.status import progress_elements
from connector.fetch import synchronize as synchronize_module
from connector.fetch.base import execute, get_fetch_action
from connector.ingest import scan
from connector.models import Action, FetchTask, Status
from connector.params import Params

FOLDERS, PER_FOLDER = 10, 7
DOCUMENTS = FOLDERS * PER_FOLDER


@pytest.fixture
def task(docs_task: FetchTask, docs_tree: Path, tmp_path: Path, settings: Any) -> FetchTask:
    """70 documents in 10 folders, 5 (the tree's own) more at the root; every progress written."""
    for folder in range(FOLDERS):
        for n in range(PER_FOLDER):
            path = docs_tree / f"f{folder}/{n}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"Document {folder}/{n}.")
    docs_task.ingest_directory = str(tmp_path / "ingest")
    docs_task.save()
    settings.CONNECTOR_PROGRESS_INTERVAL_SECONDS = 0
    return docs_task


@pytest.fixture
def small_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small jobs and batches: many progress writes, documents ingested as it goes."""
    monkeypatch.setattr(scan, "JOB_DOCUMENTS", 3)
    monkeypatch.setattr(synchronize_module, "BATCH_DOCUMENTS", 10)


Write = dict[str, Any]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Write]:
    """Every progress write of the runs, and the action as the dashboard read it then."""
    written: list[Write] = []
    real = queue.record_progress

    def record(**kwargs: Any) -> None:
        real(**kwargs)
        action = Action.objects.get(pk=kwargs["pk"])
        seen = progress.counted(kwargs["counts"], "seen")
        written.append({**kwargs, "seen": seen, "shown": progress.of(action)})
        if (stop_at := stops.get(kwargs["pk"])) and seen >= stop_at[0]:
            stop_at[1].set()

    stops.clear()
    monkeypatch.setattr(queue, "record_progress", record)
    return written


#: pk -> (documents listed, the event that stops that action once it listed them).
stops: dict[int, tuple[int, threading.Event]] = {}


def synchronize(stop_after: int | None = None) -> Action:
    params = {"TaskSections": "DOCS"}
    tasks = get_fetch_action("Synchronize").validate(Params(params))
    action = queue.submit_action(fetch_action="Synchronize", params=params, tasks=tasks)
    stop = threading.Event()
    if stop_after is not None:
        stops[action.pk] = (stop_after, stop)
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    execute(claimed, worker="w1", stop_event=stop)
    return Action.objects.get(pk=action.pk)


def of(action: Action, writes: list[Write]) -> list[Write]:
    """The writes of ``action`` while it listed (the last few, once every
    document was listed, have an exact total: ``test_once_listed_...``)."""
    return [w for w in writes if w["pk"] == action.pk and w["basis"] != progress.LISTED]


def listed_writes(action: Action, writes: list[Write]) -> list[Write]:
    return [w for w in writes if w["pk"] == action.pk and w["basis"] == progress.LISTED]


def test_a_first_run_shows_the_documents_listed_with_no_percentage_until_it_ends(
    task: FetchTask, writes: list[Write], small_jobs: None
) -> None:
    action = synchronize()
    assert action.status == Status.FINISHED, action.error
    during = of(action, writes)
    assert len(during) > 5
    assert {w["basis"] for w in during} == {progress.UNKNOWN}
    assert {w["total"] for w in during} == {None}
    # No percentage shown while it runs; the counts grow instead.
    assert {w["shown"].percent for w in during} == {None}
    assert [w["shown"].listed for w in during] == sorted(w["shown"].listed for w in during)
    assert during[-1]["shown"].listed > 0 and during[-1]["shown"].ingested > 0
    assert all(w["shown"].remaining is None for w in during)
    # Once every document is listed (deletes and the last batch are left), the total is known.
    assert {(w["total"], w["shown"].percent) for w in listed_writes(action, writes)} <= {
        (DOCUMENTS + 5, 99),
        (DOCUMENTS + 5, 100),
    }
    # Once done, the total is exact and the next run's estimate.
    assert (action.progress, action.progress_basis) == (100, progress.LISTED)
    assert action.progress_total == DOCUMENTS + 5
    assert FetchTask.objects.get(pk=task.pk).documents_last_complete == DOCUMENTS + 5


def test_the_run_after_a_stopped_first_run_does_not_guess_from_the_datastore(
    task: FetchTask, writes: list[Write], small_jobs: None
) -> None:
    stopped = synchronize(stop_after=10)
    assert stopped.status == Status.STOPPED
    # The stopped run shows no percentage either; it set no estimate.
    assert progress.of(stopped).percent is None
    assert FetchTask.objects.get(pk=task.pk).documents_last_complete is None
    action = synchronize()
    assert action.status == Status.FINISHED, action.error
    during = of(action, writes)
    # Was: 99 % at 14 % done (the share of the rows the stopped run left).
    assert {w["shown"].percent for w in during} == {None}
    assert {w["basis"] for w in during} == {progress.UNKNOWN}


def test_after_a_complete_run_the_percentage_is_of_its_count_even_after_a_stop(
    task: FetchTask, writes: list[Write], small_jobs: None
) -> None:
    synchronize()
    stopped = synchronize(stop_after=10)
    assert stopped.status == Status.STOPPED
    action = synchronize()
    during = of(action, writes)
    total = DOCUMENTS + 5
    assert {(w["basis"], w["total"]) for w in during} == {(progress.PREVIOUS, total)}
    for w in during:
        assert w["percent"] == min(99, int(100 * w["seen"] / total)), w
    # Halfway through the listing, about half: not 99.
    assert any(30 <= w["percent"] <= 70 for w in during)
    assert action.progress == 100 and action.progress_basis == progress.LISTED


def test_a_run_that_lists_more_than_expected_drops_the_percentage(
    task: FetchTask, docs_tree: Path, writes: list[Write], small_jobs: None
) -> None:
    synchronize()
    for n in range(40):
        (docs_tree / f"new/{n}.txt").parent.mkdir(exist_ok=True)
        (docs_tree / f"new/{n}.txt").write_text(f"New {n}.")
    action = synchronize()
    during = of(action, writes)
    spent = [w for w in during if w["seen"] > DOCUMENTS + 5]
    assert spent and {w["basis"] for w in spent} == {progress.UNKNOWN}
    assert {w["shown"].percent for w in spent} == {None}
    assert action.progress_total == DOCUMENTS + 5 + 40


def running(seen: int, basis: str, total: int | None, seconds: float = 10) -> Action:
    return Action(
        status=Status.PROCESSING,
        fetch_action="SYNCHRONIZE",
        started_at=timezone.now() - timedelta(seconds=seconds),
        progress=0 if total is None else 100 * seen // total,
        progress_basis=basis,
        progress_total=total,
        counts={"DOCS": {"seen": seen, "added": seen // 2, "updated": 1}},
    )


def test_rate_and_time_left_only_with_a_total() -> None:
    now = timezone.now()
    estimated = progress.of(running(100, progress.PREVIOUS, 400), now)
    assert estimated.percent == 25 and estimated.estimated
    assert estimated.rate == pytest.approx(10, rel=0.01)
    assert estimated.remaining == pytest.approx(30, abs=1)
    assert (estimated.listed, estimated.ingested) == (100, 51)
    unknown = progress.of(running(100, progress.UNKNOWN, None), now)
    assert unknown.percent is None and unknown.remaining is None
    assert unknown.rate == pytest.approx(10, rel=0.01)
    # Too soon for a rate to mean anything.
    early = progress.of(running(3, progress.PREVIOUS, 400, seconds=0.5), now)
    assert early.rate is None and early.remaining is None
    # Other fetch actions: their own percentage, as before.
    collect = Action(status=Status.PROCESSING, fetch_action="COLLECT", progress=40)
    assert progress.of(collect).percent == 40 and progress.of(collect).listed is None


def texts(elements: list[Element]) -> dict[str, tuple[str | None, dict[str, str]]]:
    return {e.tag: (e.text, e.attrs) for e in elements}


def test_the_aci_adds_what_it_knows_after_progress() -> None:
    assert texts(progress_elements(running(100, progress.UNKNOWN, None))) == {
        "progressknown": ("false", {})
    }
    shown = texts(progress_elements(running(100, progress.PREVIOUS, 400)))
    assert shown["expecteddocuments"] == ("400", {"basis": "previous"})
    assert 25 <= int(shown["time_remaining"][0] or 0) <= 35
    assert progress_elements(Action(status=Status.PROCESSING, progress=40)) == []


def test_the_expected_total_of_several_tasks() -> None:
    a, b = FetchTask(name="A", documents_last_complete=100), FetchTask(name="B")
    expected = synchronize_module.Expected([a, b])
    # B never ran to its end: no total, the share of the tasks done instead.
    assert expected.percent(50, 0) == (None, progress.UNKNOWN, 0)
    b.documents_last_complete = 300
    expected = synchronize_module.Expected([a, b])
    assert expected.percent(100, 0) == (400, progress.PREVIOUS, 25)
    # A listed 120 (exact now); B still expected at 300.
    expected.listed["A"] = 120
    assert expected.percent(270, 0.5) == (420, progress.PREVIOUS, 270 * 100 / 420)
    expected.listed["B"] = 310
    assert expected.percent(430, 1) == (430, progress.LISTED, 99)
    # A last complete run that listed nothing is no estimate.
    empty = synchronize_module.Expected([FetchTask(name="E", documents_last_complete=0)])
    assert empty.percent(0, 0) == (None, progress.UNKNOWN, 0)
