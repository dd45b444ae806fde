"""Documents as text: what Synchronize sends for a PDF, an Office file, HTML or e-mail.

``detect`` (``connector/ingest/kinds.py``) names a document's type from its
first bytes; ``Extractor.extract`` turns the bytes into text and metadata with
Kreuzberg (``bench/README.md``, "Extraction", says why that library), bounded
by the task's ``ExtractSettings``: a size limit before anything is parsed, a
time limit, and a limit on the text. ``Extractor.expand`` gives the members of
an archive or the attachments of an e-mail (``connector/ingest/unpack.py``),
for ``connector/ingest/archives.py``. LANGUAGE is the declared language, else
the one the library detects (``_language``).

The parser runs in a child process of its own, one per process that extracts
(the worker, each reader process), started on first use and kept. A parser
call in native code cannot be interrupted by a Python thread, and killing a
reader process would break the whole pool; killing the child costs only the
document it was on: it is sent by reference with ``EXTRACTFAILED`` saying
why, and the next document gets a fresh child. The child also runs under an
address-space limit (``ExtractSettings.memory_limit``, from
``CONNECTOR_EXTRACT_MEMORY_MIB``), so a decompression bomb ends in a failed
document, not an out-of-memory reader.

This module never imports Django: it runs in the reader processes
(``connector/ingest/scan.py``, once a job meets a document to extract), and
``python -m connector.ingest.extract`` is the child.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.ingest.kinds import ARCHIVES, MEMORY_LIMIT, TYPES, ExtractSettings

if TYPE_CHECKING:
    import subprocess

    from connector.ingest.unpack import Unpacked

# subprocess, select and the unpacking module are imported where they are
# used: a reader process imports this module for its first document to
# extract, and may never need them (bench/README.md, "Extraction").

logger = logging.getLogger(__name__)

#: Detected languages only for text with at least this many letters (a shorter
#: text gets no LANGUAGE field: a guess from a few words is noise).
LANGUAGE_MIN_LETTERS = 40


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
        return TYPES.get(self.kind) or ARCHIVES[self.kind]

    def idx(self) -> tuple[str | None, str, list[tuple[str, str]], str]:
        """What ``idx.format_file_document`` takes: text, title, fields, content mode."""
        if self.failed is not None:
            fields = [("CONTENTTYPE", self.content_type), ("EXTRACTFAILED", self.failed)]
            return None, "", fields, "reference"
        return self.text or "", self.title, self.fields, "extracted"


# --- Parsing (in the child) ------------------------------------------------------------


def extract_here(data: bytes, kind: str, settings: ExtractSettings) -> Extracted:
    """Parse in this process: what the child does for each document. Never raises."""
    import kreuzberg  # only the child pays for the library

    # disable_ocr is in the runtime signature (4.10) though not in the stubs.
    config = kreuzberg.ExtractionConfig(  # type: ignore[call-arg]
        use_cache=False,  # no cache on disk: the datastore's hash is the cache
        disable_ocr=True,  # OCR is off (issue 15): a scanned PDF has no text
        extraction_timeout_secs=max(1, int(settings.timeout)),
        # Built into the library (whatlang, in its binary): nothing is downloaded.
        language_detection=kreuzberg.LanguageDetectionConfig(enabled=True),
    )
    try:
        result = kreuzberg.extract_bytes_sync(data, TYPES[kind], config)
    except Exception as error:  # the library's errors, whatever their class
        return Extracted(kind, failed=_why(error))
    text = _clean(result.content)
    if len(text.encode("utf-8", "surrogatepass")) > settings.max_text_bytes:
        return Extracted(kind, failed=f"text exceeds {settings.max_text_bytes} bytes")
    extracted = Extracted(kind, text=text)
    _metadata(extracted, dict(result.metadata or {}), _detected_language(result, text))
    return extracted


def _detected_language(result: Any, text: str) -> str:
    """The library's guess at the text's main language (ISO 639-3), or '' when the
    text is too short to tell (LANGUAGE_MIN_LETTERS)."""
    languages = getattr(result, "detected_languages", None) or []
    if not languages:
        return ""
    letters = 0
    for character in text:
        if character.isalpha():
            letters += 1
            if letters >= LANGUAGE_MIN_LETTERS:
                return str(languages[0])
    return ""


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


def _metadata(extracted: Extracted, meta: dict[str, Any], detected: str = "") -> None:
    """The fields of docs/ingest.md from the library's metadata, in a fixed order.

    LANGUAGE is the language the document declares; when it declares none,
    the detected one, and LANGUAGESOURCE says which.
    """
    title = _text(meta.get("title")) or _text(meta.get("subject"))
    extracted.title = title
    fields: list[tuple[str, str]] = [("CONTENTTYPE", extracted.content_type)]
    authors = meta.get("authors") or meta.get("created_by")
    candidates = [
        ("TITLE", title),
        ("AUTHOR", _text(authors)),
        ("CREATED", _text(meta.get("created_at"))),
        ("DOCUMENTMODIFIED", _text(meta.get("modified_at"))),
        *_language(_text(meta.get("language")), detected),
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


def _language(declared: str, detected: str) -> list[tuple[str, str]]:
    if declared:
        return [("LANGUAGE", declared), ("LANGUAGESOURCE", "declared")]
    if detected:
        return [("LANGUAGE", detected), ("LANGUAGESOURCE", "detected")]
    return []


def _serve() -> None:
    """The child: read requests from stdin, answer on stdout, until stdin closes.

    A request is ``>II`` (sizes of its JSON and its bytes), the JSON, the
    bytes; an answer is ``>II`` (sizes of its JSON and of the member bytes
    after it, for ``expand``), the JSON, the bytes.
    """
    import resource

    limit = int(os.environ.get("CONNECTOR_EXTRACT_MEMORY_LIMIT") or MEMORY_LIMIT)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
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
            if request.get("op") == "expand":
                answer, tail = _expand(data, request)
            else:
                answer, tail = _extract_answer(data, request), b""
        except MemoryError:
            answer, tail = {"failed": "exceeds the memory limit"}, b""
        body = json.dumps(answer).encode()
        stdout.write(struct.pack(">II", len(body), len(tail)) + body)
        stdout.write(tail)
        stdout.flush()


def _extract_answer(data: bytes, request: dict[str, Any]) -> dict[str, Any]:
    extracted = extract_here(data, request["kind"], ExtractSettings(
        **{**request["settings"], "types": frozenset(request["settings"]["types"])}))  # fmt: skip
    return {
        "text": extracted.text,
        "title": extracted.title,
        "fields": extracted.fields,
        "failed": extracted.failed,
    }


def _expand(data: bytes, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    from connector.ingest.unpack import Refused, unpack

    try:
        members = unpack(data, request["kind"], request["max_members"], request["max_bytes"])
    except Refused as refused:
        return {"failed": str(refused), "members": []}, b""
    listed = [[m.name, m.modified, len(m.data), m.failed] for m in members]
    return {"failed": None, "members": listed}, b"".join(m.data for m in members)


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
        self._memory_limit = MEMORY_LIMIT
        self._lock = threading.Lock()

    def extract(
        self,
        data: bytes,
        kind: str,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None = None,
        *,
        timeout: float | None = None,
    ) -> Extracted:
        """The document as text, or why not; only ``checkpoint`` may raise (a Stop,
        which kills the child first, so a Stop never waits for a parser).

        ``timeout``: seconds left for it, when less than the settings' (an
        archive's members share their archive's time limit).
        """
        if len(data) > settings.max_bytes:
            return Extracted(kind, failed=f"document exceeds {settings.max_bytes} bytes")
        request = {"op": "extract", "kind": kind, "settings": settings.as_json()}
        answer, _ = self._ask(request, data, settings, checkpoint, timeout)
        if "text" not in answer:
            return Extracted(kind, failed=answer["failed"])
        return Extracted(
            kind,
            text=answer["text"],
            title=answer["title"],
            fields=[(name, value) for name, value in answer["fields"]],
            failed=answer["failed"],
        )

    def expand(
        self,
        data: bytes,
        kind: str,
        settings: ExtractSettings,
        *,
        max_members: int,
        max_bytes: int,
        checkpoint: Callable[[], None] | None = None,
        timeout: float | None = None,
    ) -> tuple[list[Unpacked], str | None]:
        """The members of an archive or the attachments of an e-mail (``unpack``),
        or why there are none: at most ``max_members`` holding ``max_bytes``."""
        request = {"op": "expand", "kind": kind, "max_members": max_members,
                   "max_bytes": max_bytes}  # fmt: skip
        from connector.ingest.unpack import Unpacked

        answer, tail = self._ask(request, data, settings, checkpoint, timeout)
        if answer["failed"] is not None:
            return [], answer["failed"]
        members, at = [], 0
        for name, modified, size, failed in answer["members"]:
            members.append(Unpacked(name, modified, tail[at : at + size], failed))
            at += size
        return members, None

    def _ask(
        self,
        request: dict[str, Any],
        data: bytes,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None,
        timeout: float | None,
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request to the child and wait for its answer, within the time
        limit: ``{"failed": why}`` when the child hung, died or could not be used."""
        with self._lock:
            return self._exchange(request, data, settings, checkpoint, timeout)

    def _exchange(
        self,
        request: dict[str, Any],
        data: bytes,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None,
        timeout: float | None,
    ) -> tuple[dict[str, Any], bytes]:
        import select

        meta = json.dumps(request).encode()
        try:
            child = self._started(settings.memory_limit)
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(struct.pack(">II", len(meta), len(data)) + meta)
            child.stdin.write(data)
            child.stdin.flush()
        except OSError as error:
            self.close()
            return {"failed": f"the extraction process failed ({error})"}, b""
        limit = settings.timeout if timeout is None else min(timeout, settings.timeout)
        deadline = time.monotonic() + limit
        out = child.stdout.fileno()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.close()
                    return {"failed": f"timed out after {settings.timeout:g} s"}, b""
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
            return {"failed": f"{why} (exit {code})" if code is not None else why}, b""
        return answer

    def _answer(self, child: subprocess.Popen[bytes]) -> tuple[dict[str, Any], bytes] | None:
        assert child.stdout is not None
        header = _read_exactly(child.stdout, 8)
        if header is None:
            return None
        body_size, tail_size = struct.unpack(">II", header)
        body = _read_exactly(child.stdout, body_size)
        tail = _read_exactly(child.stdout, tail_size)
        return (json.loads(body), tail) if body is not None and tail is not None else None

    def _started(self, memory_limit: int) -> subprocess.Popen[bytes]:
        import subprocess

        if (
            self._child is not None
            and self._child.poll() is None
            and self._memory_limit == memory_limit
        ):
            return self._child
        self.close()
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        env["CONNECTOR_EXTRACT_MEMORY_LIMIT"] = str(memory_limit)
        self._memory_limit = memory_limit
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
