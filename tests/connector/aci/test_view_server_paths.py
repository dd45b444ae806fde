"""action=View's errors name the document by its path below its root, never the server's path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_errors import refused

from connector.models import FetchTask
from connector.repositories.filesystem import encode_identifier

pytestmark = pytest.mark.django_db


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """q3.txt cannot be opened (as if its mode were 000; tests may run as root)."""
    original = os.open

    def failing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str) and path.endswith("q3.txt"):
            raise PermissionError(13, "Permission denied", path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing)


@pytest.mark.parametrize("noaci", ["true", "false"])
def test_view_of_an_unreadable_document_names_it_without_the_server_path(
    aci: Any, docs_task: FetchTask, docs_tree: Path, unreadable: None, noaci: str
) -> None:
    identifier = encode_identifier("DOCS", 0, "reports/2026/q3.txt")
    root = aci.call("View", Identifier=identifier, NoACI=noaci)
    description = refused(aci, root, "ERRORDOCUMENTUNREADABLE")
    assert "reports/2026/q3.txt" in description and "Permission denied" in description
    assert str(docs_tree) not in description


def test_view_of_a_document_behind_a_link_is_not_found_without_any_path(
    aci: Any, docs_task: FetchTask, docs_tree: Path
) -> None:
    # Missing documents answer ERRORDOCUMENTNOTFOUND with no description at all; a
    # link in the way is not found either. Neither says where the root is.
    (docs_tree / "link.txt").symlink_to(docs_tree / "readme.txt")
    root = aci.call("View", Identifier=encode_identifier("DOCS", 0, "link.txt"))
    assert aci.error_code(root) == "ERRORDOCUMENTNOTFOUND"
    assert str(docs_tree) not in (root.findtext("responsedata/error/errordescription") or "")
