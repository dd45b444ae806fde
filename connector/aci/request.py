"""Reading an ACI request: every form of the protocol page into one ``AciRequest``.

Parameters come from the path (``/action=X&...``), the query string and the
body, in that order; a later one of the same name (names are case-insensitive)
replaces an earlier one. Bodies are url-encoded whatever their Content-Type
says, except multipart bodies, which Django reads (file parts become parameter
values).

The raw bytes are decoded here rather than by Django so that a value that is
not UTF-8 is reported by name instead of being silently replaced. Parsing never
raises for bad input: the first problem is kept in ``AciRequest.problem`` with
everything else still read, so the error can be rendered in the format the
caller asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from connector.aci.access import API_KEY_HEADER, may_send_body
from connector.aci.errors import AciError
from connector.aci.limits import BODY_REFUSED_HEADER, body_refused_error, request_too_large
from connector.aci.render import FORMATS, XML
from connector.addresses import client_address, server_address
from connector.params import Params

#: Parameters every action takes, which are not stored with an action.
STANDARD_PARAMETERS = ("action", "a", "responseformat")

_PATH_PARAMETERS = re.compile(rb"/((?:action|a)=.*)\Z", re.IGNORECASE | re.DOTALL)
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass
class AciRequest:
    #: The action name as sent ("" if none).
    action: str
    params: Params
    response_format: str = XML
    #: The client's address (REMOTE_ADDR).
    client: str = ""
    #: The host and port the client reached us on (they go into tokens).
    host: str = "localhost"
    port: int = 80
    problem: AciError | None = field(default=None)

    def refuse(self, error: AciError) -> None:
        if self.problem is None:
            self.problem = error


def parse(request: HttpRequest) -> AciRequest:
    aci = AciRequest(action="", params=Params(), client=client_address(request))
    aci.host, aci.port = server_address(request)
    pairs: list[tuple[str, str]] = []
    pairs += _form_pairs(_path_parameters(request))
    pairs += _form_pairs(_query_string(request))
    if refusal := request.headers.get(BODY_REFUSED_HEADER, ""):
        # The server refused the body before reading it (connector.intake).
        reason = may_send_body(aci.client, request.headers.get(API_KEY_HEADER)).reason
        aci.refuse(body_refused_error(refusal, reason=reason))
    elif request.method not in ("GET", "POST"):
        aci.refuse(
            AciError(
                "ERRORMETHODNOTALLOWED",
                f"This endpoint takes GET and POST requests, not {request.method}.",
            )
        )
    elif request.method == "POST":
        pairs += _body_pairs(request, aci)
    _check_count(pairs, aci)
    for name, value in pairs:
        _add(aci, name, value)
    _read_response_format(aci)
    aci.action = aci.params.get("action", "") or aci.params.get("a", "")
    aci.action = aci.action.strip()
    if not aci.action:
        aci.refuse(
            AciError(
                "ERRORMISSINGPARAMS",
                "The action parameter is required: send action=NAME "
                "(for example action=GetVersion).",
            )
        )
    return aci


def _path_parameters(request: HttpRequest) -> bytes:
    """The parameters of the path form, still percent-encoded when we can get them so."""
    scope = getattr(request, "scope", None)
    raw = scope.get("raw_path") if isinstance(scope, dict) else None
    if isinstance(raw, bytes):
        # Under ASGI the raw path keeps %26 and %3D inside values intact.
        match = _PATH_PARAMETERS.search(raw)
        return match.group(1) if match else b""
    # Under WSGI the path is already percent-decoded (undecodable bytes put back as
    # %XX), so a %26 in a value cannot be told from a separator; quote '%' so
    # that nothing is decoded twice.
    path = request.path_info.encode("utf-8", "surrogateescape")
    match = _PATH_PARAMETERS.search(path)
    return match.group(1).replace(b"%", b"%25") if match else b""


def _query_string(request: HttpRequest) -> bytes:
    scope = getattr(request, "scope", None)
    raw = scope.get("query_string") if isinstance(scope, dict) else None
    if isinstance(raw, bytes):
        return raw
    return _latin1(request.META.get("QUERY_STRING", ""))


def _latin1(text: str) -> bytes:
    # WSGI hands over bytes as latin-1 text; anything else is already text.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _form_pairs(data: bytes) -> list[tuple[str, str]]:
    pairs = []
    for part in data.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        name, value = name.replace(b"+", b" "), value.replace(b"+", b" ")
        pairs.append((_decode(unquote_to_bytes(name)), _decode(unquote_to_bytes(value))))
    return pairs


def _decode(data: bytes) -> str:
    # Undecodable bytes become lone surrogates: found later and reported by name.
    return data.decode("utf-8", "surrogateescape")


def _body_pairs(request: HttpRequest, aci: AciRequest) -> list[tuple[str, str]]:
    content_type = request.META.get("CONTENT_TYPE", "")
    try:
        if content_type.lower().startswith("multipart/"):
            # Django counts only a multipart body's plain fields against the
            # limit; its file parts are parameters here and count too.
            if _content_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise RequestDataTooBig
            return _multipart_pairs(request)
        return _form_pairs(request.body)
    except RequestDataTooBig:
        aci.refuse(request_too_large())
    except TooManyFieldsSent:
        _refuse_count(aci)
    except TooManyFilesSent:
        aci.refuse(
            AciError(
                "ERRORREQUESTTOOLARGE",
                f"The multipart body has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} file "
                "parts, the most this connector accepts; send fewer.",
            )
        )
    except MultiPartParserError as error:
        aci.refuse(
            AciError(
                "ERRORPARAMINVALID",
                f"The multipart body could not be read ({error}); send a well-formed "
                "multipart/form-data body or url-encode the parameters.",
            )
        )
    return []


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _multipart_pairs(request: HttpRequest) -> list[tuple[str, str]]:
    pairs = [(name, value) for name, values in request.POST.lists() for value in values]
    limit = settings.CONNECTOR_MAX_PARAMETER_LENGTH
    for name, files in request.FILES.lists():
        for upload in files:
            # Read one byte past the limit: enough to know it is too long.
            data = upload.read(limit * 4 + 1)
            pairs.append((name, _decode(data)))
    return pairs


def _check_count(pairs: list[tuple[str, str]], aci: AciRequest) -> None:
    if len(pairs) > settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:
        _refuse_count(aci)


def _refuse_count(aci: AciRequest) -> None:
    aci.refuse(
        AciError(
            "ERRORREQUESTTOOLARGE",
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters, "
            "the most this connector accepts; send fewer.",
        )
    )


def _add(aci: AciRequest, name: str, value: str) -> None:
    name = name.strip()
    if not name:
        return
    if _SURROGATES.search(name):
        shown = _readable(name)
        aci.refuse(
            AciError(
                "ERRORPARAMINVALID",
                f"The parameter name {shown!r} is not valid UTF-8; "
                "percent-encode names and values as UTF-8.",
            )
        )
        return
    if _SURROGATES.search(value):
        aci.refuse(
            AciError(
                "ERRORPARAMINVALID",
                f"The {name} parameter is not valid UTF-8; percent-encode values as UTF-8.",
            )
        )
        value = _readable(value)
    if "\x00" in name or "\x00" in value:
        # No database stores it in text (PostgreSQL refuses it), and no
        # identifier, path or option can hold it.
        aci.refuse(
            AciError(
                "ERRORPARAMINVALID",
                f"The {_readable(name).replace(chr(0), '')} parameter contains a NUL character"
                " (%00), which no parameter may hold.",
            )
        )
        name, value = name.replace("\x00", ""), value.replace("\x00", "")
    limit = settings.CONNECTOR_MAX_PARAMETER_LENGTH
    if len(value) > limit:
        aci.refuse(
            AciError(
                "ERRORPARAMTOOLONG",
                f"The {name} parameter is {len(value)} characters long; this connector accepts "
                f"at most {limit} characters in one parameter. Send less in one request.",
            )
        )
        value = value[:limit]
    aci.params.set(name, value)


def _readable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_response_format(aci: AciRequest) -> None:
    raw = aci.params.get("responseformat", "").strip()
    if not raw:
        return
    if raw.lower() in FORMATS:
        aci.response_format = raw.lower()
        return
    aci.refuse(
        AciError(
            "ERRORPARAMINVALID",
            f"The ResponseFormat parameter must be one of {', '.join(FORMATS)}, not {raw[:80]!r}.",
        )
    )


def stored_parameters(params: Params, *also: str) -> dict[str, str]:
    """The parameters to keep with an action: without the standard ones and ``also``."""
    return params.without(*STANDARD_PARAMETERS, *also).as_dict()
