"""A parameter that a QueueAction would have to ignore, changing what the caller asked, is refused.

``QueueAction=Pause&Token=T`` once paused the whole queue: the caller meant one
action. Such requests now get ERRORPARAMINVALID naming the parameter and what to
do, and change nothing. Harmless extra parameters are still accepted.
"""

from __future__ import annotations

import pytest

from connector import queue
from connector.aci.queueinfo import CONFLICTS, LISTING_PARAMETERS
from connector.models import Action

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("queue_action", ["Pause", "Resume", "QueueStatus"])
def test_whole_queue_actions_refuse_a_token_and_change_nothing(aci, queue_action):
    token = aci.submit()
    if queue_action == "Resume":
        queue.set_paused(queue="fetch", paused=True, changed_by="", changed_from="", via="ui")
    before = aci.snapshot()
    root = aci.queue_info(queue_action, Token=token)
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    description = aci.error_description(root)
    assert f"QueueAction={queue_action} does not take the Token parameter" in description
    assert "whole queue" in description
    assert aci.snapshot() == before


def test_pause_with_a_token_leaves_the_queue_running(aci):
    token = aci.submit()
    aci.queue_info("Pause", Token=token)
    assert not queue.is_paused("fetch")
    assert "QueueAction=Cancel" in aci.error_description(aci.queue_info("Pause", Token=token))


@pytest.mark.parametrize("name", LISTING_PARAMETERS)
def test_get_status_refuses_listing_parameters_beside_a_token(aci, name):
    token = aci.submit()
    root = aci.queue_info("GetStatus", Token=token, **{name: "1"})
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert f"does not take the {name} parameter beside a Token" in aci.error_description(root)


def test_get_status_takes_its_filters_without_a_token(aci):
    aci.submit()
    data = aci.success(aci.queue_info("GetStatus", State="queued", MaxResults="5"))
    assert len(data.findall("actions/action")) == 1


def test_duplicate_refuses_a_priority_it_would_not_use(aci):
    token = aci.submit(Priority="3")
    before = aci.snapshot()
    root = aci.queue_info("Duplicate", Token=token, Priority="9")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "ChangePriority" in aci.error_description(root)
    assert aci.snapshot() == before
    assert Action.objects.count() == 1


def test_blank_values_and_harmless_extra_parameters_are_accepted(aci):
    # A form's empty field is not a request; an unknown extra parameter is ignored, as IDOL does.
    data = aci.success(aci.queue_info("Pause", Token="", EncryptResponse="false", Foo="bar"))
    assert data.findtext("paused") == "true"
    aci.success(aci.queue_info("Resume"))


def test_the_table_names_only_known_queue_actions():
    from connector.aci.queueinfo import QUEUE_ACTIONS

    assert set(CONFLICTS) <= {name.lower() for name in QUEUE_ACTIONS}
