"""Odd inputs get their documented answer, never ERRORINTERNAL or a bare 500 (issue 13 item 18)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from connector.aci.limits import BODY_REFUSED_HEADER, NOT_AUTHORIZED, TOO_LARGE
from connector.models import Action
from connector.repositories.filesystem import encode_identifier

pytestmark = pytest.mark.django_db


def view_url(**params: str) -> str:
    return "/?" + urlencode({"action": "View", **params})


@pytest.fixture
def readme(docs_task):
    return encode_identifier(docs_task.name, 0, "readme.txt")


# --- Range -----------------------------------------------------------------------


@pytest.mark.parametrize("header", [f"bytes={'9' * 5000}-", f"bytes={'9' * 5000}-{'9' * 5000}"])
def test_a_range_starting_past_any_size_is_416_however_many_digits(client, readme, header):
    response = client.get(view_url(Identifier=readme), headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */8"


def test_a_range_ending_or_counting_back_past_the_size_is_the_whole_rest(client, readme):
    response = client.get(view_url(Identifier=readme), headers={"Range": f"bytes=5-{'9' * 5000}"})
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == b"me."
    response = client.get(view_url(Identifier=readme), headers={"Range": f"bytes=-{'9' * 5000}"})
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == b"Read me."


# --- Names -----------------------------------------------------------------------


def test_a_document_whose_name_has_cr_lf_is_served_with_a_clean_header(client, docs_task):
    name = "bad\r\nname.txt"
    (Path(docs_task.directory_paths[0]) / name).write_bytes(b"hi")
    response = client.get(view_url(Identifier=encode_identifier(docs_task.name, 0, name)))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"hi"
    # The header holds no control character; the name is percent-encoded (RFC 6266).
    assert response["Content-Disposition"] == "inline; filename*=utf-8''bad%0D%0Aname.txt"


def test_a_multipart_file_name_with_cr_lf_is_ignored_like_every_file_name(aci):
    upload = SimpleUploadedFile("in\r\nsert.xml", b"<insertXML/>")
    response = aci.client.post("/", {"action": "Fetch", "FetchAction": "NoOp", "InsertXML": upload})
    assert aci.success(aci.parse_xml(response)).findtext("token")
    assert Action.objects.get().params == {"InsertXML": "<insertXML/>"}


# --- Multipart bounds ------------------------------------------------------------


def test_more_file_parts_than_the_limit_is_request_too_large(aci, settings):
    files = {f"File{n}": SimpleUploadedFile(f"{n}.txt", b"x") for n in range(101)}
    response = aci.client.post("/", {"action": "Fetch", "FetchAction": "NoOp", **files})
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    assert "100 file parts" in aci.error_description(root)
    assert not Action.objects.exists()


def test_a_multipart_file_part_counts_against_the_body_limit(aci, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    upload = SimpleUploadedFile("big.xml", b"x" * 2000)
    response = aci.client.post("/", {"action": "Fetch", "FetchAction": "NoOp", "Note": upload})
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    assert "1000 bytes" in aci.error_description(root)
    assert not Action.objects.exists()


# --- A body the server refused ------------------------------------------------------


def test_a_body_the_server_refused_as_too_large_is_request_too_large(aci):
    response = aci.client.post(
        "/?action=Fetch&FetchAction=NoOp",
        b"",
        content_type="x",
        headers={BODY_REFUSED_HEADER: TOO_LARGE},
    )
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORREQUESTTOOLARGE"
    assert not Action.objects.exists()


def test_a_body_the_server_refused_for_its_client_is_not_authorized(aci, settings):
    settings.CONNECTOR_ACI_ROLES = {"admin": {"actions": ["*"], "clients": ["10.0.0.1"]}}
    response = aci.client.post(
        "/?action=GetVersion",
        b"",
        content_type="x",
        headers={BODY_REFUSED_HEADER: NOT_AUTHORIZED},
    )
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORNOTAUTHORIZED"
    assert "no role lets client 127.0.0.1 run any action" in aci.error_description(root)
