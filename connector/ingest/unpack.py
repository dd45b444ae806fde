"""The members of a zip or tar archive, or the attachments of an e-mail, read bounded.

Runs in the extraction child (``connector/ingest/extract.py``), under its
memory limit and killed at the time limit. Nothing is written to disk: members
are read into memory, and every member's bytes are counted as they are
decompressed, never trusted from the archive's headers. Reading stops at the
first byte past ``max_bytes`` in all (or the first member past
``max_members``), and the whole archive is refused: a zip bomb costs at most
``max_bytes`` of memory and the time to inflate them.

Member names are returned as the archive has them; ``archives.member_path``
makes them safe to show.
"""

from __future__ import annotations

import email
import email.policy
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from io import BytesIO

#: Bytes read from a member at a time.
_CHUNK = 1024 * 1024
#: Entries of a tar (folders, links, ...) read per member allowed.
_ENTRIES_PER_MEMBER = 4


class Refused(Exception):
    """The archive is over a limit or cannot be read: no member is sent."""


@dataclass(slots=True)
class Unpacked:
    name: str
    #: The member's own modification time (POSIX seconds), if the archive has one.
    modified: int | None
    data: bytes
    #: Why this member could not be read (it is sent by reference), else None.
    failed: str | None = None


class _Budget:
    def __init__(self, max_members: int, max_bytes: int) -> None:
        self.members = max_members
        self.bytes = max_bytes
        self.max_members = max_members
        self.max_bytes = max_bytes

    def member(self) -> None:
        self.members -= 1
        if self.members < 0:
            raise Refused(f"archive has more than {self.max_members} members")

    def read(self, stream: object) -> bytes:
        """All of ``stream`` (a file object), counted against the bytes left."""
        parts: list[bytes] = []
        while True:
            part = stream.read(min(_CHUNK, self.bytes + 1))  # type: ignore[attr-defined]
            if not part:
                return b"".join(parts)
            self.bytes -= len(part)
            if self.bytes < 0:
                raise Refused(f"archive exceeds {self.max_bytes} bytes uncompressed")
            parts.append(part)


def unpack(data: bytes, kind: str, max_members: int, max_bytes: int) -> list[Unpacked]:
    """The members of ``data`` (kind ``zip``, ``tar`` or ``eml``), in archive order.

    Raises Refused with the reason when a limit is passed or the archive
    cannot be read at all.
    """
    budget = _Budget(max_members, max_bytes)
    try:
        if kind == "zip":
            return list(_zip(data, budget))
        if kind == "tar":
            return list(_tar(data, budget))
        if kind == "eml":
            return list(_attachments(email.message_from_bytes(data, policy=email.policy.default),
                                     budget))  # fmt: skip
    except (Refused, MemoryError):
        raise
    except RecursionError:
        raise Refused("cannot be read: nested too deeply") from None
    except Exception as error:  # whatever a damaged archive makes the stdlib raise
        raise Refused(f"cannot be read: {_why(error)}") from None
    raise ValueError(f"not an archive kind: {kind}")


def _zip(data: bytes, budget: _Budget) -> Iterator[Unpacked]:
    with zipfile.ZipFile(BytesIO(data)) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > budget.max_members:
            raise Refused(f"archive has more than {budget.max_members} members")
        for info in infos:
            budget.member()
            modified = _zip_time(info)
            if info.flag_bits & 0x1:
                yield Unpacked(info.filename, modified, b"", "the member is encrypted")
                continue
            try:
                with archive.open(info) as stream:
                    member = budget.read(stream)
            except (Refused, MemoryError):
                raise
            except Exception as error:  # a damaged or unsupported member: it alone fails
                yield Unpacked(info.filename, modified, b"", f"cannot be read: {_why(error)}")
                continue
            yield Unpacked(info.filename, modified, member)


def _why(error: Exception) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def _zip_time(info: zipfile.ZipInfo) -> int | None:
    import calendar

    try:
        return calendar.timegm((*info.date_time, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def _tar(data: bytes, budget: _Budget) -> Iterator[Unpacked]:
    # "r:*" reads plain and compressed tars; one member header at a time.
    with tarfile.open(fileobj=BytesIO(data), mode="r:*") as archive:
        entries = 0
        while (info := archive.next()) is not None:
            # tarfile keeps every header it read: drop them (a tar of a million
            # folder entries must not fill the memory), and count them all.
            archive.members.clear()  # type: ignore[attr-defined]
            entries += 1
            if entries > _ENTRIES_PER_MEMBER * budget.max_members:
                raise Refused(f"archive has more than {budget.max_members} members")
            # Links are not followed, devices and folders are not documents.
            if not info.isreg():
                continue
            budget.member()
            stream = archive.extractfile(info)
            member = budget.read(stream) if stream is not None else b""
            yield Unpacked(info.name, int(info.mtime) if info.mtime else None, member)


def _attachments(message: Message, budget: _Budget) -> Iterator[Unpacked]:
    """The attachments of a message: parts with a file name or an ``attachment``
    disposition, and attached messages whole (their own attachments are theirs)."""
    for part in message.get_payload() if message.is_multipart() else []:
        if not isinstance(part, Message):
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            budget.member()
            body = inner.as_bytes() if isinstance(inner, Message) else b""
            budget.read(BytesIO(body))
            yield Unpacked(part.get_filename() or "message.eml", None, body)
        elif part.is_multipart():
            yield from _attachments(part, budget)
        elif part.get_filename() or part.get_content_disposition() == "attachment":
            budget.member()
            payload = part.get_payload(decode=True)
            body = payload if isinstance(payload, bytes) else b""
            budget.read(BytesIO(body))
            yield Unpacked(part.get_filename() or "attachment", None, body)
