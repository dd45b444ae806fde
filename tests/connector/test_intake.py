"""Request intake over real sockets against a real ``serve`` (connector.intake).

Raw sockets, so the test decides which bytes are sent and when: a refusal that
arrives although the body was never sent proves the server did not wait to
read it. The served process has a 1 MiB body limit and a 1.5 s read deadline.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import Server, Site

pytestmark = pytest.mark.processes

LIMIT = 1024 * 1024
READ_SECONDS = 1.5
SECURITY_HEADERS = (
    b"x-content-type-options",
    b"x-frame-options",
    b"content-security-policy",
    b"referrer-policy",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    site = Site(tmp_path_factory.mktemp("intake"))
    try:
        server = Server(
            site,
            CONNECTOR_MAX_REQUEST_BYTES=str(LIMIT),
            CONNECTOR_REQUEST_READ_SECONDS=str(READ_SECONDS),
        )
        yield server
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
    finally:
        site.stop_all()


class Answer:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith(b"HTTP/") else 0
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in lines[1:])
        }
        if self.headers.get(b"transfer-encoding") == b"chunked":
            self.body = _unchunk(self.body)

    @property
    def error_code(self) -> str:
        found = re.search(rb"<errorcode>(\w+)</errorcode>", self.body)
        return found.group(1).decode() if found else ""


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out, data = out + data[:length], data[length + 2 :]
    return out


def connect(served: Server, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", served.port), timeout=10, source_address=(source, 0)
    )
    return sock


def read_answer(sock: socket.socket, timeout: float = 10) -> Answer:
    """Everything until the server closes the connection (or a whole answer with a length)."""
    sock.settimeout(timeout)
    raw = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        raw += data
        head, sep, body = raw.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            break
        if sep and b"chunked" in head.lower() and body.endswith(b"0\r\n\r\n"):
            break
    return Answer(raw)


def head(method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def multipart(boundary: str, *parts: tuple[str, bytes, str | None]) -> bytes:
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + value + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


# --- Before the body ---------------------------------------------------------------


def test_an_unauthorised_client_is_refused_before_its_body_is_read(served):
    # 127.0.0.2 holds no role. The body is announced, never sent: the answer
    # comes anyway, so the server decided from the address and headers alone.
    with connect(served, "127.0.0.2") as sock:
        sock.sendall(
            head(
                "POST",
                "/",
                f"Content-Length: {256 * 1024 * 1024}",
                "Content-Type: application/x-www-form-urlencoded",
            )
        )
        answer = read_answer(sock)
    assert answer.status == 200
    assert answer.error_code == "ERRORNOTAUTHORIZED"
    assert b"no role lets client 127.0.0.2 run any action" in answer.body
    assert answer.headers[b"connection"] == b"close"


def test_an_unauthorised_chunked_body_is_refused_before_it_is_sent(served):
    with connect(served, "127.0.0.2") as sock:
        sock.sendall(head("POST", "/?action=GetVersion", "Transfer-Encoding: chunked"))
        answer = read_answer(sock)
    assert answer.error_code == "ERRORNOTAUTHORIZED"


def test_an_unauthorised_client_waiting_for_100_continue_gets_the_refusal_instead(served):
    with connect(served, "127.0.0.2") as sock:
        sock.sendall(head("POST", "/", f"Content-Length: {LIMIT}", "Expect: 100-continue"))
        answer = read_answer(sock)
    assert answer.status == 200
    assert b"100 Continue" not in answer.raw
    assert answer.error_code == "ERRORNOTAUTHORIZED"


def test_an_over_limit_content_length_is_refused_at_once(served):
    with connect(served) as sock:
        sock.sendall(head("POST", "/?action=GetVersion", f"Content-Length: {LIMIT + 1}"))
        answer = read_answer(sock)
    assert answer.status == 200
    assert answer.error_code == "ERRORREQUESTTOOLARGE"
    assert f"{LIMIT} bytes".encode() in answer.body


def test_a_body_of_exactly_the_limit_is_read(served):
    # Three parameters: one may hold at most 512 KiB.
    head_part = b"action=GetVersion&A=" + b"z" * 400_000 + b"&B=" + b"z" * 400_000 + b"&C="
    body = head_part + b"z" * (LIMIT - len(head_part))
    assert len(body) == LIMIT
    with connect(served) as sock:
        sock.sendall(head("POST", "/", f"Content-Length: {LIMIT}") + body)
        answer = read_answer(sock)
    assert b"<response>SUCCESS</response>" in answer.body


def test_an_over_limit_body_elsewhere_than_the_endpoint_is_413_with_a_body(served):
    with connect(served) as sock:
        sock.sendall(head("POST", "/accounts/login/", f"Content-Length: {LIMIT + 1}"))
        answer = read_answer(sock)
    assert answer.status == 413
    assert b"1048576 bytes" in answer.body
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


# --- Chunked bodies -------------------------------------------------------------------


def test_a_chunked_body_over_the_limit_is_cut(served):
    with connect(served) as sock:
        sock.sendall(
            head("POST", "/?action=GetVersion", "Transfer-Encoding: chunked") + chunk(b"Note=")
        )
        sent = 5
        piece = b"z" * 65536
        while sent <= LIMIT:
            sock.sendall(chunk(piece))
            sent += len(piece)
        # The body goes on (no last chunk): the answer comes at the limit.
        answer = read_answer(sock)
    assert answer.status == 200
    assert answer.error_code == "ERRORREQUESTTOOLARGE"


def test_a_chunked_url_encoded_body_parses_as_its_twin(served):
    body = b"action=GetVersion&ResponseFormat=simplejson"
    with connect(served) as sock:
        sock.sendall(
            head("POST", "/", "Transfer-Encoding: chunked")
            + chunk(body[:10])
            + chunk(body[10:])
            + b"0\r\n\r\n"
        )
        answer = read_answer(sock)
    assert json.loads(answer.body)["autnresponse"]["response"] == "SUCCESS"


def test_the_java_aci_clients_chunked_multipart_insert_runs(served):
    """The Java ACI client's Insert: Action in the query, the rest a chunked multipart body."""
    document = b"Inserted over a chunked multipart body.\n"
    insert = (
        "<insertXML><insert><reference>chunked/java.txt</reference>"
        "<file><type>content</type>"
        f"<content>{base64.b64encode(document).decode()}</content></file>"
        "</insert></insertXML>"
    ).encode()
    boundary = "----ACIClientBoundary7MA4YWxkTrZu0gW"
    body = multipart(
        boundary,
        ("FetchAction", b"Insert", None),
        ("ConfigSection", b"DEMO", None),
        ("ResponseFormat", b"simplejson", None),
        ("InsertXML", insert, "InsertXML"),
    )
    request = head(
        "POST",
        "/?Action=Fetch",
        "Transfer-Encoding: chunked",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        "User-Agent: Java ACI client",
    )
    with connect(served) as sock:
        sock.sendall(request)
        for start in range(0, len(body), 100):
            sock.sendall(chunk(body[start : start + 100]))
        sock.sendall(b"0\r\n\r\n")
        answer = read_answer(sock)
    data = json.loads(answer.body)["autnresponse"]
    assert data["response"] == "SUCCESS", data
    status = served.wait_for_status(data["responsedata"]["token"], "Finished", "Error")
    assert status["status"] == "Finished", status
    written = Path(served.site.env["CONNECTOR_DEMO_DIR"]) / "chunked" / "java.txt"
    assert written.read_bytes() == document


