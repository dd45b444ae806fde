"""The file-system repository: a task's root folders on the local disk.

Identifiers
-----------
An identifier is the unpadded URL-safe base64 (RFC 4648 section 5) of

    FS1 NUL <task name> NUL <root index> NUL <path relative to that root>

``FS1`` names this repository kind and the format's version, the root index is
the position of the root in the task's ``DirectoryPathCSVs`` (decimal, no
leading zeros), and the path uses '/' between components ('' for the root
itself; file names are encoded as the OS stores them, so names that are not
UTF-8 survive). The same item always gets the same identifier, and an
identifier has exactly one spelling: decoding re-encodes and compares.

Decoding refuses (``IdentifierError``) anything but that shape: characters
outside the base64url alphabet (so '%2F', '/', '+', '=' and whitespace),
another task's name, a root index the task does not have, and paths that are
absolute or contain a backslash, an empty, '.' or '..' component. Resolving
then requires that the real path (symlinks resolved) stays inside the root's
real path. Symbolic links are not followed: listings skip them and an
identifier that goes through one names nothing (``ItemNotFound``).

What is part of a task: its roots; with ``DirectoryRecursive`` every folder
below them, otherwise only the roots' own documents; documents are regular
files whose names match ``FileMatch`` and none of ``FileExcludeMatch`` (shell
patterns, case-insensitive); neither ever hides folders. Anything else
(sockets, devices, FIFOs) is not, nor is a temporary file of ``write_below``
(``.<name>.<12 hex digits>.tmp``): a leftover of an interrupted write is never
listed, and Synchronize removes it once stale (``remove_stale_temporary``).

Errors name items by their path below the root (or "root folder N"), never by
the server's absolute path: their messages reach ACI clients. The absolute
path goes to the log.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fnmatch
import logging
import os
import re
import secrets
import stat as stat_module
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

from connector.repositories.base import (
    DEFAULT_CHUNK_SIZE,
    NEW_DOCUMENT_MODE,
    IdentifierError,
    Item,
    ItemNotFound,
    ItemUnreadable,
    Repository,
    RepositoryUnavailable,
    WriteRefused,
    display,
)

if TYPE_CHECKING:
    from connector.models import FetchTask

logger = logging.getLogger(__name__)

KIND = b"FS1"
#: Longer identifiers are refused before decoding: no real path needs more, and
#: a client cannot make the connector decode megabytes.
MAX_IDENTIFIER_LENGTH = 8192
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_ROOT_INDEX = re.compile(rb"0|[1-9][0-9]{0,5}")
# O_NOFOLLOW is POSIX; where it is missing the lstat checks of _resolve remain.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# Writes walk folder by folder from a known real path with these flags, so a
# symbolic link swapped in anywhere on the way makes the open fail (ELOOP or
# ENOTDIR) instead of leading out of the folder.
_FOLDER_FLAGS = _OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)
#: A document, opened relative to its folder: O_NONBLOCK keeps a FIFO swapped
#: in after a listing from blocking the open (fstat then shows what it is).
DOCUMENT_FLAGS = _OPEN_FLAGS | getattr(os, "O_NONBLOCK", 0)
_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


#: The name ``write_below`` gives its temporary file: ``.<name>.<12 hex digits>.tmp``.
_TEMPORARY_NAME = re.compile(r"\..*\.[0-9a-f]{12}\.tmp", re.DOTALL)
#: A temporary file untouched for this long is a leftover of a killed write (a
#: write in progress touches it at every chunk and renames it within moments of
#: the last one), so Synchronize may remove it.
STALE_TEMPORARY_SECONDS = 3600


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one ``write_below`` gives its temporary files: never a document."""
    return name.startswith(".") and name.endswith(".tmp") and bool(_TEMPORARY_NAME.fullmatch(name))


def remove_stale_temporary(folder: int, name: str, modified: float) -> bool:
    """Remove temporary file ``name`` of folder descriptor ``folder`` if it was last
    modified (``modified``, seconds since the epoch) ``STALE_TEMPORARY_SECONDS`` ago."""
    if time.time() - modified < STALE_TEMPORARY_SECONDS:
        return False
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    except OSError as error:
        logger.warning("Cannot remove the leftover temporary file %s: %s", name, error.strerror)
        return False
    logger.info("Removed %s, a temporary file left by an interrupted write", name)
    return True


