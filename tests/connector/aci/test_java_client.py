"""Replays OpenText's Java ACI client (java-aci-api-ng) against the connector.

The requests are built as the client builds them (AciHttpClientImpl on Apache
HttpClient): GET ``/?action=...`` with the parameters form-encoded and
``action`` first, or POST ``/`` with the same string as a ``text/plain;
charset=UTF-8`` body of known length; the headers HttpClient adds (Host with
the port, ``Connection: Keep-Alive``, its User-Agent, ``Accept-Encoding:
gzip,deflate``). They go through the ASGI application as daphne hands them over,
the body in two messages as it may arrive from the network.

The answers are read the way the client's processors read them:

- the StAX processors (and their error processor) refuse any content type
  that does not start with ``text/xml``, then look for the first
  ``<response>``; ``ERROR`` makes the error processor read the six fields
  into an AciErrorException (``errortime`` as ``dd MMM yy HH:mm:ss``);
- the binary processor (View) treats a ``text/xml`` answer as an error, and one
  without an ``errorid`` as a misuse; any other type is the document.

The chunked multipart Insert is replayed elsewhere (request parsing).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime
from xml.etree.ElementTree import Element

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from defusedxml import ElementTree

from connector import queue
from connector.asgi import application
from connector.models import Action, Status
from connector.repositories.filesystem import encode_identifier

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"127.0.0.1:8000"
USER_AGENT = b"Apache-HttpClient/4.5.14 (Java/17.0.9)"
#: What HttpClient adds to every request, in its order (after Host).
CLIENT_HEADERS = [
    (b"connection", b"Keep-Alive"),
    (b"user-agent", USER_AGENT),
    (b"accept-encoding", b"gzip,deflate"),
]
#: URLEncodedUtils leaves these unescaped; a space is '+', the rest %XX (UTF-8).
_UNRESERVED = set((string.ascii_letters + string.digits + "-_.*").encode())


def form_encode(pairs: list[tuple[str, str]]) -> bytes:
    def encode(text: str) -> str:
        out = []
        for byte in text.encode("utf-8"):
            if byte in _UNRESERVED:
                out.append(chr(byte))
            elif byte == 0x20:
                out.append("+")
            else:
                out.append(f"%{byte:02X}")
        return "".join(out)

    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs).encode("ascii")


@dataclass
class HttpAnswer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get(b"content-type", b"").decode("latin-1")


class AciHttpException(Exception):
    """A status outside 2xx: the client throws before any processor runs."""


class ProcessorException(Exception):
    pass


@dataclass
class AciErrorException(Exception):
    error_id: str | None = None
    raw_error_id: str | None = None
    error_string: str | None = None
    error_description: str | None = None
    error_code: str | None = None
    error_time: datetime | None = None
    message: str = field(default="")


class JavaAciClient:
    """AciServiceImpl + AciHttpClientImpl, GET by default, POST with ``use_post``."""

    def __init__(self, *, use_post: bool, host: bytes = HOST) -> None:
        self.use_post = use_post
        self.host = host

    def execute(self, action: str, **params: str) -> HttpAnswer:
        # The client moves the action parameter to the front.
        pairs = [("action", action), *params.items()]
        encoded = form_encode(pairs)
        headers = [(b"host", self.host)]
        if self.use_post:
            method, query, body = "POST", b"", encoded
            headers = [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"text/plain; charset=UTF-8"),
                *headers,
            ]
        else:
            method, query, body = "GET", encoded, b""
        headers += CLIENT_HEADERS
        answer = async_to_sync(_send)(method, query, headers, body)
        if not 200 <= answer.status < 300:
            raise AciHttpException(answer.status)
        return answer


async def _send(
    method: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> HttpAnswer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(application, scope)
    middle = len(body) // 2
    await communicator.send_input(
        {"type": "http.request", "body": body[:middle], "more_body": True}
    )
    await communicator.send_input({"type": "http.request", "body": body[middle:]})
    start = await communicator.receive_output(10)
    content = b""
    while True:
        message = await communicator.receive_output(10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    names = {name.lower(): value for name, value in start["headers"]}
    return HttpAnswer(start["status"], names, content)


# --- The client's processors -----------------------------------------------------------


def stax_process(answer: HttpAnswer) -> Element:
    """AbstractStAXProcessor.process, then isErrorResponse / processErrorResponse."""
    if not answer.content_type.lower().startswith("text/xml"):
        raise ProcessorException(
            "This processor is unable to process non-text ACI responses. "
            f"The content type for this response is {answer.content_type}"
        )
    root = ElementTree.fromstring(answer.body)
    response = next((e for e in root.iter() if e.tag.lower() == "response"), None)
    if response is None:
        raise ProcessorException("Unable to find /autnresponse/response element.")
    if (response.text or "").upper() == "ERROR":
        raise error_process(root)
    return root


def error_process(root: Element) -> AciErrorException:
    """ErrorProcessor: each of the six fields wherever it is; the time in its format."""
    error = AciErrorException()
    for element in root.iter():
        name, text = element.tag.lower(), element.text or ""
        if name == "errorid":
            error.error_id = text
        elif name == "rawerrorid":
            error.raw_error_id = text
        elif name == "errorstring":
            error.error_string = text
        elif name == "errordescription":
            error.error_description = text
        elif name == "errorcode":
            error.error_code = text
        elif name == "errortime":
            # Java's "dd MMM yy HH:mm:ss"; a parse failure is only logged there.
            error.error_time = datetime.strptime(text, "%d %b %y %H:%M:%S")
    return error


def binary_process(answer: HttpAnswer) -> bytes:
    """BinaryResponseProcessor: text/xml is an error; anything else is the bytes."""
    if answer.content_type.lower().startswith("text/xml"):
        error = error_process(stax_process_root(answer))
        if error.error_id is None:
            raise AciErrorException(message="BinaryResponseProcessor should not be used for XML")
        raise error
    return answer.body


def stax_process_root(answer: HttpAnswer) -> Element:
    if not answer.content_type.lower().startswith("text/xml"):
        raise ProcessorException("non-text ACI response")
    return ElementTree.fromstring(answer.body)


def assert_six_fields(error: AciErrorException) -> None:
    for value in (
        error.error_id,
        error.raw_error_id,
        error.error_string,
        error.error_description,
        error.error_code,
    ):
        assert value
    assert error.error_time is not None


# --- The audit's actions, in GET and POST ------------------------------------------------


@pytest.fixture(params=[False, True], ids=["GET", "POST"])
def java(request) -> JavaAciClient:
    return JavaAciClient(use_post=request.param)


def queue_info(java: JavaAciClient, queue_action: str, **params: str) -> Element:
    return stax_process(
        java.execute("QueueInfo", QueueName="fetch", QueueAction=queue_action, **params)
    )


def submit(java: JavaAciClient, **params: str) -> str:
    root = stax_process(java.execute("Fetch", FetchAction="NoOp", **params))
    token = root.findtext("responsedata/token")
    assert token
    return token


def claim() -> Action:
    (action,) = queue.claim_actions(queue="fetch", worker="w1", limit=1)
    return action


def test_get_version(java):
    answer = java.execute("GetVersion")
    assert answer.content_type == "text/xml; charset=utf-8"
    root = stax_process(answer)
    assert root.findtext("action") == "GETVERSION"
    assert root.findtext("responsedata/productname")


def test_fetch_and_get_status_by_token(java):
    token = submit(java, ActionID="java 1")
    root = queue_info(java, "GetStatus", Token=token)
    assert root.findtext("responsedata/actions/action/token") == token
    assert root.findtext("responsedata/actions/action/actionid") == "java 1"


def test_get_status_of_the_whole_queue_and_with_filters(java):
    tokens = [submit(java) for _ in range(3)]
    whole = queue_info(java, "GetStatus")
    assert [a.findtext("token") for a in whole.iterfind("responsedata/actions/action")] == (
        tokens[::-1]
    )
    claim()
    filtered = queue_info(
        java,
        "GetStatus",
        State="Queued",
        MaxResults="10",
        **{"Sort-By": "queue-time", "Sort-Order": "ascending"},
    )
    shown = [a.findtext("token") for a in filtered.iterfind("responsedata/actions/action")]
    assert shown == tokens[1:]


def test_progress_and_stop_of_a_running_action(java):
    token = submit(java)
    claim()
    progress = queue_info(java, "Progress", Token=token)
    assert progress.findtext("responsedata/status") == Status.PROCESSING
    stopped = queue_info(java, "Stop", Token=token)
    assert stopped.findtext("responsedata/stoprequested") == "true"


def test_pause_and_resume(java):
    assert queue_info(java, "Pause").findtext("responsedata/paused") == "true"
    assert queue.is_paused("fetch")
    assert queue_info(java, "Resume").findtext("responsedata/paused") == "false"


def test_pause_with_a_token_is_an_error_the_client_reads(java):
    token = submit(java)
    with pytest.raises(AciErrorException) as raised:
        queue_info(java, "Pause", Token=token)
    assert_six_fields(raised.value)
    assert raised.value.error_code == "ERRORPARAMINVALID"
    assert not queue.is_paused("fetch")


def test_cancel_change_priority_parameters_and_duplicate(java):
    token = submit(java, Priority="2")
    changed = queue_info(java, "ChangePriority", Token=token, Priority="7")
    assert changed.findtext("responsedata/priority") == "7"
    parameters = queue_info(java, "GetActionParameters", Token=token)
    assert parameters.findtext("responsedata/fetchaction") == "NOOP"
    copy = queue_info(java, "Duplicate", Token=token).findtext("responsedata/token")
    assert copy and copy != token
    cancelled = queue_info(java, "Cancel", Token=token)
    assert cancelled.findtext("responsedata/status") == "Cancelled"


def test_queue_status(java):
    submit(java)
    root = queue_info(java, "QueueStatus")
    assert root.findtext("responsedata/counts/queued") == "1"


def test_errors_carry_all_six_fields(java):
    with pytest.raises(AciErrorException) as raised:
        stax_process(java.execute("NoSuchAction"))
    assert_six_fields(raised.value)
    assert raised.value.error_code == "ERRORNOTIMPLEMENTED"
    with pytest.raises(AciErrorException) as raised:
        queue_info(java, "Cancel", Token="bm90IGEgdG9rZW4=")
    assert_six_fields(raised.value)


def test_view_returns_the_document_to_the_binary_processor(java, docs_task):
    identifier = encode_identifier(docs_task.name, 0, "readme.txt")
    assert binary_process(java.execute("View", Identifier=identifier)) == b"Read me."


def test_a_refused_view_is_an_error_to_the_binary_processor_not_a_document(java, docs_task):
    identifier = encode_identifier(docs_task.name, 0, "no-such-file.txt")
    with pytest.raises(AciErrorException) as raised:
        binary_process(java.execute("View", Identifier=identifier))
    assert_six_fields(raised.value)
    assert raised.value.error_code == "ERRORDOCUMENTNOTFOUND"


def test_view_with_noaci_false_is_an_xml_answer(java, docs_task):
    identifier = encode_identifier(docs_task.name, 0, "readme.txt")
    root = stax_process(java.execute("View", Identifier=identifier, NoACI="false"))
    assert root.findtext("responsedata/document/name") == "readme.txt"


def test_a_host_outside_allowed_hosts_is_an_error_the_client_reads(java):
    client = JavaAciClient(use_post=java.use_post, host=b"evil.example:8000")
    with pytest.raises(AciErrorException) as raised:
        stax_process(client.execute("GetVersion"))
    assert_six_fields(raised.value)
    assert raised.value.error_code == "ERRORHOSTNOTALLOWED"
