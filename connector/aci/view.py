"""``action=View``: a document of a fetch task, synchronously.

By default (``NoACI=true``) the answer is the document itself, streamed, and
``Range: bytes=...`` answered with 206 Partial Content (416 when the range is
outside the document). With ``NoACI=false`` it is an ACI
response holding the content base64-encoded, for clients that only read ACI.
The identifier is resolved by the task's repository, so it can never reach
outside the task's roots.

Repository bytes are data, never a page (docs/security.md, "Documents are never
active content"): anyone who can write into a task's roots chooses them, and
the connector's origin is also the dashboard's, where a script could act as the
signed-in operator. So a document is shown inline only when its type is one a
browser can only display (``INLINE_TYPES``: plain text and raster images);
everything else is an attachment typed ``application/octet-stream``, which no
browser runs as a script or applies as a style (with ``nosniff``), and every
answer carries a ``sandbox`` policy (``connector.csp.DOCUMENT_POLICY``) in case
a browser renders it anyway. Clients read the bytes whatever the headers say;
the real type is the ``<contenttype>`` of ``NoACI=false`` and follows from the
file name.
"""

from __future__ import annotations

import base64
import itertools
import mimetypes
import re
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header

from connector import csp
from connector.aci.errors import AciError
from connector.aci.render import Element, el
from connector.aci.request import AciRequest
from connector.models import FetchTask
from connector.repositories import (
    IdentifierError,
    Item,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryUnavailable,
    repository_for,
    task_name_of,
)

#: The largest document an ACI (base64) answer carries; larger ones are streamed.
MAX_ACI_CONTENT_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 256 * 1024

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

#: The only types a document is served inline with. None of them can run
#: script or load anything: not SVG (an image that runs script), not PDF (PDF
#: readers run the document's JavaScript and forms; Chromium will not show one
#: under a sandbox anyway), not HTML, XML, CSS or JavaScript.
INLINE_TYPES = frozenset(
    {
        "text/plain",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
    }
)
#: The type of every other document: bytes to save, never a page, script or style.
OPAQUE_TYPE = "application/octet-stream"


def open_document(aci: AciRequest) -> tuple[Repository, Item]:
    identifier = aci.params.text(
        "Identifier", hint="Use an identifier from FetchAction=Identifiers."
    )
    try:
        task = FetchTask.objects.filter(name=task_name_of(identifier)).first()
        if task is None:
            raise AciError(
                "ERRORPARAMINVALID",
                "The Identifier belongs to no configured fetch task; list identifiers again.",
            )
        repository = repository_for(task)
        item = repository.stat(identifier)
    except IdentifierError as error:
        raise AciError("ERRORPARAMINVALID", f"The Identifier is not valid: {error}") from None
    except ItemNotFound:
        raise AciError("ERRORDOCUMENTNOTFOUND") from None
    except (ItemUnreadable, RepositoryUnavailable) as error:
        raise AciError("ERRORDOCUMENTUNREADABLE", f"The document cannot be read: {error}") from None
    if item.is_container:
        raise AciError(
            "ERRORPARAMINVALID", "The Identifier names a folder; View shows documents only."
        )
    return repository, item


def content_type(item: Item) -> str:
    guessed, _ = mimetypes.guess_type(item.name)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def served_type(item: Item) -> tuple[str, bool]:
    """The ``Content-Type`` a document is served with, and whether it may be inline."""
    guessed, _ = mimetypes.guess_type(item.name)
    if guessed in INLINE_TYPES:
        return content_type(item), True
    return OPAQUE_TYPE, False


def document_headers(response: HttpResponseBase, item: Item) -> None:
    """What makes any answer carrying a document's bytes inert in a browser."""
    kind, inline = served_type(item)
    response["Content-Type"] = kind
    response["Content-Disposition"] = content_disposition_header(not inline, item.name) or "inline"
    response["X-Content-Type-Options"] = "nosniff"
    # Set here, so the site-wide policy (which allows this origin's scripts) is not added.
    response[csp.HEADER] = csp.DOCUMENT_POLICY
    # No other site may embed it (an <img> or <script> of another origin learns nothing).
    response["Cross-Origin-Resource-Policy"] = "same-origin"


def wants_extracted(aci: AciRequest) -> bool:
    """``Extracted=true``: what Synchronize would send, not the bytes (docs/aci.md)."""
    return aci.params.boolean("Extracted", False)


