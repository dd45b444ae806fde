"""What the per-document fetch actions share (Collect, Insert, Update, Delete, Hold).

- Checking ``Identifiers`` at submission: each must decode and belong to a
  configured fetch task (the one named by ``ConfigSection`` when given).
- Parsing the XML parameters with defusedxml: a DTD, an entity or an external
  reference is refused, as is anything malformed.
- Recording a per-document outcome: ``ctx.result["success"]`` lists the
  identifiers that succeeded, ``ctx.result["failed"]`` one
  ``{"identifier", "reason"}`` per failure; the ACI layer renders both as
  ``<tasks>`` in GetStatus. A failure is never the whole action's.
- The datastore rows that hold custom metadata and holds, each read, checked
  and written in one locked transaction (``locked_row``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.db import transaction

from connector.fetch.base import FetchActionFailed, FetchContext, UnknownTask, task_parameter
from connector.models import DatastoreDocument, FetchTask
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories import (
    IdentifierError,
    ItemNotFound,
    Repository,
    RepositoryError,
    repository_for,
    task_name_of,
)
from connector.repositories.base import display

logger = logging.getLogger(__name__)

#: ``size`` of a datastore row whose document the ingest target has not got as
#: it is now: a row made for a hold or for metadata before the first
#: Synchronize, or one whose metadata changed. Synchronize compares sizes, so
#: such a row never looks unchanged and the document is sent (again) with its
#: metadata on the next run.
NOT_INGESTED_SIZE = -1
#: ``last_ingested_at`` of a row made before any ingestion.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

#: Fields Synchronize sets itself; custom metadata may not override them.
RESERVED_FIELDS = frozenset(
    {"DREREFERENCE", "DRETITLE", "DRECONTENT", "TASK", "PATH", "NAME", "SIZE", "MODIFIED",
     "SHA256", "CONTENTMODE"}
)  # fmt: skip
_METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")
#: Longest metadata value, in characters: a field is one line of an IDX batch.
MAX_METADATA_VALUE = 64 * 1024

HELD = "held"
NOT_FOUND = "not found"


def reason(error: Exception) -> str:
    """An error as a clause inside another sentence."""
    text = str(error)
    return text[:1].lower() + text[1:]


def identifier_tasks(params: Params, *, name: str = "Identifiers") -> list[str]:
    """Check ``Identifiers`` at submission; return the fetch tasks they belong to.

    Each must decode, name a configured task (the ``ConfigSection`` or
    ``TaskSections`` one when given) and a root that task has. Whether the
    document exists is a per-document outcome when the action runs.
    """
    identifiers = params.csv(name, required=True, hint="List the documents, comma-separated.")
    allowed = task_parameter(params, "ConfigSection", "TaskSections")
    tasks: dict[str, FetchTask] = {}
    for identifier in identifiers:
        expected = "an identifier of a document of " + (
            f"fetch task {', '.join(allowed)}" if allowed else "a configured fetch task"
        )
        try:
            task_name = task_name_of(identifier)
        except IdentifierError as error:
            raise InvalidParameter(name, identifier, f"{expected} ({reason(error)})") from None
        if allowed and task_name not in allowed:
            raise InvalidParameter(
                name, identifier, f"{expected} (it belongs to fetch task {task_name})"
            )
        if task_name not in tasks:
            task = FetchTask.objects.filter(name=task_name).first()
            if task is None:
                raise UnknownTask(name, task_name)
            tasks[task_name] = task
        try:
            repository_for(tasks[task_name]).check_identifier(identifier)
        except IdentifierError as error:
            raise InvalidParameter(name, identifier, f"{expected} ({reason(error)})") from None
    return list(tasks)


def one_task(params: Params, action: str) -> FetchTask:
    """The one fetch task named by ``ConfigSection`` (or ``TaskSections``)."""
    tasks = task_parameter(params, "ConfigSection", "TaskSections")
    if not tasks:
        raise MissingParameter("ConfigSection", f"Name the fetch task to {action}.")
    if len(tasks) > 1:
        raise InvalidParameter("ConfigSection", ",".join(tasks), "exactly one fetch task")
    return FetchTask.objects.get(name=tasks[0])


def the_one_task(ctx: FetchContext) -> FetchTask:
    """The fetch task of a running action that names one (checked by ``one_task`` at submission)."""
    if not ctx.task_names:
        raise FetchActionFailed("The action names no fetch task (ConfigSection)")
    return ctx.tasks[0]


def parse_xml(params: Params, name: str, root_tag: str) -> Element:
    """Parse an XML parameter safely; InvalidParameter for anything but ``<root_tag>``."""
    text = params.text(name)
    expected = f"a <{root_tag}> XML document without DTD or entities"
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as refused:
        raise InvalidParameter(name, text, f"{expected} (refused: {refused})") from None
    except ParseError as error:
        raise InvalidParameter(name, text, f"{expected} (malformed: {error})") from None
    if root.tag.lower() != root_tag.lower():
        raise InvalidParameter(name, text, f"{expected} (the root element is <{root.tag}>)")
    return root


def children(element: Element, tag: str) -> list[Element]:
    """Child elements named ``tag``, case-insensitively (IDOL's XML is not consistent)."""
    return [child for child in element if child.tag.lower() == tag.lower()]


def metadata_pairs(parameter: str, elements: list[Element]) -> dict[str, str]:
    """``name``/``value`` attributes of ``<metadata>``/``<property>`` elements, checked."""
    pairs: dict[str, str] = {}
    for element in elements:
        field = (element.get("name") or "").strip()
        value = element.get("value")
        if not _METADATA_NAME.fullmatch(field) or field.upper() in RESERVED_FIELDS:
            raise InvalidParameter(
                parameter,
                field,
                "a metadata name of letters, digits, '_' and '.' (at most 100, not starting with"
                f" a digit) other than {', '.join(sorted(RESERVED_FIELDS))}",
            )
        if value is None or len(value) > MAX_METADATA_VALUE:
            raise InvalidParameter(
                parameter,
                field,
                f"a metadata element with a value attribute of at most {MAX_METADATA_VALUE}"
                " characters",
            )
        pairs[field.upper()] = value
    return pairs


def merge_metadata(current: dict[str, object], changes: dict[str, str]) -> dict[str, object]:
    """``current`` with ``changes`` applied: names are upper case; an empty value removes."""
    merged = {name.upper(): value for name, value in current.items()}
    for name, value in changes.items():
        if value == "":
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


@contextmanager
def locked_row(
    task: FetchTask, identifier: str, path: str, folder: str | None
) -> Iterator[DatastoreDocument]:
    """The task's datastore row of a document, made if missing, locked for the block.

    The block is one transaction, and every read-check-write of a row (Update's
    merge, Hold, the held check of Delete and Insert with their file-system
    act) happens inside one, so two actions never interleave on a row: on
    PostgreSQL the row is locked (``SELECT ... FOR UPDATE``) until the block
    ends; on SQLite the transaction is IMMEDIATE (``settings.DATABASES``), so
    it holds the database's write lock from its start. The row is made first
    (``INSERT ... ON CONFLICT DO NOTHING``) so there is always a row to lock: a
    Hold racing a Delete of a document Synchronize has not recorded yet waits
    for it like any other. A made row says "not ingested" (``NOT_INGESTED_SIZE``,
    ``NEVER``), so the next Synchronize still sends the document, or forgets the
    row without a delete list if the document is gone. An exception rolls back
    the block, the made row with it.
    """
    with transaction.atomic():
        DatastoreDocument.objects.bulk_create(
            [
                DatastoreDocument(
                    task=task,
                    identifier=identifier,
                    path=display(path),
                    folder=folder or "",
                    size=NOT_INGESTED_SIZE,
                    last_ingested_at=NEVER,
                )
            ],
            ignore_conflicts=True,
        )
        yield DatastoreDocument.objects.select_for_update().get(task=task, identifier=identifier)


class Outcomes:
    """Per-document results and counts of one action, kept in ``ctx``."""

    def __init__(self, ctx: FetchContext, done_count: str, tasks: list[str]) -> None:
        self.ctx = ctx
        self.done_count = done_count
        self.success: list[str] = ctx.result.setdefault("success", [])
        self.failed: list[dict[str, str]] = ctx.result.setdefault("failed", [])
        for task in tasks:
            ctx.count(task, done_count, 0)
            ctx.count(task, "errors", 0)

    def succeeded(self, task: str, identifier: str) -> None:
        self.success.append(identifier)
        self.ctx.count(task, self.done_count)

    def failed_with(self, task: str, identifier: str, why: str) -> None:
        self.failed.append({"identifier": identifier, "reason": why})
        self.ctx.count(task, "errors")
        self.ctx.log.warning("%s of fetch task %s: %s", identifier, task, why)


#: Does one document's work; returns why it failed, or None if it succeeded.
Handler = Callable[[FetchTask, Repository, str], str | None]


def for_each_identifier(
    ctx: FetchContext, outcomes: Outcomes, identifiers: list[str], stage: str, handle: Handler
) -> None:
    """Run ``handle`` on each identifier, checking for a Stop before each one.

    A repository error is that document's failure (``ItemNotFound``: "not
    found"), never the action's.
    """
    tasks = {task.name: task for task in ctx.tasks}
    repositories: dict[str, Repository] = {}
    total = len(identifiers)
    ctx.progress(0, stage)
    for done, identifier in enumerate(identifiers):
        ctx.checkpoint()
        ctx.progress(100 * done / total, stage)
        try:
            task_name = task_name_of(identifier)
        except IdentifierError as error:
            # Checked at submission; only a changed configuration gets here.
            outcomes.failed_with(ctx.task_names[0], identifier, reason(error))
            continue
        task = tasks.get(task_name)
        if task is None:
            outcomes.failed_with(
                ctx.task_names[0], identifier, f"it belongs to fetch task {task_name}"
            )
            continue
        if task_name not in repositories:
            repositories[task_name] = repository_for(task)
        try:
            why = handle(task, repositories[task_name], identifier)
        except ItemNotFound as error:
            ctx.log.info("%s of fetch task %s: %s", identifier, task_name, error)
            why = NOT_FOUND
        except RepositoryError as error:
            why = reason(error)
        except OSError as error:
            # A disk or permission problem the repository did not foresee: still
            # this document's failure, not the action's. The reason says what
            # went wrong, never where: the error's text may hold the server's
            # paths, so it goes to the log alone.
            logger.warning("%s of fetch task %s: %s", identifier, task_name, error)
            why = error.strerror or "an operating-system error (see the connector's log)"
        if why is None:
            outcomes.succeeded(task_name, identifier)
        else:
            outcomes.failed_with(task_name, identifier, why)
    ctx.progress(100, stage)