# --- Stalled requests ------------------------------------------------------------------


def test_a_stalled_body_times_out(served):
    with connect(served) as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/?action=GetVersion", "Content-Length: 1000000") + b"ab")
        answer = read_answer(sock, timeout=READ_SECONDS + 10)
        waited = time.monotonic() - started
    assert answer.status == 408
    assert READ_SECONDS - 0.2 < waited < READ_SECONDS + 5
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


def test_a_hundred_stalled_bodies_all_time_out(served):
    socks = [connect(served) for _ in range(100)]
    try:
        for sock in socks:
            sock.sendall(head("POST", "/?action=GetVersion", "Content-Length: 1000000") + b"ab")
        started = time.monotonic()
        answers = [read_answer(sock, timeout=READ_SECONDS + 10) for sock in socks]
        waited = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert [answer.status for answer in answers] == [408] * 100
    assert waited < READ_SECONDS + 5


def test_a_request_line_sent_a_byte_at_a_time_times_out(served):
    with connect(served) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /action=GetVersion" + b"&x=y" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > READ_SECONDS + 1:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after its answer: read it below
        answer = read_answer(sock, timeout=READ_SECONDS + 10)
    assert answer.status == 408


# --- Long requests -----------------------------------------------------------------------


def test_a_get_of_17000_bytes_gets_an_aci_answer(served):
    with connect(served) as sock:
        sock.sendall(head("GET", "/action=GetVersion&x=" + "A" * 17000))
        answer = read_answer(sock)
    assert answer.status == 200
    assert b"<response>SUCCESS</response>" in answer.body


def test_a_get_with_3000_parameters_is_request_too_large(served):
    query = "&".join(f"p{n}=1" for n in range(3000))
    with connect(served) as sock:
        sock.sendall(head("GET", f"/action=GetVersion&{query}"))
        answer = read_answer(sock)
    assert answer.status == 200
    assert answer.error_code == "ERRORREQUESTTOOLARGE"


def test_a_request_line_over_the_limit_is_414_with_a_body(served):
    with connect(served) as sock:
        sock.sendall(head("GET", "/action=GetVersion&x=" + "A" * 70000))
        answer = read_answer(sock)
    assert answer.status == 414
    assert b"65536 bytes" in answer.body
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


def test_headers_over_16_kib_are_431_with_a_body(served):
    with connect(served) as sock:
        sock.sendall(
            head("GET", "/action=GetVersion", *(f"X-Pad-{n}: {'p' * 1000}" for n in range(20)))
        )
        answer = read_answer(sock)
    assert answer.status == 431
    assert b"16384 bytes" in answer.body


def test_a_malformed_request_is_400_with_a_body(served):
    with connect(served) as sock:
        sock.sendall(b"GET /action=GetVersion HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
        answer = read_answer(sock)
    assert answer.status == 400
    assert answer.body
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


def test_a_static_path_that_climbs_out_is_404_with_the_security_headers(served):
    with connect(served) as sock:
        sock.sendall(head("GET", "/static/../.."))
        answer = read_answer(sock)
    assert answer.status == 404
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


def test_a_client_cannot_forge_the_servers_body_refusal(served):
    with connect(served) as sock:
        sock.sendall(head("GET", "/action=GetVersion", "Connector-Body-Refused: not-authorized"))
        answer = read_answer(sock)
    assert b"<response>SUCCESS</response>" in answer.body
