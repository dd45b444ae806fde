"""Synchronize's work on one folder: list it, compare it with the datastore, read what changed.

A ``FolderJob`` names one folder of a file-system task (or a slice of a large
folder's documents) and carries the datastore rows of that folder; running it
(``run_job``) lists the folder, finds which documents are new, changed,
unchanged or gone, reads and hashes the ones to send and formats them as IDX,
and returns all of it as a ``FolderResult``. It only reads the file system and
writes nothing; Synchronize (``connector/fetch/synchronize.py``) writes the
batches and the datastore from the results.

Jobs run in the worker itself or in reader processes
(``connector/ingest/readers.py``), which is how a Synchronize uses more than
one core: that is why this module and what it imports never import Django.
A list-only job (``FolderJob.list_only``) just lists a folder and stats its
documents; Synchronize then compares that listing with the folder's rows in
the worker, by running the job with ``listing``, so a run over folders that
have rows splits its work between a reader and the worker without sending
the rows to the reader.

Containment is the repository's: the folder is opened from the root's real
path one component at a time without following links
(``filesystem.open_folder_below``), each document relative to it with
``O_NOFOLLOW | O_NONBLOCK``, and what is read is the regular file that
``fstat`` of the opened descriptor describes.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as stat_module
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from connector.ingest.idx import format_file_document
from connector.ingest.kinds import ExtractSettings, detect, has_members
from connector.repositories.base import ItemNotFound, WriteRefused, display
from connector.repositories.filesystem import (
    DOCUMENT_FLAGS,
    children_prefix,
    is_document_name,
    is_temporary_name,
    make_identifier,
    open_folder_below,
    remove_stale_temporary,
)

if TYPE_CHECKING:
    from connector.ingest.archives import Members

# connector/ingest/extract.py and archives.py are imported by the first document
# a job extracts (_Job._extracted): a reader process that only meets text files
# never loads them (bench/README.md, "Second version").

#: Documents of one job; a folder with more is split into jobs of this many.
JOB_DOCUMENTS = 500
#: A job stops reading once it has read this many bytes and hands back the
#: rest as another job, so Synchronize checks for a Stop at least once a MiB.
JOB_BYTES = 1024 * 1024
#: Larger documents are read by Synchronize itself, a chunk at a time.
SMALL_DOCUMENT = 256 * 1024
#: A job that has spent this long extracting hands back the rest of its
#: documents, so a job in a reader ends within about a second plus one
#: document's extraction time limit.
JOB_EXTRACT_SECONDS = 1.0

Change = Literal["added", "updated"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What one root of a task holds: everything a job needs to know of the task."""

    task: str
    root: int
    #: The root's real path (no links in it).
    root_real: str
    recursive: bool
    #: Names that are documents (None: every name) and names that are not.
    file_match: re.Pattern[str] | None
    file_exclude: re.Pattern[str] | None
    #: How documents are extracted (``connector/ingest/extract.py``); None: never.
    extract: ExtractSettings | None = None
    #: Send every document again, changed or not (the extraction settings changed).
    resend: bool = False

    @property
    def every_name(self) -> bool:
        return self.file_match is None and self.file_exclude is None

    def is_document_name(self, name: str) -> bool:
        return self.every_name or is_document_name(name, self.file_match, self.file_exclude)


#: A datastore row, as much of it as a job needs: (row id, size, modified_ns,
#: content hash, ingested, custom metadata or None). ``ingested`` is 0 for a
#: row another action made (Hold, Update, Insert) before the document was first
#: sent, else 1. Plain tuples, not objects: jobs carry hundreds of them to
#: reader processes, and tuples pickle without Python code per item.
Known = tuple[int, int, int, str, int, dict[str, object] | None]
#: A document read and formatted, to record once its batch is committed:
#: (change, identifier, path, size, modified_ns, content hash, the custom
#: metadata it was sent with or None): the record does not mark the row
#: ingested if its metadata changed since (``datastore.record``).
Record = tuple[Change, str, str, int, int, str, dict[str, object] | None]
#: A document as a list-only job found it: (name, identifier, size,
#: modified_ns); the size is -1 when it could not be stat'ed then (the job given
#: the listing tries again).
Listed = tuple[str, str, int, int]


@dataclass(slots=True)
class FolderJob:
    scope: Scope
    #: The folder, relative to the root ('' for the root itself), '/'-separated.
    path: str
    #: The datastore rows of the folder's documents, by identifier; None when
    #: the folder has too many to send (the job then only lists it).
    known: dict[str, Known] | None
    #: Identifiers to send again even if unchanged (``Identifiers=``).
    forced: frozenset[str] = frozenset()
    #: Only these documents of the folder (a slice of a large folder), not a
    #: listing; ``known`` then holds the rows of these alone.
    names: list[str] | None = None
    #: Only list the folder and stat its documents (``FolderResult.listing``):
    #: the rows stay with Synchronize, which compares them with what was listed
    #: by running the job again with ``listing``.
    list_only: bool = False
    #: The folder's documents as a list-only job found them: used instead of
    #: listing the folder again.
    listing: list[Listed] | None = None


