"""The ACI action endpoint: parse, dispatch, render.

Every answer is HTTP 200 with an ACI envelope, errors included: IDOL clients
read the body only on success statuses, and a script gets a description of
what to do instead of a traceback.

The endpoint takes no CSRF token (ACI clients cannot send one): instead
``origin.refuse_foreign`` refuses what a browser sends for another origin's
page, and ``refusals.record`` audits that and unauthorised changes.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from connector.aci import refusals
from connector.aci.access import API_KEY_HEADER, Call, authorize, classify
from connector.aci.dispatch import dispatch
from connector.aci.errors import AciError, error_id, from_parameter_error, raw_error_id
from connector.aci.limits import take_submission
from connector.aci.origin import refuse_foreign
from connector.aci.render import XML, Element, el, envelope, render
from connector.aci.request import AciRequest, parse
from connector.aci.status import error_time
from connector.aci.view import view_raw
from connector.addresses import client_address
from connector.params import ParameterError

logger = logging.getLogger(__name__)

# The last resort when even rendering an error fails: no template, no data. It
# carries an errorid, which the Java client's binary processor (View) needs to
# tell an error from a document, and its content type is text/xml like every
# other XML answer (the Java client parses nothing else).
_FALLBACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<autnresponse xmlns:autn="http://schemas.autonomy.com/aci/">'
    b"<action></action><response>ERROR</response><responsedata><error>"
    b"<errorid>CONNECTOR112</errorid><rawerrorid>0x70</rawerrorid>"
    b"<errorstring>Internal error</errorstring><errorcode>ERRORINTERNAL</errorcode>"
    b"</error></responsedata></autnresponse>\n"
)
_FALLBACK_CONTENT_TYPE = "text/xml; charset=utf-8"


@csrf_exempt
def endpoint(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
    aci: AciRequest | None = None
    call: Call | None = None
    try:
        aci = parse(request)
        if aci.problem is not None:
            raise aci.problem
        call = classify(aci.action, aci.params.get("QueueAction", ""))
        # Before anything is looked up or changed: a browser acting for another
        # origin's page, then a client without the right, are refused.
        refuse_foreign(request, call)
        authorize(call, client=aci.client, api_key=request.headers.get(API_KEY_HEADER))
        if call.submits:
            take_submission(aci.client)
        if aci.action.upper() == "VIEW" and _wants_raw_document(aci):
            try:
                return view_raw(aci, request.headers.get("Range", ""))
            except ParameterError as error:
                raise from_parameter_error(error) from None
        data = dispatch(aci)
        return _response(envelope(aci.action, success=True, data=data), aci.response_format)
    except AciError as refused:
        logger.info(
            "ACI %s from %s refused: %s: %s (ActionID %r)",
            aci.action if aci else "?",
            client_address(request),
            refused.code,
            refused.description,
            aci.params.get("ActionID", "") if aci else "",
        )
        refusals.record(call, client=aci.client if aci else "", error=refused)
        return _error_response(aci, refused)
    except Exception:
        logger.exception(
            "ACI request %s %s failed", request.method, request.META.get("QUERY_STRING", "")[:200]
        )
        return _error_response(aci, AciError("ERRORINTERNAL"))


def _wants_raw_document(aci: AciRequest) -> bool:
    try:
        return aci.params.boolean("NoACI", True)
    except ParameterError as error:
        raise from_parameter_error(error) from None


@csrf_exempt
def root(request: HttpRequest) -> HttpResponseBase:
    """``/``: a browser without parameters goes to the dashboard; anything else is ACI."""
    if request.method == "GET" and not request.META.get("QUERY_STRING"):
        return redirect("dashboard:home")
    return endpoint(request)


def error_element(action: str, error: AciError) -> Element:
    kind = error.kind
    return el(
        "error",
        children=[
            el("errorid", error_id(action, kind)),
            el("rawerrorid", raw_error_id(kind)),
            el("errorstring", kind.errorstring),
            el("errordescription", error.description),
            el("errorcode", kind.code),
            el("errortime", error_time(timezone.now())),
        ],
    )


def _error_response(aci: AciRequest | None, error: AciError) -> HttpResponse:
    try:
        action = aci.action if aci else ""
        root = envelope(action, success=False, data=[error_element(action, error)])
        return _response(root, aci.response_format if aci else XML)
    except Exception:
        logger.exception("Could not render an ACI error")
        return HttpResponse(_FALLBACK, content_type=_FALLBACK_CONTENT_TYPE)


def _response(root: Element, response_format: str) -> HttpResponse:
    body, content_type = render(root, response_format)
    return HttpResponse(body, content_type=content_type)
