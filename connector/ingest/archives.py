"""Archives as documents: the members of a zip or tar and the attachments of an e-mail.

With ``ExtractArchives`` on (the default), each member of an archive the task
sends becomes a document of its own, sent right after its archive and
extracted like any other document (``content``): a member that is itself an
archive or an e-mail is opened in turn, up to ``MAX_DEPTH`` levels. A member's
reference is its archive's reference, ``|``, and the member's path
(``member_path``)::

    <archive identifier>|folder/report.docx
    <archive identifier>|inner.zip|notes.txt     a member of a member

Identifiers are URL-safe base64, so ``|`` never occurs in one: a member's
reference can never be a file's. One top-level archive, all levels together,
yields at most ``MAX_MEMBERS`` members holding at most ``ExtractMaxBytes``
uncompressed, within ``ExtractTimeoutSecs``; past any of them the archive is
refused whole (sent by reference with ``EXTRACTFAILED``, no members). Members
are never written to disk; the bytes are unpacked in the extraction child
(``connector/ingest/unpack.py``), which has the child's memory limit.

The datastore keeps a row per member in the folder ``<archive reference>|``
(``member_folder``), so members are found gone like files: Synchronize
(``connector/fetch/synchronize.py``, ``_find_gone_members``) deletes the
members of an archive that is gone, and the members an archive sent again no
longer has. An archive whose bytes did not change is not read, so its members
are not unpacked or extracted again.

This module never imports Django: it runs in the reader processes (imported
there by the first document a job extracts, ``scan._Job._extracted``).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from connector.ingest.extract import Extracted, extractor
from connector.ingest.idx import format_file_document
from connector.ingest.kinds import ARCHIVES, ExtractSettings, detect, has_members

#: Levels of archives opened: an archive's members (1), their members (2), ...
MAX_DEPTH = 3
#: Members of one top-level archive, all levels together.
MAX_MEMBERS = 1000
#: Larger documents are sent by reference even when they are text.
TEXT_LIMIT = 8 * 1024 * 1024
#: The separator between an archive's reference and its member's path.
SEPARATOR = "|"

#: Text, title, extracted fields, content mode: what ``format_file_document`` takes.
Content = tuple[str | None, str, list[tuple[str, str]], str | None]
Change = Literal["added", "updated"]
#: As scan.Record: (change, reference, path, size, modified_ns, sha256, metadata).
MemberRecord = tuple[Change, str, str, int, int, str, None]

# What a component of a member's name must not hold as itself: '%' (the
# escape), '|' (the separator), '#' (the duplicate mark), control characters
# and line breaks (a reference is one line), undecodable bytes (surrogates).
_UNSAFE = re.compile("[%|#\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")


def member_path(name: str) -> str:
    """A member's name as it shows in references and paths: never absolute, no
    ``..``, nothing that could end a reference or fake a nesting level.

    ``\\`` is read as ``/``; empty and ``.`` components are dropped; a ``..``
    component is written ``%2E%2E``; ``%``, ``|``, ``#``, control characters,
    line breaks and undecodable bytes are percent-escaped (UTF-8). Nothing is
    ever written to disk under this name.
    """
    parts = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            parts.append("%2E%2E")
            continue
        parts.append(_UNSAFE.sub(_escape, part) if _UNSAFE.search(part) else part)
    return "/".join(parts) or "%2E"


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogateescape"))


def member_folder(reference: str) -> str:
    """The datastore folder of a member: its archive's reference and ``|``."""
    return reference.rpartition(SEPARATOR)[0] + SEPARATOR


def is_member(reference: str) -> bool:
    return SEPARATOR in reference


