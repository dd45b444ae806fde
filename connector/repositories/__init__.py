"""Repositories: where a fetch task's documents live.

``repository_for(task)`` is the one place that picks the implementation; today
every task is a file-system task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.repositories.base import (
    IdentifierError,
    Item,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryError,
    RepositoryUnavailable,
    WriteRefused,
)
from connector.repositories.filesystem import (
    FileSystemRepository,
    decode_identifier,
    write_below,
)

if TYPE_CHECKING:
    from connector.models import FetchTask

__all__ = [
    "FileSystemRepository",
    "IdentifierError",
    "Item",
    "ItemNotFound",
    "ItemUnreadable",
    "Repository",
    "RepositoryError",
    "RepositoryUnavailable",
    "WriteRefused",
    "repository_for",
    "task_name_of",
    "write_below",
]


def repository_for(task: FetchTask) -> Repository:
    return FileSystemRepository(task)


def task_name_of(identifier: str) -> str:
    """The fetch task an identifier belongs to, for actions given identifiers alone.

    Only the shape is checked; the task's repository validates the rest.
    """
    return decode_identifier(identifier).task