def extracted_idx(aci: AciRequest) -> tuple[Item, str]:
    """The document and the IDX Synchronize would send for it now."""
    # Imported here: the fetch actions import the ACI's parameters, not the other way.
    from connector.fetch.synchronize import preview_document

    repository, item = open_document(aci)
    task = FetchTask.objects.get(name=task_name_of(item.identifier))
    try:
        return item, preview_document(task, repository, item)
    except ItemNotFound:
        raise AciError("ERRORDOCUMENTNOTFOUND") from None
    except ItemUnreadable as error:
        raise AciError("ERRORDOCUMENTUNREADABLE", f"The document cannot be read: {error}") from None


def view_extracted(aci: AciRequest) -> HttpResponse:
    """``Extracted=true``: the IDX as plain text (inert: text/plain, nosniff, sandbox)."""
    _, idx = extracted_idx(aci)
    response = HttpResponse(idx.encode("utf-8"), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response[csp.HEADER] = csp.DOCUMENT_POLICY
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def view_aci(aci: AciRequest) -> list[Element]:
    """``NoACI=false``: the document base64-encoded in an ACI answer."""
    if wants_extracted(aci):
        item, idx = extracted_idx(aci)
        return [
            el(
                "document",
                children=[
                    el("identifier", item.identifier),
                    el("name", item.name),
                    el("path", item.path),
                    el("idx", idx),
                ],
            )
        ]
    repository, item = open_document(aci)
    size = item.size or 0
    if size > MAX_ACI_CONTENT_BYTES:
        raise AciError(
            "ERRORDOCUMENTTOOLARGE",
            f"The document has {size} bytes; an ACI answer carries at most"
            f" {MAX_ACI_CONTENT_BYTES}. Leave out NoACI=false to download it directly.",
        )
    try:
        content = b"".join(repository.read_chunks(item.identifier, chunk_size=CHUNK_BYTES))
    except ItemNotFound:
        raise AciError("ERRORDOCUMENTNOTFOUND") from None
    except ItemUnreadable as error:
        raise AciError("ERRORDOCUMENTUNREADABLE", f"The document cannot be read: {error}") from None
    return [
        el(
            "document",
            children=[
                el("identifier", item.identifier),
                el("name", item.name),
                el("path", item.path),
                el("contenttype", content_type(item)),
                el("size", str(len(content))),
                el("content", base64.b64encode(content).decode("ascii")),
            ],
        )
    ]


def view_raw(aci: AciRequest, range_header: str) -> HttpResponseBase:
    """The document itself, whole or the one byte range asked for (or, with
    ``Extracted=true``, what Synchronize would send for it)."""
    if wants_extracted(aci):
        return view_extracted(aci)
    repository, item = open_document(aci)
    size = item.size or 0
    start, end = 0, size - 1
    status = 200
    if range_header:
        wanted = _parse_range(range_header, size)
        if wanted is None:
            refused = HttpResponse(status=416)
            document_headers(refused, item)
            refused["Content-Range"] = f"bytes */{size}"
            return refused
        start, end = wanted
        status = 206
    chunks = _slice(repository, item.identifier, start, end - start + 1)
    try:
        # Read the first chunk now: a document that vanished or cannot be read
        # gets an ACI error, not a response that breaks off after its headers.
        first = next(chunks, b"")
    except ItemNotFound:
        raise AciError("ERRORDOCUMENTNOTFOUND") from None
    except ItemUnreadable as error:
        raise AciError("ERRORDOCUMENTUNREADABLE", f"The document cannot be read: {error}") from None
    response = StreamingHttpResponse(
        itertools.chain([first], chunks),
        status=status,
    )
    document_headers(response, item)
    response["Content-Length"] = str(max(0, end - start + 1))
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last) inside the document, else None."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        return max(0, size - _position(last)), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


def _position(digits: str) -> int:
    # Past any document's size already; int() of thousands of digits would
    # cost time and then refuse (Python's digit limit).
    return int(digits) if len(digits) <= 18 else 10**18


def _slice(repository: Repository, identifier: str, start: int, length: int) -> Iterator[bytes]:
    # The file may have shrunk since it was measured: send what there is.
    for chunk in repository.read_chunks(identifier, chunk_size=CHUNK_BYTES, start=start):
        if length <= 0:
            return
        yield chunk[:length]
        length -= len(chunk)
