"""Signing out ends that session's live dashboards at once.

Each dashboard socket joins the group of the session it was opened with; on
``user_logged_out`` (the sign-out view, or anything calling ``logout()``) the
group is told ``session.ended`` and its sockets close before another row is
sent. Otherwise a signed-out browser kept receiving rows until the socket's
next permission check (``dashboard.consumers.PERMISSION_RECHECK_SECONDS``),
which stays as the net under a lost message: like every broadcast this one is
a hint, sent without waiting (``connector.wakeups``).

Only the session that signed out: the user's other sessions (another browser)
are still signed in, and their sockets stay open.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from connector import wakeups

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "session.ended"


def session_group(session_key: str) -> str:
    """The group of one session's sockets. Hashed: the layer (Redis) never holds a session key."""
    return "dashboard-session." + hashlib.sha256(session_key.encode()).hexdigest()


def user_logged_out(*, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """Receiver of ``user_logged_out``: sent before the session is flushed, so its key is known."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if session is not None and key:
        logger.info("Closing the dashboard sockets of %s's session: signed out", user)
        # Gone from the store before its sockets hear of it (logout() flushes it only
        # after this signal): a page that asks the server at once must find it signed
        # out, not reconnect as the session it still was.
        session.delete()
        wakeups.send_group(session_group(key), {"type": MESSAGE_TYPE})
