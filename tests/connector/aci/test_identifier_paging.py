"""QueueInfo GetStatus pages the identifiers of an action (Start, MaxIdentifiers)."""

from __future__ import annotations

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


def test_max_identifiers_up_to_100000_is_accepted(aci):
    token = finished_with_identifiers(aci, 2)
    element = page(aci, token, MaxIdentifiers="100000")
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
        ("MaxIdentifiers", "100001"),
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


def test_get_status_without_a_token_shows_the_first_page_of_each_action(aci):
    finished_with_identifiers(aci, 1001)
    data = aci.success(aci.queue_info("GetStatus"))
    element = data.find("actions/action/identifiers")
    assert element.get("total") == "1001"
    assert len(element.findall("identifier")) == 1000
