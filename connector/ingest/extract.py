"""Documents as text: what Synchronize sends for a PDF, an Office file, HTML or e-mail.

``detect`` names a document's type from its first bytes (the name only tells
the Office formats of one container apart, and never makes a type the bytes
deny); ``Extractor.extract`` turns the bytes into text and metadata with
Kreuzberg (``bench/README.md``, "Extraction", says why that library), bounded
by the task's ``ExtractSettings``: a size limit before anything is parsed, a
time limit, and a limit on the text.

The parser runs in a child process of its own, one per process that extracts
(the worker, each reader process), started on first use and kept. A parser
call in native code cannot be interrupted by a Python thread, and killing a
reader process would break the whole pool; killing the child costs only the
document it was on: it is sent by reference with ``EXTRACTFAILED`` saying
why, and the next document gets a fresh child. The child also runs under an
address-space limit (``MEMORY_LIMIT``), so a decompression bomb ends in a
failed document, not an out-of-memory reader.

This module never imports Django: it runs in the reader processes
(``connector/ingest/scan.py``), and ``python -m connector.ingest.extract`` is
the child.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The types Synchronize can extract, by the names the ``ExtractTypes`` key uses,
#: with the MIME type handed to the parser.
TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "rtf": "application/rtf",
    "html": "text/html",
    "eml": "message/rfc822",
}
#: Address space of the extraction child: a parser that wants more fails the document.
MEMORY_LIMIT = 2 * 1024 * 1024 * 1024
#: Bytes of a document looked at to tell HTML or e-mail from plain text.
_SNIFF = 1024


@dataclass(frozen=True, slots=True)
class ExtractSettings:
    """A task's extraction settings (``docs/configuration.md``, the ``Extract*`` keys)."""

    types: frozenset[str] = frozenset(TYPES)
    #: Larger documents are not parsed (sent by reference, ``EXTRACTFAILED``).
    max_bytes: int = 32 * 1024 * 1024
    #: Seconds one document may take; the child is killed after it.
    timeout: float = 30.0
    #: Extracted text longer than this (UTF-8 bytes) is not sent.
    max_text_bytes: int = 8 * 1024 * 1024

    def fingerprint(self) -> str:
        """The settings in one line (a change of them is a change of what is sent)."""
        return (
            f"types={','.join(sorted(self.types))};max_bytes={self.max_bytes};"
            f"timeout={self.timeout:g};max_text_bytes={self.max_text_bytes}"
        )


@dataclass(slots=True)
class Extracted:
    """What a document became: text and fields, or why it stays by reference."""

    #: The detected type (a key of TYPES).
    kind: str
    text: str | None = None
    title: str = ""
    #: (IDX field name, value), in the order documented in docs/ingest.md.
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: Why there is no text (the document goes by reference); None: extracted.
    failed: str | None = None

    @property
    def content_type(self) -> str:
        return TYPES[self.kind]

    def idx(self) -> tuple[str | None, str, list[tuple[str, str]], str]:
        """What ``idx.format_file_document`` takes: text, title, fields, content mode."""
        if self.failed is not None:
            fields = [("CONTENTTYPE", self.content_type), ("EXTRACTFAILED", self.failed)]
            return None, "", fields, "reference"
        return self.text or "", self.title, self.fields, "extracted"


# --- Detection -------------------------------------------------------------------------

_ZIP_MARKERS = (
    ("word/document.xml", "docx"),
    ("xl/workbook.xml", "xlsx"),
    ("ppt/presentation.xml", "pptx"),
)
_OPENDOCUMENT = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_OLE_BY_SUFFIX = {".doc": "doc", ".dot": "doc", ".xls": "xls", ".xlt": "xls", ".ppt": "ppt",
                  ".pps": "ppt"}  # fmt: skip
_MAIL_HEADERS = (
    b"from:", b"to:", b"subject:", b"date:", b"received:", b"return-path:", b"message-id:",
    b"mime-version:", b"delivered-to:", b"reply-to:", b"x-",
)  # fmt: skip


