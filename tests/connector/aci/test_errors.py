"""The error catalogue: every code, when it is given, and that a refusal changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import AsyncRequestFactory, Client, override_settings

from connector.aci import dispatch, views
from connector.aci.errors import CATALOGUE
from connector.models import Action
from connector.tokens import new_token

pytestmark = pytest.mark.django_db

DOCS = Path(settings.BASE_DIR) / "docs" / "aci.md"


def refused(aci, root, code):
    assert aci.error_code(root) == code
    kind = CATALOGUE[code]
    error = root.find("responsedata/error")
    action = re.sub(r"[^A-Z0-9]", "", (root.findtext("action") or ""))
    assert error.findtext("errorid") == f"CONNECTOR{action}{kind.number}"
    assert error.findtext("rawerrorid") == hex(kind.number)
    assert error.findtext("errorstring") == kind.errorstring
    assert error.findtext("errordescription")
    assert re.fullmatch(r"\d\d [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d", error.findtext("errortime"))
    return aci.error_description(root)


def test_every_error_code_is_documented_with_its_ids():
    text = DOCS.read_text()
    for code, kind in CATALOGUE.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{code}` |")]
        assert len(rows) == 1, f"{code} has no row in the catalogue of docs/aci.md"
        (row,) = rows
        assert hex(kind.number) in row, code
        assert str(kind.number) in row, code


def test_error_numbers_are_unique():
    numbers = [kind.number for kind in CATALOGUE.values()]
    assert len(numbers) == len(set(numbers))


def test_unknown_action_is_not_implemented(aci):
    root = aci.call("Teleport", Flavour="x")
    description = refused(aci, root, "ERRORNOTIMPLEMENTED")
    assert root.findtext("action") == "TELEPORT"
    assert root.findtext("responsedata/error/errorstring") == "ERROR"
    assert description == "The requested action was not recognised"


def test_missing_queue_name_is_a_missing_parameter(aci):
    description = refused(aci, aci.call("QueueInfo", QueueAction="GetStatus"), "ERRORMISSINGPARAMS")
    assert "QueueName" in description
    assert "fetch" in description


def test_missing_queue_action_is_a_missing_parameter(aci):
    description = refused(aci, aci.call("QueueInfo", QueueName="fetch"), "ERRORMISSINGPARAMS")
    assert "QueueAction" in description
    assert "GetStatus" in description


@pytest.mark.parametrize(
    "queue_action",
    ["Cancel", "Stop", "Progress", "ChangePriority", "GetActionParameters", "Duplicate"],
)
def test_queue_actions_on_one_action_need_a_token(aci, queue_action):
    aci.submit()
    before = aci.snapshot()
    description = refused(aci, aci.queue_info(queue_action, Priority="1"), "ERRORMISSINGPARAMS")
    assert "Token" in description
    assert aci.snapshot() == before


def test_unknown_queue_action_is_refused_listing_the_known_ones(aci):
    description = refused(aci, aci.queue_info("Explode"), "ERRORPARAMINVALID")
    assert "Explode" in description
    assert "GetStatus" in description
    assert "Duplicate" in description


def test_unknown_queue_is_refused_listing_the_configured_ones(aci):
    before = aci.snapshot()
    root = aci.call("QueueInfo", QueueName="index", QueueAction="Pause")
    description = refused(aci, root, "ERRORUNKNOWNQUEUE")
    assert "'index'" in description
    assert "fetch" in description
    assert aci.snapshot() == before


@pytest.mark.parametrize(
    "token",
    ["not a token!", "abc", "dGVzdA==", "bG9jYWxob3N0OjgwMDA6RkVUQ0g6MTIz", "x" * 500],
)
@pytest.mark.parametrize("queue_action", ["GetStatus", "Cancel", "Stop", "Duplicate"])
def test_malformed_token_is_refused(aci, token, queue_action):
    aci.submit()
    before = aci.snapshot()
    description = refused(aci, aci.queue_info(queue_action, Token=token), "ERRORTOKENINVALID")
    assert "Token" in description
    assert aci.snapshot() == before


@pytest.mark.parametrize("queue_action", ["GetStatus", "Cancel", "Stop", "Progress", "Duplicate"])
def test_unknown_token_is_refused(aci, queue_action):
    aci.submit()
    before = aci.snapshot()
    token = new_token(host="testserver", port=80)
    description = refused(aci, aci.queue_info(queue_action, Token=token), "ERRORTOKENUNKNOWN")
    assert "fetch" in description
    assert aci.snapshot() == before


def test_not_queued_and_not_running_have_their_own_codes(aci):
    token = aci.submit()
    before = aci.snapshot()
    refused(aci, aci.queue_info("Stop", Token=token), "ERRORNOTRUNNING")
    assert aci.snapshot() == before
    aci.claim()
    before = aci.snapshot()
    refused(aci, aci.queue_info("Cancel", Token=token), "ERRORNOTQUEUED")
    assert aci.snapshot() == before


def test_a_parameter_of_a_megabyte_is_refused_saying_the_limit(aci):
    limit = settings.CONNECTOR_MAX_PARAMETER_LENGTH
    big = "x" * (1024 * 1024)
    response = aci.client.post(
        "/", f"action=Fetch&FetchAction=NoOp&Note={big}", content_type="text/plain"
    )
    description = refused(aci, aci.parse_xml(response), "ERRORPARAMTOOLONG")
    assert "Note" in description
    assert str(limit) in description
    assert not Action.objects.exists()


def test_a_parameter_of_a_megabyte_in_the_query_string_is_refused(aci):
    response = aci.get(f"/?action=Fetch&FetchAction=NoOp&Note={'y' * 1024 * 1024}")
    refused(aci, aci.parse_xml(response), "ERRORPARAMTOOLONG")
    assert not Action.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_too_large(aci):
    response = aci.client.post(
        "/", "action=Fetch&FetchAction=NoOp&Note=" + "z" * 2000, content_type="text/plain"
    )
    description = refused(aci, aci.parse_xml(response), "ERRORREQUESTTOOLARGE")
    assert "1000 bytes" in description
    assert not Action.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_multipart_body_over_the_upload_limit_is_too_large(aci):
    response = aci.client.post("/", {"action": "Fetch", "FetchAction": "NoOp", "Note": "z" * 2000})
    refused(aci, aci.parse_xml(response), "ERRORREQUESTTOOLARGE")
    assert not Action.objects.exists()


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_too_many_parameters_are_too_large(aci):
    query = "&".join(f"p{n}=1" for n in range(10))
    response = aci.get(f"/?action=Fetch&FetchAction=NoOp&{query}")
    description = refused(aci, aci.parse_xml(response), "ERRORREQUESTTOOLARGE")
    assert "5 parameters" in description
    assert not Action.objects.exists()


def test_a_value_that_is_not_utf8_is_refused_naming_the_parameter(aci):
    response = aci.get("/?action=Fetch&FetchAction=NoOp&Note=caf%E9")
    description = refused(aci, aci.parse_xml(response), "ERRORPARAMINVALID")
    assert "Note" in description
    assert "UTF-8" in description
    assert not Action.objects.exists()


def test_a_nul_character_in_a_value_is_refused_naming_the_parameter(aci):
    response = aci.get("/?action=Fetch&FetchAction=NoOp&ActionID=a%00b")
    description = refused(aci, aci.parse_xml(response), "ERRORPARAMINVALID")
    assert "ActionID" in description
    assert "NUL" in description
    assert not Action.objects.exists()


def test_a_body_that_is_not_utf8_is_refused_in_the_format_asked_for(aci):
    response = aci.client.post(
        "/",
        b"action=Fetch&FetchAction=NoOp&ResponseFormat=simplejson&Note=\xff\xfe",
        content_type="text/plain",
    )
    error = response.json()["autnresponse"]["responsedata"]["error"]
    assert error["errorcode"] == "ERRORPARAMINVALID"
    assert "Note" in error["errordescription"]
    assert not Action.objects.exists()


def test_a_parameter_name_that_is_not_utf8_is_refused(aci):
    response = aci.get("/?action=GetVersion&%C3%28=1")
    description = refused(aci, aci.parse_xml(response), "ERRORPARAMINVALID")
    assert "not valid UTF-8" in description


def test_a_path_that_is_not_utf8_is_refused_under_asgi(db):
    request = AsyncRequestFactory().get("/")
    request.scope["raw_path"] = b"/action=Fetch&FetchAction=NoOp&Note=%FF"
    response = views.endpoint(request)
    assert b"<errorcode>ERRORPARAMINVALID</errorcode>" in response.content
    assert b"Note" in response.content
    assert not Action.objects.exists()


def test_an_unexpected_failure_is_an_internal_error_without_details(aci, monkeypatch):
    def explode(request):
        raise RuntimeError("secret detail of /etc/passwd")

    monkeypatch.setitem(dispatch.ACTIONS, "GETVERSION", explode)
    client = Client(raise_request_exception=True)
    response = client.get("/?action=GetVersion&ResponseFormat=simplejson")
    assert response.status_code == 200
    body = response.content.decode()
    assert "secret" not in body
    assert "Traceback" not in body
    error = response.json()["autnresponse"]["responsedata"]["error"]
    assert error["errorcode"] == "ERRORINTERNAL"
    assert error["errorid"] == "CONNECTORGETVERSION112"


@pytest.mark.parametrize(
    "url",
    [
        "/action=",
        "/a=&&&",
        "/?action",
        "/?=&&=",
        "/?action=%",
        "/action=%ZZ",
        "/?action=QueueInfo&QueueName=%00&QueueAction=%00",
        "/?action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&Token=%00",
        "/?action=Fetch&FetchAction=%F0%9F%92%A5",
        "/?action=QueueInfo&QueueName=fetch&QueueAction=GetStatus&MaxResults=99999999999999999999",
    ],
)
def test_garbage_requests_get_an_aci_error_never_a_server_error(url, db):
    response = Client(raise_request_exception=True).get(url)
    assert response.status_code == 200
    assert b"<response>ERROR</response>" in response.content
    assert not Action.objects.exists()