def content(
    data: bytes,
    kind: str | None,
    settings: ExtractSettings | None,
    checkpoint: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> tuple[Content, str | None]:
    """What a document read whole sends: text, title, extracted fields and content
    mode, and why its extraction failed (None: it did not, or was not tried).

    ``kind`` is ``detect``'s. Text is at most TEXT_LIMIT bytes of UTF-8 without
    NUL. An archive's own text is its members' paths, one a line (``listing``).
    """
    if settings is not None and kind is not None and kind in settings.types:
        extracted = extractor().extract(data, kind, settings, checkpoint, timeout=timeout)
        return extracted.idx(), extracted.failed
    if len(data) > TEXT_LIMIT or b"\0" in data:
        return (None, "", [], None), None
    try:
        return (data.decode("utf-8"), "", [], None), None
    except UnicodeDecodeError:
        return (None, "", [], None), None


@dataclass(slots=True)
class Members:
    """What opening a document gave: its members, each as IDX and a record, in step."""

    idx: list[bytes] = field(default_factory=list)
    records: list[MemberRecord] = field(default_factory=list)
    #: (path, why) of members sent by reference as their extraction failed.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Why the document's members could not be had (too many, too large, ...).
    refused: str | None = None


@dataclass(slots=True)
class Parent:
    """The document whose members are made: as it is sent."""

    task: str
    reference: str
    path: str
    modified_ns: int
    change: Change


def archive_content(kind: str, listing: list[str]) -> Content:
    """What an archive itself sends: its members' paths as text."""
    fields = [("CONTENTTYPE", ARCHIVES[kind]), ("MEMBERCOUNT", str(len(listing)))]
    return "\n".join(listing), "", fields, "extracted"


def refused_content(kind: str, why: str) -> Content:
    return Extracted(kind, failed=why).idx()


class _Refused(Exception):
    """A limit of the top-level document was passed: it has no members at all."""


class _Walk:
    """One top-level document's members, all levels, within one budget."""

    def __init__(
        self,
        task: str,
        change: Change,
        settings: ExtractSettings,
        checkpoint: Callable[[], None] | None,
    ) -> None:
        self.task = task
        self.change = change
        self.settings = settings
        self.checkpoint = checkpoint
        self.members_left = MAX_MEMBERS
        self.bytes_left = settings.max_bytes
        self.deadline = time.monotonic() + settings.timeout
        self.out = Members()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def open(
        self, data: bytes, kind: str, reference: str, path: str, modified_ns: int, depth: int
    ) -> list[str]:
        """Add the members of ``data`` (and theirs) to the output; their paths.

        Raises _Refused with why the top-level document's members cannot be had.
        """
        if self.left() <= 0:
            raise _Refused(f"timed out after {self.settings.timeout:g} s")
        unpacked, refused = extractor().expand(
            data, kind, self.settings, max_members=self.members_left,
            max_bytes=self.bytes_left, checkpoint=self.checkpoint, timeout=self.left(),
        )  # fmt: skip
        if refused is not None:
            raise _Refused(self._total(refused))
        self.members_left -= len(unpacked)
        self.bytes_left -= sum(len(member.data) for member in unpacked)
        listing: list[str] = []
        seen: dict[str, int] = {}
        for member in unpacked:
            if self.checkpoint is not None:
                self.checkpoint()
            name = member_path(member.name)
            if name in seen:
                # The same name twice (duplicates, or names that differ in '/', '.'):
                # the later ones are numbered.
                seen[name] += 1
                name = f"{name}#{seen[name]}"
            else:
                seen[name] = 1
            listing.append(name)
            modified = member.modified * 1_000_000_000 if member.modified else modified_ns
            self._member(
                member.data, member.failed, f"{reference}{SEPARATOR}{name}",
                f"{path}{SEPARATOR}{name}", reference, modified, depth,
            )  # fmt: skip
        return listing

    def _total(self, refused: str) -> str:
        """Limits are of the whole archive: say them as such, not the level's left-over."""
        if refused.startswith("archive has more than"):
            return f"archive has more than {MAX_MEMBERS} members"
        if refused.startswith("archive exceeds"):
            return f"archive exceeds {self.settings.max_bytes} bytes uncompressed"
        if refused.startswith("timed out"):
            return f"timed out after {self.settings.timeout:g} s"
        return refused

    def _member(
        self,
        data: bytes,
        unreadable: str | None,
        reference: str,
        path: str,
        parent: str,
        modified_ns: int,
        depth: int,
    ) -> None:
        """Send one member (and its members)."""
        settings = self.settings
        kind = detect(data, path.rpartition("/")[2]) if unreadable is None else None
        failed: str | None = unreadable
        place = len(self.out.idx)
        if unreadable is not None:
            sent: Content = (None, "", [("EXTRACTFAILED", unreadable)], "reference")
        elif kind in ARCHIVES and depth >= MAX_DEPTH:
            failed = f"nested deeper than {MAX_DEPTH} archives"
            sent = refused_content(kind, failed)
        elif kind in ARCHIVES:
            listing = self.open(data, kind, reference, path, modified_ns, depth + 1)
            sent = archive_content(kind, listing)
        else:
            if self.left() <= 0:
                raise _Refused(f"timed out after {settings.timeout:g} s")
            sent, failed = content(data, kind, settings, self.checkpoint, timeout=self.left())
            if failed is not None and failed.startswith("timed out"):
                # A member's time is what is left of its archive's.
                raise _Refused(f"timed out after {settings.timeout:g} s")
            if failed is None and has_members(kind, settings) and depth < MAX_DEPTH:
                self.open(data, "eml", reference, path, modified_ns, depth + 1)
        if failed is not None:
            self.out.failed.append((path, failed))
        text, title, fields, mode = sent
        digest = hashlib.sha256(data).hexdigest()
        name = path.rpartition(SEPARATOR)[2].rpartition("/")[2]
        document = format_file_document(
            identifier=reference,
            task=self.task,
            path=path,
            name=name,
            size=len(data),
            modified=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(modified_ns // 1_000_000_000)),
            content_hash=digest,
            text=text,
            title=title,
            extracted=[("PARENTREFERENCE", parent), *fields],
            content_mode=mode,
        )
        # A member goes before its own members (they were added while opening it).
        self.out.idx.insert(place, document.encode("utf-8"))
        self.out.records.insert(
            place, (self.change, reference, path, len(data), modified_ns, digest, None)
        )


def open_document(
    data: bytes,
    kind: str,
    settings: ExtractSettings,
    parent: Parent,
    checkpoint: Callable[[], None] | None = None,
) -> tuple[Content, str | None, Members]:
    """A document that has members (``has_members``): what it sends itself, why its
    extraction failed (None: it did not), and its members.

    An archive sends its members' paths as text; an e-mail its extracted text,
    and its attachments are its members. A refused archive or e-mail has no
    members: ``Members.refused`` says why, as does the document's EXTRACTFAILED.
    """
    walk = _Walk(parent.task, parent.change, settings, checkpoint)
    if kind in ARCHIVES:
        own: Content | None = None
    else:
        own, failed = content(data, kind, settings, checkpoint)
        if failed is not None:
            return own, failed, Members()
    try:
        opened = walk.open(data, kind, parent.reference, parent.path, parent.modified_ns, 1)
    except _Refused as why:
        refused = Members(refused=str(why))
        if own is not None:
            # The e-mail itself was extracted; only its attachments are not sent.
            text, title, fields, mode = own
            return (text, title, [*fields, ("EXTRACTFAILED", str(why))], mode), str(why), refused
        return refused_content(kind, str(why)), str(why), refused
    return own if own is not None else archive_content(kind, opened), None, walk.out
