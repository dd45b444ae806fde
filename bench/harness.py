"""What the benchmarks share: Django on a fresh SQLite database, a process's CPU time.

Each benchmark runs as ``python bench/NAME.py``, so this folder is on
``sys.path`` and ``import harness`` finds this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_on_fresh_sqlite(folder: Path) -> Path:
    """Set Django up on a new, migrated SQLite database under ``folder``; its var folder."""
    var = folder / "var"
    os.environ.update(
        {
            "CONNECTOR_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'bench.sqlite3'}",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "connector.settings",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return var


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
