"""Batch files in an ingest folder, each complete or absent.

A batch is written to a hidden temporary file in the same folder (so the
rename cannot cross file systems), flushed and fsynced, then renamed to its
final name with ``os.replace``, and the folder is fsynced so the rename
survives a power cut. A reader that lists ``*.idx`` never sees a partial
batch; a failure at any point removes the temporary file.

Names sort in the order the batches were written:
``<TASK>-<UTC start of the run, YYYYmmddTHHMMSSffffffZ>-<sequence, 6 digits>.<idx|del>``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Kind = Literal["idx", "del"]


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
