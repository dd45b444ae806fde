"""FetchAction=Synchronize: send what is new, changed or gone since the last run.

Parameters:

- ``TaskSections`` (required; ``ConfigSection`` is accepted too): the fetch tasks.
- ``Identifiers``: documents of those tasks to ingest again even if unchanged.

Per task: list the repository folder by folder (stage ``enumerating``) and
compare each chunk of documents with the task's datastore (``DatastoreDocument``)
by size and modification time, then ingest that chunk's changes (stage
``ingesting``) as IDX batches in the task's ingest folder and, when the task has
one, POST each batch to its ingest URL; documents gone are found last, from the
rows no listed document matched. When only the time changed, the content's
sha256 decides, so a file touched but not changed is not sent again.

The datastore is written only for the documents of a committed batch, in the
same step as the commit. A Stop (checked at every document and every MiB read)
or a failure drops the batch being written, so the datastore always says
exactly what the ingest target has, and the next run resumes from there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from django.db import transaction
from django.utils import timezone

from connector.fetch.base import (
    FetchAction,
    FetchActionFailed,
    FetchContext,
    register,
    task_parameter,
)
from connector.ingest import datastore
from connector.ingest.idx import IdxDocument, format_delete_list, format_document
from connector.ingest.post import IngestPostFailed, post_batch
from connector.ingest.spool import BatchFile, Kind, Spool
from connector.models import DatastoreDocument, FetchTask
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories import (
    IdentifierError,
    Item,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryError,
    RepositoryUnavailable,
    repository_for,
    task_name_of,
)

logger = logging.getLogger(__name__)

#: Documents per batch file; a batch also ends once it holds BATCH_BYTES. Each
#: batch costs two fsyncs, which at 100 documents were a large part of a first
#: run over small files (bench/README.md); a Stop drops at most one batch.
BATCH_DOCUMENTS = 1000
BATCH_BYTES = 64 * 1024 * 1024
#: Larger documents are sent by reference even when they are text.
TEXT_LIMIT = 8 * 1024 * 1024
#: Bytes read between two Stop checks.
READ_CHUNK = 1024 * 1024
#: Touched documents (same content, new time) whose time is recorded at once.
TOUCHED_BATCH = 500

COUNTS = ("seen", "added", "updated", "deleted", "unchanged", "errors")
ENUMERATING = "enumerating"
INGESTING = "ingesting"

Change = Literal["added", "updated", "maybe"]


def _display(text: str) -> str:
    """Text safe for JSON, XML and IDX: names that are not UTF-8 get replacement characters."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _reason(error: Exception) -> str:
    text = str(error)
    return text[:1].lower() + text[1:]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


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


@register
class Synchronize(FetchAction):
    name = "SYNCHRONIZE"

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
        for position, task in enumerate(tasks):
            run = TaskSynchronizer(ctx, task, forced.get(task.name, set()), position, len(tasks))
            if problem := run.run():
                failures.append(problem)
        if failures and len(failures) == len(tasks):
            raise FetchActionFailed("; ".join(failures))
        ctx.progress(100, "synchronized")


@dataclass
class Snapshot:
    """A document as read for ingestion."""

    size: int
    content_hash: str
    #: The text, or None when the document is sent by reference.
    text: str | None


@dataclass
class Pending:
    """A document in the batch being written, recorded once the batch is committed."""

    change: Literal["added", "updated", "deleted"]
    identifier: str
    #: What to record for an added or updated document; None for a delete.
    recorded: datastore.Recorded | None = None
    #: The row of a deleted document.
    pk: int | None = None


