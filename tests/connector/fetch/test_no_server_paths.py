"""Answers name documents by identifier or root-relative path, never by the server's path.

Per-document ``reason``s and ACI error descriptions reach clients; the
absolute path and the operating system's error go to the log only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fetch_helpers import doc_id, failures, fetch

from connector.fetch.base import get_fetch_action
from connector.models import FetchTask
from connector.params import InvalidParameter, Params
from connector.repositories import ItemNotFound
from connector.repositories.filesystem import FileSystemRepository


def refuse_os_call(
    monkeypatch: pytest.MonkeyPatch, name: str, target: str, error: OSError | None = None
) -> None:
    """Make ``os.<name>`` fail for paths ending in ``target`` (relative or absolute)."""
    original = getattr(os, name)

    def failing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str) and (path == target or path.endswith(os.sep + target)):
            raise error or PermissionError(13, "Permission denied", path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, name, failing)


def test_a_delete_that_fails_names_the_document_not_the_server_path(
    docs_task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_os_call(monkeypatch, "unlink", "readme.txt")
    action = fetch("Delete", Identifiers=doc_id("readme.txt"))
    why = failures(action)[doc_id("readme.txt")]
    assert why == "cannot delete readme.txt: Permission denied"
    assert str(docs_tree) not in why


def test_a_collect_of_an_unreadable_document_names_it_by_its_path_below_the_root(
    docs_task: FetchTask, docs_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "collected"
    allowed.mkdir()
    docs_task.collect_destinations = [str(allowed)]
    docs_task.save()
    refuse_os_call(monkeypatch, "open", "q3.txt")
    identifier = doc_id("reports/2026/q3.txt")
    action = fetch("Collect", Identifiers=identifier, Destination=str(allowed))
    why = failures(action)[identifier]
    assert why == "cannot open document reports/2026/q3.txt: Permission denied"
    assert str(docs_tree) not in why


def test_an_os_error_without_a_text_of_its_own_gives_no_path_either(
    docs_task: FetchTask, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stat(self: FileSystemRepository, identifier: str) -> Any:
        raise OSError(f"something broke under {docs_tree}/readme.txt")

    monkeypatch.setattr(FileSystemRepository, "stat", stat)
    body = f'<identifier value="{doc_id("readme.txt")}"><metadata name="K" value="v"/></identifier>'
    action = fetch(
        "Update", ConfigSection="DOCS", IdentifiersXML=f"<identifiersXML>{body}</identifiersXML>"
    )
    why = failures(action)[doc_id("readme.txt")]
    assert str(docs_tree) not in why
    assert "see the connector's log" in why


def test_a_document_reached_through_a_link_is_not_found_without_its_path(
    docs_task: FetchTask, docs_tree: Path
) -> None:
    (docs_tree / "link.txt").symlink_to(docs_tree / "readme.txt")
    repository = FileSystemRepository(docs_task)
    with pytest.raises(ItemNotFound) as raised:
        repository.stat(doc_id("link.txt"))
    assert str(raised.value).startswith("link.txt is reached through a symbolic link")
    assert str(docs_tree) not in str(raised.value)


def test_identifiers_of_a_missing_parent_are_refused_without_the_server_path(
    docs_task: FetchTask, docs_tree: Path
) -> None:
    parent = doc_id("reports/nowhere")
    with pytest.raises(InvalidParameter) as refused:
        get_fetch_action("Identifiers").validate(
            Params({"ConfigSection": "DOCS", "ParentIdentifiers": parent})
        )
    assert "reports/nowhere" in str(refused.value)
    assert str(docs_tree) not in str(refused.value)


@pytest.mark.parametrize("action", ["Delete", "Hold", "Collect"])
def test_a_missing_document_is_not_found_without_any_path(
    docs_task: FetchTask, docs_tree: Path, tmp_path: Path, action: str
) -> None:
    docs_task.collect_destinations = [str(tmp_path)]
    docs_task.save()
    params = {"Destination": str(tmp_path)} if action == "Collect" else {}
    done = fetch(action, Identifiers=doc_id("reports/gone.txt"), **params)
    assert failures(done) == {doc_id("reports/gone.txt"): "not found"}
