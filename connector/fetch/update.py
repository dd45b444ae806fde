"""FetchAction=Update: set custom metadata on documents.

Parameters: ``ConfigSection`` (required, one task) and ``IdentifiersXML``
(required)::

    <identifiersXML>
      <identifier value="ID"><metadata name="DEPARTMENT" value="Sales"/></identifier>
    </identifiersXML>

The metadata is merged into the document's datastore row (names upper case;
an empty value removes the field) and the row is marked as not ingested in
its current form, so the next Synchronize sends the document again with the
metadata as IDX fields. The merge reads and writes the row in one locked
transaction (``documents.locked_row``), so concurrent Updates never lose one
another's fields. A held document fails with reason ``held``, a missing
one with ``not found``. Counts: ``updated``, ``errors``.
"""

from __future__ import annotations

from connector.fetch.base import FetchAction, FetchActionFailed, FetchContext, register
from connector.fetch.documents import (
    HELD,
    NOT_INGESTED_SIZE,
    Outcomes,
    children,
    for_each_identifier,
    locked_row,
    merge_metadata,
    metadata_pairs,
    one_task,
    parse_xml,
    reason,
    the_one_task,
)
from connector.models import FetchTask
from connector.params import InvalidParameter, ParameterError, Params
from connector.repositories import IdentifierError, ItemNotFound, Repository, repository_for

PARAMETER = "IdentifiersXML"


def parse_identifiers_xml(params: Params, task: FetchTask) -> dict[str, dict[str, str]]:
    """The metadata changes by identifier; an identifier given twice merges."""
    root = parse_xml(params, PARAMETER, "identifiersXML")
    repository = repository_for(task)
    changes: dict[str, dict[str, str]] = {}
    for element in children(root, "identifier"):
        identifier = (element.get("value") or "").strip()
        try:
            repository.check_identifier(identifier)
        except IdentifierError as error:
            raise InvalidParameter(
                PARAMETER,
                identifier,
                f"an identifier of a document of fetch task {task.name} ({reason(error)})",
            ) from None
        pairs = metadata_pairs(PARAMETER, children(element, "metadata"))
        changes.setdefault(identifier, {}).update(pairs)
    if not changes:
        raise InvalidParameter(PARAMETER, params.text(PARAMETER), "at least one <identifier>")
    return changes


@register
class Update(FetchAction):
    name = "UPDATE"
    writes_tasks = True

    def validate(self, params: Params) -> list[str]:
        task = one_task(params, "update")
        parse_identifiers_xml(params, task)
        return [task.name]

    def run(self, ctx: FetchContext) -> None:
        task = the_one_task(ctx)
        try:
            changes = parse_identifiers_xml(ctx.params, task)
        except ParameterError as error:
            # Checked at submission; only a changed configuration gets here.
            raise FetchActionFailed(str(error)) from None
        outcomes = Outcomes(ctx, "updated", [task.name])

        def update(task: FetchTask, repository: Repository, identifier: str) -> str | None:
            path, folder = repository.placement(identifier)
            # Read, merged and written under the row's lock: concurrent Updates
            # of one document each keep the others' fields, and a Hold is
            # either seen here or comes after; so is a Delete.
            with locked_row(task, identifier, path, folder) as row:
                if repository.stat(identifier).is_container:
                    raise ItemNotFound("The identifier names a folder, not a document")
                if row.held:
                    return HELD
                row.metadata = merge_metadata(row.metadata or {}, changes[identifier])
                row.size = NOT_INGESTED_SIZE
                row.save(update_fields=["metadata", "size"])
            return None

        for_each_identifier(ctx, outcomes, list(changes), "updating", update)