@dataclass(slots=True)
class Large:
    """A document too large for a job: Synchronize reads it a chunk at a time."""

    change: Change | Literal["maybe"]
    name: str
    identifier: str
    known: Known | None
    #: As fstat saw it when the job opened it.
    size: int
    modified_ns: int


@dataclass(slots=True)
class FolderResult:
    #: Why the folder could not be opened or listed; nothing else is set then.
    error: str | None = None
    #: Subfolders to synchronize (names, sorted); only when the folder was listed.
    folders: list[str] = field(default_factory=list)
    #: Documents listed (or given, for a slice).
    seen: int = 0
    unchanged: int = 0
    #: The documents to send: each one's IDX (UTF-8) and its record, in step.
    idx: list[bytes] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    #: Unchanged documents whose time moved: (row id, new time).
    touched: list[tuple[int, int]] = field(default_factory=list)
    #: Identifiers of known rows that no listed document matched.
    gone: list[str] = field(default_factory=list)
    large: list[Large] = field(default_factory=list)
    #: (path, why) of documents that could not be read.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Names skipped with a warning (the repository cannot name them).
    skipped: list[str] = field(default_factory=list)
    #: (path, why) of documents sent by reference as their extraction failed.
    extract_failed: list[tuple[str, str]] = field(default_factory=list)
    #: The folder has more documents than a job takes (or no rows were sent):
    #: all its document names, sorted, to be done in slices.
    too_many: list[str] | None = None
    #: What the job left when it had read JOB_BYTES: the next job.
    rest: FolderJob | None = None
    #: What a list-only job found: the folder's documents, sorted by name.
    listing: list[Listed] | None = None


def run_job(job: FolderJob, checkpoint: Callable[[], None] | None = None) -> FolderResult:
    """Do one job; never raises for a problem of the file system (it is in the result).

    ``checkpoint``, when the job runs in the worker itself, is called before
    each document and may raise to stop the job (a Stop). In a reader
    process a job runs to its end: at most JOB_DOCUMENTS documents and about
    JOB_BYTES read.
    """
    scope = job.scope
    result = FolderResult()
    parts = job.path.split("/") if job.path else []
    try:
        folder = open_folder_below(scope.root_real, parts, create=False)
    except (OSError, ItemNotFound, WriteRefused) as error:
        result.error = f"cannot open folder: {getattr(error, 'strerror', None) or error}"
        return result
    try:
        return _Job(job, folder, result, checkpoint).run()
    finally:
        os.close(folder)


# os.fsencode without its checks: one per listed document.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


