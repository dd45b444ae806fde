"""ACI responses: an element tree rendered as XML, IDOL's JSON or simplejson.

Handlers build ``Element`` trees and never see a format; the three renderers
here are the only code that knows how a response is spelled.

``Element.text`` is ``None`` for a structural element (it renders as ``{}`` in
JSON when empty) and a string for a value (``""`` stays a string).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACI_NAMESPACE = "http://schemas.autonomy.com/aci/"

XML = "xml"
JSON = "json"
SIMPLEJSON = "simplejson"
FORMATS = (XML, JSON, SIMPLEJSON)

CONTENT_TYPES = {
    XML: "text/xml; charset=utf-8",
    JSON: "application/json; charset=utf-8",
    SIMPLEJSON: "application/json; charset=utf-8",
}

# Lone surrogates (left by undecodable request bytes) are in this class too,
# so a cleaned string always encodes as UTF-8.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NAME_START = re.compile(r"[A-Za-z_]")
# No ':' : a prefixed attribute name would need a namespace declaration.
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")

#: Elements that can repeat: simplejson makes them lists even when there is one.
#: ``action`` counts only below ``autnresponse`` (the top one names the action).
SIMPLEJSON_LISTS = frozenset(
    {"action", "documentcount", "success", "failed", "identifier", "item", "param", "queue"}
)

#: Elements that hold a list, and the elements they list. In both JSON forms an
#: empty one still has its list keys, as empty lists, so that a client reads
#: ``actions.action`` the same way whether there are none, one or many (an
#: empty ``{}`` would make it test for a missing key first).
LIST_CONTAINERS: dict[str, tuple[str, ...]] = {
    "actions": ("action",),
    "documentcounts": ("documentcount",),
    "tasks": ("success", "failed"),
    "identifiers": ("identifier",),
    "parameters": ("param",),
    "queues": ("queue",),
}


@dataclass
class Element:
    tag: str
    text: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def el(
    tag: str,
    text: object = None,
    *,
    attrs: Mapping[str, object] | None = None,
    children: Iterable[Element] = (),
) -> Element:
    """An element; values are turned into text (booleans as true/false), None attrs dropped."""
    return Element(
        tag=tag,
        text=None if text is None else as_text(text),
        attrs={name: as_text(value) for name, value in (attrs or {}).items() if value is not None},
        children=list(children),
    )


def clean(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids."""
    return _FORBIDDEN.sub("", text)


def attribute_name(name: str) -> str:
    """A valid XML attribute name made from ``name`` ("" if nothing is left)."""
    cleaned = _NAME_CHARS.sub("", name)
    if cleaned and not _NAME_START.match(cleaned):
        cleaned = "_" + cleaned
    return cleaned


def _clean_attrs(element: Element) -> list[tuple[str, str]]:
    """Valid, distinct attribute names with cleaned values; of two names that clean
    to the same one the first wins (a repeated attribute is not well-formed XML)."""
    seen: dict[str, str] = {}
    for raw_name, value in element.attrs.items():
        name = attribute_name(raw_name)
        if name and name not in seen:
            seen[name] = clean(value)
    return list(seen.items())


def envelope(action: str, *, success: bool, data: Iterable[Element]) -> Element:
    return el(
        "autnresponse",
        children=[
            el("action", action.upper()),
            el("response", "SUCCESS" if success else "ERROR"),
            el("responsedata", children=data),
        ],
    )


def render(root: Element, response_format: str) -> tuple[bytes, str]:
    """The body and Content-Type of ``root`` in ``response_format`` (xml if unknown)."""
    if response_format == JSON:
        body = _dump({root.tag: _idol_json(root)})
    elif response_format == SIMPLEJSON:
        body = _dump({_simple_tag(root.tag): _simple_json(root)})
    else:
        response_format = XML
        body = _xml_document(root)
    return body, CONTENT_TYPES[response_format]


# --- XML -----------------------------------------------------------------------------

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        # Parsers normalise raw whitespace in attributes; references keep it.
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def _xml_document(root: Element) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    _xml_element(root, 0, lines, declare=f' xmlns:autn="{ACI_NAMESPACE}"')
    return ("\n".join(lines) + "\n").encode("utf-8")


def _xml_element(element: Element, depth: int, lines: list[str], declare: str = "") -> None:
    indent = "  " * depth
    attrs = declare + "".join(
        f' {name}="{value.translate(_ATTR_ESCAPES)}"' for name, value in _clean_attrs(element)
    )
    text = clean(element.text).translate(_TEXT_ESCAPES) if element.text else ""
    if element.children:
        lines.append(f"{indent}<{element.tag}{attrs}>{text}")
        for child in element.children:
            _xml_element(child, depth + 1, lines)
        lines.append(f"{indent}</{element.tag}>")
    elif text:
        lines.append(f"{indent}<{element.tag}{attrs}>{text}</{element.tag}>")
    else:
        lines.append(f"{indent}<{element.tag}{attrs}/>")


# --- JSON ----------------------------------------------------------------------------


def _dump(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _attributes(element: Element) -> dict[str, Any]:
    return {"@" + name: value for name, value in _clean_attrs(element)}


def _grouped(children: list[Element], key: Any) -> dict[str, list[Element]]:
    groups: dict[str, list[Element]] = {}
    for child in children:
        groups.setdefault(key(child.tag), []).append(child)
    return groups


def _idol_json(element: Element) -> dict[str, Any]:
    """IDOL's mapping: text under "$", attributes "@name", repeated elements as lists."""
    data = _attributes(element)
    if element.text is not None:
        data["$"] = clean(element.text)
    for tag, group in _grouped(element.children, lambda tag: tag).items():
        values = [_idol_json(child) for child in group]
        data[tag] = values[0] if len(values) == 1 else values
    _add_empty_lists(element.tag, data)
    return data


def _add_empty_lists(tag: str, data: dict[str, Any]) -> None:
    for listed in LIST_CONTAINERS.get(tag, ()):
        data.setdefault(listed, [])


def _simple_tag(tag: str) -> str:
    return tag.removeprefix("autn:")


def _simple_json(element: Element) -> Any:
    tag = _simple_tag(element.tag)
    if not element.attrs and not element.children and tag not in LIST_CONTAINERS:
        return {} if element.text is None else clean(element.text)
    data = _attributes(element)
    if element.text is not None:
        data["$"] = clean(element.text)
    for child_tag, group in _grouped(element.children, _simple_tag).items():
        values = [_simple_json(child) for child in group]
        forced = child_tag in SIMPLEJSON_LISTS and not (
            child_tag == "action" and tag == "autnresponse"
        )
        data[child_tag] = values if forced or len(values) > 1 else values[0]
    _add_empty_lists(tag, data)
    return data
