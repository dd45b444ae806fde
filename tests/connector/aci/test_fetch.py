"""action=Fetch: validate, store, queue, answer with a token."""

from __future__ import annotations

import base64

import pytest

from connector.models import Action, Status
from connector.tokens import canonical_token

pytestmark = pytest.mark.django_db


def test_fetch_queues_the_action_and_returns_its_token(aci):
    token = aci.submit("Sleep", Seconds="0.5", Steps="5", Priority="7", ActionID="run-1")
    action = Action.objects.get()
    assert action.token == canonical_token(token) == token
    assert action.status == Status.QUEUED
    assert action.queue == "fetch"
    assert action.fetch_action == "SLEEP"
    assert action.priority == 7
    assert action.action_id == "run-1"
    # The standard parameters and those with their own columns are not kept twice.
    assert action.params == {"Seconds": "0.5", "Steps": "5"}
    assert action.submitted_from == "127.0.0.1"
    assert action.submitted_by == ""


def test_fetch_token_names_the_host_and_port_the_client_used(aci):
    response = aci.client.get("/?action=Fetch&FetchAction=NoOp", headers={"host": "localhost:9123"})
    token = aci.success(aci.parse_xml(response)).findtext("token")
    host, port, queue, _ = base64.urlsafe_b64decode(token).decode().split(":")
    assert (host, port, queue) == ("localhost", "9123", "FETCH")


def test_fetch_priority_defaults_to_zero(aci):
    aci.submit()
    assert Action.objects.get().priority == 0


def test_fetch_without_fetch_action_is_refused_naming_the_available_ones(aci):
    root = aci.call("Fetch")
    assert aci.error_code(root) == "ERRORMISSINGPARAMS"
    assert "FetchAction" in aci.error_description(root)
    assert "NOOP" in aci.error_description(root)
    assert not Action.objects.exists()


def test_fetch_of_an_unknown_fetch_action_lists_the_available_ones(aci):
    root = aci.call("Fetch", FetchAction="Teleport")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    description = aci.error_description(root)
    assert "Teleport" in description
    assert "NOOP" in description
    assert "SLEEP" in description
    assert not Action.objects.exists()


def test_fetch_with_parameters_the_fetch_action_rejects_is_refused(aci):
    root = aci.call("Fetch", FetchAction="Sleep", Seconds="forever")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "Seconds" in aci.error_description(root)
    assert not Action.objects.exists()


@pytest.mark.parametrize("priority", ["high", "1.5", "99999999999"])
def test_fetch_with_a_bad_priority_is_refused(aci, priority):
    root = aci.call("Fetch", FetchAction="NoOp", Priority=priority)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "Priority" in aci.error_description(root)
    assert not Action.objects.exists()


def test_fetch_with_an_overlong_action_id_is_refused(aci):
    root = aci.call("Fetch", FetchAction="NoOp", ActionID="x" * 401)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "ActionID" in aci.error_description(root)
    assert not Action.objects.exists()


def test_fetch_stores_the_tasks_the_fetch_action_names(aci, monkeypatch):
    from connector.fetch.diagnostics import NoOp

    monkeypatch.setattr(NoOp, "validate", lambda self, params: ["DOCS", "MAIL"])
    aci.submit()
    assert Action.objects.get().tasks == "DOCS,MAIL"


def test_fetch_identifiers_end_to_end_lists_the_documents_in_get_status(aci, docs_task):
    import threading

    from connector.fetch.base import execute, fetch_action_names

    if "IDENTIFIERS" not in fetch_action_names():
        pytest.skip("FetchAction=Identifiers is not registered")
    token = aci.submit("Identifiers", ConfigSection="docs", MaxDepth="0")
    assert Action.objects.get().tasks == "DOCS"
    execute(aci.claim(), worker="w1", stop_event=threading.Event())
    data = aci.json(
        "QueueInfo", "simplejson", QueueName="fetch", QueueAction="GetStatus", Token=token
    )
    (status,) = data["autnresponse"]["responsedata"]["actions"]["action"]
    assert status["status"] == "Finished", status
    names = {item["@name"] for item in status["identifiers"]["identifier"]}
    assert {"readme.txt", "q3.txt", "reports"} <= names
