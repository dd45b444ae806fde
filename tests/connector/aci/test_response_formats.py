"""Real responses in all three formats, parsed back."""

from __future__ import annotations

import re

import pytest

from connector.aci import product
from connector.models import Action

pytestmark = pytest.mark.django_db


def test_get_version_in_xml(aci, monkeypatch):
    monkeypatch.setattr(product, "BUILD", "b42")
    monkeypatch.setattr(product, "COMMIT", "abc123")
    data = aci.success(aci.call("GetVersion"))
    assert [child.tag for child in data] == ["productname", "version", "build", "commit"]
    assert data.findtext("productname") == product.PRODUCT_NAME
    assert data.findtext("version") == product.VERSION
    assert data.findtext("build") == "b42"
    assert data.findtext("commit") == "abc123"


def test_get_version_in_json(aci, monkeypatch):
    monkeypatch.setattr(product, "BUILD", "b42")
    monkeypatch.setattr(product, "COMMIT", "abc123")
    assert aci.json("GetVersion", "json") == {
        "autnresponse": {
            "action": {"$": "GETVERSION"},
            "response": {"$": "SUCCESS"},
            "responsedata": {
                "productname": {"$": product.PRODUCT_NAME},
                "version": {"$": product.VERSION},
                "build": {"$": "b42"},
                "commit": {"$": "abc123"},
            },
        }
    }


def test_get_version_in_simplejson(aci, monkeypatch):
    monkeypatch.setattr(product, "BUILD", "b42")
    monkeypatch.setattr(product, "COMMIT", "abc123")
    assert aci.json("GetVersion", "simplejson") == {
        "autnresponse": {
            "action": "GETVERSION",
            "response": "SUCCESS",
            "responsedata": {
                "productname": product.PRODUCT_NAME,
                "version": product.VERSION,
                "build": "b42",
                "commit": "abc123",
            },
        }
    }


def test_fetch_token_in_each_format(aci):
    assert aci.success(aci.call("Fetch", FetchAction="NoOp")).findtext("token")
    tokens = [action.token for action in Action.objects.order_by("pk")]
    data = aci.json("Fetch", "json", FetchAction="NoOp")
    assert data["autnresponse"]["action"] == {"$": "FETCH"}
    assert data["autnresponse"]["responsedata"] == {"token": {"$": data_token(data)}}
    simple = aci.json("Fetch", "simplejson", FetchAction="NoOp")
    assert simple["autnresponse"]["action"] == "FETCH"
    assert simple["autnresponse"]["response"] == "SUCCESS"
    assert list(simple["autnresponse"]["responsedata"]) == ["token"]
    assert [action.token for action in Action.objects.order_by("pk")] == [
        *tokens,
        data_token(data),
        simple["autnresponse"]["responsedata"]["token"],
    ]


def data_token(data):
    return data["autnresponse"]["responsedata"]["token"]["$"]


def test_status_in_simplejson_lists_elements_that_can_repeat_even_when_there_is_one(aci):
    token = aci.submit()
    action = aci.claim()
    aci.finish(
        action,
        counts={"DOCS": {"seen": 1}},
        result={
            "identifiers": [{"identifier": "ID1", "type": "file"}],
            "success": ["ID1"],
            "failed": [{"identifier": "ID2", "reason": "locked"}],
        },
    )
    data = aci.json(
        "QueueInfo", "simplejson", QueueName="fetch", QueueAction="GetStatus", Token=token
    )
    assert data["autnresponse"]["action"] == "QUEUEINFO"
    (status,) = data["autnresponse"]["responsedata"]["actions"]["action"]
    assert status["token"] == token
    assert status["status"] == "Finished"
    assert status["documentcounts"] == {"documentcount": [{"@task": "DOCS", "@seen": "1"}]}
    # Lists come in pages (issue 13): each says where it is and that there is no more.
    page = {"@total": "2", "@start": "1", "@shown": "2", "@more": "false"}
    assert status["tasks"] == {
        **page,
        "success": ["ID1"],
        "failed": [{"@reason": "locked", "$": "ID2"}],
    }
    assert status["identifiers"] == {
        **page,
        "@total": "1",
        "@shown": "1",
        "identifier": [{"@type": "file", "$": "ID1"}],
    }


def test_status_in_json_keeps_single_elements_as_objects(aci):
    token = aci.submit()
    aci.finish(aci.claim(), counts={"DOCS": {"seen": 1}}, result={"success": ["ID1"]})
    data = aci.json("QueueInfo", "json", QueueName="fetch", QueueAction="GetStatus", Token=token)
    status = data["autnresponse"]["responsedata"]["actions"]["action"]
    assert status["status"] == {"$": "Finished"}
    assert status["documentcounts"] == {"documentcount": {"@task": "DOCS", "@seen": "1"}}
    # The list that is empty is still there, as an empty list (it was left out).
    assert status["tasks"] == {
        "@total": "1",
        "@start": "1",
        "@shown": "1",
        "@more": "false",
        "success": {"$": "ID1"},
        "failed": [],
    }


@pytest.mark.parametrize("response_format", ["json", "simplejson"])
def test_an_empty_queue_lists_no_actions_as_an_empty_list(aci, response_format):
    data = aci.json("QueueInfo", response_format, QueueName="fetch", QueueAction="GetStatus")
    actions = data["autnresponse"]["responsedata"]["actions"]
    # Empty as non-empty: the action key is there and holds a list (it was {} with no key).
    assert actions["action"] == []


def test_error_in_each_format_has_the_whole_envelope(aci):
    root = aci.call("Nope")
    error = root.find("responsedata/error")
    assert [child.tag for child in error] == [
        "errorid",
        "rawerrorid",
        "errorstring",
        "errordescription",
        "errorcode",
        "errortime",
    ]
    simple = aci.json("Nope", "simplejson")["autnresponse"]
    assert simple["action"] == "NOPE"
    assert simple["response"] == "ERROR"
    assert simple["responsedata"]["error"]["errorcode"] == "ERRORNOTIMPLEMENTED"
    assert simple["responsedata"]["error"]["errorid"] == "CONNECTORNOPE101"
    assert simple["responsedata"]["error"]["rawerrorid"] == "0x65"
    assert re.fullmatch(
        r"\d\d [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d", simple["responsedata"]["error"]["errortime"]
    )
    full = aci.json("Nope", "json")["autnresponse"]
    assert full["response"] == {"$": "ERROR"}
    assert full["responsedata"]["error"]["errorstring"] == {"$": "ERROR"}


def test_unknown_response_format_is_answered_in_xml(aci):
    response = aci.get("/?action=GetVersion&ResponseFormat=yaml")
    root = aci.parse_xml(response)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "ResponseFormat" in aci.error_description(root)
    assert "xml, json, simplejson" in aci.error_description(root)


def test_forbidden_xml_characters_in_stored_values_are_stripped(aci):
    aci.get("/?action=Fetch&FetchAction=NoOp&ActionID=a%01b%1Fc%EF%BF%BEd")
    token = Action.objects.get().token
    root = aci.queue_info("GetActionParameters", Token=token)
    assert aci.success(root).findtext("actionid") == "abcd"
