"""FetchAction=Hold and FetchAction=ReleaseHold: put documents under hold, or release it.

Parameters: ``Identifiers`` (required); ``ConfigSection`` optionally
restricts them to one task.

A held document cannot be deleted (Delete), have its metadata changed
(Update) or be overwritten (Insert); each refuses it with reason ``held``.
The hold is the ``held`` flag of the document's datastore row, made if
Synchronize has not made it yet, set under the row's lock
(``documents.locked_row``) that Delete, Update and Insert also take to check
it. Hold needs the document to exist (else
``not found``); ReleaseHold succeeds for any document that is not held, and
releases a row whose document is gone. Counts per task: ``holds`` or
``releasedholds``, and ``errors``.
"""

from __future__ import annotations

from connector.fetch.base import FetchAction, FetchContext, register
from connector.fetch.documents import (
    Outcomes,
    for_each_identifier,
    identifier_tasks,
    locked_row,
)
from connector.models import DatastoreDocument, FetchTask
from connector.params import Params
from connector.repositories import ItemNotFound, Repository


@register
class Hold(FetchAction):
    name = "HOLD"
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        return identifier_tasks(params)

    def run(self, ctx: FetchContext) -> None:
        outcomes = Outcomes(ctx, "holds", ctx.task_names)
        for_each_identifier(ctx, outcomes, ctx.params.csv("Identifiers"), "holding", self._hold)

    @staticmethod
    def _hold(task: FetchTask, repository: Repository, identifier: str) -> str | None:
        path, folder = repository.placement(identifier)
        # Under the row's lock: a Delete, Update or Insert checking the hold
        # sees it, or finished before it was set. The document is looked for
        # under the lock too, so a Delete that got the lock first is seen.
        with locked_row(task, identifier, path, folder) as row:
            if repository.stat(identifier).is_container:
                raise ItemNotFound("The identifier names a folder, not a document")
            if not row.held:
                row.held = True
                row.save(update_fields=["held"])
        return None


@register
class ReleaseHold(FetchAction):
    name = "RELEASEHOLD"
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        return identifier_tasks(params)

    def run(self, ctx: FetchContext) -> None:
        outcomes = Outcomes(ctx, "releasedholds", ctx.task_names)
        identifiers = ctx.params.csv("Identifiers")
        for_each_identifier(ctx, outcomes, identifiers, "releasing", self._release)

    @staticmethod
    def _release(task: FetchTask, repository: Repository, identifier: str) -> str | None:
        if DatastoreDocument.objects.filter(task=task, identifier=identifier).update(held=False):
            return None
        # No row: nothing was held; a document that is not there is an error.
        if repository.stat(identifier).is_container:
            raise ItemNotFound("The identifier names a folder, not a document")
        return None