class _Job:
    def __init__(
        self,
        job: FolderJob,
        folder: int,
        result: FolderResult,
        checkpoint: Callable[[], None] | None,
    ) -> None:
        self.job = job
        self.checkpoint = checkpoint
        self.folder = folder
        self.result = result
        scope = job.scope
        folder_path = display(job.path)
        self.prefix = children_prefix(scope.task, scope.root, job.path)
        self.every_name = scope.every_name
        self.extract = scope.extract
        self.path_prefix = folder_path + "/" if folder_path else ""
        self.read_bytes = 0
        #: Seconds spent extracting (see JOB_EXTRACT_SECONDS).
        self.extracting = 0.0
        self._second = -1
        self._iso = ""

    def run(self) -> FolderResult:
        job, result = self.job, self.result
        entries: Sequence[tuple[str, os.DirEntry[str] | _Stat | None]]
        #: The entries' identifiers when the listing came with them.
        identifiers: list[str] | None = None
        if job.names is not None:
            entries = [(n, None) for n in job.names]
        else:
            if job.listing is not None:
                entries = [
                    (name, _Stat(size, modified_ns) if size >= 0 else None)
                    for name, _, size, modified_ns in job.listing
                ]
                identifiers = [identifier for _, identifier, _, _ in job.listing]
            else:
                listed = self._list()
                if listed is None:
                    return result
                if job.list_only:
                    result.listing = [self._listed(name, entry) for name, entry in listed]
                    return result
                entries = listed
            if job.known is None or len(entries) > JOB_DOCUMENTS:
                result.too_many = [name for name, _ in entries]
                return result
        known = dict(job.known or {})
        prefix, checkpoint, forced, folder = self.prefix, self.checkpoint, job.forced, self.folder
        resend = job.scope.resend
        done = unchanged = 0
        # Every run after the first spends its time here: one lstat per document
        # and a read only of what changed. Written out in one loop, not a call per
        # document, as that was a good part of a no-change run (bench/README.md).
        for name, entry in entries:
            if self.read_bytes >= JOB_BYTES or self.extracting >= JOB_EXTRACT_SECONDS:
                self._hand_back(entries[done:], known)
                break
            if checkpoint is not None:
                checkpoint()
            identifier = (
                identifiers[done]
                if identifiers is not None
                else make_identifier(prefix + name.encode(_FS_ENCODING, _FS_ERRORS))
            )
            done += 1
            row = known.pop(identifier, None)
            change: Change | Literal["maybe"]
            if row is None or not row[4]:
                change = "added"
            elif resend or identifier in forced:
                change = "updated"
            else:
                try:
                    st = (
                        entry.stat(follow_symlinks=False)
                        if entry is not None
                        else os.stat(name, dir_fd=folder, follow_symlinks=False)
                    )
                except OSError as error:
                    self._failed(name, error)
                    continue
                if st.st_size == row[1] and st.st_mtime_ns == row[2]:
                    unchanged += 1
                    continue
                change = "maybe" if st.st_size == row[1] and row[3] else "updated"
            self._read(name, identifier, change, row)
        result.seen = done
        result.unchanged += unchanged
        if job.names is None:
            result.gone = list(known)
        return result

    def _list(self) -> list[tuple[str, os.DirEntry[str]]] | None:
        """The folder's documents, sorted by name; subfolders go to the result."""
        scope, result = self.job.scope, self.result
        documents: list[tuple[str, os.DirEntry[str]]] = []
        folders: list[str] = []
        try:
            with os.scandir(self.folder) as scan:
                for entry in scan:
                    name = entry.name
                    # A symbolic link is neither a folder nor a file here: never followed.
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if scope.recursive:
                                folders.append(name)
                            continue
                        if not entry.is_file(follow_symlinks=False):
                            continue  # sockets, devices, FIFOs are not documents
                    except OSError:
                        continue  # gone since the folder was listed
                    if name[0] == "." and is_temporary_name(name):
                        # An Insert's or a copy's file being written, or one a
                        # killed write left: never a document; removed once stale.
                        with suppress(OSError):
                            st = entry.stat(follow_symlinks=False)
                            remove_stale_temporary(self.folder, name, st.st_mtime)
                        continue
                    if not (self.every_name or scope.is_document_name(name)):
                        continue
                    if "\\" in name:
                        # Identifiers refuse backslashes (a separator elsewhere),
                        # so such a name could never be reached again.
                        result.skipped.append(self.path_prefix + display(name))
                        continue
                    documents.append((name, entry))
        except OSError as error:
            result.error = f"cannot list folder: {error.strerror or error}"
            return None
        folders.sort()
        for name in folders:
            if "\\" in name:
                result.skipped.append(self.path_prefix + display(name))
        result.folders = [name for name in folders if "\\" not in name]
        documents.sort()  # names are unique, so the entries are never compared
        return documents

    def _listed(self, name: str, entry: os.DirEntry[str]) -> Listed:
        identifier = make_identifier(self.prefix + name.encode(_FS_ENCODING, _FS_ERRORS))
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return (name, identifier, -1, -1)  # gone since the listing: the comparing job says why
        return (name, identifier, st.st_size, st.st_mtime_ns)

    def _hand_back(
        self,
        entries: Sequence[tuple[str, os.DirEntry[str] | _Stat | None]],
        known: dict[str, Known],
    ) -> None:
        """Give back the documents not done yet as a job of their own (with their rows)."""
        names, rows = [], {}
        for name, _ in entries:
            identifier = make_identifier(self.prefix + name.encode(_FS_ENCODING, _FS_ERRORS))
            names.append(name)
            if (row := known.pop(identifier, None)) is not None:
                rows[identifier] = row
        self.result.rest = FolderJob(
            scope=self.job.scope, path=self.job.path, known=rows, forced=self.job.forced,
            names=names,
        )  # fmt: skip

    def _read(
        self, name: str, identifier: str, change: Change | Literal["maybe"], row: Known | None
    ) -> None:
        result = self.result
        try:
            st, data = read_small_document(self.folder, name)
        except NotADocument:
            # Swapped for a FIFO or a device since the listing.
            result.failed.append((self.path_prefix + display(name), "not a regular file"))
            return
        except OSError as error:
            self._failed(name, error)
            return
        if data is None:
            result.large.append(Large(change, name, identifier, row, st.st_size, st.st_mtime_ns))
            return
        self.read_bytes += len(data)
        digest = hashlib.sha256(data).hexdigest()
        if change == "maybe":
            assert row is not None
            if digest == row[3]:
                result.touched.append((row[0], st.st_mtime_ns))
                result.unchanged += 1
                return
            change = "updated"
        shown = _shown(name)
        path = self.path_prefix + shown
        settings = self.extract
        if settings is not None and (kind := detect(data, name)) and settings.extracts(kind):
            self._extracted(data, kind, settings, identifier, change, row, st, digest, path)
            return
        # Text, or by reference: the path of most documents, kept as short as it was.
        text: str | None = None
        if 0 not in data:  # no NUL byte (as b"\0" not in data, 0.13 us less a file)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        metadata = row[5] if row is not None else None
        document = format_file_document(
            identifier=identifier,
            task=self.job.scope.task,
            path=path,
            name=shown,
            size=len(data),
            modified=self._modified(st.st_mtime_ns),
            content_hash=digest,
            text=text,
            metadata=metadata,
        )
        result.idx.append(document.encode("utf-8"))
        result.records.append((change, identifier, path, len(data), st.st_mtime_ns, digest,
                               metadata))  # fmt: skip

    def _extracted(
        self,
        data: bytes,
        kind: str,
        settings: ExtractSettings,
        identifier: str,
        change: Change,
        row: Known | None,
        st: os.stat_result,
        digest: str,
        path: str,
    ) -> None:
        """A document the task extracts: its text and fields, then its members if any."""
        from connector.ingest.archives import Parent, open_document
        from connector.ingest.extract import extractor

        result = self.result
        started = time.monotonic()
        members: Members | None = None
        if has_members(kind, settings):
            parent = Parent(self.job.scope.task, identifier, path, st.st_mtime_ns, change)
            (text, title, fields, mode), failed, members = open_document(
                data, kind, settings, parent, self.checkpoint
            )
        else:
            extracted = extractor().extract(data, kind, settings, self.checkpoint)
            (text, title, fields, mode), failed = extracted.idx(), extracted.failed
        self.extracting += time.monotonic() - started
        if failed is not None:
            result.extract_failed.append((path, failed))
        metadata = row[5] if row is not None else None
        document = format_file_document(
            identifier=identifier,
            task=self.job.scope.task,
            path=path,
            name=path.rpartition("/")[2],
            size=len(data),
            modified=self._modified(st.st_mtime_ns),
            content_hash=digest,
            text=text,
            metadata=metadata,
            title=title,
            extracted=fields,
            content_mode=mode,
        )
        result.idx.append(document.encode("utf-8"))
        result.records.append((change, identifier, path, len(data), st.st_mtime_ns, digest,
                               metadata))  # fmt: skip
        if members is not None:
            # Right after their archive, in the same batch where they fit.
            result.idx.extend(members.idx)
            result.records.extend(members.records)
            result.extract_failed.extend(members.failed)

    def _modified(self, modified_ns: int) -> str:
        """The time as IDX's MODIFIED field has it; documents often share a second."""
        second = modified_ns // 1_000_000_000
        if second != self._second:
            self._second = second
            self._iso = iso_seconds(second)
        return self._iso

    def _failed(self, name: str, error: OSError) -> None:
        why = "it no longer exists" if isinstance(error, FileNotFoundError) else error.strerror
        self.result.failed.append((self.path_prefix + display(name), str(why or error)))


