"""Batch files in an ingest folder, each complete or absent.

A batch is written to a hidden temporary file in the same folder (so the
rename cannot cross file systems), flushed and fsynced, then renamed to its
final name with ``os.replace``, and the folder is fsynced so the rename
survives a power cut. A reader that lists ``*.idx`` never sees a partial
batch; a failure at any point removes the temporary file.

Names sort in the order the batches were written:
``<TASK>-<UTC start of the run, YYYYmmddTHHMMSSffffffZ>-<sequence, 6 digits>.<idx|del>``.

A run killed outright (SIGKILL, power cut) leaves its temporary file,
``.<batch name>.<random>.tmp``, behind. The task's next run removes such
leftovers of its own task (``Spool.prepare``) once untouched for
``STALE_BATCH_SECONDS``: a run in progress writes its batch as it reads, and
only one Synchronize of a task runs at a time, so an older one is nobody's.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Kind = Literal["idx", "del"]

logger = logging.getLogger(__name__)

#: A temporary batch file untouched this long is a leftover of a killed run.
STALE_BATCH_SECONDS = 600


def _leftover_pattern(task: str) -> re.Pattern[str]:
    """The names ``BatchFile`` gives the temporary files of ``task``'s batches."""
    return re.compile(
        rf"\.{re.escape(task)}-\d{{8}}T\d{{12}}Z-\d{{6}}\.(?:idx|del)\.[A-Za-z0-9_]+\.tmp"
    )


class BatchFile:
    """One batch being written; ``commit`` makes it visible, ``abort`` forgets it."""

    def __init__(self, folder: Path, name: str, kind: Kind) -> None:
        self.kind = kind
        self.final = folder / name
        self.documents = 0
        self.bytes = 0
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        self.temp = Path(temp)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes, *, documents: int = 1) -> None:
        self._file.write(data)
        self.bytes += len(data)
        self.documents += documents

    def commit(self) -> Path:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp, self.final)
        except BaseException:
            self.abort()
            raise
        _fsync_folder(self.final.parent)
        return self.final

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            self.temp.unlink(missing_ok=True)


class Spool:
    """Names and opens the batch files of one run of one task."""

    def __init__(self, folder: Path, task: str, started: datetime | None = None) -> None:
        self.folder = folder
        self.task = task
        self.stamp = (started or datetime.now(tz=UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.sequence = 0

    def prepare(self) -> None:
        """Create the folder; raises OSError if it cannot be made or written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(self.folder))
        self.remove_leftovers()

    def remove_leftovers(self) -> list[str]:
        """Remove temporary batch files of this task that a killed run left; their names.

        Only names this task's batches get, only regular files, only ones
        untouched for ``STALE_BATCH_SECONDS``; never anything else.
        """
        pattern, removed = _leftover_pattern(self.task), []
        stale_before = time.time() - STALE_BATCH_SECONDS
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not (entry.name.startswith(".") and pattern.fullmatch(entry.name)):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if entry.stat(follow_symlinks=False).st_mtime >= stale_before:
                        continue
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                except OSError as error:
                    logger.warning("Cannot remove leftover batch %s: %s", entry.path, error)
                    continue
                logger.info("Removed %s, a batch a killed run left unfinished", entry.path)
                removed.append(entry.name)
        return removed

    def open(self, kind: Kind) -> BatchFile:
        self.sequence += 1
        return BatchFile(self.folder, f"{self.task}-{self.stamp}-{self.sequence:06d}.{kind}", kind)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (Windows); the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
