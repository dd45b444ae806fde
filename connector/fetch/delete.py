"""FetchAction=Delete (alias Remove): delete documents from the repository.

Parameters: ``Identifiers`` (required), documents of configured tasks;
``ConfigSection`` optionally restricts them to one task.

A held document fails with reason ``held``, a missing one with ``not found``.
The hold is checked and the document deleted under the row's lock
(``documents.locked_row``; a row is made for a document Synchronize has not
recorded yet, so there is one to lock). The datastore row stays: the next
Synchronize finds the document gone and sends it in a delete list, so the
ingest target learns of the deletion.
Counts per task: ``deleted``, ``errors``.
"""

from __future__ import annotations

from connector.fetch.base import FetchAction, FetchContext, register
from connector.fetch.documents import (
    HELD,
    Outcomes,
    for_each_identifier,
    identifier_tasks,
    locked_row,
)
from connector.models import FetchTask
from connector.params import Params
from connector.repositories import Repository

STAGE = "deleting"


@register
class Delete(FetchAction):
    name = "DELETE"
    aliases = ("REMOVE",)
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        return identifier_tasks(params)

    def run(self, ctx: FetchContext) -> None:
        outcomes = Outcomes(ctx, "deleted", ctx.task_names)
        for_each_identifier(ctx, outcomes, ctx.params.csv("Identifiers"), STAGE, self._delete)

    @staticmethod
    def _delete(task: FetchTask, repository: Repository, identifier: str) -> str | None:
        path, folder = repository.placement(identifier)
        # The hold check and the delete under the row's lock: a Hold racing
        # this Delete either comes first (and the document stays) or after
        # (and finds it gone). A failure rolls back the row made for the lock.
        with locked_row(task, identifier, path, folder) as row:
            if row.held:
                return HELD
            repository.delete_document(identifier)
        return None
