"""Fetch tasks from an IDOL-style INI file (``loadtasks``, ``CONNECTOR_CONFIG``).

::

    [FetchTasks]
    Number=2
    0=DOCS
    1=MAIL

    [DOCS]
    DirectoryPathCSVs=/srv/share/docs,archive     // relative: to this file's folder
    FileMatch=*.txt,*.md
    DirectoryRecursive=true

Section and key names are case-insensitive. A key missing from a task section
is taken from ``[FetchTasks]`` (IDOL's way of setting a default for every
task), else its default. ``docs/configuration.md`` describes every key.

Loading is all or nothing: the whole file is read and checked before the
database is touched, then one transaction creates, updates and removes tasks.
The file's tasks are marked with the file's absolute path, so tasks that an
earlier version of the same file had and this one lacks are removed, and
loading the same file twice changes nothing the second time.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from connector import schedules
from connector.models import (
    FetchTask,
    extract_types_problem,
    ingest_url_problem,
    schedule_start_problem,
)

logger = logging.getLogger(__name__)

FETCH_TASKS = "FetchTasks"
#: Task names end up in comma-separated TaskSections lists and in identifiers:
#: no commas, spaces or separators.
TASK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_BOOLEANS = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}  # fmt: skip
# FetchTask.source's length: a longer path could not be stored, so not pruned.
_MAX_SOURCE_LENGTH = FetchTask._meta.get_field("source").max_length or 500


class TasksConfigError(Exception):
    """The tasks file cannot be loaded; the message names the file, section and key."""

    def __init__(self, path: Path, problem: str, section: str = "", key: str = "") -> None:
        where = str(path)
        if section:
            where += f": [{section}]"
        if key:
            where += f" {key}"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.section = section
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class TaskSpec:
    """A task as the file defines it, checked."""

    name: str
    directory_paths: list[str]
    file_match: list[str]
    directory_recursive: bool
    file_exclude_match: list[str] = field(default_factory=list)
    directory_follow_symlinks: bool = False
    #: '' means the default folder, var/ingest/<TASK>, resolved when used.
    ingest_directory: str = ""
    ingest_url: str = ""
    collect_destinations: list[str] = field(default_factory=list)
    schedule_start_time: str = ""
    schedule_repeat_secs: int | None = None
    schedule_cycles: int = -1
    extract_text: bool = True
    #: Empty: every type the connector extracts.
    extract_types: list[str] = field(default_factory=list)
    extract_max_bytes: int = 32 * 1024 * 1024
    extract_timeout_seconds: float = 30.0
    extract_max_text_bytes: int = 8 * 1024 * 1024
    extract_archives: bool = True

    def fields(self) -> dict[str, Any]:
        return {
            "directory_paths": self.directory_paths,
            "file_match": self.file_match,
            "directory_recursive": self.directory_recursive,
            "file_exclude_match": self.file_exclude_match,
            "directory_follow_symlinks": self.directory_follow_symlinks,
            "ingest_directory": self.ingest_directory,
            "ingest_url": self.ingest_url,
            "collect_destinations": self.collect_destinations,
            "schedule_start_time": self.schedule_start_time,
            "schedule_repeat_secs": self.schedule_repeat_secs,
            "schedule_cycles": self.schedule_cycles,
            "extract_text": self.extract_text,
            "extract_types": self.extract_types,
            "extract_max_bytes": self.extract_max_bytes,
            "extract_timeout_seconds": self.extract_timeout_seconds,
            "extract_max_text_bytes": self.extract_max_text_bytes,
            "extract_archives": self.extract_archives,
        }


@dataclass
class LoadReport:
    """What ``load_tasks_file`` did, by task name."""

    path: Path
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        total = len(self.created) + len(self.updated) + len(self.unchanged)
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("created", self.created),
                ("updated", self.updated),
                ("unchanged", self.unchanged),
                ("removed", self.removed),
            )
            if names
        ]
        details = "; ".join(parts) if parts else "nothing to do"
        return f"Loaded {total} fetch task{'s' if total != 1 else ''} from {self.path}: {details}"


def load_tasks_file(path: Path) -> LoadReport:
    """Make the database's tasks from ``path`` match the file; raise TasksConfigError if bad."""
    path = Path(os.path.abspath(path))
    specs = read_tasks_file(path)
    source = str(path)
    if len(source) > _MAX_SOURCE_LENGTH:
        raise TasksConfigError(path, f"the file's path is longer than {_MAX_SOURCE_LENGTH}")
    report = LoadReport(path=path)
    with transaction.atomic():
        existing = {task.name: task for task in FetchTask.objects.select_for_update()}
        for spec in specs:
            task = existing.get(spec.name)
            if task is None:
                task = FetchTask(name=spec.name, source=source, **spec.fields())
                schedules.reset_schedule(task, now=timezone.now())
                task.save()
                report.created.append(spec.name)
                continue
            wanted = {**spec.fields(), "source": source}
            if all(getattr(task, name) == value for name, value in wanted.items()):
                report.unchanged.append(spec.name)
                continue
            if task.source and task.source != source:
                # The last file loaded wins; say so, since the other file will
                # take the task back when it is loaded again.
                logger.warning("Fetch task %s moves from %s to %s", spec.name, task.source, source)
            # Only a changed schedule starts afresh: reloading the file for
            # another key must not move the next run or forget the runs done.
            restart = schedules.schedule_changed(task, wanted)
            for name, value in wanted.items():
                setattr(task, name, value)
            if restart:
                schedules.reset_schedule(task, now=timezone.now())
            task.save()
            report.updated.append(spec.name)
        stale = FetchTask.objects.filter(source=source).exclude(name__in=[s.name for s in specs])
        report.removed = sorted(stale.values_list("name", flat=True))
        stale.delete()
    logger.info("%s", report.summary)
    return report


