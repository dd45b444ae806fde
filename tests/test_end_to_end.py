"""The newcomer's journey on the embedded default, over real HTTP to a real ``serve``.

What the README promises: the demo task, an Identifiers action followed to
Finished with its identifiers, Cancel of a queued action, Stop of a running
one, and a dashboard one can sign in to with the password ``serve`` printed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.processes


def test_identifiers_of_the_demo_task_are_listed_and_followed_to_finished(server):
    answer = server.aci("Fetch", FetchAction="Identifiers", ConfigSection="DEMO", MaxDepth="0")
    assert answer["response"] == "SUCCESS"
    token = answer["responsedata"]["token"]
    status = server.wait_for_status(token, "Finished", "Error")
    assert status["status"] == "Finished", status
    assert status["fetchaction"] == "IDENTIFIERS"
    listed = status["identifiers"]["identifier"]
    paths = {item["@path"] for item in listed}
    assert {"handbook", "reports/2026"} <= paths
    documents = [item for item in listed if item["@type"] == "document"]
    assert documents
    (count,) = status["documentcounts"]["documentcount"]
    assert count["@task"] == "DEMO"
    assert int(count["@seen"]) == len(listed)


def test_a_queued_action_is_cancelled_and_a_running_one_stopped(server):
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Pause")
    queued = server.aci("Fetch", FetchAction="Sleep", Seconds="5")["responsedata"]["token"]
    cancel = server.aci("QueueInfo", QueueName="fetch", QueueAction="Cancel", Token=queued)
    assert cancel["response"] == "SUCCESS"
    assert server.status(queued)["status"] == "Cancelled"
    server.aci("QueueInfo", QueueName="fetch", QueueAction="Resume")

    running = server.aci("Fetch", FetchAction="Sleep", Seconds="30", Steps="3000")
    token = running["responsedata"]["token"]
    server.wait_for_status(token, "Processing")
    refused = server.aci("QueueInfo", QueueName="fetch", QueueAction="Cancel", Token=token)
    assert refused["responsedata"]["error"]["errorcode"] == "ERRORNOTQUEUED"
    stop = server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)
    assert stop["response"] == "SUCCESS"
    stopped = server.wait_for_status(token, "Stopped", "Finished", "Error", timeout=5)
    assert stopped["status"] == "Stopped"
    assert int(stopped["documentcounts"]["documentcount"][0]["@seen"]) > 0
    again = server.aci("QueueInfo", QueueName="fetch", QueueAction="Stop", Token=token)
    assert again["responsedata"]["error"]["errorcode"] == "ERRORNOTRUNNING"
    assert server.status(queued)["status"] == "Cancelled"


def test_the_dashboard_accepts_the_admin_password_serve_printed(server):
    _, dashboard = server.sign_in()
    assert dashboard.geturl().endswith("/dashboard/")
    assert "Queue fetch" in dashboard.read().decode()
