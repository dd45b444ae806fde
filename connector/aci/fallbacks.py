"""ACI answers for requests Django refuses before the endpoint's view runs.

A Host outside ``ALLOWED_HOSTS`` makes Django raise ``DisallowedHost`` in the
middleware (CommonMiddleware asks for the host first), and a path that matches
no URL raises ``Resolver404``; both end in the URLconf's ``handler400`` /
``handler404``. For a request shaped like an ACI request (``/NAME=VALUE...``,
or ``/`` with a query string or a body) these answer with the ACI error
envelope, HTTP 200 as every ACI answer, so an ACI client reads an error it can
act on rather than an HTML page it cannot parse. Every other path keeps
Django's plain pages; the middleware adds the security headers to both.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from connector.aci.errors import AciError
from connector.aci.render import XML, envelope, render

logger = logging.getLogger(__name__)

#: The path form: one segment holding '=' (``/action=X&...``, ``/a=X``, ``/Foo=bar``).
_PATH_FORM = re.compile(r"\A/[^/]*=")


def is_aci_request(request: HttpRequest) -> bool:
    path = request.path_info
    if _PATH_FORM.match(path):
        return True
    # "/" is the endpoint when it has parameters; a bare GET / is a browser.
    return path == "/" and (bool(request.META.get("QUERY_STRING")) or request.method != "GET")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_aci_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        host = request.META.get("HTTP_HOST", "")
        shown = host if len(host) <= 80 else host[:77] + "..."
        error = AciError(
            "ERRORHOSTNOTALLOWED",
            f"The Host header {shown!r} names no host this connector answers as; send the "
            "request to one of the connector's configured host names (ALLOWED_HOSTS).",
        )
    else:
        error = AciError(
            "ERRORPARAMINVALID",
            "The request could not be read; send the parameters url-encoded in the path, "
            "the query string or the body.",
        )
    return aci_error(request, error)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_aci_request(request):
        return defaults.page_not_found(request, exception)
    return aci_error(
        request,
        AciError(
            "ERRORMISSINGPARAMS",
            "A request in the path form starts with the action: /action=NAME&... (or "
            "/a=NAME&...); this path does not. Send /action=NAME&... or /?action=NAME&...",
        ),
    )


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_aci_request(request):
        return defaults.server_error(request)
    return aci_error(request, AciError("ERRORINTERNAL"))


def aci_error(request: HttpRequest, error: AciError) -> HttpResponse:
    """The error envelope in the format the request asked for, if it can be read."""
    # Imported here: views imports this package's modules, not the other way round.
    from connector.aci.request import parse
    from connector.aci.views import error_element

    action, response_format = "", XML
    try:
        aci = parse(request)
        action, response_format = aci.action, aci.response_format
    except Exception:
        # The request is already refused; the error is answered in XML without its action.
        logger.debug("Could not read the refused request's parameters", exc_info=True)
    root = envelope(action, success=False, data=[error_element(action, error)])
    body, content_type = render(root, response_format)
    return HttpResponse(body, content_type=content_type)
