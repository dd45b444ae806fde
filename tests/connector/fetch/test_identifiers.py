"""FetchAction=Identifiers, run the way the worker runs it: submit, claim, execute."""

from __future__ import annotations

import base64
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from connector import queue
from connector.fetch.base import UnknownTask, execute, get_fetch_action
from connector.models import Action, ActionLogLine, FetchTask, Status
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories.filesystem import encode_identifier

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def submit(params: dict[str, str]) -> Action:
    """Validate as the endpoint does, then queue."""
    tasks = get_fetch_action("Identifiers").validate(Params(params))
    return queue.submit_action(fetch_action="Identifiers", params=params, tasks=tasks)


def run(action: Action, stop_event: threading.Event | None = None) -> Action:
    [claimed] = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    assert claimed.pk == action.pk
    execute(claimed, worker="w1", stop_event=stop_event or threading.Event())
    return Action.objects.get(pk=action.pk)


def identifiers(params: dict[str, str]) -> Action:
    return run(submit(params))


def listed_paths(action: Action) -> list[str]:
    return [entry["path"] for entry in action.result["identifiers"]]


def by_path(action: Action) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in action.result["identifiers"]}


def docs_id(path: str) -> str:
    return encode_identifier("DOCS", 0, path)


class StopAfter(threading.Event):
    """A stop event that is set once it has been looked at ``n`` times."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


# --- Running ---------------------------------------------------------------------------


def test_default_lists_the_children_of_the_roots(docs_task: FetchTask) -> None:
    action = identifiers({"ConfigSection": "docs"})
    assert action.status == Status.FINISHED, action.error
    assert action.tasks == "DOCS"
    assert listed_paths(action) == ["mail", "readme.txt", "reports"]
    assert action.counts == {"DOCS": {"seen": 3}}
    assert action.progress == 100
    entries = by_path(action)
    readme = entries["readme.txt"]
    assert readme["identifier"] == docs_id("readme.txt")
    assert readme["type"] == "document" and readme["name"] == "readme.txt"
    assert readme["parent"] == docs_id("") and readme["size"] == len("Read me.")
    assert ISO_UTC.fullmatch(readme["modified"])
    assert entries["reports"]["type"] == "container" and "size" not in entries["reports"]


def test_max_depth_two_lists_grandchildren(docs_task: FetchTask) -> None:
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "2"})
    assert listed_paths(action) == [
        "mail", "readme.txt", "reports",
        "mail/inbox", "reports/2026", "reports/summary.md",
    ]  # fmt: skip
    assert by_path(action)["reports/2026"]["parent"] == docs_id("reports")


def test_max_depth_zero_lists_everything(docs_task: FetchTask) -> None:
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0"})
    assert sorted(listed_paths(action)) == [
        "mail", "mail/inbox", "mail/inbox/hello.eml", "readme.txt", "reports",
        "reports/2026", "reports/2026/q3.txt", "reports/2026/q4.txt", "reports/summary.md",
    ]  # fmt: skip
    assert action.counts["DOCS"]["seen"] == 9


def test_containers_only(docs_task: FetchTask) -> None:
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0", "containersonly": "TRUE"})
    assert listed_paths(action) == ["mail", "reports", "mail/inbox", "reports/2026"]
    assert {entry["type"] for entry in action.result["identifiers"]} == {"container"}
    assert action.counts["DOCS"]["seen"] == 4


def test_file_match_filters_documents(docs_task: FetchTask) -> None:
    docs_task.file_match = ["*.TXT"]
    docs_task.save()
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0"})
    documents = [e["path"] for e in action.result["identifiers"] if e["type"] == "document"]
    assert documents == ["readme.txt", "reports/2026/q3.txt", "reports/2026/q4.txt"]
    assert "mail/inbox" in listed_paths(action)


def test_not_recursive_lists_the_roots_documents_only(docs_task: FetchTask) -> None:
    docs_task.directory_recursive = False
    docs_task.save()
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0"})
    assert listed_paths(action) == ["readme.txt"]


def test_parent_identifiers_list_below_those_parents(docs_task: FetchTask) -> None:
    parents = f"{docs_id('reports/2026')}, {docs_id('mail')}"
    action = identifiers({"ConfigSection": "DOCS", "ParentIdentifiers": parents})
    assert listed_paths(action) == ["reports/2026/q3.txt", "reports/2026/q4.txt", "mail/inbox"]


def test_overlapping_parents_list_nothing_twice(docs_task: FetchTask) -> None:
    parents = f"{docs_id('reports')},{docs_id('reports/2026')}"
    action = identifiers({"ConfigSection": "DOCS", "ParentIdentifiers": parents, "MaxDepth": "0"})
    assert sorted(listed_paths(action)) == [
        "reports/2026", "reports/2026/q3.txt", "reports/2026/q4.txt", "reports/summary.md",
    ]  # fmt: skip
    assert action.counts["DOCS"]["seen"] == 4


def test_every_root_of_a_task_is_listed(docs_tree: Path, tmp_path: Path, db: None) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "b.txt").write_text("b")
    FetchTask.objects.create(name="TWO", directory_paths=[str(docs_tree), str(second)])
    action = identifiers({"ConfigSection": "TWO"})
    assert listed_paths(action) == ["mail", "readme.txt", "reports", "b.txt"]
    assert by_path(action)["b.txt"]["parent"] == encode_identifier("TWO", 1, "")


def test_a_parent_removed_before_the_run_is_an_error_not_a_crash(
    docs_task: FetchTask, docs_tree: Path
) -> None:
    parents = f"{docs_id('mail')},{docs_id('reports/2026')}"
    action = submit({"ConfigSection": "DOCS", "ParentIdentifiers": parents})
    shutil.rmtree(docs_tree / "mail")
    action = run(action)
    assert action.status == Status.FINISHED, action.error
    assert listed_paths(action) == ["reports/2026/q3.txt", "reports/2026/q4.txt"]
    assert action.counts == {"DOCS": {"seen": 2, "errors": 1}}
    warnings = ActionLogLine.objects.filter(action=action, level="WARNING")
    assert any("no longer usable" in line.message for line in warnings)


def test_an_unreadable_folder_is_skipped_and_counted(
    docs_task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == str(docs_tree / "reports"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0"})
    assert action.status == Status.FINISHED
    assert sorted(listed_paths(action)) == [
        "mail", "mail/inbox", "mail/inbox/hello.eml", "readme.txt", "reports",
    ]  # fmt: skip
    assert action.counts["DOCS"]["errors"] == 1
    assert ActionLogLine.objects.filter(action=action, message__contains="Permission denied")


def test_a_task_whose_root_is_gone_fails_with_a_clear_error(
    docs_task: FetchTask, docs_tree: Path
) -> None:
    action = submit({"ConfigSection": "DOCS"})
    shutil.rmtree(docs_tree)
    action = run(action)
    assert action.status == Status.ERROR
    # Named by its place in DirectoryPathCSVs: the server's path stays in the log.
    assert "Root folder 1 of fetch task DOCS does not exist" in action.error
    assert str(docs_tree) not in action.error


def test_a_task_removed_before_the_run_fails_with_a_clear_error(docs_task: FetchTask) -> None:
    action = submit({"ConfigSection": "DOCS"})
    docs_task.delete()
    action = run(action)
    assert action.status == Status.ERROR
    assert "DOCS is no longer configured" in action.error


def test_a_stop_already_requested_ends_it_stopped(docs_task: FetchTask) -> None:
    stop = threading.Event()
    stop.set()
    action = run(submit({"ConfigSection": "DOCS", "MaxDepth": "0"}), stop)
    assert action.status == Status.STOPPED
    assert action.counts == {"DOCS": {"seen": 0}}


def test_a_stop_in_the_middle_keeps_the_counts_so_far(docs_task: FetchTask) -> None:
    action = run(submit({"ConfigSection": "DOCS", "MaxDepth": "0"}), StopAfter(5))
    assert action.status == Status.STOPPED
    seen = action.counts["DOCS"]["seen"]
    assert 0 < seen < 9
    assert len(action.result["identifiers"]) == seen


def test_too_many_identifiers_end_the_listing_and_say_so(
    docs_task: FetchTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("connector.fetch.identifiers.MAX_IDENTIFIERS", 4)
    action = identifiers({"ConfigSection": "DOCS", "MaxDepth": "0"})
    assert action.status == Status.FINISHED
    assert len(action.result["identifiers"]) == 4 and action.result["truncated"] is True


def test_names_that_are_not_utf8_are_shown_with_replacement_characters(
    docs_task: FetchTask, docs_tree: Path
) -> None:
    (docs_tree / os.fsdecode(b"caf\xe9.txt")).write_text("coffee")
    action = identifiers({"ConfigSection": "DOCS"})
    assert "caf\ufffd.txt" in listed_paths(action)


# --- Validation at submission ---------------------------------------------------------


def validate(params: dict[str, str]) -> list[str]:
    return get_fetch_action("identifiers").validate(Params(params))


def test_validate_names_the_task(docs_task: FetchTask) -> None:
    assert validate({"configsection": "docs"}) == ["DOCS"]
    assert validate({"TaskSections": "Docs"}) == ["DOCS"]


def test_validate_requires_a_task(db: None) -> None:
    with pytest.raises(MissingParameter, match="ConfigSection"):
        validate({})


def test_validate_refuses_an_unknown_task(docs_task: FetchTask) -> None:
    with pytest.raises(UnknownTask, match="configured: DOCS"):
        validate({"ConfigSection": "NOPE"})


def test_validate_refuses_two_tasks(docs_task: FetchTask) -> None:
    FetchTask.objects.create(name="MAIL", directory_paths=docs_task.directory_paths)
    with pytest.raises(InvalidParameter, match="exactly one fetch task"):
        validate({"ConfigSection": "DOCS,MAIL"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("MaxDepth", "-1"), ("MaxDepth", "two"), ("MaxDepth", "1.5"), ("ContainersOnly", "maybe")],
)
def test_validate_refuses_bad_values(docs_task: FetchTask, name: str, value: str) -> None:
    with pytest.raises(InvalidParameter, match=name):
        validate({"ConfigSection": "DOCS", name: value})


def test_validate_refuses_a_parent_outside_the_root(docs_task: FetchTask) -> None:
    outside = base64.urlsafe_b64encode(b"FS1\0DOCS\x000\0../../etc").rstrip(b"=").decode()
    with pytest.raises(InvalidParameter, match="leaves the task's root") as refused:
        validate({"ConfigSection": "DOCS", "ParentIdentifiers": outside})
    assert refused.value.name == "ParentIdentifiers"


@pytest.mark.parametrize(
    ("parent", "reason"),
    [
        ("not-an-identifier!", "URL-safe base64"),
        (encode_identifier("MAIL", 0, ""), "belongs to fetch task MAIL"),
        (encode_identifier("DOCS", 0, "nowhere"), "existing folder"),
        (encode_identifier("DOCS", 0, "readme.txt"), "names a document"),
    ],
)
def test_validate_refuses_parents_that_are_not_folders_of_the_task(
    docs_task: FetchTask, parent: str, reason: str
) -> None:
    with pytest.raises(InvalidParameter, match=reason):
        validate({"ConfigSection": "DOCS", "ParentIdentifiers": f"{docs_id('')},{parent}"})


def test_an_action_without_a_task_fails_with_a_clear_error(db: None) -> None:
    action = run(queue.submit_action(fetch_action="Identifiers", params={}))
    assert action.status == Status.ERROR
    assert "names no fetch task" in action.error
