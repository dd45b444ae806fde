"""FetchAction=Collect: copy documents to a destination folder.

Parameters: ``Identifiers`` (required), documents of configured tasks
(``ConfigSection`` optionally restricts them to one task), and
``Destination`` (required): an absolute folder whose real path (symbolic
links and ``..`` resolved) lies inside one of the ``CollectDestinationCSVs``
folders of every task the identifiers belong to. A task without such folders
cannot collect at all.

Each document is copied to ``Destination/<its path below its root>``
(folders created; an existing file there is replaced), read through the
task's repository and written all or nothing: a temporary file in the target
folder, renamed once complete, with a Stop check every MiB. No symbolic link
below the allowed folder is followed while writing. The copy is created with
the document's permission bits (masked with 0777: never set-id or sticky
bits; the umask may narrow them), never more open than its source. Counts per task:
``collected``, ``errors``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

from connector.fetch.base import FetchAction, FetchContext, register
from connector.fetch.documents import (
    Outcomes,
    for_each_identifier,
    identifier_tasks,
)
from connector.models import FetchTask
from connector.params import InvalidParameter, Params
from connector.repositories import (
    ItemNotFound,
    ItemUnreadable,
    Repository,
    WriteRefused,
    write_below,
)

#: Bytes copied between two Stop checks.
COPY_CHUNK = 1024 * 1024


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def allowed_folder(task: FetchTask, destination: str) -> tuple[str, list[str]] | None:
    """The real allowed folder of ``task`` that holds ``destination``, and the
    components leading from it to the destination; None if none holds it."""
    real = os.path.realpath(destination)
    for folder in task.collect_destinations or []:
        folder_real = os.path.realpath(os.fspath(folder))
        if _inside(real, folder_real):
            relative = os.path.relpath(real, folder_real)
            return folder_real, [] if relative == "." else relative.split(os.sep)
    return None


def check_destination(params: Params, tasks: list[FetchTask]) -> str:
    destination = params.text("Destination", hint="Name the folder to copy the documents into.")
    if "\0" in destination or not os.path.isabs(destination):
        raise InvalidParameter("Destination", destination, "an absolute folder path")
    for task in tasks:
        if not task.collect_destinations:
            raise InvalidParameter(
                "Destination",
                destination,
                f"a folder that fetch task {task.name} may collect into; it has none"
                " (set CollectDestinationCSVs in its section)",
            )
        real = os.path.realpath(destination)
        if any(_inside(real, os.path.realpath(root)) for root in task.directory_paths or []):
            # The copies would become documents of the task on its next Synchronize.
            raise InvalidParameter(
                "Destination", destination, f"a folder outside the roots of fetch task {task.name}"
            )
        if allowed_folder(task, destination) is None:
            raise InvalidParameter(
                "Destination",
                destination,
                f"a folder inside one of the collect destinations of fetch task {task.name}"
                f" ({', '.join(map(str, task.collect_destinations))}), symbolic links resolved",
            )
    return destination


@register
class Collect(FetchAction):
    name = "COLLECT"

    def validate(self, params: Params) -> list[str]:
        names = identifier_tasks(params)
        check_destination(params, list(FetchTask.objects.filter(name__in=names)))
        return names

    def run(self, ctx: FetchContext) -> None:
        outcomes = Outcomes(ctx, "collected", ctx.task_names)
        destination = ctx.params.text("Destination")

        def chunks(repository: Repository, identifier: str) -> Iterator[bytes]:
            source = repository.read_chunks(identifier, chunk_size=COPY_CHUNK)
            try:
                for chunk in source:
                    ctx.checkpoint()
                    yield chunk
            finally:
                # A Stop between chunks closes the document now.
                if isinstance(source, Generator):
                    source.close()

        def collect(task: FetchTask, repository: Repository, identifier: str) -> str | None:
            # Checked again: the configuration may have changed since submission.
            allowed = allowed_folder(task, destination)
            if allowed is None:
                return (
                    f"{destination} is not inside a collect destination of fetch task {task.name}"
                )
            folder, below = allowed
            item = repository.stat(identifier)
            if item.is_container:
                raise ItemNotFound("The identifier names a folder, not a document")
            try:
                # With the source's permission bits (set-id and sticky dropped), so a
                # copy is never readable more widely than its document.
                write_below(
                    folder,
                    [*below, *item.path.split("/")],
                    chunks(repository, identifier),
                    mode=item.mode,
                )
            except (ItemNotFound, WriteRefused):
                raise
            except OSError as error:
                raise ItemUnreadable(f"Cannot copy to {destination}: {error.strerror}") from None
            return None

        for_each_identifier(ctx, outcomes, ctx.params.csv("Identifiers"), "collecting", collect)
