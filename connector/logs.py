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
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
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


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger [token] message``; the token part only when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(token_prefix)s%(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        token = getattr(record, "token", "")
        record.token_prefix = f"[{token}] " if token else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, token, exception."""

    def format(self, record: logging.LogRecord) -> str:
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
