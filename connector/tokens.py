"""Action tokens: opaque to clients, unguessable, IDOL-shaped.

A token is base64 (URL-safe alphabet) of ``host:port:FETCH:<id>``, where the id
is 128 random bits in hex. Clients may send it back with the standard alphabet
or with '+' turned into a space by a form decoder; all of those are the same
token.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

_ID = re.compile(r"[0-9a-f]{32}")


class InvalidToken(ValueError):
    """The text is not a token this connector could have issued."""


def new_token(*, host: str, port: int, queue: str = "fetch") -> str:
    raw = f"{host}:{port}:{queue.upper()}:{secrets.token_hex(16)}"
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def canonical_token(text: str) -> str:
    """The stored spelling of a token, or InvalidToken."""
    cleaned = text.strip().replace(" ", "+").translate(str.maketrans("+/", "-_"))
    if not cleaned or len(cleaned) > 400 or not re.fullmatch(r"[A-Za-z0-9_\-]+=*", cleaned):
        raise InvalidToken(text)
    cleaned = cleaned.rstrip("=")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.urlsafe_b64decode(cleaned).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken(text) from None
    parts = raw.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit() or not _ID.fullmatch(parts[3]):
        raise InvalidToken(text)
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")
