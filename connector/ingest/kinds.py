"""What a document is and what a task extracts: all a folder job needs of extraction
until it meets a document to extract.

``detect`` names a document's type from its first bytes (the name only tells
the Office formats of one container apart, and never makes a type the bytes
deny); ``ExtractSettings`` are a task's extraction settings; ``has_members``
says whether a document of a type is opened for its members
(``connector/ingest/archives.py``).

Kept apart from ``connector/ingest/extract.py`` (the parsing, in a child
process) and ``connector/ingest/archives.py`` (the members): every reader
process imports this module, and every small document of a Synchronize
passes through ``detect``, while the other two are imported only when a
document is extracted (``scan._Job._extracted``). A first Synchronize of text
files never imports them (bench/README.md, "Second version"). Like them, this
module never imports Django.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any

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
#: Archives whose members become documents of their own (``ExtractArchives``;
#: ``connector/ingest/archives.py``), with the MIME type sent as CONTENTTYPE.
ARCHIVES: dict[str, str] = {"zip": "application/zip", "tar": "application/x-tar"}
#: Address space of the extraction child by default (``CONNECTOR_EXTRACT_MEMORY_MIB``):
#: a parser that wants more fails the document.
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
    #: Members of zip and tar archives and e-mail attachments become documents.
    archives: bool = True
    #: Address space of the extraction child, bytes (a setting of the process,
    #: not of the task: it is not in the fingerprint).
    memory_limit: int = MEMORY_LIMIT

    def fingerprint(self) -> str:
        """The settings in one line (a change of them is a change of what is sent).

        ``v2``: this version detects languages and makes archive members
        documents, so a task last sent by the first version is sent again.
        """
        return (
            f"v2;types={','.join(sorted(self.types))};max_bytes={self.max_bytes};"
            f"timeout={self.timeout:g};max_text_bytes={self.max_text_bytes};"
            f"archives={int(self.archives)}"
        )

    def extracts(self, kind: str) -> bool:
        """Whether a document of ``kind`` (``detect``'s) is extracted or opened."""
        return kind in self.types or has_members(kind, self)

    def as_json(self) -> dict[str, Any]:
        return {
            "types": sorted(self.types),
            "max_bytes": self.max_bytes,
            "timeout": self.timeout,
            "max_text_bytes": self.max_text_bytes,
            "archives": self.archives,
            "memory_limit": self.memory_limit,
        }


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
    # operations: every small document of a Synchronize passes here
    # (bench/README.md, "Extraction"). A search for one byte is a memchr, for
    # "%PDF-" a slower search through the whole KiB: it starts at the first "%".
    percent = data.find(b"%", 0, _SNIFF)
    if percent >= 0 and data.find(b"%PDF-", percent, _SNIFF) >= 0:
        return "pdf"
    if data[257:262] == b"ustar":
        return "tar"
    if not data:
        return None
    first = data[0]
    if first in _MARKUP_FIRST:
        stripped = data[:_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if stripped.startswith(b"{\\rtf"):
            return "rtf"
        if stripped.startswith((b"<!doctype html", b"<html")) or (
            stripped.startswith((b"<?xml", b"<!--")) and b"<html" in stripped
        ):
            return "html"
        return None
    if first in _BINARY_FIRST:
        if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _zip_kind(data)
        if data.startswith(b"\x1f\x8b"):
            return _gzip_kind(data)
        if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
            # One container for the three legacy Office formats: the name tells them apart.
            return _OLE_BY_SUFFIX.get(os.path.splitext(name)[1].lower())
    if data.find(b":", 0, 80) >= 0 and _is_mail(data[:_SNIFF].lower()):
        return "eml"
    return None


#: First bytes of RTF and HTML (after a BOM or white space), and of zip, gzip and OLE.
_MARKUP_FIRST = frozenset(b"{<\xef \t\r\n")
_BINARY_FIRST = frozenset(b"P\x1f\xd0")


def _zip_kind(data: bytes) -> str | None:
    import zipfile
    from io import BytesIO

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
    return "zip"  # another archive: its members are documents (ExtractArchives)


def _gzip_kind(data: bytes) -> str | None:
    """A gzip-compressed tar is a tar (tarfile reads it); another gzip file is not extracted."""
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], 512)
    except zlib.error:
        return None
    return "tar" if head[257:262] == b"ustar" else None


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


def has_members(kind: str | None, settings: ExtractSettings | None) -> bool:
    """Whether a document of ``kind`` is opened for members under ``settings``."""
    return (
        settings is not None
        and settings.archives
        and (kind in ARCHIVES or (kind == "eml" and "eml" in settings.types))
    )