class _Stat:
    """A document's size and time as a list-only job found them, in place of its
    ``DirEntry`` (the same ``stat`` call, the two fields a job compares)."""

    __slots__ = ("st_mtime_ns", "st_size")

    def __init__(self, size: int, modified_ns: int) -> None:
        self.st_size = size
        self.st_mtime_ns = modified_ns

    def stat(self, *, follow_symlinks: bool = True) -> _Stat:
        return self


class NotADocument(Exception):
    """What was opened is not a regular file."""


def read_small_document(folder: int, name: str) -> tuple[os.stat_result, bytes | None]:
    """Open ``name`` in ``folder`` without following a link and read it whole: its
    fstat and bytes, or None for the bytes if it has more than SMALL_DOCUMENT."""
    fd = os.open(name, DOCUMENT_FLAGS, dir_fd=folder)
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise NotADocument(name)
        if st.st_size > SMALL_DOCUMENT:
            return st, None
        data = os.read(fd, st.st_size + 1)
        # Grown since fstat: read on, up to the limit.
        while SMALL_DOCUMENT >= len(data) > st.st_size:
            more = os.read(fd, SMALL_DOCUMENT + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    return st, data if len(data) <= SMALL_DOCUMENT else None


def _shown(name: str) -> str:
    return name if name.isascii() else display(name)


def shown_path(folder: str, name: str) -> str:
    """A document's path as the datastore and IDX show it (``display``)."""
    return f"{display(folder)}/{_shown(name)}" if folder else _shown(name)


def iso_seconds(second: int) -> str:
    """A POSIX time in whole seconds as ISO 8601 UTC, ``2026-11-26T14:01:02Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
