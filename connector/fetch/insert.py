"""FetchAction=Insert: add documents to the repository, content given base64-encoded.

Parameters: ``ConfigSection`` (required, one task) and ``InsertXML`` (required)::

    <insertXML>
      <insert>
        <reference>reports/2026/q3.txt</reference>
        <property name="TITLE" value="Q3 report"/>
        <file><type>content</type><content>BASE64</content></file>
      </insert>
    </insertXML>

Checked at submission, all or nothing: the XML (no DTD, entities or external
references), each reference (a relative path below the task's first root: no
``..``, ``.`` or empty component, not absolute, no backslash), property names,
exactly one ``<file>`` of type ``content`` per insert, and its base64 (strict
alphabet and padding; whitespace is ignored) of at most ``MAX_DOCUMENT_BYTES``
decoded.

Each document is written all or nothing (a temporary file renamed into
place), with a Stop check every MiB; missing folders are created inside the
root. An existing document is replaced unless it is held (reason ``held``):
the hold check, the rename and the metadata merge happen under the datastore
row's lock (``documents.locked_row``), after the bytes are written, so a
concurrent Hold or Update is never lost. A new document is created with
permission bits ``NEW_DOCUMENT_MODE`` (0640 before the umask); a replaced one
keeps its own.
Properties are merged into the document's datastore metadata, sent as IDX
fields by the next Synchronize. Counts: ``inserted``, ``errors``; the result
lists the new documents' identifiers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from connector.fetch.base import FetchAction, FetchActionFailed, FetchContext, register
from connector.fetch.documents import (
    HELD,
    NOT_INGESTED_SIZE,
    Outcomes,
    children,
    for_each_identifier,
    locked_row,
    merge_metadata,
    metadata_pairs,
    one_task,
    parse_xml,
    the_one_task,
)
from connector.models import DatastoreDocument, FetchTask
from connector.params import InvalidParameter, ParameterError, Params
from connector.repositories import Repository, repository_for

PARAMETER = "InsertXML"
#: Largest document one insert may carry, decoded. The ACI endpoint's
#: parameter limit (CONNECTOR_MAX_PARAMETER_LENGTH) usually bites first.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
#: Bytes written between two Stop checks.
WRITE_CHUNK = 1024 * 1024
_WHITESPACE = re.compile(r"\s+")


class _Held(Exception):
    """The document was held when its new content was about to replace it."""


@dataclass(frozen=True)
class Insertion:
    identifier: str
    reference: str
    properties: dict[str, str]
    #: The content, base64 without whitespace; decoded when written.
    content: str


def _decode(content: str) -> bytes:
    return base64.b64decode(content, validate=True)


def parse_insert_xml(params: Params, task: FetchTask) -> list[Insertion]:
    root = parse_xml(params, PARAMETER, "insertXML")
    repository = repository_for(task)
    insertions = []
    for element in children(root, "insert"):
        reference = "".join((child.text or "") for child in children(element, "reference")).strip()
        try:
            identifier = repository.identifier(0, reference) if reference else ""
        except ValueError as error:
            raise InvalidParameter(
                PARAMETER, reference, f"a relative path below the task's root ({error})"
            ) from None
        if not identifier:
            raise InvalidParameter(PARAMETER, "", "an <insert> with a <reference> path")
        files = children(element, "file")
        if len(files) != 1:
            raise InvalidParameter(PARAMETER, reference, "an <insert> with exactly one <file>")
        kind = "".join((child.text or "") for child in children(files[0], "type")).strip()
        if kind.lower() != "content":
            raise InvalidParameter(PARAMETER, kind, "a <file> of <type>content</type>")
        content = _WHITESPACE.sub(
            "", "".join((child.text or "") for child in children(files[0], "content"))
        )
        # Refused before decoding: a client cannot make the connector decode more.
        if len(content) // 4 * 3 > MAX_DOCUMENT_BYTES:
            raise InvalidParameter(
                PARAMETER, reference, f"a document of at most {MAX_DOCUMENT_BYTES} bytes"
            )
        try:
            _decode(content)
        except (binascii.Error, ValueError):
            raise InvalidParameter(
                PARAMETER, reference, "a document whose <content> is valid base64"
            ) from None
        properties = metadata_pairs(PARAMETER, children(element, "property"))
        insertions.append(Insertion(identifier, reference, properties, content))
    if not insertions:
        raise InvalidParameter(PARAMETER, params.text(PARAMETER), "at least one <insert>")
    return insertions


@register
class Insert(FetchAction):
    name = "INSERT"
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        task = one_task(params, "insert into")
        parse_insert_xml(params, task)
        return [task.name]

    def run(self, ctx: FetchContext) -> None:
        task = the_one_task(ctx)
        try:
            insertions = {i.identifier: i for i in parse_insert_xml(ctx.params, task)}
        except ParameterError as error:
            raise FetchActionFailed(str(error)) from None
        outcomes = Outcomes(ctx, "inserted", [task.name])

        def chunks(data: bytes) -> Iterator[bytes]:
            for start in range(0, len(data), WRITE_CHUNK):
                ctx.checkpoint()
                yield data[start : start + WRITE_CHUNK]

        def insert(task: FetchTask, repository: Repository, identifier: str) -> str | None:
            insertion = insertions[identifier]
            path, folder = repository.placement(identifier)
            if DatastoreDocument.objects.filter(
                task=task, identifier=identifier, held=True
            ).exists():
                # Saves writing the bytes only to drop them; the check that
                # counts is the one under the lock, below.
                return HELD

            @contextmanager
            def replacing() -> Iterator[None]:
                # The hold check, the rename into place and the metadata merge
                # under the row's lock: a Hold either comes first (and the
                # document stays as it was) or after; a concurrent Update's
                # fields are kept.
                with locked_row(task, identifier, path, folder) as row:
                    if row.held:
                        raise _Held
                    yield
                    # The content (and maybe metadata) changed: send it again, whatever its size.
                    row.metadata = merge_metadata(row.metadata or {}, insertion.properties)
                    row.size = NOT_INGESTED_SIZE
                    row.save(update_fields=["metadata", "size"])

            try:
                repository.write_document(
                    identifier, chunks(_decode(insertion.content)), guard=replacing
                )
            except _Held:
                return HELD
            return None

        for_each_identifier(ctx, outcomes, list(insertions), "inserting", insert)
