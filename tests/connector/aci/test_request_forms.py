"""Every request form of the protocol page reaches the same action with the same parameters."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncRequestFactory, Client
from django.urls import reverse

from connector.aci import views
from connector.models import Action

pytestmark = pytest.mark.django_db


def test_path_form_runs_the_action(aci):
    root = aci.parse_xml(aci.get("/action=GetVersion"))
    assert root.findtext("action") == "GETVERSION"
    assert root.findtext("response") == "SUCCESS"


def test_query_form_runs_the_action(aci):
    root = aci.parse_xml(aci.get("/?action=GetVersion"))
    assert root.findtext("action") == "GETVERSION"
    assert root.findtext("response") == "SUCCESS"


@pytest.mark.parametrize("url", ["/a=GetVersion", "/?a=GetVersion", "/A=GetVersion"])
def test_short_form_a_is_the_action(aci, url):
    assert aci.success(aci.parse_xml(aci.get(url))).findtext("version")


def test_path_form_takes_more_parameters(aci):
    root = aci.parse_xml(aci.get("/action=Fetch&FetchAction=NoOp&Flavour=sour&ActionID=p1"))
    assert aci.success(root).findtext("token")
    action = Action.objects.get()
    assert action.params == {"Flavour": "sour"}
    assert action.action_id == "p1"


def test_path_form_decodes_percent_escapes_and_plus(aci):
    aci.get("/action=Fetch&FetchAction=NoOp&Note=a%20b+c%C3%A9")
    assert Action.objects.get().params == {"Note": "a b cé"}


def test_path_form_under_asgi_keeps_an_encoded_ampersand_inside_a_value(db):
    request = AsyncRequestFactory().get("/action=Fetch&FetchAction=NoOp&Note=salt&pepper")
    # What daphne hands over: the path before percent-decoding.
    request.scope["raw_path"] = b"/action=Fetch&FetchAction=NoOp&Note=salt%26pepper%3D1"
    response = views.endpoint(request)
    assert b"<response>SUCCESS</response>" in response.content
    assert Action.objects.get().params == {"Note": "salt&pepper=1"}


def test_path_form_under_asgi_reads_the_query_string_bytes(db):
    request = AsyncRequestFactory().get("/")
    request.scope["raw_path"] = b"/action=Fetch"
    request.scope["query_string"] = b"FetchAction=NoOp&Note=%E2%9C%93"
    response = views.endpoint(request)
    assert b"<response>SUCCESS</response>" in response.content
    assert Action.objects.get().params == {"Note": "\u2713"}


def test_post_body_is_read_as_url_encoded_whatever_the_content_type(aci):
    response = aci.client.post(
        "/",
        "action=Fetch&FetchAction=NoOp&Note=from+java",
        content_type="text/plain; charset=UTF-8",
    )
    assert aci.success(aci.parse_xml(response)).findtext("token")
    assert Action.objects.get().params == {"Note": "from java"}


def test_post_form_content_type_body_runs_the_action(aci):
    response = aci.client.post(
        "/",
        "action=Fetch&FetchAction=NoOp&Note=form",
        content_type="application/x-www-form-urlencoded",
    )
    assert aci.success(aci.parse_xml(response)).findtext("token")
    assert Action.objects.get().params == {"Note": "form"}


def test_post_multipart_body_takes_fields_and_file_parameters(aci):
    upload = SimpleUploadedFile("insert.xml", "<insertXML>é</insertXML>".encode())
    response = aci.client.post(
        "/", {"action": "Fetch", "FetchAction": "NoOp", "Note": "multi", "InsertXML": upload}
    )
    assert aci.success(aci.parse_xml(response)).findtext("token")
    assert Action.objects.get().params == {"Note": "multi", "InsertXML": "<insertXML>é</insertXML>"}


def test_post_to_path_form_merges_path_query_and_body(aci):
    response = aci.client.post(
        "/action=Fetch&FromPath=1?FromQuery=2",
        "FetchAction=NoOp&FromBody=3",
        content_type="text/plain",
    )
    assert aci.success(aci.parse_xml(response)).findtext("token")
    assert Action.objects.get().params == {"FromPath": "1", "FromQuery": "2", "FromBody": "3"}


def test_a_later_source_replaces_a_parameter_of_an_earlier_one(aci):
    aci.client.post(
        "/action=Fetch&Note=path?FetchAction=NoOp&note=query",
        "NOTE=body",
        content_type="text/plain",
    )
    # The name is kept as first spelled, the value is the last one sent.
    assert Action.objects.get().params == {"Note": "body"}


def test_action_and_parameter_names_are_case_insensitive(aci):
    root = aci.parse_xml(aci.get("/?ACTION=fetch&fetchaction=NOOP&priority=3&actionid=x"))
    assert root.findtext("action") == "FETCH"
    action = Action.objects.get()
    assert (action.fetch_action, action.priority, action.action_id) == ("NOOP", 3, "x")


def test_enumerated_values_are_case_insensitive(aci):
    aci.submit()
    root = aci.parse_xml(
        aci.get("/?action=queueinfo&queuename=FETCH&queueaction=getstatus&responseformat=XML")
    )
    assert len(aci.success(root).findall("actions/action")) == 1
    response = aci.get("/?action=GetVersion&ResponseFormat=SimpleJSON")
    assert response.json()["autnresponse"]["action"] == "GETVERSION"


def test_get_root_without_parameters_goes_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:home")


def test_post_root_without_parameters_is_an_aci_error(aci):
    root = aci.parse_xml(aci.client.post("/", "", content_type="text/plain"))
    assert aci.error_code(root) == "ERRORMISSINGPARAMS"
    assert "action" in aci.error_description(root)


def test_query_without_an_action_is_an_aci_error(aci):
    root = aci.parse_xml(aci.get("/?QueueName=fetch"))
    assert aci.error_code(root) == "ERRORMISSINGPARAMS"


def test_endpoint_needs_no_csrf_token(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/", "action=GetVersion", content_type="text/plain")
    assert response.status_code == 200
    assert b"<response>SUCCESS</response>" in response.content


@pytest.mark.parametrize("method", ["put", "delete", "patch", "options"])
def test_methods_other_than_get_and_post_are_refused(aci, method):
    response = getattr(aci.client, method)("/?action=QueueInfo&QueueName=fetch&QueueAction=Pause")
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORMETHODNOTALLOWED"
    assert not aci.snapshot()[1]
