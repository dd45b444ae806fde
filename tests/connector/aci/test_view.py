"""action=View: the document itself (with ranges) or base64 in an ACI answer."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from test_errors import refused

from connector import csp
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


def identifier_of(docs_task, docs_tree, name: str, content: bytes = b"x") -> str:
    (docs_tree / name).write_bytes(content)
    return encode_identifier(docs_task.name, 0, name)


def assert_inert(response, *, inline_type: str | None = None) -> None:
    """The headers that keep a document's bytes from running or rendering as active content."""
    if inline_type is None:
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"].startswith("attachment; ")
    else:
        assert response["Content-Type"] == inline_type
        assert response["Content-Disposition"].startswith("inline; ")
    assert response["X-Content-Type-Options"] == "nosniff"
    # The document's own sandbox, not the site's policy (which allows this origin's scripts).
    assert response["Content-Security-Policy"] == csp.DOCUMENT_POLICY
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"


ACTIVE_DOCUMENTS = [
    "evil.html",
    "evil.htm",
    "evil.xhtml",
    "evil.js",
    "evil.mjs",
    "evil.css",
    "evil.svg",
    "evil.xml",
    "evil.xsl",
    "evil.pdf",
    "evil.json",
    "evil.swf",
    "evil.md",
    "evil.csv",
    "evil.eml",
    "evil.vtt",
    "no-extension",
    "evil.unknown-type",
]


@pytest.mark.parametrize("name", ACTIVE_DOCUMENTS)
def test_view_serves_every_other_type_as_an_opaque_attachment(client, docs_task, docs_tree, name):
    """HTML, script, style, SVG, XML, PDF...: bytes to save, never a page of this origin."""
    document = identifier_of(docs_task, docs_tree, name, b"<script>alert(1)</script>")
    response = client.get(view_url(Identifier=document))
    assert response.status_code == 200
    assert_inert(response)
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("readme.txt", "text/plain; charset=utf-8"),
        ("photo.png", "image/png"),
        ("photo.jpg", "image/jpeg"),
        ("photo.gif", "image/gif"),
        ("photo.webp", "image/webp"),
    ],
)
def test_view_shows_only_plain_text_and_raster_images_inline(
    client, docs_task, docs_tree, name, served
):
    document = identifier_of(docs_task, docs_tree, name)
    response = client.get(view_url(Identifier=document))
    assert_inert(response, inline_type=served)
    assert response["Content-Disposition"] == f'inline; filename="{name}"'


@pytest.mark.parametrize(
    ("header", "status"), [("bytes=0-5", 206), ("bytes=-3", 206), ("bytes=900-", 416)]
)
def test_view_ranges_and_refused_ranges_are_as_inert_as_the_whole(
    client, docs_task, docs_tree, header, status
):
    document = identifier_of(docs_task, docs_tree, "evil.html", b"<script>alert(1)</script>")
    response = client.get(view_url(Identifier=document), headers={"Range": header})
    assert response.status_code == status
    assert_inert(response)


def test_view_by_path_through_the_whole_middleware_chain_keeps_the_sandbox(
    client, docs_task, docs_tree
):
    """/action=View&Identifier=... as the issue's attack used it, with the site's CSP middleware."""
    document = identifier_of(docs_task, docs_tree, "evil.js", b"fetch('/admin/')")
    response = client.get(f"/action=View&Identifier={document}")
    assert_inert(response)
    assert "'self'" not in response["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ('say "hi".txt', 'inline; filename="say \\"hi\\".txt"'),
        ("r\u00e9sum\u00e9.html", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.html"),
        ("a;b=c.js", 'attachment; filename="a;b=c.js"'),
    ],
)
def test_view_names_the_file_without_breaking_the_header(
    client, docs_task, docs_tree, name, disposition
):
    document = identifier_of(docs_task, docs_tree, name)
    response = client.get(view_url(Identifier=document))
    assert response.status_code == 200
    assert response["Content-Disposition"] == disposition


def test_view_of_a_file_name_with_a_line_break_is_served_not_an_error(client, docs_task, docs_tree):
    document = identifier_of(docs_task, docs_tree, "two\nlines.txt", b"ok")
    response = client.get(view_url(Identifier=document))
    assert response.status_code == 200
    assert response["Content-Disposition"] == "inline; filename*=utf-8''two%0Alines.txt"
    assert b"".join(response.streaming_content) == b"ok"


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


@pytest.mark.django_db(transaction=True)
def test_view_by_path_through_the_asgi_application_keeps_the_sandbox(docs_task, docs_tree):
    """The server's path: the endpoint's own handler (connector.aci.handler), not the
    test client's, sends the same inert headers."""
    from asgi_client import get
    from asgiref.sync import async_to_sync
    from django.http import HttpResponse

    document = identifier_of(docs_task, docs_tree, "evil.js", b"fetch('/admin/')")
    path = f"/action=View&Identifier={document}"

    status, body, headers = async_to_sync(get)(path, timeout=10)
    assert status == 200
    assert body == b"fetch('/admin/')"
    response = HttpResponse()
    for name, value in headers.items():
        response[name.decode()] = value.decode()
    assert_inert(response)
    assert "'self'" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
