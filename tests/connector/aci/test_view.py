"""action=View: the document itself (with ranges) or base64 in an ACI answer."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from test_errors import refused

from connector.aci import view
from connector.models import Action, FetchTask
from connector.repositories import ItemUnreadable
from connector.repositories.filesystem import FileSystemRepository, encode_identifier

pytestmark = pytest.mark.django_db


@pytest.fixture
def readme(docs_task):
    return encode_identifier(docs_task.name, 0, "readme.txt")


def view_url(**params: str) -> str:
    return "/?" + urlencode({"action": "View", **params})


def test_view_streams_the_document_with_its_type(client, readme):
    response = client.get(view_url(Identifier=readme))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"Read me."
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Length"] == "8"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"] == 'inline; filename="readme.txt"'


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=0-3", b"Read", "bytes 0-3/8"),
        ("bytes=5-", b"me.", "bytes 5-7/8"),
        ("bytes=-3", b"me.", "bytes 5-7/8"),
        ("bytes=4-100", b" me.", "bytes 4-7/8"),
    ],
)
def test_view_answers_a_range_with_partial_content(client, readme, header, body, content_range):
    response = client.get(view_url(Identifier=readme), headers={"Range": header})
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == body
    assert response["Content-Range"] == content_range
    assert response["Content-Length"] == str(len(body))


@pytest.mark.parametrize("header", ["bytes=8-", "bytes=5-2", "bytes=-", "lines=0-3"])
def test_view_refuses_a_range_outside_the_document(client, readme, header):
    response = client.get(view_url(Identifier=readme), headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */8"


def test_view_with_noaci_false_returns_base64_content(aci, readme):
    root = aci.call("View", Identifier=readme, NoACI="false")
    document = aci.success(root).find("document")
    assert base64.b64decode(document.findtext("content")) == b"Read me."
    assert document.findtext("name") == "readme.txt"
    assert document.findtext("path") == "readme.txt"
    assert document.findtext("contenttype") == "text/plain; charset=utf-8"
    assert document.findtext("size") == "8"


def test_view_with_noaci_false_refuses_a_document_too_large_for_aci(aci, readme, monkeypatch):
    monkeypatch.setattr(view, "MAX_ACI_CONTENT_BYTES", 4)
    root = aci.call("View", Identifier=readme, NoACI="false")
    assert "NoACI=false" in refused(aci, root, "ERRORDOCUMENTTOOLARGE")


def test_view_without_identifier_is_missing_a_parameter(aci):
    refused(aci, aci.call("View"), "ERRORMISSINGPARAMS")


@pytest.mark.parametrize("identifier", ["not-an-identifier", "Li4vZXRjL3Bhc3N3ZA"])
def test_view_of_a_garbage_identifier_is_refused(aci, docs_task, identifier):
    refused(aci, aci.call("View", Identifier=identifier), "ERRORPARAMINVALID")


def test_view_of_a_path_leaving_the_root_is_refused(aci, docs_task):
    # Built by hand: encode_identifier itself refuses such a path.
    raw = "\0".join(["FS1", docs_task.name, "0", "../../etc/passwd"]).encode()
    outside = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    description = refused(aci, aci.call("View", Identifier=outside), "ERRORPARAMINVALID")
    assert "'..'" in description


def test_view_of_a_folder_is_refused(aci, docs_task):
    folder = encode_identifier(docs_task.name, 0, "reports")
    assert "folder" in refused(aci, aci.call("View", Identifier=folder), "ERRORPARAMINVALID")


def test_view_of_an_identifier_of_a_removed_task_is_refused(aci, readme, docs_task):
    FetchTask.objects.filter(pk=docs_task.pk).delete()
    refused(aci, aci.call("View", Identifier=readme), "ERRORPARAMINVALID")


@pytest.mark.parametrize("noaci", ["true", "false"])
def test_view_of_a_deleted_document_is_not_found(aci, readme, docs_tree, noaci):
    (docs_tree / "readme.txt").unlink()
    root = aci.call("View", Identifier=readme, NoACI=noaci)
    refused(aci, root, "ERRORDOCUMENTNOTFOUND")


@pytest.mark.parametrize("noaci", ["true", "false"])
def test_view_of_an_unreadable_document_says_so(aci, readme, monkeypatch, noaci):
    def unreadable(self, identifier, **kwargs):
        raise ItemUnreadable("permission denied")
        yield b""  # a generator, like the real one

    monkeypatch.setattr(FileSystemRepository, "read_chunks", unreadable)
    root = aci.call("View", Identifier=readme, NoACI=noaci)
    assert "permission denied" in refused(aci, root, "ERRORDOCUMENTUNREADABLE")


def test_view_with_an_invalid_noaci_is_refused(aci, readme):
    refused(aci, aci.call("View", Identifier=readme, NoACI="maybe"), "ERRORPARAMINVALID")


def test_view_changes_nothing(aci, readme):
    aci.call("View", Identifier=readme, NoACI="false")
    assert not Action.objects.exists()
