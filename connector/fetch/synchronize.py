"""FetchAction=Synchronize: send what is new, changed or gone since the last run.

Parameters:

- ``TaskSections`` (required; ``ConfigSection`` is accepted too): the fetch tasks.
- ``Identifiers``: documents of those tasks to ingest again even if unchanged.

Per task: enumerate the repository (stage ``enumerating``), compare with the
task's datastore (``DatastoreDocument``) by size and modification time, then
ingest the changes (stage ``ingesting``) as IDX batches in the task's ingest
folder and, when the task has one, POST each batch to its ingest URL. When
only the time changed, the content's sha256 decides, so a file touched but not
changed is not sent again.

The datastore is written only for the documents of a committed batch, in the
same step as the commit. A Stop (checked at every document and every MiB read)
or a failure drops the batch being written, so the datastore always says
exactly what the ingest target has, and the next run resumes from there.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
from collections.abc import Generator
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
from connector.fetch.documents import NEVER
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

#: Documents per batch file; a batch also ends once it holds BATCH_BYTES.
BATCH_DOCUMENTS = 100
BATCH_BYTES = 64 * 1024 * 1024
#: Larger documents are sent by reference even when they are text.
TEXT_LIMIT = 8 * 1024 * 1024
#: Bytes read between two Stop checks.
READ_CHUNK = 1024 * 1024

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
class Known:
    """A datastore row, as much of it as the comparison needs."""

    pk: int
    identifier: str
    path: str
    size: int
    modified: datetime
    content_hash: str
    metadata: dict[str, object]
    #: False for a row another action made (Hold, Update, Insert) before the
    #: document was first sent.
    ingested: bool


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
    item: Item | None = None
    snapshot: Snapshot | None = None
    known: Known | None = None


class TaskSynchronizer:
    """One task's part of a Synchronize."""

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

    def count(self, name: str, n: int = 1) -> None:
        self.ctx.count(self.name, name, n)

    def progress(self, done: int, total: int, stage: str) -> None:
        share = done / total if total else 0
        self.ctx.progress(min(99, 100 * (self.position + share) / self.of), stage)

    # --- The run ----------------------------------------------------------------------

    def run(self) -> str | None:
        """Synchronize the task; return why it could not be done at all, else None."""
        for name in COUNTS:
            self.count(name, 0)
        self.progress(0, 1, ENUMERATING)
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
        seen, unlisted = self._enumerate()
        known = self._known()
        changes: list[tuple[Change, Item, Known | None]] = []
        for identifier, item in seen.items():
            row = known.get(identifier)
            if row is None or not row.ingested:
                changes.append(("added", item, row))
            elif identifier in self.forced:
                changes.append(("updated", item, row))
            elif row.size == item.size and row.modified == item.modified:
                self.count("unchanged")
            elif row.size == item.size and row.content_hash:
                changes.append(("maybe", item, row))
            else:
                changes.append(("updated", item, row))
        for identifier in self.forced - seen.keys():
            self.ctx.log.warning(
                "Document %s of fetch task %s is no longer there to ingest again",
                identifier,
                self.name,
            )
        gone = [
            row
            for identifier, row in known.items()
            if identifier not in seen and not _under_any(row.path, unlisted)
        ]
        # A document never sent needs no delete; its row just goes.
        DatastoreDocument.objects.filter(
            pk__in=[row.pk for row in gone if not row.ingested]
        ).delete()
        deleted = [row for row in gone if row.ingested]
        try:
            self._ingest(changes, deleted)
        finally:
            if self.batch is not None:
                self.batch.abort()
                self.batch = None
            self._record_touched()
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

    def _enumerate(self) -> tuple[dict[str, Item], list[str]]:
        """The task's documents by identifier, and the paths of folders that could not be listed."""
        seen: dict[str, Item] = {}
        unlisted: list[str] = []
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
                unlisted.append(_display(container.path))
                continue
            for item in reversed(children):
                self.ctx.checkpoint()
                if item.is_container:
                    stack.append(item)
                elif item.identifier not in seen:
                    seen[item.identifier] = item
                    self.count("seen")
            self.progress(0, 1, ENUMERATING)
        return seen, unlisted

    def _known(self) -> dict[str, Known]:
        rows = DatastoreDocument.objects.filter(task=self.task).values_list(
            "identifier", "pk", "path", "size", "modified", "content_hash", "metadata",
            "last_ingested_at",
        )  # fmt: skip
        return {
            identifier: Known(
                pk, identifier, path, size, modified, content_hash, metadata or {}, ingested > NEVER
            )
            for identifier, pk, path, size, modified, content_hash, metadata, ingested in (
                rows.iterator(chunk_size=2000)
            )
        }

    def _ingest(
        self, changes: list[tuple[Change, Item, Known | None]], deleted: list[Known]
    ) -> None:
        total = len(changes) + len(deleted)
        done = 0
        self.progress(done, total, INGESTING)
        for change, item, row in changes:
            self.ctx.checkpoint()
            done += 1
            try:
                snapshot = self._read(item)
            except (ItemNotFound, ItemUnreadable, IdentifierError, OSError) as error:
                self.ctx.log.warning(
                    "Could not read %s of fetch task %s: %s", _display(item.path), self.name, error
                )
                self.count("errors")
                self.progress(done, total, INGESTING)
                continue
            if change == "maybe":
                assert row is not None
                if snapshot.content_hash == row.content_hash:
                    self.touched.append(
                        DatastoreDocument(pk=row.pk, modified=item.modified or row.modified)
                    )
                    self.count("unchanged")
                    self.progress(done, total, INGESTING)
                    continue
                change = "updated"
            self._add_document(change, item, snapshot, row)
            self.progress(done, total, INGESTING)
        self._commit()
        for row in deleted:
            self.ctx.checkpoint()
            done += 1
            batch = self._batch("del")
            batch.write(format_delete_list([row.identifier]).encode("utf-8"))
            self.pending.append(Pending("deleted", row.identifier, known=row))
            if batch.documents >= BATCH_DOCUMENTS:
                self._commit()
            self.progress(done, total, INGESTING)
        self._commit()

    def _read(self, item: Item) -> Snapshot:
        """Hash the document and keep its text if it is text: at most TEXT_LIMIT
        bytes of UTF-8 without NUL. Anything else is sent by reference."""
        digest = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")()
        parts: list[str] | None = []
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
                    continue
                try:
                    parts.append(decoder.decode(chunk))
                except UnicodeDecodeError:
                    parts = None
        finally:
            # A Stop between chunks closes the document now, not when collected.
            if isinstance(chunks, Generator):
                chunks.close()
        text: str | None = None
        if parts is not None:
            try:
                parts.append(decoder.decode(b"", final=True))
                text = "".join(parts)
            except UnicodeDecodeError:
                text = None
        return Snapshot(size=size, content_hash=digest.hexdigest(), text=text)

    def _add_document(
        self, change: Literal["added", "updated"], item: Item, snapshot: Snapshot, row: Known | None
    ) -> None:
        fields = [
            ("DREREFERENCE", item.identifier),
            ("TASK", self.name),
            ("PATH", _display(item.path)),
            ("NAME", _display(item.name)),
            ("SIZE", str(snapshot.size)),
            ("MODIFIED", _iso(item.modified) if item.modified else ""),
            ("SHA256", snapshot.content_hash),
            ("CONTENTMODE", "text" if snapshot.text is not None else "reference"),
        ]
        if row is not None:
            fields.extend((str(name), str(value)) for name, value in row.metadata.items())
        document = IdxDocument(
            reference=item.identifier,
            title=_display(item.name),
            fields=fields,
            content=snapshot.text,
        )
        batch = self._batch("idx")
        batch.write(format_document(document).encode("utf-8"))
        self.pending.append(Pending(change, item.identifier, item, snapshot, row))
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
        now = timezone.now()
        upserts = [
            DatastoreDocument(
                task=self.task,
                identifier=entry.identifier,
                path=_display(entry.item.path),
                size=entry.snapshot.size,
                modified=entry.item.modified or now,
                content_hash=entry.snapshot.content_hash,
                last_ingested_at=now,
            )
            for entry in pending
            if entry.item is not None and entry.snapshot is not None
        ]
        gone = [entry.known.pk for entry in pending if entry.change == "deleted" and entry.known]
        with transaction.atomic():
            if upserts:
                DatastoreDocument.objects.bulk_create(
                    upserts,
                    update_conflicts=True,
                    unique_fields=["task", "identifier"],
                    update_fields=["path", "size", "modified", "content_hash", "last_ingested_at"],
                )
            if gone:
                DatastoreDocument.objects.filter(pk__in=gone).delete()
        for entry in pending:
            self.count(entry.change)

    def _record_touched(self) -> None:
        touched, self.touched = self.touched, []
        if touched:
            DatastoreDocument.objects.bulk_update(touched, ["modified"], batch_size=500)


def _under_any(path: str, folders: list[str]) -> bool:
    return any(
        folder == "" or path == folder or path.startswith(folder + "/") for folder in folders
    )