def read_tasks_file(path: Path) -> list[TaskSpec]:
    """Parse and check a tasks file without touching the database."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TasksConfigError(path, "the file is not UTF-8 text") from None
    except OSError as error:
        raise TasksConfigError(path, f"cannot read the file: {error.strerror}") from None
    sections = _parse(path, text)
    fetch_tasks = sections.get(FETCH_TASKS.upper())
    if fetch_tasks is None:
        raise TasksConfigError(
            path, "there is no [FetchTasks] section (it lists the task sections: Number=1, 0=NAME)"
        )
    section_name, defaults = fetch_tasks
    names = _task_names(path, section_name, defaults)
    specs = []
    for index, name in enumerate(names):
        if name.upper() not in sections:
            raise TasksConfigError(
                path,
                f"lists task {name}, but the file has no [{name}] section",
                section_name,
                str(index),
            )
        real_name, values = sections[name.upper()]
        specs.append(_task(path, real_name, values, defaults))
    return specs


def _parse(path: Path, text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Sections by upper-case name: (name as written, keys lower-case -> value)."""
    parser = configparser.ConfigParser(
        delimiters=("=",),
        comment_prefixes=("#", ";", "//"),
        inline_comment_prefixes=None,  # '#' and ';' are valid in paths
        interpolation=None,
        # No section can be named '' so configparser's DEFAULT magic is off.
        default_section="",
        strict=True,
    )
    # configparser reads an indented line as the continuation of the value
    # above; IDOL files have no continuations, and an indented key must not
    # silently become part of a path.
    text = "\n".join(line.lstrip() for line in text.splitlines())
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateSectionError as error:
        raise TasksConfigError(
            path, f"section [{error.section}] appears twice (line {error.lineno})"
        ) from None
    except configparser.DuplicateOptionError as error:
        raise TasksConfigError(
            path,
            f"key {error.option} appears twice (line {error.lineno})",
            section=error.section,
        ) from None
    except configparser.MissingSectionHeaderError as error:
        raise TasksConfigError(
            path, f"line {error.lineno} comes before any [section] header"
        ) from None
    except configparser.Error as error:
        raise TasksConfigError(path, f"not an INI file: {error.message}") from None
    sections: dict[str, tuple[str, dict[str, str]]] = {}
    for name in parser.sections():
        if name.upper() in sections:
            raise TasksConfigError(
                path,
                f"sections [{sections[name.upper()][0]}] and [{name}] are the same"
                " (section names are case-insensitive)",
            )
        sections[name.upper()] = (name, {k.lower(): v.strip() for k, v in parser.items(name)})
    return sections


