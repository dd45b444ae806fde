"""QueueInfo GetStatus pages the identifiers of an action (Start, MaxIdentifiers)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

pytestmark = pytest.mark.django_db


def finished_with_identifiers(aci, n: int) -> str:
    token = aci.submit()
    identifiers = [
        {"identifier": f"ID{i}", "type": "document", "name": f"{i}.txt"} for i in range(n)
    ]
    aci.finish(aci.claim(), result={"identifiers": identifiers})
    return token


def page(aci, token: str, **params: str):
    data = aci.success(aci.queue_info("GetStatus", Token=token, **params))
    element = data.find("actions/action/identifiers")
    assert element is not None
    return element


def test_get_status_shows_the_first_1000_identifiers_and_the_total_by_default(aci):
    token = finished_with_identifiers(aci, 1005)
    element = page(aci, token)
    assert element.get("total") == "1005"
    assert element.get("start") == "1"
    shown = [item.text for item in element.findall("identifier")]
    assert shown == [f"ID{i}" for i in range(1000)]


def test_start_and_max_identifiers_select_a_page(aci):
    token = finished_with_identifiers(aci, 25)
    element = page(aci, token, Start="11", MaxIdentifiers="10")
    assert (element.get("total"), element.get("start")) == ("25", "11")
    assert [item.text for item in element.findall("identifier")] == [
        f"ID{i}" for i in range(10, 20)
    ]
    assert element.find("identifier").get("name") == "10.txt"


def test_paging_through_every_page_yields_every_identifier_once(aci):
    token = finished_with_identifiers(aci, 23)
    seen: list[str] = []
    start = 1
    while True:
        element = page(aci, token, Start=str(start), MaxIdentifiers="5")
        items = [item.text or "" for item in element.findall("identifier")]
        if not items:
            break
        seen += items
        start += len(items)
    assert seen == [f"ID{i}" for i in range(23)]
    assert start == int(element.get("total")) + 1


def test_a_start_beyond_the_end_gives_an_empty_page_with_the_total(aci):
    token = finished_with_identifiers(aci, 3)
    element = page(aci, token, Start="4")
    assert (element.get("total"), element.get("start")) == ("3", "4")
    assert element.findall("identifier") == []


def test_an_empty_result_has_total_zero(aci):
    token = finished_with_identifiers(aci, 0)
    element = page(aci, token)
    assert element.get("total") == "0"
    assert element.findall("identifier") == []


def test_max_identifiers_up_to_10000_is_accepted(aci):
    # The most one answer shows (it was 100000: a 23 MB answer); the rest come in pages.
    token = finished_with_identifiers(aci, 2)
    element = page(aci, token, MaxIdentifiers="10000")
    assert len(element.findall("identifier")) == 2


def test_actions_without_identifiers_show_no_identifiers_element(aci):
    token = aci.submit()
    data = aci.success(aci.queue_info("GetStatus", Token=token, Start="2"))
    assert data.find("actions/action/identifiers") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Start", "0"),
        ("Start", "-1"),
        ("Start", "one"),
        ("Start", "1.5"),
        ("MaxIdentifiers", "0"),
        ("MaxIdentifiers", "10001"),
        ("MaxIdentifiers", "ten"),
    ],
)
def test_bad_paging_values_are_refused(aci, name, value):
    token = finished_with_identifiers(aci, 3)
    before = aci.snapshot()
    root = aci.queue_info("GetStatus", Token=token, **{name: value})
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert name in aci.error_description(root)
    assert aci.snapshot() == before


def test_get_status_without_a_token_shows_no_identifiers_but_says_how_to_get_them(aci):
    # Whole-queue answers once showed 1000 identifiers of every action (9.7 MB for 50).
    token = finished_with_identifiers(aci, 1001)
    data = aci.success(aci.queue_info("GetStatus"))
    element = data.find("actions/action/identifiers")
    assert element.get("total") == "1001"
    assert (element.get("shown"), element.get("more")) == ("0", "true")
    assert element.findall("identifier") == []
    assert parse_qs(element.get("next")) == {
        "Token": [token],
        "Start": ["1"],
        "MaxIdentifiers": ["1000"],
    }


def test_a_page_says_how_many_it_shows_and_how_to_ask_for_the_next(aci):
    token = finished_with_identifiers(aci, 6360)
    element = page(aci, token)
    assert (element.get("total"), element.get("start"), element.get("shown")) == (
        "6360",
        "1",
        "1000",
    )
    assert element.get("more") == "true"
    assert parse_qs(element.get("next")) == {
        "Token": [token],
        "Start": ["1001"],
        "MaxIdentifiers": ["1000"],
    }


def test_following_next_reads_every_identifier_once(aci):
    token = finished_with_identifiers(aci, 23)
    seen: list[str] = []
    query = {"MaxIdentifiers": "5"}
    while True:
        element = page(aci, token, **query)
        seen += [item.text or "" for item in element.findall("identifier")]
        if element.get("more") != "true":
            break
        query = {name: values[0] for name, values in parse_qs(element.get("next")).items()}
        assert query.pop("Token") == token
    assert seen == [f"ID{i}" for i in range(23)]
    assert element.get("next") is None


def test_the_last_page_says_there_is_no_more(aci):
    token = finished_with_identifiers(aci, 25)
    element = page(aci, token, Start="21", MaxIdentifiers="10")
    assert (element.get("shown"), element.get("more")) == ("5", "false")


def test_whole_queue_identifiers_only_on_request_and_bounded_per_answer(aci):
    finished_with_identifiers(aci, 30)
    finished_with_identifiers(aci, 30)
    data = aci.success(aci.queue_info("GetStatus", MaxIdentifiers="4"))
    for element in data.findall("actions/action/identifiers"):
        assert len(element.findall("identifier")) == 4
        assert element.get("more") == "true"
    # MaxResults x MaxIdentifiers may not pass 10000 identifiers in one answer.
    root = aci.queue_info("GetStatus", MaxResults="1000", MaxIdentifiers="11")
    assert aci.error_code(root) == "ERRORPARAMINVALID"
    assert "10000" in aci.error_description(root)
    aci.success(aci.queue_info("GetStatus", MaxResults="1000", MaxIdentifiers="10"))


def test_task_lists_are_paged_like_identifiers(aci):
    token = aci.submit()
    failed = [{"identifier": f"F{i}", "reason": "locked"} for i in range(3)]
    aci.finish(aci.claim(), result={"success": [f"S{i}" for i in range(4)], "failed": failed})
    data = aci.success(aci.queue_info("GetStatus", Token=token, Start="3", MaxIdentifiers="3"))
    tasks = data.find("actions/action/tasks")
    assert (tasks.get("total"), tasks.get("start"), tasks.get("shown")) == ("7", "3", "3")
    assert [(item.tag, item.text) for item in tasks] == [
        ("success", "S2"),
        ("success", "S3"),
        ("failed", "F0"),
    ]
    assert parse_qs(tasks.get("next"))["Start"] == ["6"]
    whole = aci.success(aci.queue_info("GetStatus")).find("actions/action/tasks")
    assert (whole.get("total"), whole.get("shown"), len(whole)) == ("7", "0", 0)