@dataclass(frozen=True)
class Location:
    """A decoded identifier: which task, which root, which path below it."""

    task: str
    root: int
    path: str

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")) if self.path else ()


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a normalised path below a root, or None if it is."""
    if path == "":
        return None
    if "\0" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/") or os.path.isabs(path) or os.path.splitdrive(path)[0]:
        return "is absolute"
    parts = path.split("/")
    if "" in parts:
        return "has an empty component"
    if "." in parts or ".." in parts:
        return "has a '.' or '..' component"
    return None


def encode_identifier(task: str, root: int, path: str) -> str:
    """The identifier of ``path`` (relative, '/'-separated) below root ``root`` of ``task``."""
    if problem := relative_path_problem(path):
        raise ValueError(f"Path {path!r} {problem}")
    return make_identifier(identifier_prefix(task, root) + os.fsencode(path))


def identifier_prefix(task: str, root: int) -> bytes:
    """The bytes every identifier of root ``root`` of ``task`` starts with, before encoding."""
    if "\0" in task or root < 0:
        raise ValueError(f"Cannot make an identifier for task {task!r}, root {root}")
    return b"\0".join((KIND, task.encode("utf-8"), str(root).encode("ascii"), b""))


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def children_prefix(task: str, root: int, folder: str) -> bytes:
    """The raw bytes every identifier of a document directly in ``folder`` starts
    with: ``make_identifier(children_prefix(...) + os.fsencode(name))``."""
    prefix = identifier_prefix(task, root)
    return prefix + os.fsencode(folder) + b"/" if folder else prefix


def make_identifier(raw: bytes) -> str:
    """The identifier of raw bytes (``identifier_prefix`` and the path), unchecked.

    ``base64.urlsafe_b64encode`` without its layers: Synchronize makes one per
    listed document.
    """
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


def decode_identifier(identifier: str) -> Location:
    """Decode and check the shape of an identifier; no task or file system involved."""
    if not identifier:
        raise IdentifierError("The identifier is empty")
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierError(f"The identifier is longer than {MAX_IDENTIFIER_LENGTH} characters")
    if not _BASE64URL.fullmatch(identifier):
        raise IdentifierError(
            "The identifier has characters outside the URL-safe base64 alphabet;"
            " use identifiers exactly as FetchAction=Identifiers returned them"
        )
    try:
        raw = base64.urlsafe_b64decode(identifier + "=" * (-len(identifier) % 4))
    except (binascii.Error, ValueError):
        raise IdentifierError("The identifier does not decode") from None
    # One spelling per item: trailing bits or other variants would make two
    # different strings name the same document.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != identifier:
        raise IdentifierError("The identifier does not decode")
    parts = raw.split(b"\0")
    if len(parts) != 4 or parts[0] != KIND:
        raise IdentifierError("The identifier is not a file-system identifier of this connector")
    _, task_bytes, root_bytes, path_bytes = parts
    try:
        task = task_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise IdentifierError("The identifier does not name a fetch task") from None
    if not task or not _ROOT_INDEX.fullmatch(root_bytes):
        raise IdentifierError("The identifier does not name a fetch task and root folder")
    path = os.fsdecode(path_bytes)
    if problem := relative_path_problem(path):
        raise IdentifierError(f"The identifier's path leaves the task's root folder: it {problem}")
    return Location(task=task, root=int(root_bytes), path=path)


def open_folder_below(base: str, parts: Sequence[str], *, create: bool) -> int:
    """A descriptor of folder ``base/parts...``; with ``create``, missing folders are made.

    ``base`` must be a real path (no links); every component below it is
    opened relative to its parent without following links, so the walk cannot
    leave ``base``. ``parts`` are checked names: no '', '.', '..' or '/'.
    """
    fd = os.open(base, _FOLDER_FLAGS)
    try:
        for part in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                inner = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                raise ItemNotFound(f"Folder {part} does not exist") from None
            except OSError as error:
                # ELOOP: a link; ENOTDIR: a file or a link where a folder should be.
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise WriteRefused(
                    f"{part} is not a folder (a file or a symbolic link is in the way):"
                    f" {error.strerror}"
                ) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_below(
    base: str,
    parts: Sequence[str],
    chunks: Iterable[bytes],
    *,
    mode: int | None = None,
    guard: Callable[[], AbstractContextManager[object]] | None = None,
) -> int:
    """Write ``chunks`` to ``base/parts...`` all or nothing; return the bytes written.

    Folders are created below ``base`` (a real path); no symbolic link is
    followed on the way, and a folder or link at the target is refused. The
    bytes go to a hidden temporary file in the target's folder, which
    ``os.replace`` puts in place once complete: an exception while iterating
    ``chunks`` (a Stop) removes the temporary file and changes nothing. The
    replace runs inside ``guard()`` when given; an exception it raises
    changes nothing either.

    The file is created with permission bits ``mode`` (a copy's source's),
    else those of the file it replaces, else ``NEW_DOCUMENT_MODE``; always
    masked with ``0o777`` (never set-id or sticky) and narrowed by the umask.
    They are given when the temporary file is created, so the content is
    never readable more widely, not even for a moment.
    """
    if not parts or any(p in ("", ".", "..") or "/" in p or "\0" in p for p in parts):
        raise WriteRefused("The path to write is not a normalised relative path")
    folder = open_folder_below(base, parts[:-1], create=True)
    name = parts[-1]
    try:
        replaced: int | None = None
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat_module.S_ISREG(st.st_mode):
                raise WriteRefused(f"{name} exists and is not a regular file")
            replaced = stat_module.S_IMODE(st.st_mode)
        bits = mode if mode is not None else replaced if replaced is not None else NEW_DOCUMENT_MODE
        temporary = f".{name[:100]}.{secrets.token_hex(6)}.tmp"
        written = 0
        try:
            fd = os.open(temporary, _CREATE_FLAGS, bits & 0o777, dir_fd=folder)
            with open(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            with guard() if guard is not None else nullcontext():
                os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            raise
        return written
    finally:
        os.close(folder)


def is_document_name(
    name: str, file_match: re.Pattern[str] | None, file_exclude: re.Pattern[str] | None
) -> bool:
    """Whether ``name`` matches ``FileMatch`` (None: every name) and none of
    ``FileExcludeMatch``; patterns are compiled case-folded."""
    folded = name.casefold()
    if file_exclude is not None and file_exclude.match(folded):
        return False
    return file_match is None or file_match.match(folded) is not None


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _where(location: Location) -> str:
    """An item as error messages name it: its path below its root, never the server's path."""
    return display(location.path) if location.path else f"root folder {location.root + 1}"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class FileSystemRepository(Repository):
    """The documents of one fetch task below its root folders."""

    def __init__(self, task: FetchTask) -> None:
        super().__init__(task)
        #: The folder of the last document read, kept open: see _document_folder.
        self._folder: tuple[tuple[int, tuple[str, ...]], int] | None = None
        self.recursive = bool(task.directory_recursive)
        self._root_paths = [os.path.abspath(os.fspath(p)) for p in task.directory_paths or []]
        self._root_reals: dict[int, str] = {}
        patterns = [p.casefold() for p in (task.file_match or []) if p.strip()] or ["*"]
        self.file_match = re.compile("|".join(fnmatch.translate(p) for p in patterns))
        excludes = [p.casefold() for p in (task.file_exclude_match or []) if p.strip()]
        self.file_exclude = (
            re.compile("|".join(fnmatch.translate(p) for p in excludes)) if excludes else None
        )
        #: The default, FileMatch=* and no exclusions: every name is a document's.
        self.every_name = "*" in patterns and not excludes

    # --- Identifiers ----------------------------------------------------------

    def identifier(self, root: int, path: str) -> str:
        return encode_identifier(self.task.name, root, path)

    def locate(self, identifier: str) -> Location:
        """Decode an identifier and check that it belongs to this task."""
        location = decode_identifier(identifier)
        if location.task != self.task.name:
            raise IdentifierError(
                f"The identifier belongs to fetch task {location.task}, not {self.task.name}"
            )
        if location.root >= len(self._root_paths):
            raise IdentifierError(
                f"The identifier names root folder {location.root + 1} of fetch task"
                f" {self.task.name}, which has {len(self._root_paths)}"
            )
        return location

    # --- The interface --------------------------------------------------------

    def check_identifier(self, identifier: str) -> None:
        self.locate(identifier)

    def placement(self, identifier: str) -> tuple[str, str | None]:
        location = self.locate(identifier)
        parts = location.parts
        if not parts:
            return "", None
        return location.path, self.identifier(location.root, "/".join(parts[:-1]))

    def check(self) -> None:
        if not self._root_paths:
            raise RepositoryUnavailable(f"Fetch task {self.task.name} has no root folders")
        for index, root in enumerate(self._root_paths):
            if not os.path.isdir(root):
                logger.warning("Root folder %s of fetch task %s is missing", root, self.task.name)
                raise RepositoryUnavailable(
                    f"Root folder {index + 1} of fetch task {self.task.name}"
                    " does not exist or is not a folder"
                )

    def roots(self) -> list[Item]:
        self.check()
        return [self.stat(self.identifier(index, "")) for index in range(len(self._root_paths))]

    def stat(self, identifier: str) -> Item:
        location = self.locate(identifier)
        return self._item_at(location, self._resolve(location))

    def children(self, identifier: str, *, containers_only: bool = False) -> Iterator[Item]:
        location = self.locate(identifier)
        path, st = self._resolve(location)
        if not stat_module.S_ISDIR(st.st_mode):
            raise ItemNotFound("The identifier names a document, not a folder")
        # Listed now, not lazily, so a vanished or unreadable folder raises here.
        try:
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            raise ItemNotFound(f"Folder {_where(location)} no longer exists") from None
        except OSError as error:
            logger.warning("Cannot list folder %s: %s", path, error)
            raise ItemUnreadable(
                f"Cannot list folder {_where(location)}: {error.strerror}"
            ) from None
        return self._entries(location, identifier, entries, containers_only)

    def read_chunks(
        self, identifier: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE, start: int = 0
    ) -> Iterator[bytes]:
        location = self.locate(identifier)
        fd = self._open_document(location)
        if fd is None:
            # Not simply there: _resolve says why (outside the root, a link,
            # out of scope, gone), or it is there now and is opened by path.
            path, st = self._resolve(location)
            if not stat_module.S_ISREG(st.st_mode):
                raise ItemNotFound("The identifier names a folder, not a document")
            try:
                # O_NOFOLLOW: a link swapped in since _resolve looked is not opened.
                fd = os.open(path, _OPEN_FLAGS)
            except (FileNotFoundError, NotADirectoryError):
                raise ItemNotFound(f"Document {_where(location)} no longer exists") from None
            except OSError as error:
                logger.warning("Cannot open document %s: %s", path, error)
                raise ItemUnreadable(
                    f"Cannot open document {_where(location)}: {error.strerror}"
                ) from None
        # A file object, not the bare descriptor: it is closed when collected
        # even if nobody ever iterates the chunks.
        return self._chunks(open(fd, "rb", buffering=0), chunk_size, start)

    def write_document(
        self,
        identifier: str,
        chunks: Iterable[bytes],
        *,
        guard: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> Item:
        location = self.locate(identifier)
        parts = location.parts
        if not parts:
            raise WriteRefused("The identifier names a root folder, not a document")
        # Refused before writing: a file the task would not list is not its document.
        if not self.recursive and len(parts) > 1:
            raise WriteRefused(
                f"{location.path} is in a subfolder; fetch task {self.task.name} is not recursive"
            )
        if not self._matches(parts[-1]):
            raise WriteRefused(
                f"{parts[-1]} does not match the FileMatch patterns of fetch task"
                f" {self.task.name} or matches its FileExcludeMatch patterns"
            )
        root = self.root_real(location.root)
        if not os.path.isdir(root):
            logger.warning("Root folder %s of fetch task %s is gone", root, self.task.name)
            raise RepositoryUnavailable(
                f"Root folder {location.root + 1} of fetch task {self.task.name} is gone"
            )
        try:
            write_below(root, parts, chunks, guard=guard)
        except (ItemNotFound, WriteRefused):
            raise
        except OSError as error:
            logger.warning("Cannot write %s below %s: %s", location.path, root, error)
            raise ItemUnreadable(f"Cannot write {location.path}: {error.strerror}") from None
        return self.stat(identifier)

    def delete_document(self, identifier: str) -> None:
        location = self.locate(identifier)
        # _resolve refuses links, folders out of scope and paths leaving the root.
        path, st = self._resolve(location)
        if not stat_module.S_ISREG(st.st_mode):
            raise ItemNotFound("The identifier names a folder, not a document")
        parts = location.parts
        # Unlinked relative to a folder opened without following links, so a
        # link swapped in since _resolve looked cannot redirect the delete.
        where = _where(location)
        try:
            folder = open_folder_below(self.root_real(location.root), parts[:-1], create=False)
        except OSError as error:
            logger.warning("Cannot reach %s: %s", path, error)
            raise ItemUnreadable(f"Cannot reach {where}: {error.strerror}") from None
        try:
            st = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
            if not stat_module.S_ISREG(st.st_mode):
                raise ItemNotFound(f"{where} is not a regular file (any more)")
            os.unlink(parts[-1], dir_fd=folder)
        except FileNotFoundError:
            raise ItemNotFound(f"Document {where} no longer exists") from None
        except OSError as error:
            logger.warning("Cannot delete %s: %s", path, error)
            raise ItemUnreadable(f"Cannot delete {where}: {error.strerror}") from None
        finally:
            os.close(folder)

    # --- Internals --------------------------------------------------------------

    @property
    def root_count(self) -> int:
        return len(self._root_paths)

    def root_real(self, index: int) -> str:
        """The real path (links resolved) of root ``index``."""
        if index not in self._root_reals:
            self._root_reals[index] = os.path.realpath(self._root_paths[index])
        return self._root_reals[index]

    def _open_document(self, location: Location) -> int | None:
        """A descriptor of the located document if it is a regular file of the task, else None.

        The path is opened folder by folder from the root's real path, never
        following a link (O_NOFOLLOW on every component), so what is opened is
        inside the root without a realpath per document, and no link swapped
        in between a check and the open can redirect it. O_NONBLOCK keeps a
        FIFO swapped in after the lstat from blocking the open.
        """
        parts = location.parts
        if not parts:
            return None
        try:
            folder = self._document_folder(location.root, parts[:-1])
        except (OSError, ItemNotFound, WriteRefused):
            return None
        try:
            st = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
            if not stat_module.S_ISREG(st.st_mode):
                return None
            fd = os.open(parts[-1], DOCUMENT_FLAGS, dir_fd=folder)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if stat_module.S_ISREG(st.st_mode):
                self._check_in_scope(location, st)
                return fd
        except (OSError, ItemNotFound):
            pass
        os.close(fd)
        return None

    def _document_folder(self, root: int, parts: tuple[str, ...]) -> int:
        """A descriptor of folder ``parts`` of root ``root``, opened without following links.

        Documents are read folder by folder (Synchronize), so the last folder
        stays open for the next document instead of walking from the root
        again. It was reached without following a link, so it is a folder that
        was inside the root; a link put in its place later is never followed.
        """
        key = (root, parts)
        if self._folder is not None and self._folder[0] == key:
            return self._folder[1]
        fd = open_folder_below(self.root_real(root), parts, create=False)
        self.close()
        self._folder = (key, fd)
        return fd

    def close(self) -> None:
        # The folder kept open for reading; the repository stays usable.
        if self._folder is not None:
            _, fd = self._folder
            self._folder = None
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def _resolve(self, location: Location) -> tuple[str, os.stat_result]:
        """The path of a located item and its lstat, once it is known to be part of the task."""
        root_real = self.root_real(location.root)
        candidate = os.path.join(root_real, *location.parts)
        real = os.path.realpath(candidate)
        if not _inside(real, root_real):
            raise IdentifierError("The identifier's path leaves the task's root folder")
        where = _where(location)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            logger.debug("Nothing of fetch task %s is at %s", self.task.name, candidate)
            raise ItemNotFound(
                f"Nothing of fetch task {self.task.name} is at {where} (any more)"
            ) from None
        except OSError as error:
            # ELOOP and the like: a link in the way, or the disk failed us.
            logger.warning("Cannot reach %s: %s", candidate, error)
            raise ItemNotFound(f"Cannot reach {where}: {error.strerror}") from None
        if real != candidate or stat_module.S_ISLNK(st.st_mode):
            raise ItemNotFound(
                f"{where} is reached through a symbolic link,"
                f" which fetch task {self.task.name} does not follow"
            )
        if location.parts:
            self._check_in_scope(location, st)
        elif not stat_module.S_ISDIR(st.st_mode):
            logger.warning(
                "Root folder %s of fetch task %s is not a folder", candidate, self.task.name
            )
            raise ItemNotFound(f"{where} is not a folder")
        return candidate, st

    def _check_in_scope(self, location: Location, st: os.stat_result) -> None:
        path = _where(location)
        if stat_module.S_ISDIR(st.st_mode):
            if not self.recursive:
                raise ItemNotFound(
                    f"{path} is a subfolder; fetch task {self.task.name} is not recursive"
                )
        elif stat_module.S_ISREG(st.st_mode):
            if not self.recursive and len(location.parts) > 1:
                raise ItemNotFound(
                    f"{path} is in a subfolder; fetch task {self.task.name} is not recursive"
                )
            if not self._matches(location.parts[-1]):
                raise ItemNotFound(
                    f"{path} does not match the FileMatch patterns of fetch task {self.task.name}"
                    " or matches its FileExcludeMatch patterns"
                )
        else:
            raise ItemNotFound(f"{path} is neither a folder nor a regular file")

    def _matches(self, name: str) -> bool:
        if is_temporary_name(name):
            return False
        return self.every_name or is_document_name(name, self.file_match, self.file_exclude)

    def _item_at(self, location: Location, resolved: tuple[str, os.stat_result]) -> Item:
        _, st = resolved
        is_container = stat_module.S_ISDIR(st.st_mode)
        parts = location.parts
        if parts:
            name = parts[-1]
            parent: str | None = self.identifier(location.root, "/".join(parts[:-1]))
        else:
            name = os.path.basename(self._root_paths[location.root].rstrip(os.sep)) or os.sep
            parent = None
        return Item(
            identifier=self.identifier(location.root, location.path),
            name=name,
            path=location.path,
            is_container=is_container,
            size=None if is_container else st.st_size,
            modified=_mtime(st),
            parent=parent,
            mode=None if is_container else stat_module.S_IMODE(st.st_mode) & 0o777,
        )

    def _entries(
        self,
        location: Location,
        parent: str,
        entries: list[os.DirEntry[str]],
        containers_only: bool,
    ) -> Iterator[Item]:
        folder = children_prefix(self.task.name, location.root, location.path)
        for entry in entries:
            if "\\" in entry.name:
                # Identifiers refuse backslashes (a separator elsewhere), so such
                # a name could never be reached again: leave it out, visibly.
                logger.warning("Skipping %s: backslashes in names are not supported", entry.path)
                continue
            try:
                if entry.is_symlink():
                    logger.debug("Skipping symbolic link %s", entry.path)
                    continue
                is_container = entry.is_dir(follow_symlinks=False)
                if is_container:
                    if not self.recursive:
                        continue
                elif (
                    containers_only
                    or not entry.is_file(follow_symlinks=False)
                    or not self._matches(entry.name)
                ):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the folder was listed
            except OSError as error:
                logger.warning("Skipping %s: %s", entry.path, error.strerror)
                continue
            relative = f"{location.path}/{entry.name}" if location.path else entry.name
            yield Item(
                # A listed name is one checked component (no '/', NUL, '.' or '..';
                # backslashes left out above), so only the name is encoded here.
                identifier=make_identifier(folder + os.fsencode(entry.name)),
                name=entry.name,
                path=relative,
                is_container=is_container,
                size=None if is_container else st.st_size,
                modified=_mtime(st),
                parent=parent,
                mode=None if is_container else stat_module.S_IMODE(st.st_mode) & 0o777,
            )

    @staticmethod
    def _chunks(document: BinaryIO, chunk_size: int, start: int) -> Iterator[bytes]:
        with document:
            if start:
                document.seek(start)
            while chunk := document.read(chunk_size):
                yield chunk
