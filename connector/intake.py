"""How the web server reads a request: bounded, and the body only once its caller may send it.

daphne is built on Twisted's HTTP server, which on its own reads every body in
full (into memory or a temporary file, and url-encoded and multipart bodies
parsed once more into memory) before the application sees the request, has no
deadline for a body that stalls, and closes the connection without a word on a
request line or header over 16 KiB. This module replaces daphne's protocol
classes with ones that, in this order:

1. read the request line up to ``CONNECTOR_MAX_REQUEST_LINE_BYTES`` (longer:
   414 with a body) and the headers up to ``MAX_HEADER_BYTES`` (more: 431);
2. decide from the address and headers alone, before any of the body: an ACI
   request (``/``, ``/action=...``) from a client that no role lets run any
   action (``access.may_send_body``), or any request announcing more than
   ``CONNECTOR_MAX_REQUEST_BYTES`` in ``Content-Length``, is handed to the
   application at once *without* its body, marked by the ``Connector-Body-Refused``
   header, so the ACI endpoint answers with its own error envelope (other paths
   get 413); no ``100 Continue`` is sent and the connection closes after the
   answer, so the body is never read;
3. count a chunked body as it arrives and cut it at the limit the same way;
4. once a chunked body is complete, give it the ``Content-Length`` it had, so
   it parses exactly as its non-chunked twin (Django's multipart parser reads
   nothing without one);
5. answer 408 and close when a request has not arrived whole
   ``CONNECTOR_REQUEST_READ_SECONDS`` after its first byte.

Every answer written here carries the security headers of Django's answers.

``install()`` puts the classes into daphne; ``connector.asgi`` calls it, so
``manage.py serve``, ``daphne connector.asgi:application`` and ``runserver``
all serve through them (daphne loads the application before it builds its
protocol factory).
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any
from urllib.parse import unquote

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from django.http import HttpRequest
from django.urls import Resolver404, resolve
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

from connector.aci.access import API_KEY_HEADER, may_send_body
from connector.aci.limits import (
    BODY_REFUSED_HEADER,
    NOT_AUTHORIZED,
    TOO_LARGE,
    max_request_bytes,
)
from connector.addresses import client_address

logger = logging.getLogger(__name__)

#: Request line excluded: the most bytes of headers one request may send.
MAX_HEADER_BYTES = 16 * 1024
#: After refusing a request whose body may still be coming, the connection is
#: half-closed and what the client still sends is read and dropped for this
#: long, so that the client reads the answer instead of a reset (nginx's
#: "lingering close"); nothing of it is kept.
LINGER_SECONDS = 2.0
#: URL names of the ACI endpoint (connector/urls.py): its bodies need a role.
ACI_URL_NAMES = frozenset({"aci", "aci-path"})

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers Django's middleware puts on every answer, for answers written without it."""
    from connector.csp import policy

    headers = [
        (b"X-Content-Type-Options", b"nosniff"),
        (b"X-Frame-Options", str(settings.X_FRAME_OPTIONS).encode("latin-1")),
        (b"Content-Security-Policy", policy().encode("latin-1")),
    ]
    if referrer := getattr(settings, "SECURE_REFERRER_POLICY", None):
        headers.append((b"Referrer-Policy", str(referrer).encode("latin-1")))
    if opener := getattr(settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", None):
        headers.append((b"Cross-Origin-Opener-Policy", str(opener).encode("latin-1")))
    return headers


def plain_answer(status: int, text: str) -> bytes:
    """A whole HTTP/1.1 answer with a text body, the security headers, and Connection: close."""
    body = text.encode("utf-8") + b"\n"
    reason = _REASONS.get(status, b"Error")
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        *(name + b": " + value for name, value in security_headers()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Peer:
    """The part of an HttpRequest that ``client_address`` reads, built from raw headers."""

    def __init__(self, peer: str, forwarded: str) -> None:
        self.META = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}


def _header(request: Any, name: bytes) -> str | None:
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    return ",".join(value.decode("latin-1") for value in values)


def _peer(request: Any) -> str:
    # A UNIX socket's peer has no host: an unknown client, which holds no role.
    return str(getattr(request.client, "host", ""))


def is_aci_path(target: bytes) -> bool:
    """Whether a request target (path and query) is for the ACI endpoint."""
    path = unquote(target.split(b"?", 1)[0].decode("latin-1"))
    prefix = (getattr(settings, "FORCE_SCRIPT_NAME", "") or "").rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    try:
        return resolve(path).url_name in ACI_URL_NAMES
    except Resolver404:
        return False


class IntakeRequest(WebRequest):
    """daphne's request, with the body counted and never parsed by Twisted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Twisted would parse url-encoded and multipart bodies into memory once
        # more (request.args), which daphne never reads.
        self._parsePOSTFormSubmission = False
        #: A BODY_REFUSED_HEADER value once the body is refused.
        self.refusal: str | None = None
        self.body_bytes = 0

    def handleContentChunk(self, data: bytes) -> None:
        if self.refusal is not None:
            return
        self.body_bytes += len(data)
        if self.body_bytes > max_request_bytes():
            self.channel.cut_body(self)
            return
        super().handleContentChunk(data)

    def refuse_body(self, refusal: str) -> None:
        """Hand the request on without its body, marked; the connection closes after it."""
        self.refusal = refusal
        content: Any = getattr(self, "content", None)
        if content is not None:
            content.close()
        self.content = BytesIO()
        self.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        headers = self.requestHeaders
        # Only this server says whether it refused a body.
        headers.removeHeader(BODY_REFUSED_HEADER.encode())
        if self.refusal is not None:
            headers.setRawHeaders(BODY_REFUSED_HEADER.encode(), [self.refusal.encode()])
        if self.refusal is not None or headers.hasHeader(b"Transfer-Encoding"):
            # The body is whole (or refused) now: give it the length it had, so
            # it parses exactly as a body sent with Content-Length.
            headers.removeHeader(b"Transfer-Encoding")
            headers.setRawHeaders(b"Content-Length", [b"%d" % self.content.tell()])
        super().requestReceived(command, path, version)

    def basic_error(self, status: int, status_text: bytes, body: str) -> None:
        # daphne's own errors (a bad path, an application that failed or timed
        # out): plain text, with the security headers like every answer.
        self.handle_reply(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"Content-Type", b"text/plain; charset=utf-8"), *security_headers()],
            }
        )
        text = f"{status} {status_text.decode('ascii', 'replace')}: {body}\n"
        self.handle_reply({"type": "http.response.body", "body": text.encode("utf-8")})


class IntakeChannel(HTTPChannel):
    """Twisted's HTTP/1.1 connection, with the bounds and the pre-body decision."""

    _read_deadline: Any = None
    _cut_request: IntakeRequest | None = None
    #: Answered and closing: what still arrives is dropped.
    _closing = False
    #: Close by lingering (see LINGER_SECONDS) rather than at once.
    _linger = False
    _linger_call: Any = None

    def __init__(self) -> None:
        super().__init__()
        # LineReceiver's bound on one line: the request line's limit (a header
        # line is held to MAX_HEADER_BYTES in lineReceived).
        self.MAX_LENGTH = max(int(settings.CONNECTOR_MAX_REQUEST_LINE_BYTES), MAX_HEADER_BYTES)
        self.totalHeadersSize = MAX_HEADER_BYTES
        self._in_request_line = True

    # --- Reading ----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if data and not self._handlingRequest and self._read_deadline is None:
            self._read_deadline = self.callLater(
                float(settings.CONNECTOR_REQUEST_READ_SECONDS), self._too_slow
            )
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if self._in_request_line:
            if line:
                self._in_request_line = False
                # The request line has its own bound (MAX_LENGTH); it does not
                # count against the headers'.
                self._receivedHeaderSize -= len(line)
        elif self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._answer_and_close(
                431, f"The request's headers are over {self.totalHeadersSize} bytes."
            )
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._in_request_line:
            self._answer_and_close(
                414,
                f"The request line is over {self.MAX_LENGTH} bytes, the most this server "
                "reads; send the parameters in a POST body instead.",
            )
        else:
            self._answer_and_close(
                431, f"The request's headers are over {self.totalHeadersSize} bytes."
            )

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        refusal = self._refusal(request)
        if refusal is None:
            super().allHeadersReceived()
            return
        if refusal == TOO_LARGE and not is_aci_path(self._target()):
            self._answer_and_close(
                413, f"The request body is over {max_request_bytes()} bytes, the most accepted."
            )
            return
        # Hand the request on at once, without its body, and close the connection
        # after the answer; no 100 Continue, so a client that waits for one never
        # sends the body.
        request.parseCookies()
        self.persistent = False
        self._linger = True
        request.gotLength(0)
        request.refuse_body(refusal)
        self.length = 0
        self._transferDecoder = None

    def _target(self) -> bytes:
        # The request target of the request being read (Twisted keeps it as _path).
        target: Any = getattr(self, "_path", b"")
        return target if isinstance(target, bytes) else b""

    def _refusal(self, request: IntakeRequest) -> str | None:
        if self.length == 0:
            return None  # no body
        if is_aci_path(self._target()):
            forwarded = _header(request, b"X-Forwarded-For") or ""
            client = client_address(cast_request(_Peer(_peer(request), forwarded)))
            decision = may_send_body(client, _header(request, API_KEY_HEADER.encode()))
            if not decision.allowed:
                logger.warning(
                    "Request body from %s refused before reading: %s", client, decision.reason
                )
                return NOT_AUTHORIZED
        if self.length is not None and self.length > max_request_bytes():
            logger.warning(
                "Request body of %s bytes from %s refused before reading (limit %s)",
                self.length,
                _peer(request),
                max_request_bytes(),
            )
            return TOO_LARGE
        return None

    def cut_body(self, request: IntakeRequest) -> None:
        """A chunked body went over the limit: stop reading it (see rawDataReceived)."""
        decoder = self._transferDecoder
        if decoder is not None:
            # The decoder goes on through the data it already has: into nothing.
            decoder.dataCallback = lambda data: None
            decoder.finishCallback = lambda extra: None
        self._cut_request = request

    def rawDataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        super().rawDataReceived(data)
        request, self._cut_request = self._cut_request, None
        if request is None:
            return
        logger.warning(
            "Request body from %s cut at %s bytes (the limit)",
            _peer(request),
            max_request_bytes(),
        )
        if not is_aci_path(self._target()):
            self._answer_and_close(
                413, f"The request body is over {max_request_bytes()} bytes, the most accepted."
            )
            return
        self.persistent = False
        self._linger = True
        request.refuse_body(TOO_LARGE)
        self.allContentReceived()

    def allContentReceived(self) -> None:
        self._stop_deadline()
        self._in_request_line = True
        super().allContentReceived()

    # --- Ending -----------------------------------------------------------------------

    def _too_slow(self) -> None:
        self._read_deadline = None
        transport: Any = self.transport
        if self._handlingRequest or transport is None:
            return
        logger.warning(
            "Request from %s not received whole within %s s; closing",
            transport.getPeer(),
            settings.CONNECTOR_REQUEST_READ_SECONDS,
        )
        self._answer_and_close(
            408,
            f"The request did not arrive whole within {settings.CONNECTOR_REQUEST_READ_SECONDS:g}"
            " seconds.",
        )

    def _stop_deadline(self) -> None:
        if self._read_deadline is not None:
            if self._read_deadline.active():
                self._read_deadline.cancel()
            self._read_deadline = None

    def _answer_and_close(self, status: int, text: str) -> None:
        self._stop_deadline()
        self._closing = True
        self._linger = True
        transport: Any = self.transport
        if transport is not None:
            transport.write(plain_answer(status, text))
        self.loseConnection()

    def loseConnection(self) -> None:
        transport: Any = self.transport
        if not self._linger or transport is None or not hasattr(transport, "loseWriteConnection"):
            super().loseConnection()
            return
        self._linger = False
        self._closing = True
        # The answer goes out, then FIN; reading goes on (into nothing) until
        # the client closes too or LINGER_SECONDS pass.
        producer: Any = self._networkProducer
        producer.resumeProducing()
        transport.loseWriteConnection()
        self._linger_call = self.callLater(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        self._linger_call = None
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to a malformed request is a bare 400 without a body.
        self._answer_and_close(400, "The request is not well-formed HTTP/1.1.")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        super().connectionLost(reason)


def cast_request(peer: _Peer) -> HttpRequest:
    # client_address reads only META; a whole HttpRequest is not needed for that.
    return peer  # type: ignore[return-value]


def _intake_channel_protocol(factory: Any) -> _GenericHTTPChannelProtocol:
    return _GenericHTTPChannelProtocol(IntakeChannel())


class IntakeHTTPFactory(HTTPFactory):
    """daphne's factory, building IntakeChannel connections with IntakeRequest requests."""

    protocol = _intake_channel_protocol

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = IntakeRequest
        return protocol


def install() -> None:
    """Make daphne's Server build IntakeHTTPFactory (it looks the name up in its module)."""
    import daphne.server

    daphne.server.HTTPFactory = IntakeHTTPFactory  # type: ignore[misc]
