"""The demo task: a newcomer's first action does real work without any configuration.

``serve`` calls ``ensure_demo_task()`` when no ``CONNECTOR_CONFIG`` names a
tasks file. Only a database without any fetch task gets one: once tasks are
configured the demo is left alone (delete DEMO in the admin if it is not wanted).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from connector.models import FetchTask

logger = logging.getLogger(__name__)

DEMO_TASK = "DEMO"
#: The sample documents shipped with the connector.
SAMPLE_DIR = Path(__file__).resolve().parent / "demo_docs"


def ensure_demo_task() -> FetchTask | None:
    """Create task DEMO over a copy of the sample folder if no fetch task exists.

    Returns the new task, or None when tasks exist (then nothing changes). The
    sample is copied into ``CONNECTOR_DEMO_DIR`` only if that folder does not
    exist yet, so whatever a user changed there survives a restart.
    """
    if FetchTask.objects.exists():
        return None
    demo_dir = Path(settings.CONNECTOR_DEMO_DIR)
    if not demo_dir.exists():
        _copy_sample(demo_dir)
    if not demo_dir.is_dir():
        logger.warning("Not creating the demo task: %s is not a folder", demo_dir)
        return None
    try:
        with transaction.atomic():
            # Checked again inside the transaction: a second process starting
            # at the same time may have won.
            if FetchTask.objects.exists():
                return None
            task = FetchTask.objects.create(
                name=DEMO_TASK, directory_paths=[str(demo_dir)], file_match=["*"]
            )
    except IntegrityError:
        return None
    logger.info("Created fetch task %s over the sample documents in %s", DEMO_TASK, demo_dir)
    return task


def _copy_contents(source: Path, destination: Path) -> None:
    """Copy files and folders, not their modes (copytree would copy the shipped
    0644/0755): the copy is made under the service's umask, as all of var/ is."""
    destination.mkdir()
    for entry in sorted(source.iterdir()):
        if entry.is_dir():
            _copy_contents(entry, destination / entry.name)
        elif entry.is_file():
            shutil.copyfile(entry, destination / entry.name)


def _copy_sample(demo_dir: Path) -> None:
    """Copy the sample next to its destination, then rename: all of it or nothing."""
    demo_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{demo_dir.name}-", dir=demo_dir.parent))
    try:
        copy = staging / "docs"
        _copy_contents(SAMPLE_DIR, copy)
        try:
            copy.rename(demo_dir)
        except OSError:
            # Another process made the folder first; theirs is as good as ours.
            if not demo_dir.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
