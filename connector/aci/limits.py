"""Limits of the ACI endpoint that are not about one parameter's bytes.

- Identifiers per action: ``Identifiers`` and ``ParentIdentifiers`` lists
  hold at most ``CONNECTOR_MAX_IDENTIFIERS`` items, checked before a fetch
  action looks at any of them (``InsertXML`` and ``IdentifiersXML`` are bounded
  by ``CONNECTOR_MAX_PARAMETER_LENGTH``).
- Submissions per client: at most ``CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW``
  Fetch and Duplicate requests per client address in each window of
  ``CONNECTOR_ACI_RATE_WINDOW_SECONDS``. The counters live in Django's default
  cache, so every process sharing that cache (Redis, with ``REDIS_URL``)
  shares them. Fixed windows: one atomic increment per submission and a key
  that expires by itself; a client can burst twice the limit across a window
  boundary, which is acceptable for a guard against floods.

The queued-actions limit is the queue's own rule (``queue.QueueFull``), checked
in the transaction that inserts the action.

The request's own bounds (body bytes, the request line, how long it may take to
arrive) are enforced by the server before the view runs (``connector.intake``);
when it refuses a body it still hands the request on, without the body, marked
with ``BODY_REFUSED_HEADER``, and the view answers with ``body_refused_error``.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache

from connector.aci.errors import AciError
from connector.params import Params

logger = logging.getLogger(__name__)

#: The request header by which the server (connector.intake) tells the view that
#: it refused the body; the server removes any copy a client sends.
BODY_REFUSED_HEADER = "Connector-Body-Refused"
#: Its values: the body is over the limit / the client may run no action at all.
TOO_LARGE = "too-large"
NOT_AUTHORIZED = "not-authorized"

#: The comma-separated identifier lists of the fetch actions.
IDENTIFIER_LISTS = ("Identifiers", "ParentIdentifiers")


def check_identifier_count(params: Params) -> None:
    limit = settings.CONNECTOR_MAX_IDENTIFIERS
    for name in IDENTIFIER_LISTS:
        count = len(params.csv(name))
        if count > limit:
            raise AciError(
                "ERRORREQUESTTOOLARGE",
                f"The {name} parameter lists {count} identifiers; this connector takes at most "
                f"{limit} in one action. Split them over several actions.",
            )


# One warning when the counter's cache fails and one line when it works again,
# not a traceback per submission (issue 14, 7: about 100 for a 1 s Redis outage).
_counter_lock = threading.Lock()
_counter_down = False


def _counter_failed(error: Exception) -> None:
    global _counter_down
    with _counter_lock:
        first, _counter_down = not _counter_down, True
    if first:
        logger.warning(
            "The submission counter is unavailable (%s: %s); submissions are not limited"
            " until it works again",
            type(error).__name__,
            error,
        )
    else:
        logger.debug("The submission counter is still unavailable: %s", error)


def _counter_works() -> None:
    global _counter_down
    if not _counter_down:  # the usual case: no lock taken
        return
    with _counter_lock:
        was, _counter_down = _counter_down, False
    if was:
        logger.info("The submission counter works again; submissions are limited again")


def take_submission(client: str, *, now: float | None = None) -> None:
    """Count one submission of ``client``; AciError when it is over the limit."""
    limit = settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW
    if limit <= 0:
        return
    window = settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS
    now = time.time() if now is None else now
    slot = math.floor(now / window)
    key = f"connector:aci-submissions:{client}:{slot}"
    expiry = math.ceil(window) + 1
    try:
        # add() only creates the key (with its expiry); incr() is atomic in
        # every backend, so racing processes each get their own count.
        cache.add(key, 0, timeout=expiry)
        try:
            count = cache.incr(key)
        except ValueError:
            # The key expired between the two calls: this is the window's first.
            cache.add(key, 1, timeout=expiry)
            count = 1
    except Exception as error:
        # A rate limit guards availability; when its cache is down, refusing
        # every submission would cost exactly that.
        _counter_failed(error)
        return
    _counter_works()
    if count > limit:
        retry = max(1, math.ceil((slot + 1) * window - now))
        logger.warning(
            "ACI submission from %s refused: %s submissions in the current %s s window",
            client,
            count,
            window,
        )
        raise AciError(
            "ERRORTOOMANYREQUESTS",
            f"This client sent more than {limit} submissions (Fetch, Duplicate) in "
            f"{window:g} seconds, the most this connector accepts. Try again in {retry} seconds.",
        )


def max_request_bytes() -> int:
    """The most bytes of body one request may send (``CONNECTOR_MAX_REQUEST_BYTES``)."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def request_too_large() -> AciError:
    return AciError(
        "ERRORREQUESTTOOLARGE",
        f"The request body is larger than {max_request_bytes()} bytes, the most this "
        "connector accepts; send less in one request.",
    )


def body_refused_error(refusal: str, *, reason: str) -> AciError:
    """The ACI error for a body the server refused (``refusal`` is a BODY_REFUSED_HEADER value)."""
    if refusal == NOT_AUTHORIZED:
        return AciError(
            "ERRORNOTAUTHORIZED",
            f"This client may not send a request body: {reason}. Ask the connector's "
            "administrator for a role that allows it (CONNECTOR_ACI_ROLES).",
        )
    return request_too_large()
