"""What GetVersion and GetStatus say about this process: product, version, build, uptime."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import connector


def _process_start() -> datetime:
    """When this process started: from /proc on Linux, else when this module was loaded.

    The URL configuration (and so this module) is loaded at the first request,
    which may be long after the server started.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        # Field 22 (start time in clock ticks after boot) follows the ")" of the name.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return datetime.now(UTC)


STARTED_AT = _process_start()

PRODUCT_NAME = connector.PRODUCT_NAME
VERSION = connector.__version__


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(connector.__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


BUILD = os.environ.get("CONNECTOR_BUILD", "").strip() or "unknown"
# Read once at import: GetVersion must be cheap and must never fail.
COMMIT = os.environ.get("CONNECTOR_COMMIT", "").strip() or _git_commit() or "unknown"