class TaskSynchronizer:
    """One task's part of a Synchronize.

    The repository is listed folder by folder and compared with the datastore
    a chunk of documents at a time, and each chunk's changes are ingested
    before the listing goes on; documents gone are found last, from the rows
    no listed document matched. So memory holds one chunk and one batch, not
    the task.
    """

    def __init__(
        self, ctx: FetchContext, task: FetchTask, forced: set[str], position: int, of: int
    ) -> None:
        self.ctx = ctx
        self.task = task
        self.name = task.name
        self.repository = repository_for(task)
        self.forced = forced
        self.position = position
        self.of = of
        self.spool = Spool(Path(task.ingest_path), task.name, timezone.now())
        self.batch: BatchFile | None = None
        self.pending: list[Pending] = []
        #: Unchanged documents whose time moved: their new time is recorded.
        self.touched: list[DatastoreDocument] = []
        #: Paths of folders that could not be listed: their documents are not deleted.
        self.unlisted: list[str] = []
        self.expected = 0
        self.listed = 0

    def count(self, name: str, n: int = 1) -> None:
        self.ctx.count(self.name, name, n)

    def progress(self, stage: str) -> None:
        # The total is not known before the listing ends; the documents the
        # datastore had at the start are the best guess (and the counts say the rest).
        share = min(1.0, self.listed / self.expected) if self.expected else 0
        self.ctx.progress(min(99, 100 * (self.position + share) / self.of), stage)

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
            return self._unusable(str(error))
        except OSError as error:
            return self._unusable(
                f"Ingest folder {self.spool.folder} of fetch task {self.name}"
                f" cannot be used: {error.strerror}"
            )
        rows = datastore.extent(self.task)
        self.expected = rows.rows
        seen = datastore.SeenRows(rows)
        forced_seen: set[str] = set()
        try:
            for chunk in _chunks(self._documents(), datastore.LOOKUP_CHUNK):
                self.listed += len(chunk)
                self.count("seen", len(chunk))
                forced_seen.update(i.identifier for i in chunk if i.identifier in self.forced)
                self._ingest(self._compare(chunk, seen))
                self.progress(ENUMERATING)
            self._commit()
            for identifier in self.forced - forced_seen:
                self.ctx.log.warning(
                    "Document %s of fetch task %s is no longer there to ingest again",
                    identifier,
                    self.name,
                )
            if seen.count < rows.rows:
                self._delete_gone(seen)
        finally:
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

    def _unusable(self, problem: str) -> str:
        self.ctx.log.error("%s", problem)
        self.count("errors")
        return problem

    def _documents(self) -> Iterator[Item]:
        """The task's documents, folder by folder; folders that cannot be listed are noted."""
        stack = list(reversed(self.repository.roots()))
        while stack:
            self.ctx.checkpoint()
            container = stack.pop()
            try:
                children = list(self.repository.children(container.identifier))
            except (ItemNotFound, ItemUnreadable, IdentifierError) as error:
                # Its documents are neither seen nor deleted: they stay as they were.
                self.ctx.log.warning(
                    "Skipped folder %s of fetch task %s: %s",
                    _display(container.path or container.name),
                    self.name,
                    error,
                )
                self.count("errors")
                self.unlisted.append(_display(container.path))
                continue
            for item in reversed(children):
                if item.is_container:
                    stack.append(item)
            for item in children:
                if not item.is_container:
                    self.ctx.checkpoint()
                    yield item

    def _compare(
        self, chunk: list[Item], seen: datastore.SeenRows
    ) -> list[tuple[Change, Item, datastore.Known | None]]:
        """The chunk's documents to read, each with its verdict so far and its row."""
        known = datastore.lookup(self.task, [item.identifier for item in chunk])
        changes: list[tuple[Change, Item, datastore.Known | None]] = []
        unchanged = 0
        for item in chunk:
            row = known.get(item.identifier)
            if row is not None:
                seen.add(row.pk)
            if row is None or not row.ingested:
                changes.append(("added", item, row))
            elif item.identifier in self.forced:
                changes.append(("updated", item, row))
            elif row.size == item.size and row.modified == item.modified:
                unchanged += 1
            elif row.size == item.size and row.content_hash:
                changes.append(("maybe", item, row))
            else:
                changes.append(("updated", item, row))
        self.count("unchanged", unchanged)
        return changes

    def _ingest(self, changes: list[tuple[Change, Item, datastore.Known | None]]) -> None:
        """Read and send the changed documents of a chunk (batches are committed as they fill)."""
        if not changes:
            return
        self.progress(INGESTING)
        metadata = datastore.metadata([row.pk for _, _, row in changes if row is not None])
        for change, item, row in changes:
            self.ctx.checkpoint()
            try:
                snapshot = self._read(item)
            except (ItemNotFound, ItemUnreadable, IdentifierError, OSError) as error:
                self.ctx.log.warning(
                    "Could not read %s of fetch task %s: %s", _display(item.path), self.name, error
                )
                self.count("errors")
                continue
            if change == "maybe":
                assert row is not None
                if snapshot.content_hash == row.content_hash:
                    self.touched.append(
                        DatastoreDocument(pk=row.pk, modified=item.modified or row.modified)
                    )
                    self.count("unchanged")
                    if len(self.touched) >= TOUCHED_BATCH:
                        self._record_touched()
                    continue
                change = "updated"
            self._add_document(
                change, item, snapshot, metadata.get(row.pk, {}) if row is not None else {}
            )

    def _delete_gone(self, seen: datastore.SeenRows) -> None:
        """Send deletes for the rows no listed document matched (outside unlisted folders)."""
        self.progress(INGESTING)
        never_sent: list[int] = []
        for row in datastore.unseen(self.task, seen):
            self.ctx.checkpoint()
            if _under_any(row.path, self.unlisted):
                continue
            if not row.ingested:
                # A document never sent needs no delete; its row just goes.
                never_sent.append(row.pk)
                continue
            batch = self._batch("del")
            batch.write(format_delete_list([row.identifier]).encode("utf-8"))
            self.pending.append(Pending("deleted", row.identifier, pk=row.pk))
            if batch.documents >= BATCH_DOCUMENTS:
                self._commit()
                self.progress(INGESTING)
        self._commit()
        DatastoreDocument.objects.filter(pk__in=never_sent).delete()

    def _read(self, item: Item) -> Snapshot:
        """Hash the document and keep its text if it is text: at most TEXT_LIMIT
        bytes of UTF-8 without NUL. Anything else is sent by reference."""
        digest = hashlib.sha256()
        parts: list[bytes] | None = []
        size = 0
        # Small reads for small files: a MiB buffer per file costs more than the read.
        chunk_size = min(READ_CHUNK, max(64 * 1024, (item.size or 0) + 1))
        chunks = self.repository.read_chunks(item.identifier, chunk_size=chunk_size)
        try:
            for chunk in chunks:
                self.ctx.checkpoint()
                digest.update(chunk)
                size += len(chunk)
                if parts is None:
                    continue
                if size > TEXT_LIMIT or b"\0" in chunk:
                    parts = None
                else:
                    parts.append(chunk)
        finally:
            # A Stop between chunks closes the document now, not when collected.
            if isinstance(chunks, Generator):
                chunks.close()
        text: str | None = None
        if parts is not None:
            try:
                text = b"".join(parts).decode("utf-8")
            except UnicodeDecodeError:
                text = None
        return Snapshot(size=size, content_hash=digest.hexdigest(), text=text)

    def _add_document(
        self,
        change: Literal["added", "updated"],
        item: Item,
        snapshot: Snapshot,
        metadata: dict[str, object],
    ) -> None:
        path = _display(item.path)
        fields = [
            ("DREREFERENCE", item.identifier),
            ("TASK", self.name),
            ("PATH", path),
            ("NAME", _display(item.name)),
            ("SIZE", str(snapshot.size)),
            ("MODIFIED", _iso(item.modified) if item.modified else ""),
            ("SHA256", snapshot.content_hash),
            ("CONTENTMODE", "text" if snapshot.text is not None else "reference"),
        ]
        fields.extend((str(name), str(value)) for name, value in metadata.items())
        document = IdxDocument(
            reference=item.identifier,
            title=_display(item.name),
            fields=fields,
            content=snapshot.text,
        )
        batch = self._batch("idx")
        batch.write(format_document(document).encode("utf-8"))
        recorded = datastore.Recorded(
            identifier=item.identifier,
            path=path,
            size=snapshot.size,
            modified=item.modified or timezone.now(),
            content_hash=snapshot.content_hash,
        )
        self.pending.append(Pending(change, item.identifier, recorded))
        if batch.documents >= BATCH_DOCUMENTS or batch.bytes >= BATCH_BYTES:
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
        batch, pending = self.batch, self.pending
        self.batch, self.pending = None, []
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
                self.ctx.log.warning(
                    "Batch %s of fetch task %s was not ingested (%s); its %s documents"
                    " will be sent again",
                    failed.name,
                    self.name,
                    error,
                    len(pending),
                )
                self.count("errors")
                return
        self._record(pending)

    def _record(self, pending: list[Pending]) -> None:
        upserts = [entry.recorded for entry in pending if entry.recorded is not None]
        gone = [entry.pk for entry in pending if entry.change == "deleted" and entry.pk]
        with transaction.atomic():
            datastore.record(self.task, upserts, timezone.now())
            if gone:
                DatastoreDocument.objects.filter(pk__in=gone).delete()
        for entry in pending:
            self.count(entry.change)

    def _record_touched(self) -> None:
        touched, self.touched = self.touched, []
        if touched:
            DatastoreDocument.objects.bulk_update(touched, ["modified"], batch_size=500)


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _under_any(path: str, folders: list[str]) -> bool:
    return any(
        folder == "" or path == folder or path.startswith(folder + "/") for folder in folders
    )
