"""The demo task: created once over a copy of the sample, never when tasks exist."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connector import queue
from connector.demo import DEMO_TASK, SAMPLE_DIR, ensure_demo_task
from connector.fetch.base import execute
from connector.models import Action, FetchTask, Status

pytestmark = pytest.mark.django_db


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def demo_dir(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.CONNECTOR_DEMO_DIR = tmp_path / "var" / "demo"
    return settings.CONNECTOR_DEMO_DIR


def test_the_sample_is_small_and_has_subfolders() -> None:
    sample = files(SAMPLE_DIR)
    assert 8 <= len(sample) <= 15
    assert len({Path(name).parts[0] for name in sample if "/" in name}) >= 2
    assert sum((SAMPLE_DIR / name).stat().st_size for name in sample) < 20_000


def test_without_tasks_the_demo_task_is_created_over_a_copy(demo_dir: Path) -> None:
    task = ensure_demo_task()
    assert task is not None and task.name == DEMO_TASK
    assert task.directory_paths == [str(demo_dir)]
    assert (task.file_match, task.directory_recursive) == (["*"], True)
    assert files(demo_dir) == files(SAMPLE_DIR)
    assert list(FetchTask.objects.values_list("name", flat=True)) == [DEMO_TASK]
    assert not [p for p in demo_dir.parent.iterdir() if p != demo_dir]  # no staging left


def test_it_is_created_once(demo_dir: Path) -> None:
    ensure_demo_task()
    (demo_dir / "mine.txt").write_text("mine")
    assert ensure_demo_task() is None
    assert FetchTask.objects.count() == 1
    assert (demo_dir / "mine.txt").exists()


def test_with_tasks_nothing_changes(demo_dir: Path, docs_task: FetchTask) -> None:
    assert ensure_demo_task() is None
    assert list(FetchTask.objects.values_list("name", flat=True)) == ["DOCS"]
    assert not demo_dir.exists()


def test_an_existing_demo_folder_is_kept_as_it_is(demo_dir: Path) -> None:
    demo_dir.mkdir(parents=True)
    (demo_dir / "changed.txt").write_text("the user's")
    task = ensure_demo_task()
    assert task is not None
    assert files(demo_dir) == ["changed.txt"]


def test_a_file_where_the_folder_should_be_makes_no_task(demo_dir: Path) -> None:
    demo_dir.parent.mkdir(parents=True)
    demo_dir.write_text("not a folder")
    assert ensure_demo_task() is None
    assert not FetchTask.objects.exists()


def test_a_first_identifiers_action_on_the_demo_does_real_work(demo_dir: Path) -> None:
    ensure_demo_task()
    submitted = queue.submit_action(
        fetch_action="Identifiers",
        params={"ConfigSection": "DEMO", "MaxDepth": "0"},
        tasks=["DEMO"],
    )
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    execute(claimed, worker="w1", stop_event=threading.Event())
    action = Action.objects.get(pk=submitted.pk)
    assert action.status == Status.FINISHED, action.error
    documents = [e["path"] for e in action.result["identifiers"] if e["type"] == "document"]
    assert sorted(documents) == files(SAMPLE_DIR)
