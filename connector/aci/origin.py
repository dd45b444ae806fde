"""Whether a browser sent a request for a page of another origin (issue 13).

A browser is a client that a hostile page can drive: an ``<img>``, a form or a
``fetch(..., {mode: "no-cors"})`` on any site reaches the action endpoint from
the operator's own address (loopback holds the ``admin`` role by default), and
the endpoint needs no CSRF token. So a request that a browser says it sends on
behalf of another origin changes nothing. What tells, in order:

1. ``Sec-Fetch-Site`` (sent by every current browser: Chromium 76, Firefox 90,
   Safari 16.4): ``cross-site`` and ``same-site`` (another port or subdomain of
   this host is the same *site*, not the same origin) are foreign;
   ``same-origin`` and ``none`` (the user typed the address or used a bookmark)
   are not. A value the standard does not define is foreign: only what is known
   to be harmless passes.
2. ``Origin``: ``null`` (sandboxed frames, redirects, ``file:`` pages) is
   foreign; any other value is foreign unless it is the connector's own origin
   (scheme, host and port the request came to) or listed in
   ``CSRF_TRUSTED_ORIGINS`` (Django's syntax, ``https://*.example.com`` too).
   A page of a trusted origin may act even though its ``Sec-Fetch-Site`` says
   ``cross-site``: the administrator said so. It must send ``Origin`` for
   that, which ``fetch()`` and form POSTs do, and an ``<img>`` or a form GET
   does not.
3. ``Referer``, for old browsers that send neither header on a form GET or a
   POST: another origin's, not trusted, is foreign. Scripts and ACI clients do
   not send it; a browser without any of the three (old, and on a page with
   ``Referrer-Policy: no-referrer``) cannot be told from a script.

Scripts, curl and IDOL's Java ACI client send none of these headers and are
never refused here. The content type is no signal: the Java client posts
``text/plain``, one of the types a page's form may post too.

Which calls: every ``change`` (Fetch, the QueueInfo actions that change). A
``View`` too, except a top-level navigation (``Sec-Fetch-Mode: navigate``, a
link to a document followed from another site): a page cannot read another
origin's answer, but it can embed one as a script or a style sheet, which runs
or applies the document's bytes in the page's own origin. ``status`` calls are
not checked: their answers are XML or JSON objects that no page can read or
run across origins, and they change nothing.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

from connector.aci.access import CHANGE, VIEW, Call
from connector.aci.errors import AciError

logger = logging.getLogger(__name__)

#: The Sec-Fetch-Site values of a request the page's own origin (or the user) made.
_OWN_SITE = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def foreign_signal(request: HttpRequest, call: Call) -> str:
    """The header that shows ``call`` was sent for another origin's page; '' if none does."""
    if call.action_class == VIEW:
        if request.headers.get("Sec-Fetch-Mode", "").strip().lower() == "navigate":
            return ""
    elif call.action_class != CHANGE:
        return ""
    origin = request.headers.get("Origin")
    if origin is not None:
        parsed = _parse_origin(origin)
        if parsed is not None and _is_trusted(parsed):
            return ""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in _OWN_SITE:
        return f"Sec-Fetch-Site: {_shown(site)}"
    own = _own_origin(request)
    if origin is not None:
        parsed = _parse_origin(origin)
        if parsed is None or parsed != own:
            return f"Origin: {_shown(origin)}"
        return ""
    referer = request.headers.get("Referer")
    if referer is not None:
        parsed = _parse_origin(referer)
        if parsed is None or (parsed != own and not _is_trusted(parsed)):
            return f"Referer of another origin: {_shown(_origin_text(referer))}"
    return ""


def refuse_foreign(request: HttpRequest, call: Call) -> None:
    """Raise ERRORCROSSORIGIN (logged) for a call a browser made for another origin's page."""
    signal = foreign_signal(request, call)
    if not signal:
        return
    logger.warning("ACI %s refused: sent for a page of another origin (%s)", call.shown, signal)
    raise AciError(
        "ERRORCROSSORIGIN",
        f"A browser sent this {call.shown} request for a page of another origin ({signal}); "
        "the action endpoint does not act for other sites' pages. Call it from a script or "
        "an ACI client, or from a page of an origin listed in CSRF_TRUSTED_ORIGINS.",
    )


def _parse_origin(text: str) -> Origin | None:
    """(scheme, host, port) of an origin or URL, lower case; None if it has none."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _own_origin(request: HttpRequest) -> Origin | None:
    try:
        host = request.get_host()
    except Exception:
        # A host ALLOWED_HOSTS does not allow (DNS rebinding): no Origin is ours.
        return None
    return _parse_origin(f"{request.scheme}://{host}")


def _is_trusted(origin: Origin) -> bool:
    scheme, host, port = origin
    for entry in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        wildcard = "://*." in entry
        trusted = _parse_origin(entry.replace("://*.", "://", 1) if wildcard else entry)
        if trusted is None or trusted[0] != scheme or trusted[2] != port:
            continue
        # Django's rule: https://*.example.com is example.com and every name below it.
        if host == trusted[1] or (wildcard and host.endswith("." + trusted[1])):
            return True
    return False


def _origin_text(url: str) -> str:
    """A Referer cut to its origin: its path and query are the other site's business."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "(unreadable)"
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else "(unreadable)"


def _shown(value: str) -> str:
    return value.strip()[:200]
