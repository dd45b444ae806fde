"""The three renderings of one element tree."""

from __future__ import annotations

import json

import pytest
from defusedxml import ElementTree

from connector.aci.render import el, envelope, render


def _tree():
    return envelope(
        "QueueInfo",
        success=True,
        data=[
            el(
                "actions",
                children=[
                    el(
                        "action",
                        children=[
                            el("token", "T1"),
                            el(
                                "documentcounts",
                                children=[el("documentcount", attrs={"task": "DOCS", "seen": 3})],
                            ),
                            el("tasks", children=[el("failed", "ID1", attrs={"reason": "gone"})]),
                        ],
                    )
                ],
            ),
            el("note", "a"),
            el("note", "b"),
            el("autn:hit", "x"),
            el("empty"),
            el("blank", ""),
        ],
    )


def test_xml_has_the_declaration_namespace_and_escaped_values():
    root = envelope(
        "Fetch", success=True, data=[el("value", "<a & 'b'>", attrs={"q": 'say "hi"\n'})]
    )
    body, content_type = render(root, "xml")
    assert content_type == "text/xml; charset=utf-8"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<autnresponse ')
    assert b'xmlns:autn="http://schemas.autonomy.com/aci/"' in body
    parsed = ElementTree.fromstring(body)
    assert parsed.findtext("action") == "FETCH"
    assert parsed.findtext("response") == "SUCCESS"
    value = parsed.find("responsedata/value")
    assert value.text == "<a & 'b'>"
    assert value.get("q") == 'say "hi"\n'


def test_xml_drops_characters_that_xml_forbids():
    text = "ok\x00\x01\x08\x0b\x0c\x1f\ufffe\ud800 end\t\n"
    body, _ = render(envelope("X", success=True, data=[el("v", text, attrs={"a": text})]), "xml")
    parsed = ElementTree.fromstring(body)
    assert parsed.findtext("responsedata/v") == "ok end\t\n"
    assert parsed.find("responsedata/v").get("a") == "ok end\t\n"


def test_xml_renders_empty_elements_self_closed():
    body, _ = render(envelope("X", success=True, data=[el("empty"), el("blank", "")]), "xml")
    assert b"<empty/>" in body
    assert b"<blank/>" in body


def test_json_follows_idols_mapping():
    body, content_type = render(_tree(), "json")
    assert content_type == "application/json; charset=utf-8"
    assert json.loads(body) == {
        "autnresponse": {
            "action": {"$": "QUEUEINFO"},
            "response": {"$": "SUCCESS"},
            "responsedata": {
                "actions": {
                    "action": {
                        "token": {"$": "T1"},
                        "documentcounts": {"documentcount": {"@task": "DOCS", "@seen": "3"}},
                        "tasks": {"failed": {"@reason": "gone", "$": "ID1"}, "success": []},
                    }
                },
                "note": [{"$": "a"}, {"$": "b"}],
                "autn:hit": {"$": "x"},
                "empty": {},
                "blank": {"$": ""},
            },
        }
    }


def test_simplejson_uses_plain_strings_and_lists_for_elements_that_can_repeat():
    body, content_type = render(_tree(), "simplejson")
    assert content_type == "application/json; charset=utf-8"
    assert json.loads(body) == {
        "autnresponse": {
            "action": "QUEUEINFO",
            "response": "SUCCESS",
            "responsedata": {
                "actions": {
                    "action": [
                        {
                            "token": "T1",
                            "documentcounts": {"documentcount": [{"@task": "DOCS", "@seen": "3"}]},
                            "tasks": {"failed": [{"@reason": "gone", "$": "ID1"}], "success": []},
                        }
                    ]
                },
                "note": ["a", "b"],
                "hit": "x",
                "empty": {},
                "blank": "",
            },
        }
    }


def test_json_forms_drop_forbidden_characters_too():
    root = envelope("X", success=True, data=[el("v", "a\x00b\ud800c")])
    assert json.loads(render(root, "simplejson")[0])["autnresponse"]["responsedata"]["v"] == "abc"
    assert json.loads(render(root, "json")[0])["autnresponse"]["responsedata"]["v"] == {"$": "abc"}


def test_attribute_names_that_are_not_xml_names_are_cleaned():
    root = envelope("X", success=True, data=[el("v", "1", attrs={"1st key!": "a", "&": "b"})])
    parsed = ElementTree.fromstring(render(root, "xml")[0])
    assert parsed.find("responsedata/v").attrib == {"_1stkey": "a"}


def test_attribute_names_that_clean_to_the_same_name_keep_the_first():
    # Found by the property tests: two names cleaning to "a" made a repeated attribute.
    root = envelope("X", success=True, data=[el("v", "1", attrs={"a!": "first", "a": "second"})])
    parsed = ElementTree.fromstring(render(root, "xml")[0])
    assert parsed.find("responsedata/v").attrib == {"a": "first"}
    simple = json.loads(render(root, "simplejson")[0])["autnresponse"]["responsedata"]["v"]
    assert simple == {"@a": "first", "$": "1"}


def test_attribute_names_lose_namespace_prefixes():
    # An undeclared prefix ("x:y") is not well-formed XML.
    root = envelope("X", success=True, data=[el("v", "1", attrs={"x:y": "z"})])
    parsed = ElementTree.fromstring(render(root, "xml")[0])
    assert parsed.find("responsedata/v").attrib == {"xy": "z"}


@pytest.mark.parametrize(
    ("container", "listed"),
    [
        ("actions", ["action"]),
        ("documentcounts", ["documentcount"]),
        ("tasks", ["success", "failed"]),
        ("identifiers", ["identifier"]),
        ("parameters", ["param"]),
        ("queues", ["queue"]),
    ],
)
def test_empty_lists_keep_their_list_keys_in_both_json_forms(container, listed):
    root = envelope("QueueInfo", success=True, data=[el(container)])
    simple = json.loads(render(root, "simplejson")[0])["autnresponse"]["responsedata"]
    idol = json.loads(render(root, "json")[0])["autnresponse"]["responsedata"]
    assert simple[container] == {name: [] for name in listed}
    assert idol[container] == {name: [] for name in listed}


def test_an_empty_list_with_attributes_keeps_both():
    root = envelope(
        "QueueInfo", success=True, data=[el("identifiers", attrs={"total": 0, "start": 1})]
    )
    simple = json.loads(render(root, "simplejson")[0])["autnresponse"]["responsedata"]
    assert simple["identifiers"] == {"@total": "0", "@start": "1", "identifier": []}
