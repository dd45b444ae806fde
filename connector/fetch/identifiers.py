"""FetchAction=Identifiers: list the identifiers below parent containers of a task.

Parameters:

- ``ConfigSection`` (required; ``TaskSections`` is accepted too): one fetch task.
- ``ParentIdentifiers``: comma-separated identifiers of containers of that task;
  default: the task's root folders.
- ``MaxDepth``: levels below the parents to list; 1 (default) lists their
  children only, 0 means no limit.
- ``ContainersOnly``: list folders only (default false).

The walk is breadth-first, so with a limit the shallow levels come first and a
Stop leaves a result that is complete down to some level. The result is
``ctx.result["identifiers"]``: one dict per item (identifier, type, name, path,
parent, modified; size for documents) that the ACI layer renders as
``<identifier type=".." name=".." ...>ID</identifier>``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from connector.fetch.base import (
    FetchAction,
    FetchActionFailed,
    FetchContext,
    register,
    task_parameter,
)
from connector.models import FetchTask
from connector.params import InvalidParameter, MissingParameter, Params
from connector.repositories import (
    IdentifierError,
    Item,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryUnavailable,
    repository_for,
)

#: The result lives in one JSON column: beyond this many identifiers the
#: action stops listing and says so. GetStatus shows them a page at a time
#: (``Start``, ``MaxIdentifiers``; connector.aci.status.IdentifierPage).
MAX_IDENTIFIERS = 100_000

STAGE = "listing"


def _display(text: str) -> str:
    """Text safe for JSON and XML: names that are not UTF-8 get replacement characters."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def describe(item: Item) -> dict[str, Any]:
    """An item as the result of Identifiers stores it."""
    described: dict[str, Any] = {
        "identifier": item.identifier,
        "type": "container" if item.is_container else "document",
        "name": _display(item.name),
        "path": _display(item.path),
        "parent": item.parent or "",
    }
    if not item.is_container:
        described["size"] = item.size
    if item.modified is not None:
        described["modified"] = item.modified.isoformat(timespec="seconds").replace("+00:00", "Z")
    return described


def _reason(error: Exception) -> str:
    """A repository error as a clause inside another sentence."""
    text = str(error)
    return text[:1].lower() + text[1:]


def parent_containers(repository: Repository, identifiers: list[str]) -> list[Item]:
    """The containers named by ``identifiers``, each checked; else InvalidParameter."""
    task = repository.task.name
    parents = []
    for identifier in identifiers:
        try:
            item = repository.stat(identifier)
        except IdentifierError as error:
            raise InvalidParameter(
                "ParentIdentifiers",
                identifier,
                f"an identifier of fetch task {task} ({_reason(error)})",
            ) from None
        except (ItemNotFound, ItemUnreadable) as error:
            raise InvalidParameter(
                "ParentIdentifiers",
                identifier,
                f"an existing folder of fetch task {task} ({_reason(error)})",
            ) from None
        if not item.is_container:
            raise InvalidParameter(
                "ParentIdentifiers",
                identifier,
                f"a folder of fetch task {task} (this identifier names a document)",
            )
        parents.append(item)
    return parents


@register
class Identifiers(FetchAction):
    name = "IDENTIFIERS"

    def validate(self, params: Params) -> list[str]:
        tasks = task_parameter(params, "ConfigSection", "TaskSections")
        if not tasks:
            raise MissingParameter("ConfigSection", "Name the fetch task to list.")
        if len(tasks) > 1:
            raise InvalidParameter("ConfigSection", ",".join(tasks), "exactly one fetch task")
        params.integer("MaxDepth", 1, minimum=0)
        params.boolean("ContainersOnly", False)
        if identifiers := params.csv("ParentIdentifiers"):
            task = FetchTask.objects.get(name=tasks[0])
            parent_containers(repository_for(task), identifiers)
        return tasks

    def run(self, ctx: FetchContext) -> None:
        if not ctx.task_names:
            raise FetchActionFailed("The action names no fetch task (ConfigSection)")
        task = ctx.tasks[0]
        repository = repository_for(task)
        max_depth = ctx.params.integer("MaxDepth", 1, minimum=0)
        containers_only = ctx.params.boolean("ContainersOnly", False)
        ctx.count(task.name, "seen", 0)
        ctx.progress(0, STAGE)
        try:
            repository.check()
            parents = self._parents(ctx, repository)
        except RepositoryUnavailable as error:
            raise FetchActionFailed(str(error)) from None

        listed: list[dict[str, Any]] = []
        ctx.result["identifiers"] = listed
        # (container, its depth below the parents); containers already listed
        # are skipped, so overlapping parents list nothing twice.
        pending: deque[tuple[Item, int]] = deque((parent, 1) for parent in parents)
        visited: set[str] = set()
        emitted: set[str] = set()
        done = 0
        while pending:
            ctx.checkpoint()
            container, depth = pending.popleft()
            if container.identifier in visited:
                continue
            visited.add(container.identifier)
            descend = max_depth == 0 or depth < max_depth
            try:
                for item in repository.children(
                    container.identifier, containers_only=containers_only
                ):
                    ctx.checkpoint()
                    if item.is_container and descend:
                        pending.append((item, depth + 1))
                    if item.identifier in emitted:
                        continue
                    if len(listed) >= MAX_IDENTIFIERS:
                        self._truncate(ctx)
                        return
                    emitted.add(item.identifier)
                    listed.append(describe(item))
                    ctx.count(task.name, "seen")
            except (ItemNotFound, ItemUnreadable, IdentifierError) as error:
                # One folder gone or unreadable costs its own listing only.
                ctx.log.warning("Skipped folder %s: %s", container.path or container.name, error)
                ctx.count(task.name, "errors")
            done += 1
            # The total is unknown until the walk ends: report the share of the
            # folders found so far that are done; never above 99 until the end.
            ctx.progress(min(99, max(ctx.percent, 100 * done // (done + len(pending)))), STAGE)
        ctx.progress(100, "listed")
        ctx.log.info("Listed %s identifiers of fetch task %s", len(listed), task.name)

    @staticmethod
    def _parents(ctx: FetchContext, repository: Repository) -> list[Item]:
        identifiers = ctx.params.csv("ParentIdentifiers")
        if not identifiers:
            return repository.roots()
        parents = []
        for identifier in identifiers:
            try:
                item = repository.stat(identifier)
            except (ItemNotFound, ItemUnreadable, IdentifierError) as error:
                # Checked at submission; gone (or changed) since.
                ctx.log.warning("Parent %s is no longer usable: %s", identifier, error)
                ctx.count(repository.task.name, "errors")
                continue
            if not item.is_container:
                ctx.log.warning("Parent %s is no longer a folder", identifier)
                ctx.count(repository.task.name, "errors")
                continue
            parents.append(item)
        return parents

    @staticmethod
    def _truncate(ctx: FetchContext) -> None:
        ctx.result["truncated"] = True
        ctx.log.warning(
            "Stopped listing at %s identifiers; list below narrower ParentIdentifiers",
            MAX_IDENTIFIERS,
        )