def _task_names(path: Path, section: str, values: dict[str, str]) -> list[str]:
    raw = values.get("number", "")
    if not raw:
        raise TasksConfigError(path, "is missing (how many tasks are listed)", section, "Number")
    if not raw.isdigit():
        raise TasksConfigError(path, f"must be a whole number, not {raw!r}", section, "Number")
    number = int(raw)
    numbered = {key for key in values if key.isdigit()}
    expected = {str(i) for i in range(number)}
    if numbered != expected:
        missing = sorted(expected - numbered, key=int)
        extra = sorted(numbered - expected, key=int)
        problem = f"is {number}, but the section lists tasks " + (
            ", ".join(sorted(numbered, key=int)) or "none"
        )
        if missing:
            problem += f" (missing: {', '.join(missing)})"
        if extra:
            problem += f" (beyond Number: {', '.join(extra)})"
        raise TasksConfigError(path, problem, section, "Number")
    names: list[str] = []
    for index in range(number):
        name = values[str(index)]
        if not TASK_NAME.fullmatch(name):
            raise TasksConfigError(
                path,
                f"task name {name!r} must be 1 to 100 letters, digits, '_', '-' or '.'",
                section,
                str(index),
            )
        if name.upper() in (n.upper() for n in names):
            raise TasksConfigError(
                path,
                f"lists task {name} twice (task names are case-insensitive)",
                section,
                str(index),
            )
        names.append(name)
    return names


def _value(values: dict[str, str], defaults: dict[str, str], key: str) -> str | None:
    """A task key: its own section first, then [FetchTasks]; None if in neither."""
    for source in (values, defaults):
        if key.lower() in source:
            return source[key.lower()]
    return None


def _task(path: Path, section: str, values: dict[str, str], defaults: dict[str, str]) -> TaskSpec:
    def value(key: str) -> str | None:
        return _value(values, defaults, key)

    roots = _roots(path, section, value("DirectoryPathCSVs"))
    follow = _boolean(
        path, section, "DirectoryFollowSymlinks", value("DirectoryFollowSymlinks"), False
    )
    if follow:
        raise TasksConfigError(
            path,
            "true is not supported yet: symbolic links below the roots are never followed;"
            " remove the key or set it to false",
            section,
            "DirectoryFollowSymlinks",
        )
    start, repeat, cycles = _schedule(path, section, value)
    return TaskSpec(
        name=section.upper(),
        directory_paths=roots,
        file_match=_patterns(path, section, "FileMatch", value("FileMatch")) or ["*"],
        directory_recursive=_boolean(
            path, section, "DirectoryRecursive", value("DirectoryRecursive"), True
        ),
        file_exclude_match=_patterns(path, section, "FileExcludeMatch", value("FileExcludeMatch")),
        directory_follow_symlinks=follow,
        ingest_directory=_ingest_directory(path, section, value("IngestDirectory"), roots),
        ingest_url=_ingest_url(path, section, value("IngestURL")),
        collect_destinations=_folders(value("CollectDestinationCSVs"), path),
        schedule_start_time=start,
        schedule_repeat_secs=repeat,
        schedule_cycles=cycles,
        extract_text=_boolean(path, section, "ExtractText", value("ExtractText"), True),
        extract_types=_extract_types(path, section, value("ExtractTypes")),
        extract_max_bytes=_whole(
            path, section, "ExtractMaxBytes", value("ExtractMaxBytes"), minimum=1
        )
        or TaskSpec.extract_max_bytes,
        extract_timeout_seconds=_seconds(
            path, section, "ExtractTimeoutSecs", value("ExtractTimeoutSecs")
        ),
        extract_max_text_bytes=_whole(
            path, section, "ExtractMaxTextBytes", value("ExtractMaxTextBytes"), minimum=1
        )
        or TaskSpec.extract_max_text_bytes,
        extract_archives=_boolean(path, section, "ExtractArchives", value("ExtractArchives"), True),
    )


def _extract_types(path: Path, section: str, raw: str | None) -> list[str]:
    types = [item.strip().lower() for item in (raw or "").split(",") if item.strip()]
    if problem := extract_types_problem(types):
        raise TasksConfigError(path, problem, section, "ExtractTypes")
    return sorted(set(types))