def detect(data: bytes, name: str) -> str | None:
    """The type of a document from its bytes (a key of TYPES), or None: not one we extract.

    Plain text answers None after looking at its first KiB, so text files keep
    their fast path (sent as they are).
    """
    # Written for the common case, plain text, that answers None in a few
    # comparisons: every small document of a Synchronize passes here.
    if data.find(b"%PDF-", 0, _SNIFF) >= 0:
        return "pdf"
    first = data[:1]
    if first == b"P" and data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if first == b"\xd0" and data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        # One container for the three legacy Office formats: the name tells them apart.
        return _OLE_BY_SUFFIX.get(os.path.splitext(name)[1].lower())
    if first in (b"{", b"<", b"\xef", b" ", b"\t", b"\r", b"\n"):
        stripped = data[:_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if stripped.startswith(b"{\\rtf"):
            return "rtf"
        if stripped.startswith((b"<!doctype html", b"<html")) or (
            stripped.startswith((b"<?xml", b"<!--")) and b"<html" in stripped
        ):
            return "html"
        return None
    if data.find(b":", 0, 80) >= 0 and _is_mail(data[:_SNIFF].lower()):
        return "eml"
    return None


def _zip_kind(data: bytes) -> str | None:
    # An OpenDocument file starts with its stored "mimetype" entry (the standard's rule).
    if data[30:38] == b"mimetype":
        for mime, kind in _OPENDOCUMENT.items():
            if mime in data[38:200]:
                return kind
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    for marker, kind in _ZIP_MARKERS:
        if marker in names:
            return kind
    return None  # another archive: sent by reference in this version


def _is_mail(head: bytes) -> bool:
    """A message starts with header lines and has From and one of Subject/To/Date."""
    lines = head.split(b"\n", 30)[:-1] or [head]
    headers = 0
    for line in lines:
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue  # a folded header
        if not line.startswith(_MAIL_HEADERS) and b":" not in line.split(b" ", 1)[0]:
            return False
        headers += 1
    return (
        headers >= 2
        and b"\nfrom:" in b"\n" + head
        and (b"\nsubject:" in b"\n" + head or b"\ndate:" in b"\n" + head)
    )


# --- Parsing (in the child) ------------------------------------------------------------


def extract_here(data: bytes, kind: str, settings: ExtractSettings) -> Extracted:
    """Parse in this process: what the child does for each document. Never raises."""
    import kreuzberg  # only the child pays for the library

    # disable_ocr is in the runtime signature (4.10) though not in the stubs.
    config = kreuzberg.ExtractionConfig(  # type: ignore[call-arg]
        use_cache=False,  # no cache on disk: the datastore's hash is the cache
        disable_ocr=True,  # OCR is off (issue 15): a scanned PDF has no text
        extraction_timeout_secs=max(1, int(settings.timeout)),
    )
    try:
        result = kreuzberg.extract_bytes_sync(data, TYPES[kind], config)
    except Exception as error:  # the library's errors, whatever their class
        return Extracted(kind, failed=_why(error))
    text = _clean(result.content)
    if len(text.encode("utf-8", "surrogatepass")) > settings.max_text_bytes:
        return Extracted(kind, failed=f"text exceeds {settings.max_text_bytes} bytes")
    extracted = Extracted(kind, text=text)
    _metadata(extracted, dict(result.metadata or {}))
    return extracted


def _why(error: Exception) -> str:
    text = " ".join(str(error).split())
    # The library repeats its message ("X: Y: X: Y"); one is enough.
    half = len(text) // 2
    if len(text) > 20 and text[: half - 1] == text[half + 1 :]:
        text = text[: half - 1]
    return f"cannot be parsed: {text[:300]}" if text else "cannot be parsed"


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(_text(item) for item in value if _text(item))
    return " ".join(str(value).split())


def _metadata(extracted: Extracted, meta: dict[str, Any]) -> None:
    """The fields of docs/ingest.md from the library's metadata, in a fixed order."""
    title = _text(meta.get("title")) or _text(meta.get("subject"))
    extracted.title = title
    fields: list[tuple[str, str]] = [("CONTENTTYPE", extracted.content_type)]
    authors = meta.get("authors") or meta.get("created_by")
    candidates = [
        ("TITLE", title),
        ("AUTHOR", _text(authors)),
        ("CREATED", _text(meta.get("created_at"))),
        ("DOCUMENTMODIFIED", _text(meta.get("modified_at"))),
        ("LANGUAGE", _text(meta.get("language"))),
        ("PAGECOUNT", _text(meta.get("page_count") or meta.get("sheet_count"))),
    ]
    if extracted.kind == "eml":
        candidates += [
            ("FROM", _text(meta.get("from_email"))),
            ("TO", _text(meta.get("to_emails"))),
            ("CC", _text(meta.get("cc_emails"))),
            ("SUBJECT", _text(meta.get("subject"))),
            ("ATTACHMENTS", _text(meta.get("attachments"))),
        ]
    fields.extend((name, value) for name, value in candidates if value)
    extracted.fields = fields


def _serve() -> None:
    """The child: read requests from stdin, answer on stdout, until stdin closes."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what stops
    # Answers go to a private copy of stdout; whatever the library prints goes to stderr.
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    hang = os.environ.get("CONNECTOR_EXTRACT_TEST_HANG", "").encode()
    while True:
        header = _read_exactly(stdin, 8)
        if header is None:
            return
        meta_size, data_size = struct.unpack(">II", header)
        meta = _read_exactly(stdin, meta_size)
        data = _read_exactly(stdin, data_size)
        if meta is None or data is None:
            return
        request = json.loads(meta)
        if hang and hang in data:
            # Tests only: a parser that never returns (and ignores signals but KILL).
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                pass
        try:
            extracted = extract_here(data, request["kind"], ExtractSettings(**request["settings"]))
        except MemoryError:
            extracted = Extracted(request["kind"], failed="exceeds the memory limit")
        answer = json.dumps(
            {
                "text": extracted.text,
                "title": extracted.title,
                "fields": extracted.fields,
                "failed": extracted.failed,
            }
        ).encode()
        stdout.write(struct.pack(">I", len(answer)) + answer)
        stdout.flush()


def _die_with_parent() -> None:
    """Linux: the child is killed when its parent dies, even by SIGKILL (a hung
    parser reads no stdin, so it would never see the parent go)."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(0)


def _read_exactly(stream: Any, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = stream.read(left)
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


# --- The parent's side -----------------------------------------------------------------


class Extractor:
    """One child process that parses documents, replaced when it hangs or dies."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def extract(
        self,
        data: bytes,
        kind: str,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None = None,
    ) -> Extracted:
        """The document as text, or why not; only ``checkpoint`` may raise (a Stop,
        which kills the child first, so a Stop never waits for a parser)."""
        if len(data) > settings.max_bytes:
            return Extracted(kind, failed=f"document exceeds {settings.max_bytes} bytes")
        with self._lock:
            return self._extract(data, kind, settings, checkpoint)

    def _extract(
        self,
        data: bytes,
        kind: str,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None,
    ) -> Extracted:
        meta = json.dumps(
            {
                "kind": kind,
                "settings": {
                    "types": sorted(settings.types),
                    "max_bytes": settings.max_bytes,
                    "timeout": settings.timeout,
                    "max_text_bytes": settings.max_text_bytes,
                },
            }
        ).encode()
        try:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(struct.pack(">II", len(meta), len(data)) + meta)
            child.stdin.write(data)
            child.stdin.flush()
        except OSError as error:
            self.close()
            return Extracted(kind, failed=f"the extraction process failed ({error})")
        deadline = time.monotonic() + settings.timeout
        out = child.stdout.fileno()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    return Extracted(kind, failed=f"timed out after {settings.timeout:g} s")
                ready, _, _ = select.select([out], [], [], min(left, 0.1))
                if ready:
                    break
                if checkpoint is not None:
                    checkpoint()
            answer = self._answer(child)
        except BaseException:
            self.close()  # a Stop: the document was not finished, its parser must not go on
            raise
        if answer is None:
            code = child.poll()
            self.close()
            why = "exceeds the memory limit or crashed the parser"
            return Extracted(kind, failed=f"{why} (exit {code})" if code is not None else why)
        text = answer["text"]
        return Extracted(
            kind,
            text=text,
            title=answer["title"],
            fields=[(name, value) for name, value in answer["fields"]],
            failed=answer["failed"],
        )

    def _answer(self, child: subprocess.Popen[bytes]) -> dict[str, Any] | None:
        assert child.stdout is not None
        header = _read_exactly(child.stdout, 4)
        if header is None:
            return None
        body = _read_exactly(child.stdout, struct.unpack(">I", header)[0])
        return json.loads(body) if body is not None else None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        self.close()
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self._child = subprocess.Popen(
            [sys.executable, "-m", "connector.ingest.extract"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
            # Its own session: a Ctrl-C to the worker's group is the worker's to handle.
            start_new_session=True,
        )
        return self._child

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def close(self) -> None:
        """Kill the child (the next document starts another)."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


_extractor: Extractor | None = None


def extractor() -> Extractor:
    """This process's extractor (the worker's, or a reader process's)."""
    global _extractor
    if _extractor is None:
        _extractor = Extractor()
        atexit.register(shutdown)  # a reader process's exit ends its child too
    return _extractor


def shutdown() -> None:
    """Kill this process's extraction child, if any."""
    if _extractor is not None:
        _extractor.close()


if __name__ == "__main__":
    _serve()
