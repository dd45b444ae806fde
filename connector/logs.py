"""Log lines that say which action they are about, for humans or as JSON.

While code works on an action it runs inside ``action_context(token)``; the
``ActionContextFilter`` on the console handler copies that token onto every
record logged meanwhile, in any module, so a line about an action can always
be found by its token. A context variable, not a logger adapter: the lines
come from many modules (the fetch actions, the queue, the repositories) that
should not have to pass an adapter around, and each worker slot is a thread
of its own, so the token of one action never leaks into another's lines.

``LOG_FORMAT=json`` chooses ``JsonFormatter`` (one JSON object a line, for log
collectors); the default is ``PlainFormatter`` for people reading a terminal.

Both escape control characters in the message's arguments (``%s`` values:
action names, paths, client addresses, anything a request brought): a value
holding a line break, a carriage return, another C0 or C1 control, a Unicode
line or paragraph separator or a bidirectional override would otherwise start
what looks like a line of its own (a forged ``INFO ... Queue fetch resumed``)
or hide part of one. A line feed becomes a backslash and ``n``, the others
``\\xNN`` or ``\\uNNNN`` likewise. The format string is the code's own and left
alone, and so is a traceback.
"""

from __future__ import annotations

import contextvars
import json
import logging
import numbers
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

_token: contextvars.ContextVar[str] = contextvars.ContextVar("connector_action_token", default="")


@contextmanager
def action_context(token: str) -> Iterator[None]:
    """Every line logged in this block (in this thread) carries ``token``."""
    reset = _token.set(token)
    try:
        yield
    finally:
        _token.reset(reset)


def current_token() -> str:
    """The token of the action being worked on here, or ''."""
    return _token.get()


class ActionContextFilter(logging.Filter):
    """Puts the current action's token on the record as ``record.token`` ('' if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A token passed explicitly (extra={"token": ...}) wins over the context.
        if not getattr(record, "token", ""):
            record.token = _token.get()
        return True


#: C0 and C1 controls (tab included: it can pad a value to look like a field),
#: DEL, line and paragraph separators, bidirectional embeddings and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape: one line, shown as sent."""
    return _CONTROL.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if named := _NAMED.get(char):
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _Escaped:
    """An argument shown escaped by ``%s`` and ``%r`` alike."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape_controls(str(self.value))

    def __repr__(self) -> str:
        return escape_controls(repr(self.value))


def _escaped_arg(value: object) -> object:
    # Numbers stay numbers (for %d and %.2f) and cannot hold a control character.
    if isinstance(value, numbers.Number):
        return value
    return _Escaped(value)


def escaped_args(args: object) -> object:
    """A record's ``args`` with every value that is not a number shown escaped."""
    if isinstance(args, tuple):
        return tuple(_escaped_arg(arg) for arg in args)
    if isinstance(args, Mapping):
        return {key: _escaped_arg(value) for key, value in args.items()}
    return args


class _EscapingFormatter(logging.Formatter):
    """Renders the message with its arguments escaped, leaving the record as it was."""

    def format(self, record: logging.LogRecord) -> str:
        original = record.args
        record.args = escaped_args(original)  # type: ignore[assignment]
        try:
            return self.format_escaped(record)
        finally:
            record.args = original

    def format_escaped(self, record: logging.LogRecord) -> str:
        return super().format(record)


class PlainFormatter(_EscapingFormatter):
    """``time LEVEL logger [token] message``; the token part only when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(token_prefix)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        token = getattr(record, "token", "")
        record.token_prefix = f"[{token}] " if token else ""
        return super().formatMessage(record)


class JsonFormatter(_EscapingFormatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, token, exception."""

    def format_escaped(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if token := getattr(record, "token", ""):
            entry["token"] = token
        entry["process"] = record.process
        entry["thread"] = record.threadName
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
