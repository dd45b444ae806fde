"""The repository interface: what a fetch action needs from a document store.

A repository serves one fetch task. It hands out ``Item``s named by
identifiers: opaque, URL-safe, stable strings that only the repository that
made them can decode. Every method that takes an identifier validates it first,
so an identifier a client made up is refused (``IdentifierError``) before the
repository touches anything.

Fetch actions depend on this interface only, but for Synchronize, which
reads a file-system task a folder at a time with folder jobs
(``connector/ingest/scan.py``) for speed; another kind of repository would
bring jobs of its own. The file system
(``connector.repositories.filesystem``) is the built-in implementation. Custom
metadata and holds are not the repository's: they live in the connector's
datastore (``DatastoreDocument``), so every repository gets them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: Synchronize's reader processes import the
    # repositories without Django (connector/ingest/scan.py).
    from connector.models import FetchTask

#: Bytes per chunk of ``read_chunks`` unless the caller asks otherwise: small
#: enough that a Stop is noticed quickly, large enough to keep I/O efficient.
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Permission bits of a document Insert creates (no source to take them from),
#: before the process umask: readable by the connector's user and group only,
#: as its content came from an ACI client, not from the repository.
NEW_DOCUMENT_MODE = 0o640


def display(text: str) -> str:
    """A name or path as text safe for JSON, XML and IDX: bytes that are not
    UTF-8 (file names keep them as surrogates) become replacement characters."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class RepositoryError(Exception):
    """Something the repository cannot do; the message says what and why."""


class IdentifierError(RepositoryError):
    """The identifier does not decode, belongs to another task, or leaves the task's roots."""


class ItemNotFound(RepositoryError):
    """The identifier is well formed, but no item of the task is there (any more)."""


class ItemUnreadable(RepositoryError):
    """The item exists but cannot be read (permissions, I/O error)."""


class WriteRefused(RepositoryError):
    """A write or delete that would not land on a document of the task (a folder,
    a symbolic link, a name outside FileMatch, a subfolder of a flat task)."""


class RepositoryUnavailable(RepositoryError):
    """The task cannot be used at all, e.g. a root folder is missing."""


@dataclass(frozen=True)
class Item:
    """A container (folder) or document of a task, as a listing or a stat sees it."""

    identifier: str
    #: The last component of the path (for a root: the root folder's own name).
    name: str
    #: Path relative to its root, components joined by '/'; '' for a root.
    path: str
    is_container: bool
    #: Bytes, for documents; None for containers.
    size: int | None
    #: Last modification, timezone-aware UTC.
    modified: datetime | None
    #: Identifier of the containing item; None for a root.
    parent: str | None
    #: Permission bits (``0o777`` at most, never set-id or sticky) of a
    #: document, where the repository has them; copies are made with them.
    mode: int | None = None

    @property
    def is_root(self) -> bool:
        return self.parent is None


class Repository(ABC):
    """What every repository offers for one fetch task."""

    def __init__(self, task: FetchTask) -> None:
        self.task = task

    @abstractmethod
    def identifier(self, root: int, path: str) -> str:
        """The identifier of ``path`` ('/'-separated, relative) below root ``root``.

        Raises ``ValueError`` for a path that is not normalised (``..``, absolute).
        """

    @abstractmethod
    def check_identifier(self, identifier: str) -> None:
        """Raise ``IdentifierError`` unless ``identifier`` is well formed and this task's.

        Touches nothing: the item need not exist (yet, or any more).
        """

    @abstractmethod
    def check(self) -> None:
        """Raise ``RepositoryUnavailable`` if the task cannot be used (say why)."""

    @abstractmethod
    def roots(self) -> list[Item]:
        """The task's top-level containers, in configuration order."""

    @abstractmethod
    def stat(self, identifier: str) -> Item:
        """The item an identifier names.

        Raises ``IdentifierError`` for identifiers that are not this task's
        or leave its roots, ``ItemNotFound`` if nothing of the task is there.
        """

    @abstractmethod
    def children(self, identifier: str, *, containers_only: bool = False) -> Iterator[Item]:
        """The items directly inside a container that are part of the task.

        Raises as ``stat`` does, ``ItemNotFound`` if the identifier names a
        document, and ``ItemUnreadable`` if the container cannot be listed.
        """

    @abstractmethod
    def read_chunks(
        self, identifier: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE, start: int = 0
    ) -> Iterator[bytes]:
        """A document's bytes from ``start``, in chunks of at most ``chunk_size``.

        Callers check for a Stop between chunks; closing the iterator early
        closes the document.
        """

    @abstractmethod
    def placement(self, identifier: str) -> tuple[str, str | None]:
        """The root-relative path of an item and its folder's identifier (None for a
        root), whether or not it exists. Raises ``IdentifierError``."""

    @abstractmethod
    def write_document(
        self,
        identifier: str,
        chunks: Iterable[bytes],
        *,
        guard: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> Item:
        """Create or replace a document with the bytes of ``chunks``; return it.

        All or nothing: the bytes go to a temporary file that replaces the
        document once complete, so an exception raised while iterating
        ``chunks`` (a Stop) leaves the old document, or none, in place. The
        replacing happens inside ``guard()`` when given: an exception it raises
        leaves the old document too. A new document gets ``NEW_DOCUMENT_MODE``;
        a replaced one keeps its permission bits.
        Missing folders are created inside the root. Raises ``WriteRefused``
        if the target is not a document of the task, ``ItemUnreadable`` on
        I/O errors, and as ``stat`` does.
        """

    def close(self) -> None:  # noqa: B027 (optional: most repositories hold nothing)
        """Release what the repository keeps open between calls (files, connections).

        It stays usable: the next call opens what it needs again.
        """

    @abstractmethod
    def delete_document(self, identifier: str) -> None:
        """Delete a document (never a folder). Raises as ``stat`` does,
        ``ItemNotFound`` for a folder, ``ItemUnreadable`` on I/O errors."""
