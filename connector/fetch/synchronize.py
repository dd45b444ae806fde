"""FetchAction=Synchronize: send what is new, changed or gone since the last run.

Parameters:

- ``TaskSections`` (required; ``ConfigSection`` is accepted too): the fetch tasks.
- ``Identifiers``: documents of those tasks to ingest again even if unchanged.

Per task, one folder at a time (stage ``enumerating``, then ``ingesting`` as
changes are written): a folder job (``connector/ingest/scan.py``) lists the
folder, compares its documents with the folder's datastore rows
(``DatastoreDocument``) by size and modification time, reads and hashes what
is new or changed and formats it as IDX; rows no listed document matched are
documents gone. When only the time changed, the content's sha256 decides, so a
file touched but not changed is not sent again. The changes go to the task's
ingest folder as IDX batches and, when the task has one, to its ingest URL.

A large run hands its jobs to reader processes (``connector/ingest/readers.py``),
a few jobs ahead of the one being written, so reading and writing use both
cores; results are written in the order the jobs were made, so the output
does not depend on where a job ran.

The datastore is written only for the documents of a committed batch, in the
same step as the commit. A Stop (checked at every job's result, every slice of
documents written, and every MiB read) or a failure drops the batch being
written, so the datastore always says exactly what the ingest target has, and
the next run resumes from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future
from contextlib import suppress
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from connector import progress
from connector.fetch.base import (
    FetchAction,
    FetchActionFailed,
    FetchContext,
    register,
    task_parameter,
)
from connector.ingest import archives, datastore, scan
from connector.ingest.archives import Content
from connector.ingest.extract import Extracted
from connector.ingest.idx import format_delete_list, format_file_document
from connector.ingest.kinds import ExtractSettings, detect, has_members
from connector.ingest.post import IngestPostFailed, post_batch
from connector.ingest.readers import Reader
from connector.ingest.spool import BatchFile, Kind, Spool
from connector.models import DatastoreDocument, FetchTask
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories import (
    FileSystemRepository,
    IdentifierError,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryError,
    RepositoryUnavailable,
    repository_for,
    task_name_of,
)
from connector.repositories.base import Item, display
from connector.repositories.filesystem import children_prefix, make_identifier

logger = logging.getLogger(__name__)

#: Documents per batch file; a batch also ends once it holds BATCH_BYTES. Each
#: batch costs two fsyncs, which at 100 documents were a large part of a first
#: run over small files (bench/README.md); a Stop drops at most one batch.
BATCH_DOCUMENTS = 1000
BATCH_BYTES = 64 * 1024 * 1024
#: Larger documents are sent by reference even when they are text.
TEXT_LIMIT = archives.TEXT_LIMIT
#: Bytes read between two Stop checks.
READ_CHUNK = 1024 * 1024
#: Touched documents (same content, new time) whose time is recorded at once.
TOUCHED_BATCH = 500
#: A run hands its jobs to the reader processes once it has listed this many
#: documents: below, they cost more than they save.
READERS_AFTER = 2000
#: A folder that has rows is only listed in a reader (a list-only job) and
#: compared with its rows here, as sending the rows costs more than the lstats
#: it would save (bench/README.md); what changed is read here too when it is
#: at most this many documents, else the folder goes to a reader whole.
READ_HERE = 32
#: Jobs handed to the reader processes ahead of the one being written.
JOBS_AHEAD = 6

#: ``extractfailed``: documents sent by reference as their extraction failed
#: (docs/ingest.md, "Documents as text").
COUNTS = ("seen", "added", "updated", "deleted", "unchanged", "errors", "extractfailed")
ENUMERATING = "enumerating"
INGESTING = "ingesting"


def _reason(error: Exception) -> str:
    text = str(error)
    return text[:1].lower() + text[1:]


def forced_documents(tasks: list[str], identifiers: list[str]) -> dict[str, set[str]]:
    """``Identifiers`` by task, each checked to be a document of one of ``tasks``."""
    by_task: dict[str, set[str]] = {}
    repositories: dict[str, Repository] = {}
    expected = f"an identifier of a document of fetch task {', '.join(tasks)}"
    for identifier in identifiers:
        try:
            task = task_name_of(identifier)
        except IdentifierError as error:
            raise InvalidParameter(
                "Identifiers", identifier, f"{expected} ({_reason(error)})"
            ) from None
        if task not in tasks:
            raise InvalidParameter(
                "Identifiers", identifier, f"{expected} (it belongs to fetch task {task})"
            )
        if task not in repositories:
            repositories[task] = repository_for(FetchTask.objects.get(name=task))
        try:
            item = repositories[task].stat(identifier)
        except RepositoryError as error:
            raise InvalidParameter(
                "Identifiers", identifier, f"{expected} ({_reason(error)})"
            ) from None
        if item.is_container:
            raise InvalidParameter(
                "Identifiers", identifier, f"{expected} (this identifier names a folder)"
            )
        by_task.setdefault(task, set()).add(identifier)
    return by_task


def document_content(
    path: str,
    data: bytes,
    settings: ExtractSettings | None,
    *,
    whole: bool = True,
    checkpoint: Callable[[], None] | None = None,
    parent: archives.Parent | None = None,
) -> tuple[Content, str | None, archives.Members | None]:
    """What a document read whole (else its first KiB, ``whole`` False) sends: text,
    title, extracted fields and content mode for ``format_file_document``, why
    its extraction failed (None: it did not, or was not tried), and its members
    when it is an archive or an e-mail whose members are sent (``parent`` says
    what it is sent as).

    Text is at most TEXT_LIMIT bytes of UTF-8 without NUL, as in a job.
    """
    kind = detect(data, path) if settings is not None else None
    if settings is not None and kind is not None and settings.extracts(kind):
        if not whole:
            extracted = Extracted(kind, failed=f"document exceeds {settings.max_bytes} bytes")
            return extracted.idx(), extracted.failed, None
        if parent is not None and has_members(kind, settings):
            return archives.open_document(data, kind, settings, parent, checkpoint)
    if not whole:
        return (None, "", [], None), None, None
    sent, failed = archives.content(data, kind, settings, checkpoint)
    return sent, failed, None


def preview_document(task: FetchTask, repository: Repository, item: Item) -> str:
    """The IDX Synchronize would send for ``item`` now (``View&Extracted=true``).

    Raises the repository's errors (ItemNotFound, ItemUnreadable).
    """
    settings = task.extract_settings()
    keep = max(TEXT_LIMIT, settings.max_bytes if settings is not None else 0)
    digest = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    chunks = repository.read_chunks(item.identifier, chunk_size=READ_CHUNK)
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if size <= keep or not parts:
                parts.append(chunk)
    finally:
        if isinstance(chunks, Generator):
            chunks.close()
    data, whole = b"".join(parts), size <= keep
    parent = archives.Parent(task.name, item.identifier, display(item.path), 0, "updated")
    (text, title, fields, mode), _, _ = document_content(
        item.path, data if whole else data[:1024], settings, whole=whole, parent=parent
    )
    row = DatastoreDocument.objects.filter(task=task, identifier=item.identifier).first()
    modified = item.modified.timestamp() if item.modified is not None else 0
    return format_file_document(
        identifier=item.identifier,
        task=task.name,
        path=display(item.path),
        name=display(item.name),
        size=size,
        modified=scan.iso_seconds(int(modified)),
        content_hash=digest.hexdigest(),
        text=text,
        metadata=row.metadata or None if row is not None else None,
        title=title,
        extracted=fields,
        content_mode=mode,
    )


@register
class Synchronize(FetchAction):
    name = "SYNCHRONIZE"
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        tasks = task_parameter(params, "TaskSections", "ConfigSection")
        if not tasks:
            raise MissingParameter("TaskSections", "Name the fetch task(s) to synchronize.")
        forced_documents(tasks, params.csv("Identifiers"))
        return tasks

    def run(self, ctx: FetchContext) -> None:
        if not ctx.task_names:
            raise FetchActionFailed("The action names no fetch task (TaskSections)")
        tasks = ctx.tasks
        forced: dict[str, set[str]] = {}
        for identifier in ctx.params.csv("Identifiers"):
            # Refused at submission if it does not decode; nothing to force then.
            with suppress(IdentifierError):
                forced.setdefault(task_name_of(identifier), set()).add(identifier)
        failures: list[str] = []
        expected = Expected(tasks)
        for position, task in enumerate(tasks):
            run = TaskSynchronizer(
                ctx, task, forced.get(task.name, set()), position, len(tasks), expected
            )
            if problem := run.run():
                failures.append(problem)
        if failures and len(failures) == len(tasks):
            raise FetchActionFailed("; ".join(failures))
        ctx.expect(*expected.total())
        ctx.progress(100, "synchronized")


class Expected:
    """The documents a Synchronize expects to list in all, for an honest percentage
    (connector/progress.py): a task whose listing ended counts what it listed; one
    still to list, what its last complete run listed, if it had one. One task with
    no such run, and the total is unknown."""

    def __init__(self, tasks: list[FetchTask]) -> None:
        self.estimates = {task.name: task.documents_last_complete for task in tasks}
        #: The tasks whose listing ended, and what they listed.
        self.listed: dict[str, int] = {}

    def total(self) -> tuple[int | None, str]:
        rest = [n for name, n in self.estimates.items() if name not in self.listed]
        done = sum(self.listed.values())
        if not rest:
            return done, progress.LISTED
        if None in rest:
            return None, progress.UNKNOWN
        return done + sum(n for n in rest if n is not None), progress.PREVIOUS

    def percent(self, listed: int, share_of_tasks: float) -> tuple[int | None, str, float]:
        """What is expected and the percentage done when ``listed`` documents were
        listed in all; without a total, the share of the tasks done."""
        total, basis = self.total()
        if basis == progress.PREVIOUS and (not total or listed > total):
            # None listed last time, or more than that now: no estimate (left).
            total, basis = None, progress.UNKNOWN
        if not total:
            return total, basis, 100 * share_of_tasks
        return total, basis, min(99, 100 * listed / total)


class TaskSynchronizer:
    """One task's part of a Synchronize.

    Folders are done depth first, each by a job; a job's result is written
    (batches, then the datastore once a batch is committed) before the
    results of later jobs. Documents gone are found per folder; the rows of
    folders no longer there are found last. So memory holds a few jobs'
    results, one batch and the set of folders listed, not the task.
    """

    def __init__(
        self,
        ctx: FetchContext,
        task: FetchTask,
        forced: set[str],
        position: int,
        of: int,
        expected: Expected,
    ) -> None:
        self.ctx = ctx
        self.task = task
        self.name = task.name
        repository = repository_for(task)
        assert isinstance(repository, FileSystemRepository)
        self.repository = repository
        self.extract = task.extract_settings()
        #: The extraction settings changed since the last complete run: send everything.
        self.resend = task.extract_sent_with not in ("", task.extract_fingerprint())
        self.position = position
        self.of = of
        self.expected = expected
        self.spool = Spool(Path(task.ingest_path), task.name, timezone.now())
        self.batch: BatchFile | None = None
        #: In the batch being written: documents (with their folder) and rows gone.
        self.pending: list[tuple[str, scan.Record]] = []
        self.pending_gone: list[int] = []
        #: Documents gone, waiting for a delete batch: (row id, identifier).
        self.gone: list[tuple[int, str]] = []
        #: Rows of documents gone that were never sent: no delete needed.
        self.never_sent: list[int] = []
        #: Unchanged documents whose time moved: (row id, new time).
        self.touched: list[tuple[int, int]] = []
        #: Folders listed (their identifiers), and those that could not be: (root, path).
        self.listed_folders: set[str] = set()
        self.unlisted: list[tuple[int, str]] = []
        self.forced = forced
        self.forced_by_folder: dict[str, set[str]] = {}
        self.forced_sent: set[str] = set()
        self.extent = datastore.Extent(0, 0)
        self.started = timezone.now()
        #: Datastore folders of archive members (``archives.member_folder``) seen.
        self.member_folders: list[str] = []
        #: A batch was not delivered in this run (its documents are sent again).
        self.post_failed = False
        #: Rows of the extent found present or gone so far.
        self.judged = 0
        self.listed = 0
        self.reader = Reader(in_processes=False, checkpoint=ctx.checkpoint)
        #: Folders to do (depth first: the last is next), and jobs handed out, oldest first.
        self.todo: list[tuple[scan.Scope, str]] = []
        self.in_flight: deque[tuple[scan.FolderJob, str, Future[scan.FolderResult]]] = deque()

    def count(self, name: str, n: int = 1) -> None:
        self.ctx.count(self.name, name, n)

    def progress(self, stage: str) -> None:
        # The total is not known before the listing ends: the last complete runs'
        # is the estimate, if there were such runs (not the datastore's rows,
        # which a stopped run left short); without one, no percentage.
        listed = sum(self.expected.listed.values()) + self.listed
        total, basis, percent = self.expected.percent(listed, self.position / self.of)
        self.ctx.expect(total, basis)
        self.ctx.progress(percent, stage)

    # --- The run ----------------------------------------------------------------------

    def run(self) -> str | None:
        """Synchronize the task; return why it could not be done at all, else None."""
        for name in COUNTS:
            self.count(name, 0)
        self.progress(ENUMERATING)
        try:
            self.repository.check()
            self.spool.prepare()
        except RepositoryUnavailable as error:
            self.expected.listed[self.name] = 0
            return self._unusable(str(error))
        except OSError as error:
            # The folder's path stays in the log: the answer reaches ACI clients.
            logger.warning(
                "Ingest folder %s of fetch task %s: %s", self.spool.folder, self.name, error
            )
            self.expected.listed[self.name] = 0
            return self._unusable(
                f"The ingest folder of fetch task {self.name} cannot be used: {error.strerror}"
            )
        self.extent = datastore.extent(self.task)
        self.started = timezone.now()
        self._group_forced()
        try:
            self._walk()
            self.expected.listed[self.name] = self.listed
            if self.judged < self.extent.rows:
                self._find_gone_folders()
            self._write_deletes()
            if self.member_folders:
                self._commit()  # the archives sent again are recorded: their time says so
                self._find_gone_members()
                self._write_deletes()
            self._commit()
            for identifier in sorted(self.forced - self.forced_sent):
                self.ctx.log.warning(
                    "Document %s of fetch task %s is no longer there to ingest again",
                    identifier,
                    self.name,
                )
            datastore.forget(self.never_sent)
            self._record_extract_settings()
            FetchTask.objects.filter(pk=self.task.pk).update(documents_last_complete=self.listed)
        finally:
            for _, _, future in self.in_flight:
                future.cancel()
            self.in_flight.clear()
            if self.batch is not None:
                self.batch.abort()
                self.batch = None
            self._record_touched()
            self.repository.close()
        counts = self.ctx.counts[self.name]
        self.ctx.log.info(
            "Synchronized fetch task %s: %s",
            self.name,
            ", ".join(f"{counts.get(name, 0)} {name}" for name in COUNTS),
        )
        return None

    def _record_extract_settings(self) -> None:
        """Only after a complete run: a stopped one is resent whole by the next."""
        fingerprint = self.task.extract_fingerprint()
        if self.task.extract_sent_with != fingerprint:
            if self.resend:
                self.ctx.log.info("Sent every document of fetch task %s again: its extraction"
                                  " settings changed", self.name)  # fmt: skip
            FetchTask.objects.filter(pk=self.task.pk).update(extract_sent_with=fingerprint)
            self.task.extract_sent_with = fingerprint

    def _unusable(self, problem: str) -> str:
        self.ctx.log.error("%s", problem)
        self.count("errors")
        return problem

    def _group_forced(self) -> None:
        """``Identifiers=`` by the identifier of their folder: each job gets its own."""
        for identifier in self.forced:
            with suppress(IdentifierError):
                location = self.repository.locate(identifier)
                folder = self.repository.identifier(location.root, "/".join(location.parts[:-1]))
                self.forced_by_folder.setdefault(folder, set()).add(identifier)

    def _scopes(self) -> list[scan.Scope]:
        repository = self.repository
        return [
            scan.Scope(
                task=self.name,
                root=root,
                root_real=repository.root_real(root),
                recursive=repository.recursive,
                file_match=None if repository.every_name else repository.file_match,
                file_exclude=None if repository.every_name else repository.file_exclude,
                extract=self.extract,
                resend=self.resend,
            )
            for root in range(repository.root_count)
        ]

    # --- Folders and jobs -------------------------------------------------------------

    def _walk(self) -> None:
        """Every folder of the task, depth first, a few jobs ahead of the one written."""
        self.todo = [(scope, "") for scope in reversed(self._scopes())]
        while self.todo or self.in_flight:
            # As many ahead in the worker as in reader processes (there a job is
            # done when handed out), so the order of the output is the same.
            while self.todo and len(self.in_flight) < JOBS_AHEAD:
                scope, path = self.todo.pop()
                folder = self.repository.identifier(scope.root, path)
                self._submit(self._folder_job(scope, path, folder), folder)
            self._handle_next()
            if not self.reader.in_processes and self.listed >= READERS_AFTER:
                self.reader = Reader(in_processes=True, checkpoint=self.ctx.checkpoint)

    def _folder_job(self, scope: scan.Scope, path: str, folder: str) -> scan.FolderJob:
        return scan.FolderJob(
            scope=scope,
            path=path,
            known=datastore.folder_rows(self.task, folder),
            forced=frozenset(self.forced_by_folder.get(folder, ())),
        )

    def _submit(self, job: scan.FolderJob, folder: str) -> None:
        handed = job
        if self.reader.in_processes and job.known and job.names is None:
            # The reader lists; the rows stay here for _compare.
            handed = scan.FolderJob(scope=job.scope, path=job.path, known=None, list_only=True)
        self.in_flight.append((job, folder, self.reader.submit(handed)))

    def _handle_next(self) -> None:
        """Wait for the oldest job handed out and write what it found."""
        job, folder, future = self.in_flight.popleft()
        self.ctx.checkpoint()
        result = self.reader.result(job, future)
        if result.listing is not None:
            result = self._compare(job, result)
        for name in reversed(result.folders):
            self.todo.append((job.scope, f"{job.path}/{name}" if job.path else name))
        self._handle(job, folder, result)

    def _compare(self, job: scan.FolderJob, listed: scan.FolderResult) -> scan.FolderResult:
        """The result of ``job`` from a listing of its folder that a reader made.

        The job runs here with the listing, reading what changed, when that is
        at most READ_HERE documents by size and time; else in a reader, whole.
        """
        assert listed.listing is not None and job.known is not None
        sent = {(row[1], row[2]) for row in job.known.values() if row[4]}
        to_read = len(job.forced) + sum(
            1 for _, _, size, modified_ns in listed.listing if (size, modified_ns) not in sent
        )
        if job.scope.resend:
            to_read = len(listed.listing)
        if to_read > READ_HERE:
            return self.reader.result(job, self.reader.submit(job))
        job = dataclasses.replace(job, listing=listed.listing)
        result = scan.run_job(job, self.ctx.checkpoint)
        if result.error is None:
            result.folders, result.skipped = listed.folders, listed.skipped
        return result

    def _handle(self, job: scan.FolderJob, folder: str, result: scan.FolderResult) -> None:
        where = display(job.path) or "/"
        if result.error is not None:
            # Its documents are neither seen nor deleted: they stay as they were.
            self.ctx.log.warning("Skipped folder %s of fetch task %s: %s", where, self.name,
                                 result.error)  # fmt: skip
            self.count("errors")
            self.unlisted.append((job.scope.root, job.path))
            return
        for path in result.skipped:
            self.ctx.log.warning("Skipped %s of fetch task %s: backslashes in names are not"
                                 " supported", path, self.name)  # fmt: skip
        if result.too_many is not None:
            self._split(job, folder, result.too_many)
            return
        if job.names is None:
            self.listed_folders.add(folder)
            known = job.known or {}
            high = self.extent.high
            self.judged += sum(1 for row in known.values() if row[0] <= high)
            for identifier in result.gone:
                pk, _, _, _, ingested, _ = known[identifier]
                if pk <= high:
                    self._gone(pk, identifier, ingested=ingested)
        self.listed += result.seen
        self.count("seen", result.seen)
        self.count("unchanged", result.unchanged)
        for path, why in result.failed:
            self.ctx.log.warning("Could not read %s of fetch task %s: %s", path, self.name, why)
            self.count("errors")
        for path, why in result.extract_failed:
            self._extract_failed(path, why)
        self.touched.extend(result.touched)
        if len(self.touched) >= TOUCHED_BATCH:
            self._record_touched()
        if result.records or result.large:
            self.progress(INGESTING)
        self._send(folder, result.idx, result.records)
        for large in result.large:
            self.ctx.checkpoint()
            if read := self._read_large(job, large):
                self._send(folder, *read)
        if result.rest is not None:
            self._submit(result.rest, folder)
        self.progress(ENUMERATING)

    def _split(self, job: scan.FolderJob, folder: str, names: list[str]) -> None:
        """A folder with more documents than a job takes: jobs of slices of its names.

        Its rows no listed name matches are its documents gone.
        """
        self.listed_folders.add(folder)
        prefix = children_prefix(self.name, job.scope.root, job.path)
        identifiers = [make_identifier(prefix + os.fsencode(name)) for name in names]
        listed = set(identifiers)
        for row in datastore.rows_in_folder(self.task, folder, self.extent.high):
            self.judged += 1
            if row.identifier not in listed:
                self._gone(row.pk, row.identifier, ingested=row.ingested)
        del listed
        step = scan.JOB_DOCUMENTS
        for start in range(0, len(names), step):
            self.ctx.checkpoint()
            slice_names = names[start : start + step]
            known = datastore.rows_by_identifier(self.task, identifiers[start : start + step])
            self._submit(
                scan.FolderJob(
                    scope=job.scope,
                    path=job.path,
                    known=known,
                    forced=job.forced,
                    names=slice_names,
                ),
                folder,
            )
            # Written as they come, so the folder's slices are not all held at once.
            while len(self.in_flight) > JOBS_AHEAD:
                self._handle_next()

    def _find_gone_folders(self) -> None:
        """The rows of folders that were not listed (gone, unless they could not be read)."""
        for folder in datastore.folders(self.task, self.extent.high):
            self.ctx.checkpoint()
            if archives.is_member(folder):
                self.member_folders.append(folder)
                continue
            if folder in self.listed_folders or self._in_unlisted(folder):
                continue
            for row in datastore.rows_in_folder(self.task, folder, self.extent.high):
                self._gone(row.pk, row.identifier, ingested=row.ingested)

    def _find_gone_members(self) -> None:
        """Members of archives gone, and members an archive sent again no longer has.

        Runs once the deletes of files gone are written, so an archive gone has
        no row any more; an archive's folder is done before its members'
        (sorted: it is their prefix). An archive not sent again in this run
        keeps its members. After a batch that was not delivered only archives
        gone are looked at: a member sent in that batch is sent again next run.
        """
        gone: set[str] = set()
        for folder in sorted(self.member_folders):
            self.ctx.checkpoint()
            archive = folder[: -len(archives.SEPARATOR)]
            sent_at = None if archive in gone else datastore.ingested_at(self.task, archive)
            if sent_at is not None and (sent_at < self.started or self.post_failed):
                continue
            for row in datastore.rows_in_folder(self.task, folder, self.extent.high):
                if sent_at is None or row.ingested_at < self.started:
                    gone.add(row.identifier)
                    self._gone(row.pk, row.identifier, ingested=row.ingested)

    def _in_unlisted(self, folder: str) -> bool:
        try:
            location = self.repository.locate(folder)
        except IdentifierError:
            return False
        return any(
            root == location.root
            and (path == "" or location.path == path or location.path.startswith(path + "/"))
            for root, path in self.unlisted
        )

    # --- Documents ----------------------------------------------------------------------

    def _read_large(
        self, job: scan.FolderJob, large: scan.Large
    ) -> tuple[list[bytes], list[scan.Record]] | None:
        """A document too large for a job, read a chunk at a time: its IDX and record
        (then its members'), or None if it is unchanged or cannot be read."""
        path = scan.shown_path(job.path, large.name)
        try:
            size, digest, data, whole = self._read_chunked(large.identifier, large.size)
        except (ItemNotFound, ItemUnreadable, IdentifierError, OSError) as error:
            self.ctx.log.warning("Could not read %s of fetch task %s: %s", path, self.name, error)
            self.count("errors")
            return None
        change = large.change
        if change == "maybe":
            assert large.known is not None
            if digest == large.known[3]:
                self.touched.append((large.known[0], large.modified_ns))
                self.count("unchanged")
                return None
            change = "updated"
        parent = archives.Parent(self.name, large.identifier, path, large.modified_ns, change)
        (text, title, fields, mode), members = self._content(path, data, whole, parent)
        document = format_file_document(
            identifier=large.identifier,
            task=self.name,
            path=path,
            name=path.rpartition("/")[2],
            size=size,
            modified=scan.iso_seconds(large.modified_ns // 1_000_000_000),
            content_hash=digest,
            text=text,
            metadata=(metadata := large.known[5] if large.known is not None else None),
            title=title,
            extracted=fields,
            content_mode=mode,
        )
        record: scan.Record = (
            change, large.identifier, path, size, large.modified_ns, digest, metadata
        )  # fmt: skip
        if members is None:
            return [document.encode("utf-8")], [record]
        return [document.encode("utf-8"), *members.idx], [record, *members.records]

    def _read_chunked(self, identifier: str, expected: int) -> tuple[int, str, bytes, bool]:
        """Size, sha256 and bytes of a document, and whether they are all of it (else
        its first KiB: it has more than ``_keep()``), checking for a Stop at every chunk."""
        digest = hashlib.sha256()
        parts: list[bytes] | None = []
        size = 0
        keep = self._keep()
        chunk_size = min(READ_CHUNK, max(64 * 1024, expected + 1))
        chunks = self.repository.read_chunks(identifier, chunk_size=chunk_size)
        head = b""
        try:
            for chunk in chunks:
                self.ctx.checkpoint()
                digest.update(chunk)
                if not head:
                    head = chunk
                size += len(chunk)
                if parts is None:
                    continue
                if size > keep:
                    parts = None
                else:
                    parts.append(chunk)
        finally:
            # A Stop between chunks closes the document now, not when collected.
            if isinstance(chunks, Generator):
                chunks.close()
        # Too large to keep: only its first chunk, for _content to say what it is.
        if parts is None:
            return size, digest.hexdigest(), head[:1024], False
        return size, digest.hexdigest(), b"".join(parts), True

    def _keep(self) -> int:
        return max(TEXT_LIMIT, self.extract.max_bytes if self.extract is not None else 0)

    def _content(
        self, path: str, data: bytes, whole: bool, parent: archives.Parent
    ) -> tuple[Content, archives.Members | None]:
        """What a large document sends (text, title, extracted fields, content mode),
        and its members if it has some."""
        content, failed, members = document_content(
            path, data, self.extract, whole=whole, checkpoint=self.ctx.checkpoint, parent=parent
        )
        if failed is not None:
            self._extract_failed(path, failed)
        for member, why in members.failed if members is not None else ():
            self._extract_failed(member, why)
        return content, members

    def _extract_failed(self, path: str, why: str) -> None:
        self.ctx.log.warning("Sent %s of fetch task %s by reference: its extraction failed (%s)",
                             path, self.name, why)  # fmt: skip
        self.count("extractfailed")

    def _send(self, folder: str, idx: list[bytes], records: list[scan.Record]) -> None:
        """Add documents (their IDX and records, in step) to the IDX batch, committing
        each batch as it fills."""
        while records:
            self.ctx.checkpoint()
            batch = self._batch("idx")
            room = max(1, BATCH_DOCUMENTS - batch.documents)
            batch.write(b"".join(idx[:room]), documents=len(records[:room]))
            # An archive's members have a folder of their own (archives.member_folder).
            self.pending.extend(
                (archives.member_folder(r[1]) if archives.SEPARATOR in r[1] else folder, r)
                for r in records[:room]
            )
            if self.forced:
                self.forced_sent.update(r[1] for r in records[:room] if r[1] in self.forced)
            idx, records = idx[room:], records[room:]
            if batch.documents >= BATCH_DOCUMENTS or batch.bytes >= BATCH_BYTES:
                self._commit()

    def _gone(self, pk: int, identifier: str, *, ingested: bool | int) -> None:
        if not ingested:
            # A document never sent needs no delete; its row just goes.
            self.never_sent.append(pk)
            return
        self.gone.append((pk, identifier))
        if len(self.gone) >= BATCH_DOCUMENTS:
            self._write_deletes()

    def _write_deletes(self) -> None:
        """Delete lists for the documents gone so far, a batch at a time."""
        while self.gone:
            self.ctx.checkpoint()
            part, self.gone = self.gone[:BATCH_DOCUMENTS], self.gone[BATCH_DOCUMENTS:]
            batch = self._batch("del")
            batch.write(format_delete_list(i for _, i in part).encode("utf-8"), documents=len(part))
            self.pending_gone.extend(pk for pk, _ in part)
            self._commit()

    # --- Batches and the datastore ----------------------------------------------------

    def _batch(self, kind: Kind) -> BatchFile:
        if self.batch is not None and self.batch.kind != kind:
            self._commit()
        if self.batch is None:
            self.batch = self.spool.open(kind)
        return self.batch

    def _commit(self) -> None:
        """Make the batch visible, post it, and record its documents: all or none of them."""
        batch, pending, gone = self.batch, self.pending, self.pending_gone
        self.batch, self.pending, self.pending_gone = None, [], []
        if batch is None:
            return
        path = batch.commit()
        if self.task.ingest_url:
            try:
                post_batch(self.task.ingest_url, path, batch.kind)
            except IngestPostFailed as error:
                # Not delivered: kept aside for inspection, not recorded, sent again next run.
                failed = path.with_name(path.name + ".failed")
                path.replace(failed)
                self.post_failed = True
                self.ctx.log.warning(
                    "Batch %s of fetch task %s was not ingested (%s); its %s documents"
                    " will be sent again",
                    failed.name,
                    self.name,
                    error,
                    len(pending) + len(gone),
                )
                self.count("errors")
                return
        self._record(pending, gone)

    def _record(self, pending: list[tuple[str, scan.Record]], gone: list[int]) -> None:
        with transaction.atomic():
            datastore.record(self.task, pending, timezone.now())
            datastore.forget(gone)
        added = sum(1 for _, record in pending if record[0] == "added")
        self.count("added", added)
        self.count("updated", len(pending) - added)
        self.count("deleted", len(gone))

    def _record_touched(self) -> None:
        touched, self.touched = self.touched, []
        datastore.touch(touched)
