"""Every GetStatus answer is bounded, says how much there is, and how to read the rest.

Before: MaxResults up to 100000, 1000 identifiers of every action in a
whole-queue listing, MaxIdentifiers up to 100000, and every action's whole
result and parameters loaded to answer (9.7 MB, +104 MiB RSS for 50 actions).
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from connector.aci.queries import ActionFilter, find_action, list_actions
from connector.aci.queueinfo import MAX_RESULTS_LIMIT
from connector.aci.status import MAX_IDENTIFIERS_LIMIT
from connector.models import Action

pytestmark = pytest.mark.django_db


def tokens_of(data) -> list[str]:
    return [action.findtext("token") for action in data.findall("actions/action")]


def test_max_results_is_at_most_1000_and_the_refusal_says_how_to_page(aci):
    assert MAX_RESULTS_LIMIT == 1000
    aci.success(aci.queue_info("GetStatus", MaxResults="1000"))
    before = aci.snapshot()
    root = aci.queue_info("GetStatus", MaxResults="1001")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    description = aci.error_description(root)
    assert "MaxResults" in description
    assert "Start" in description
    assert aci.snapshot() == before


def test_the_listing_says_its_total_and_start_pages_through_it(aci):
    submitted = [aci.submit() for _ in range(5)]
    newest_first = submitted[::-1]
    data = aci.success(aci.queue_info("GetStatus", MaxResults="2"))
    actions = data.find("actions")
    assert (actions.get("total"), actions.get("start"), actions.get("shown")) == ("5", "1", "2")
    assert actions.get("more") == "true"
    assert parse_qs(actions.get("next")) == {"MaxResults": ["2"], "Start": ["3"]}
    seen = tokens_of(data)
    while actions.get("more") == "true":
        query = {name: values[0] for name, values in parse_qs(actions.get("next")).items()}
        data = aci.success(aci.queue_info("GetStatus", **query))
        actions = data.find("actions")
        seen += tokens_of(data)
    assert seen == newest_first
    assert (actions.get("start"), actions.get("shown"), actions.get("more")) == ("5", "1", "false")
    assert actions.get("next") is None


def test_paging_keeps_the_filters(aci):
    for _ in range(3):
        aci.submit()
    aci.finish(aci.claim())
    data = aci.success(aci.queue_info("GetStatus", State="queued", Start="2", MaxResults="1"))
    actions = data.find("actions")
    assert (actions.get("total"), actions.get("start"), actions.get("shown")) == ("2", "2", "1")
    assert actions.get("more") == "false"


def test_an_empty_listing_says_so(aci):
    actions = aci.success(aci.queue_info("GetStatus")).find("actions")
    assert dict(actions.attrib) == {"total": "0", "start": "1", "shown": "0", "more": "false"}


def test_one_action_by_token_is_a_page_of_one(aci):
    token = aci.submit()
    actions = aci.success(aci.queue_info("GetStatus", Token=token)).find("actions")
    assert dict(actions.attrib) == {"total": "1", "start": "1", "shown": "1", "more": "false"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("Start", "0"), ("Start", "x"), ("Start", "99999999999999999999"), ("MaxIdentifiers", "-1")],
)
def test_bad_listing_paging_values_are_refused(aci, name, value):
    root = aci.queue_info("GetStatus", **{name: value})
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert name in aci.error_description(root)


def test_one_answer_shows_at_most_10000_identifiers(aci):
    assert MAX_IDENTIFIERS_LIMIT == 10_000
    token = aci.submit()
    items = [{"identifier": f"ID{i}", "name": f"{i}.txt"} for i in range(10_050)]
    aci.finish(aci.claim(), result={"identifiers": items})
    data = aci.success(aci.queue_info("GetStatus", Token=token, MaxIdentifiers="10000"))
    element = data.find("actions/action/identifiers")
    assert len(element.findall("identifier")) == 10_000
    assert (element.get("total"), element.get("more")) == ("10050", "true")
    assert parse_qs(element.get("next"))["Start"] == ["10001"]
    last = aci.success(aci.queue_info("GetStatus", Token=token, Start="10001"))
    assert len(last.findall("actions/action/identifiers/identifier")) == 50


def test_status_queries_leave_results_and_parameters_in_the_database(aci):
    token = aci.submit(Note="x" * 1000)
    aci.finish(aci.claim(), result={"identifiers": [{"identifier": "ID1"}], "success": ["A"]})
    (listed,) = list(list_actions(queue="fetch", filters=ActionFilter()).actions)
    found = find_action(queue="fetch", token=Action.objects.get().token)
    for action in (listed, found):
        assert {"result", "params"} <= action.get_deferred_fields()
    assert listed.token == token
    # Their lists' lengths come from the database instead.
    assert (listed.identifiers_total, listed.success_total, listed.failed_total) == (1, 1, None)


def test_get_action_parameters_and_duplicate_still_see_the_parameters(aci):
    token = aci.submit(Note="kept")
    data = aci.success(aci.queue_info("GetActionParameters", Token=token))
    assert data.findtext("parameters/param[@name='Note']") == "kept"
    copy = aci.success(aci.queue_info("Duplicate", Token=token)).findtext("token")
    assert Action.objects.get(token=copy).params["Note"] == "kept"


def test_a_huge_start_with_a_token_is_refused_not_a_failure(aci):
    token = aci.submit()
    root = aci.queue_info("GetStatus", Token=token, Start="99999999999999999999")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
