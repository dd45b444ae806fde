"""Data migrations: what they compute for rows that existed before them."""

from __future__ import annotations

import importlib

import pytest

from connector.repositories.filesystem import encode_identifier

datastore_folder = importlib.import_module(
    "connector.migrations.0005_datastore_folder_and_modified_ns"
)


@pytest.mark.parametrize(
    ("path", "folder"),
    [("readme.txt", ""), ("reports/2026/q3.txt", "reports/2026"), ("a/b", "a")],
)
def test_an_existing_row_gets_the_identifier_of_its_folder(path: str, folder: str) -> None:
    # The folder Synchronize and the per-document actions now write for the same document.
    assert datastore_folder.folder_of(encode_identifier("DOCS", 1, path)) == encode_identifier(
        "DOCS", 1, folder
    )


@pytest.mark.parametrize("identifier", ["", "not base64 at all!", "QUJD", "Rk1TMQBEAQA"])
def test_an_identifier_that_does_not_decode_gets_no_folder(identifier: str) -> None:
    assert datastore_folder.folder_of(identifier) == ""
