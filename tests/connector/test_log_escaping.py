"""A value a request brought cannot forge or hide a log line (issue 13, item 14)."""

from __future__ import annotations

import json
import logging

import pytest

from connector.logs import JsonFormatter, PlainFormatter, escape_controls

FORGED = "x\n2026-12-06 19:31:00,000 INFO connector.aci.queueinfo Queue fetch resumed"


def make(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("connector.x", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("a\tb", "a\\tb"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("a\x00b\x7fc\x85d", "a\\x00b\\x7fc\\x85d"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("gpj.\u202eexe", "gpj.\\u202eexe"),
        ("plain é 键 \\n", "plain é 键 \\n"),
    ],
)
def test_control_characters_are_escaped(sent, logged):
    assert escape_controls(sent) == logged


@pytest.mark.parametrize("formatter", [PlainFormatter(), JsonFormatter()], ids=["plain", "json"])
def test_a_forged_line_in_an_argument_stays_on_its_line(formatter):
    line = formatter.format(make("ACI %s from %s refused (ActionID %r)", FORGED, "::1", FORGED))
    assert "\n" not in line and "\r" not in line
    message = json.loads(line)["message"] if isinstance(formatter, JsonFormatter) else line
    assert "x\\n2026-12-06 19:31:00,000 INFO" in message


def test_numbers_keep_their_formats_and_the_record_is_left_as_it_was():
    record = make("%d actions in %.1f s, %s", 3, 2.25, "a\nb")
    assert PlainFormatter().format(record).endswith("3 actions in 2.2 s, a\\nb")
    assert record.args == (3, 2.25, "a\nb")  # other handlers see the record as logged


def test_mapping_arguments_and_objects_are_escaped():
    class Shown:
        def __str__(self) -> str:
            return "line\nbreak"

    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "%(what)s %(n)d", ({"what": "a\nb", "n": 4},), None
    )
    assert PlainFormatter().format(record).endswith("a\\nb 4")
    assert PlainFormatter().format(make("%s", Shown())).endswith("line\\nbreak")


def test_a_traceback_keeps_its_lines():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), __import__("sys").exc_info()
        )
    text = PlainFormatter().format(record)
    assert text.splitlines()[0].endswith("failed a\\nb")
    assert "Traceback (most recent call last):" in text.splitlines()[1]


@pytest.mark.django_db
@pytest.mark.parametrize("formatter", [PlainFormatter(), JsonFormatter()], ids=["plain", "json"])
def test_a_request_with_a_line_break_in_its_action_logs_one_line(client, caplog, formatter):
    with caplog.at_level(logging.INFO):
        response = client.get(
            "/?action=x%0a2026-12-06%2019:31:00,000%20INFO%20connector%20Queue%20fetch%20resumed"
            "&ActionID=y%0d%0aINFO%20forged"
        )
    assert response.status_code == 200
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the request logged nothing"
    for line in lines:
        assert "\n" not in line and "\r" not in line, line
    if isinstance(formatter, JsonFormatter):
        lines = [json.loads(line)["message"] for line in lines]
    assert any("ACI x\\n2026-12-06 19:31:00,000 INFO" in line for line in lines)
