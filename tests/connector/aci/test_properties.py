"""Property-based tests of the request parser and the renderers (issue 6).

Any mix of parameters, names, cases, encodings and bytes gets a well-formed
XML or JSON answer and never a server error; every rendered value comes back
unchanged (less the characters XML forbids) through a real XML parser and
through ``json.loads``. The example counts add up to 10,000 generated cases
(``HYPOTHESIS_PROFILE=ci``, as CI runs them) or a tenth of that by default,
so a developer's ``make test`` stays quick.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote_from_bytes, urlencode

import pytest
from defusedxml import ElementTree
from django.test import Client, RequestFactory, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.aci.render import (
    FORMATS,
    LIST_CONTAINERS,
    SIMPLEJSON_LISTS,
    Element,
    attribute_name,
    clean,
    el,
    envelope,
    render,
)
from connector.aci.request import parse

#: Examples per test in CI; the three tests below add up to 10,000.
CI_EXAMPLES = {"endpoint": 5000, "parser": 3000, "renderers": 2000}
SCALE = 1.0 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 0.1


def examples(test: str) -> settings:
    return settings(
        max_examples=max(1, int(CI_EXAMPLES[test] * SCALE)),
        deadline=None,  # the machine is shared: time per example says nothing here
        database=None,  # no .hypothesis folder in the working tree
        derandomize=os.environ.get("HYPOTHESIS_PROFILE") == "ci",  # CI runs are repeatable
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- Strategies ------------------------------------------------------------------

ACTIONS = ["Fetch", "QueueInfo", "GetStatus", "GetVersion", "View", "Teleport", ""]
NAMES = [
    "action", "a", "ResponseFormat", "FetchAction", "QueueName", "QueueAction", "Token",
    "ActionID", "Priority", "State", "MaxResults", "Sort-By", "Sort-Order", "Start",
    "MaxIdentifiers", "Identifiers", "ParentIdentifiers", "ConfigSection", "TaskSections",
    "InsertXML", "IdentifiersXML", "Identifier", "NoACI", "Queued-After", "Min-Priority",
]  # fmt: skip
VALUES = [
    "NoOp", "Sleep", "fetch", "GetStatus", "Cancel", "Stop", "Pause", "Resume", "Progress",
    "QueueStatus", "ChangePriority", "GetActionParameters", "Duplicate", "xml", "json",
    "simplejson", "true", "false", "0", "-1", "99999999999999999999", "DEMO", "DOCS",
    "queued,finished", "2026-11-26 14:00:00", "<insertXML/>",
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><insertXML>&e;</insertXML>',
]  # fmt: skip


def _random_case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.swapcase() if flips[i % len(flips)] else c for i, c in enumerate(text)
    ) if flips else text  # fmt: skip


cased = st.builds(
    _random_case,
    st.sampled_from(NAMES) | st.text(max_size=12),
    st.lists(st.booleans(), max_size=8),
)
#: Values as bytes: valid UTF-8 of any text, or any bytes at all (invalid UTF-8, NUL).
value_bytes = st.one_of(
    st.sampled_from(VALUES).map(str.encode),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
)
pairs = st.lists(st.tuples(cased.map(str.encode) | st.binary(max_size=8), value_bytes), max_size=8)


def _encode(pairs: list[tuple[bytes, bytes]], raw: bool) -> bytes:
    """``name=value&...``, percent-encoded, or (raw) the bytes as they are."""
    if raw:
        return b"&".join(name + b"=" + value for name, value in pairs)
    return "&".join(
        f"{quote_from_bytes(name)}={quote_from_bytes(value)}" for name, value in pairs
    ).encode()


@st.composite
def requests(draw: st.DrawFn) -> dict:
    action = _random_case(draw(st.sampled_from(ACTIONS)), draw(st.lists(st.booleans())))
    head = [(draw(st.sampled_from([b"action", b"a", b"ACTION"])), action.encode())]
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT"])),
        "form": draw(st.sampled_from(["path", "query", "body"])),
        "pairs": head + draw(pairs),
        "format": draw(st.sampled_from([*FORMATS, "SimpleJSON", "yaml", ""])),
        "raw": draw(st.booleans()),
        "content_type": draw(
            st.sampled_from(
                ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
            )
        ),
    }


def _send(client: Client, request: dict):
    pairs = list(request["pairs"])
    if request["format"]:
        pairs.append((b"ResponseFormat", request["format"].encode()))
    encoded = _encode(pairs, request["raw"])
    if request["form"] == "body" and request["method"] != "GET":
        return client.generic(request["method"], "/", encoded, content_type=request["content_type"])
    if request["form"] == "path":
        # The test client takes a str path; non-ASCII bytes stay percent-encoded.
        path = "/" + quote_from_bytes(encoded, safe="=&%+;,/:@!$'()*")
        return client.generic(request["method"], path, b"", content_type="text/plain")
    query = quote_from_bytes(encoded, safe="=&%+;,/:@!$'()*")
    return client.generic(request["method"], f"/?{query}", b"", content_type="text/plain")


def _check_answer(response) -> None:
    assert response.status_code == 200, response.content[:500]
    content_type = response["Content-Type"]
    if content_type == "text/xml; charset=utf-8":
        root = ElementTree.fromstring(response.content)
        assert root.tag == "autnresponse"
        assert root.findtext("response") in {"SUCCESS", "ERROR"}
        if root.findtext("response") == "ERROR":
            assert root.findtext("responsedata/error/errorcode") != "ERRORINTERNAL"
    else:
        assert content_type == "application/json; charset=utf-8"
        answer = json.loads(response.content.decode("utf-8"))["autnresponse"]
        response_text = answer["response"]
        response_text = response_text["$"] if isinstance(response_text, dict) else response_text
        assert response_text in {"SUCCESS", "ERROR"}
        assert "ERRORINTERNAL" not in response.content.decode()


# --- The endpoint: any request, a well-formed answer -------------------------------


@pytest.mark.timeout(600)
@examples("endpoint")
@given(request=requests())
def test_any_request_gets_a_well_formed_answer_and_never_a_server_error(db, request):
    # Submissions are generated by the thousand: the rate limit is not under test here.
    # (override_settings per example: the settings fixture would nest one layer per example.)
    with override_settings(CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW=0):
        _check_answer(_send(Client(raise_request_exception=True), request))


# --- The parser: whatever the bytes, a result and no exception ----------------------


@pytest.mark.independent_of_database_url
@pytest.mark.timeout(600)
@examples("parser")
@given(
    query=st.binary(max_size=120) | pairs.map(lambda p: _encode(p, False)),
    body=st.binary(max_size=120) | pairs.map(lambda p: _encode(p, True)),
    path=st.binary(max_size=60),
    content_type=st.sampled_from(["text/plain", "multipart/form-data; boundary=x", ""]),
    # Names differing only in case are one parameter (ACI), so no two are generated.
    names=st.lists(
        st.tuples(
            st.text(
                st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00=&+%"),
                min_size=1,
                max_size=10,
            ).filter(lambda n: n.strip() == n and n.lower() not in ("action", "a")),
            st.text(
                st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                max_size=30,
            ),
        ),
        unique_by=lambda pair: pair[0].lower(),
        max_size=5,
    ).map(dict),
)
def test_the_parser_reads_any_bytes_and_round_trips_any_parameters(
    query, body, path, content_type, names
):
    factory = RequestFactory()
    # Any bytes at all: never an exception, always a result (maybe with a problem).
    request = factory.generic("POST", "/", body, content_type=content_type)
    request.META["QUERY_STRING"] = query.decode("latin-1")
    request.scope = {"raw_path": b"/action=" + path, "query_string": query}
    aci = parse(request)
    assert isinstance(aci.action, str)
    for value in aci.params.as_dict().values():
        assert "\x00" not in value
    # Well-encoded parameters, names in any case: each comes back as sent.
    encoded = urlencode({"action": "GetVersion", **names})
    # Another case of each name (where changing case keeps it the same name: not 'µ').
    flipped = {
        (name.swapcase() if name.swapcase().lower() == name.lower() else name): value
        for name, value in names.items()
    }
    for sent in (encoded, urlencode({"action": "GetVersion", **flipped})):
        aci = parse(factory.get(f"/?{sent}"))
        assert aci.problem is None, aci.problem
        for name, value in names.items():
            assert aci.params.get(name) == value


# --- The renderers: every value round-trips -----------------------------------------

TAGS = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
ANY_TEXT = st.text(max_size=20)  # every code point, lone surrogates and controls included


def _leaf(tag: str, text: str, attrs: dict[str, str]) -> Element:
    return el(tag, text, attrs=attrs)


leaves = st.builds(
    _leaf, TAGS, ANY_TEXT, st.dictionaries(st.text(max_size=6), ANY_TEXT, max_size=3)
)
trees = st.recursive(
    leaves,
    lambda kids: st.builds(
        lambda tag, children: el(tag, children=children),
        TAGS,
        st.lists(kids, min_size=1, max_size=4),
    ),
    max_leaves=6,
)


def _xml_values(element, parsed) -> None:
    """The parsed element holds exactly the cleaned text and attributes of ``element``."""
    assert parsed.tag == element.tag
    expected_attrs = {}
    for name, value in element.attrs.items():
        cleaned = attribute_name(name)
        if cleaned and cleaned not in expected_attrs:
            expected_attrs[cleaned] = clean(value)
    assert dict(parsed.attrib) == expected_attrs
    if element.children:
        assert len(parsed) == len(element.children)
        for child, parsed_child in zip(element.children, parsed, strict=True):
            _xml_values(child, parsed_child)
    else:
        assert (parsed.text or "") == clean(element.text or "")


def _simple_values(element, data) -> None:
    if element.tag in SIMPLEJSON_LISTS:
        # simplejson makes these a list even when there is one.
        (data,) = data
    if not element.children and not element.attrs and element.tag in LIST_CONTAINERS:
        # A list with nothing in it keeps its list keys (issue 14), so it is a dict.
        expected = {listed: [] for listed in LIST_CONTAINERS[element.tag]}
        if element.text is not None:
            expected["$"] = clean(element.text)
        assert data == expected
        return
    if not element.children and not element.attrs:
        assert data == ({} if element.text is None else clean(element.text))
        return
    for name in element.attrs:
        if attribute_name(name):
            assert isinstance(data["@" + attribute_name(name)], str)
    if element.text is not None:
        assert data["$"] == clean(element.text)


@pytest.mark.independent_of_database_url
@pytest.mark.timeout(600)
@examples("renderers")
@given(data=st.lists(trees, max_size=4), action=ANY_TEXT, success=st.booleans())
def test_every_rendered_value_round_trips_through_xml_and_json(data, action, success):
    root = envelope(action, success=success, data=data)
    body, _ = render(root, "xml")
    parsed = ElementTree.fromstring(body)
    assert parsed.findtext("action") == clean(action.upper())
    for element, parsed_element in zip(data, parsed.find("responsedata"), strict=True):
        _xml_values(element, parsed_element)

    idol = json.loads(render(root, "json")[0])["autnresponse"]
    assert idol["action"] == {"$": clean(action.upper())}
    simple = json.loads(render(root, "simplejson")[0])["autnresponse"]
    assert simple["action"] == clean(action.upper())
    for element in data:
        if element.tag in ("action", "response", "responsedata"):
            continue
        idol_value = idol["responsedata"][element.tag]
        simple_value = simple["responsedata"][element.tag]
        same_tag = [e for e in data if e.tag == element.tag]
        if len(same_tag) == 1 and not element.children:
            assert idol_value.get("$", "") == clean(element.text or "")
            _simple_values(element, simple_value)
