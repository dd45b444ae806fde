"""Files that hold the service's secrets or state are private to its user from the first byte.

The state (``CONNECTOR_VAR_DIR``, the SQLite database with its ``-wal`` and
``-shm`` files, the generated secret key) is created with private modes
explicitly, whatever the process umask: no chmod after the fact, so no window
in which another local user could open it. SQLite creates ``-wal`` and
``-shm`` with the mode of the database file, so creating that file private
covers them.

Everything else the process creates (documents that Insert or Collect write,
ingest batches, logs of diagnostics) follows the umask, which the service sets
at start to ``CONNECTOR_UMASK`` (default ``077``: private too). A deployment
whose ingestion service or repository readers run as another user sets a
looser one (``027``) or gives the output folders a default ACL; the state
stays private either way. No Django here: ``manage.py`` calls it first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DEFAULT_UMASK = 0o077


def umask_from_environment() -> int:
    """CONNECTOR_UMASK as an octal number (``077``, ``0o027``), default 077."""
    raw = os.environ.get("CONNECTOR_UMASK", "").strip()
    if not raw:
        return DEFAULT_UMASK
    try:
        value = int(raw.removeprefix("0o"), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        # Raised before Django is configured: a plain ValueError, turned into
        # ImproperlyConfigured by the settings.
        raise ValueError(f"CONNECTOR_UMASK must be an octal umask such as 077 or 027, not {raw!r}")
    return value


def apply_umask() -> int:
    """Set the process umask (CONNECTOR_UMASK); return it."""
    value = umask_from_environment()
    os.umask(value)
    return value


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing folder is left as it is."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        # mkdir's mode passes through the umask, which may only remove bits:
        # 0700 stays 0700 or stricter.
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if missing (an empty SQLite file is a valid database)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def write_private_once(path: Path, text: str) -> str:
    """Write ``text`` to a new 0600 ``path`` unless it exists; return what the file holds.

    Written to a private temporary file first and linked into place, so a
    second process starting at the same time reads a whole file or makes none.
    """
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # 0600
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text()


def tighten(path: Path) -> None:
    """Remove group and other access from a state file an older version left readable."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(mode & 0o700)
    except FileNotFoundError:
        pass