def _seconds(path: Path, section: str, key: str, raw: str | None) -> float:
    if not raw:
        return TaskSpec.extract_timeout_seconds
    try:
        seconds = float(raw) if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", raw) else -1.0
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:
        raise TasksConfigError(
            path, f"must be a number of seconds from 0.1 to 3600, not {raw!r}", section, key
        )
    return seconds


def _resolve(path: Path, item: str) -> str:
    # Relative to the file, not to wherever the command happens to run.
    return os.path.normpath(path.parent / os.path.expanduser(item))


def _folders(raw: str | None, path: Path) -> list[str]:
    return [_resolve(path, item.strip()) for item in (raw or "").split(",") if item.strip()]


def _ingest_directory(path: Path, section: str, raw: str | None, roots: list[str]) -> str:
    if not raw:
        return ""
    folder = _resolve(path, raw)
    real = os.path.realpath(folder)
    for root in roots:
        # Batches written inside a root would be synchronized themselves.
        if _within(real, os.path.realpath(root)):
            raise TasksConfigError(
                path,
                f"{folder} is inside the task's root folder {root}",
                section,
                "IngestDirectory",
            )
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise TasksConfigError(
            path, f"{folder} exists and is not a folder", section, "IngestDirectory"
        )
    return folder


def _ingest_url(path: Path, section: str, raw: str | None) -> str:
    url = raw or ""
    if problem := ingest_url_problem(url):
        raise TasksConfigError(path, f"{problem}, not {url!r}", section, "IngestURL")
    return url


def _schedule(
    path: Path, section: str, value: Callable[[str], str | None]
) -> tuple[str, int | None, int]:
    start = value("ScheduleStartTime") or ""
    if start.lower() == "now":
        start = "now"
    if problem := schedule_start_problem(start):
        raise TasksConfigError(path, f"{problem}, not {start!r}", section, "ScheduleStartTime")
    repeat = _whole(path, section, "ScheduleRepeatSecs", value("ScheduleRepeatSecs"), minimum=1)
    cycles = _whole(path, section, "ScheduleCycles", value("ScheduleCycles"), minimum=-1)
    if cycles == 0:
        raise TasksConfigError(
            path, "must be -1 (no limit) or at least 1, not 0", section, "ScheduleCycles"
        )
    if repeat is not None and not start:
        start = "now"  # a repeat interval alone starts the schedule at once
    return start, repeat, -1 if cycles is None else cycles


def _whole(path: Path, section: str, key: str, raw: str | None, *, minimum: int) -> int | None:
    if not raw:
        return None
    if not re.fullmatch(r"-?[0-9]{1,10}", raw) or int(raw) < minimum:
        raise TasksConfigError(
            path, f"must be a whole number of at least {minimum}, not {raw!r}", section, key
        )
    return int(raw)


def _roots(path: Path, section: str, raw: str | None) -> list[str]:
    key = "DirectoryPathCSVs"
    items = [item.strip() for item in (raw or "").split(",") if item.strip()]
    if not items:
        raise TasksConfigError(
            path, "is missing: name the task's root folder(s), comma-separated", section, key
        )
    roots: list[str] = []
    reals: list[tuple[str, str]] = []
    for item in items:
        root = _resolve(path, item)
        if not os.path.isdir(root):
            shown = root if root == item else f"{root} (from {item!r})"
            raise TasksConfigError(path, f"{shown} is not an existing folder", section, key)
        real = os.path.realpath(root)
        for other, other_real in reals:
            if _within(real, other_real) or _within(other_real, real):
                raise TasksConfigError(
                    path,
                    f"{root} and {other} overlap; a document would belong to the task twice",
                    section,
                    key,
                )
        roots.append(root)
        reals.append((root, real))
    return roots


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _patterns(path: Path, section: str, key: str, raw: str | None) -> list[str]:
    patterns = [item.strip() for item in (raw or "").split(",") if item.strip()]
    for pattern in patterns:
        if "/" in pattern or "\\" in pattern:
            raise TasksConfigError(
                path,
                f"pattern {pattern!r} has a path separator; {key} matches file names only",
                section,
                key,
            )
    return patterns


def _boolean(path: Path, section: str, key: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    try:
        return _BOOLEANS[raw.lower()]
    except KeyError:
        raise TasksConfigError(
            path, f"must be true or false (or 1/0, yes/no, on/off), not {raw!r}", section, key
        ) from None
