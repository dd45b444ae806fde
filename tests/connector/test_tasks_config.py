"""Fetch tasks from IDOL-style INI files: parsing, loading, pruning, refusing."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from connector.models import FetchTask
from connector.tasks_config import TasksConfigError, load_tasks_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    """Root folders docs/, mail/, archive/ beside an etc/ folder for the INI files."""
    for name in ("docs", "mail", "archive", "etc"):
        (tmp_path / name).mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def two_tasks(folders: Path) -> Path:
    return write(
        folders / "etc/tasks.cfg",
        f"""
[FetchTasks]
Number=2
0=DOCS
1=MAIL

[DOCS]
DirectoryPathCSVs={folders / "docs"}
FileMatch=*.txt, *.md
DirectoryRecursive=false

[MAIL]
DirectoryPathCSVs={folders / "mail"}
""",
    )


def tasks() -> dict[str, tuple[list[str], list[str], bool, str]]:
    """Every task's configuration, to compare before and after."""
    return {
        t.name: (t.directory_paths, t.file_match, t.directory_recursive, t.source)
        for t in FetchTask.objects.all()
    }


# --- Parsing ---------------------------------------------------------------------------


def test_loads_every_listed_task(folders: Path) -> None:
    path = two_tasks(folders)
    report = load_tasks_file(path)
    assert (report.created, report.updated, report.unchanged, report.removed) == (
        ["DOCS", "MAIL"], [], [], [],
    )  # fmt: skip
    assert tasks() == {
        "DOCS": ([str(folders / "docs")], ["*.txt", "*.md"], False, str(path)),
        "MAIL": ([str(folders / "mail")], ["*"], True, str(path)),
    }
    assert report.summary == f"Loaded 2 fetch tasks from {path}: created DOCS, MAIL"


def test_section_and_key_names_are_case_insensitive(folders: Path) -> None:
    path = write(
        folders / "etc/tasks.cfg",
        f"""
[fetchtasks]
NUMBER=1
0=docs

[Docs]
directorypathcsvs={folders / "docs"}
FILEMATCH=*.TXT
directoryRecursive=OFF
""",
    )
    load_tasks_file(path)
    assert tasks()["DOCS"][:3] == ([str(folders / "docs")], ["*.TXT"], False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("FALSE", False), ("1", True), ("0", False), ("Yes", True),
     ("no", False), ("on", True), ("off", False), ("", True)],
)  # fmt: skip
def test_directory_recursive_booleans(folders: Path, value: str, expected: bool) -> None:
    path = write(
        folders / "etc/t.cfg",
        f"[FetchTasks]\nNumber=1\n0=D\n[D]\nDirectoryPathCSVs={folders}/docs\n"
        f"DirectoryRecursive={value}\n",
    )
    load_tasks_file(path)
    assert FetchTask.objects.get(name="D").directory_recursive is expected


def test_relative_roots_resolve_against_the_files_folder(
    folders: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(
        folders / "etc/tasks.cfg",
        "[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs, ../archive/\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    load_tasks_file(Path(os.path.relpath(path, elsewhere)))
    [task] = FetchTask.objects.all()
    assert task.directory_paths == [str(folders / "docs"), str(folders / "archive")]
    assert task.source == str(path)


def test_fetch_tasks_section_gives_defaults_for_every_task(folders: Path) -> None:
    path = write(
        folders / "etc/tasks.cfg",
        f"""
[FetchTasks]
Number=2
0=DOCS
1=MAIL
FileMatch=*.eml
DirectoryRecursive=false

[DOCS]
DirectoryPathCSVs={folders / "docs"}
FileMatch=*.md

[MAIL]
DirectoryPathCSVs={folders / "mail"}
""",
    )
    load_tasks_file(path)
    assert tasks()["DOCS"][1:3] == (["*.md"], False)
    assert tasks()["MAIL"][1:3] == (["*.eml"], False)


def test_comments_and_paths_with_special_characters(folders: Path) -> None:
    odd = folders / "a #1; 50%"
    odd.mkdir()
    path = write(
        folders / "etc/tasks.cfg",
        f"""// IDOL-style comment
# and the others
; too
[FetchTasks]
Number=1
0=ODD
[ODD]
DirectoryPathCSVs={odd}
""",
    )
    load_tasks_file(path)
    assert tasks()["ODD"][0] == [str(odd)]


def test_a_byte_order_mark_is_accepted(folders: Path) -> None:
    path = folders / "etc/tasks.cfg"
    path.write_bytes(b"\xef\xbb\xbf[FetchTasks]\nNumber=1\n0=D\n[D]\nDirectoryPathCSVs=../docs\n")
    assert load_tasks_file(path).created == ["D"]


def test_number_zero_loads_no_tasks(folders: Path) -> None:
    path = write(folders / "etc/tasks.cfg", "[FetchTasks]\nNumber=0\n")
    assert load_tasks_file(path).summary == f"Loaded 0 fetch tasks from {path}: nothing to do"


# --- Loading again ---------------------------------------------------------------------


def test_loading_the_same_file_twice_changes_nothing(folders: Path) -> None:
    path = two_tasks(folders)
    load_tasks_file(path)
    before = {t.name: t.updated_at for t in FetchTask.objects.all()}
    state = tasks()
    report = load_tasks_file(path)
    assert (report.created, report.updated, report.unchanged, report.removed) == (
        [], [], ["DOCS", "MAIL"], [],
    )  # fmt: skip
    assert tasks() == state
    assert {t.name: t.updated_at for t in FetchTask.objects.all()} == before
    assert "unchanged DOCS, MAIL" in report.summary


def test_a_changed_task_is_updated(folders: Path) -> None:
    path = two_tasks(folders)
    load_tasks_file(path)
    path.write_text(path.read_text().replace("FileMatch=*.txt, *.md", "FileMatch=*.pdf"))
    report = load_tasks_file(path)
    assert (report.updated, report.unchanged) == (["DOCS"], ["MAIL"])
    assert tasks()["DOCS"][1] == ["*.pdf"]


def test_tasks_gone_from_the_file_are_removed_and_others_kept(folders: Path) -> None:
    path = two_tasks(folders)
    load_tasks_file(path)
    FetchTask.objects.create(name="MANUAL", directory_paths=[str(folders / "archive")])
    other = write(
        folders / "etc/other.cfg",
        f"[FetchTasks]\nNumber=1\n0=ARCHIVE\n[ARCHIVE]\nDirectoryPathCSVs={folders}/archive\n",
    )
    load_tasks_file(other)
    path.write_text(path.read_text().replace("Number=2", "Number=1").replace("1=MAIL", ""))
    report = load_tasks_file(path)
    assert (report.unchanged, report.removed) == (["DOCS"], ["MAIL"])
    assert sorted(tasks()) == ["ARCHIVE", "DOCS", "MANUAL"]
    assert "removed MAIL" in report.summary


def test_a_task_of_the_same_name_from_elsewhere_is_taken_over(folders: Path) -> None:
    FetchTask.objects.create(name="DOCS", directory_paths=[str(folders / "archive")])
    path = two_tasks(folders)
    report = load_tasks_file(path)
    assert (report.created, report.updated) == (["MAIL"], ["DOCS"])
    assert tasks()["DOCS"][0] == [str(folders / "docs")] and tasks()["DOCS"][3] == str(path)


# --- Refusing ----------------------------------------------------------------------------

BAD_FILES = {
    "no FetchTasks": ("[DOCS]\nDirectoryPathCSVs=../docs\n", ["no [FetchTasks] section"]),
    "no Number": ("[FetchTasks]\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n",
                  ["[FetchTasks] Number", "missing"]),
    "Number not a number": ("[FetchTasks]\nNumber=two\n0=DOCS\n",
                            ["[FetchTasks] Number", "whole number"]),
    "Number too big": ("[FetchTasks]\nNumber=2\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n",
                       ["[FetchTasks] Number", "is 2", "missing: 1"]),
    "Number too small": ("[FetchTasks]\nNumber=1\n0=DOCS\n1=MAIL\n[DOCS]\n"
                         "DirectoryPathCSVs=../docs\n[MAIL]\nDirectoryPathCSVs=../mail\n",
                         ["[FetchTasks] Number", "beyond Number: 1"]),
    "section missing": ("[FetchTasks]\nNumber=2\n0=DOCS\n1=MAIL\n[DOCS]\n"
                        "DirectoryPathCSVs=../docs\n", ["[FetchTasks] 1", "no [MAIL] section"]),
    "no roots": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nFileMatch=*\n",
                 ["[DOCS] DirectoryPathCSVs", "is missing"]),
    "empty roots": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs= , \n",
                    ["[DOCS] DirectoryPathCSVs", "is missing"]),
    "root missing": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs,../gone\n",
                     ["[DOCS] DirectoryPathCSVs", "gone", "not an existing folder"]),
    "root is a file": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=tasks.cfg\n",
                       ["[DOCS] DirectoryPathCSVs", "not an existing folder"]),
    "roots overlap": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=..,../docs\n",
                      ["[DOCS] DirectoryPathCSVs", "overlap"]),
    "same root twice": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\n"
                        "DirectoryPathCSVs=../docs,../docs/\n", ["overlap"]),
    "duplicate task names": ("[FetchTasks]\nNumber=2\n0=DOCS\n1=docs\n[DOCS]\n"
                             "DirectoryPathCSVs=../docs\n", ["[FetchTasks] 1", "twice"]),
    "duplicate sections": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n"
                           "[Docs]\nDirectoryPathCSVs=../mail\n", ["[DOCS] and [Docs]"]),
    "duplicate keys": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n"
                       "directorypathcsvs=../mail\n", ["[DOCS]", "appears twice"]),
    "bad boolean": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n"
                    "DirectoryRecursive=perhaps\n", ["[DOCS] DirectoryRecursive", "'perhaps'"]),
    "bad task name": ("[FetchTasks]\nNumber=1\n0=MY DOCS\n[MY DOCS]\nDirectoryPathCSVs=../docs\n",
                      ["[FetchTasks] 0", "'MY DOCS'"]),
    "pattern with a path": ("[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs=../docs\n"
                            "FileMatch=reports/*.txt\n", ["[DOCS] FileMatch", "file names"]),
    "not an INI file": ("Number=1\n[FetchTasks]\n", ["line 1", "before any [section]"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_refused_and_changes_nothing(folders: Path, case: str) -> None:
    path = two_tasks(folders)
    load_tasks_file(path)
    FetchTask.objects.create(name="MANUAL", directory_paths=[str(folders / "archive")])
    before = tasks()
    text, phrases = BAD_FILES[case]
    path.write_text(text)
    with pytest.raises(TasksConfigError) as refused:
        load_tasks_file(path)
    message = str(refused.value)
    assert message.startswith(str(path))
    for phrase in phrases:
        assert phrase in message
    assert tasks() == before


@pytest.mark.parametrize("case", ["missing", "a folder", "not UTF-8"])
def test_an_unreadable_file_is_refused(folders: Path, case: str) -> None:
    path = folders / "etc/tasks.cfg"
    if case == "a folder":
        path.mkdir()
    elif case == "not UTF-8":
        path.write_bytes(b"[FetchTasks]\nNumber=1\n0=D\xe9\n")
    with pytest.raises(TasksConfigError, match=str(path)) as refused:
        load_tasks_file(path)
    assert "cannot read" in str(refused.value) or "not UTF-8" in str(refused.value)
    assert not FetchTask.objects.exists()


# --- The command -------------------------------------------------------------------------


def test_loadtasks_prints_the_summary(folders: Path) -> None:
    path = two_tasks(folders)
    out = io.StringIO()
    call_command("loadtasks", str(path), stdout=out)
    assert out.getvalue().strip() == f"Loaded 2 fetch tasks from {path}: created DOCS, MAIL"
    out = io.StringIO()
    call_command("loadtasks", str(path), stdout=out)
    assert "unchanged DOCS, MAIL" in out.getvalue()


def test_loadtasks_reports_a_bad_file_as_a_command_error(folders: Path) -> None:
    path = write(folders / "etc/tasks.cfg", "[FetchTasks]\nNumber=1\n0=DOCS\n")
    with pytest.raises(CommandError, match=r"tasks.cfg: \[FetchTasks\] 0: lists task DOCS"):
        call_command("loadtasks", str(path))
    assert not FetchTask.objects.exists()


def test_indented_lines_are_keys_not_continuations(folders: Path) -> None:
    path = write(
        folders / "etc/tasks.cfg",
        "[FetchTasks]\n  Number=1\n  0=DOCS\n[DOCS]\n  DirectoryPathCSVs=../docs\n"
        "    FileMatch=*.md\n",
    )
    load_tasks_file(path)
    assert tasks()["DOCS"][:2] == ([str(folders / "docs")], ["*.md"])


# --- Ingest, exclusion, collect and schedule keys --------------------------------------


def one_task(folders: Path, extra: str) -> Path:
    return write(
        folders / "etc/tasks.cfg",
        f"[FetchTasks]\nNumber=1\n0=DOCS\n[DOCS]\nDirectoryPathCSVs={folders / 'docs'}\n{extra}\n",
    )


def test_further_keys_have_defaults(folders: Path) -> None:
    load_tasks_file(one_task(folders, ""))
    docs = FetchTask.objects.get(name="DOCS")
    assert docs.file_exclude_match == [] and docs.directory_follow_symlinks is False
    assert docs.ingest_directory == "" and docs.ingest_url == ""
    assert docs.collect_destinations == []
    assert (docs.schedule_start_time, docs.schedule_repeat_secs, docs.schedule_cycles) == (
        "", None, -1,
    )  # fmt: skip


def test_default_ingest_folder_is_under_the_var_folder(folders: Path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.VAR_DIR = folders / "var"
    load_tasks_file(one_task(folders, ""))
    assert FetchTask.objects.get(name="DOCS").ingest_path == folders / "var/ingest/DOCS"


def test_further_keys_are_loaded(folders: Path) -> None:
    path = one_task(
        folders,
        "FileExcludeMatch=*.tmp, ~*\n"
        "DirectoryFollowSymlinks=false\n"
        "IngestDirectory=../ingest\n"
        "IngestURL=https://idol.example.com:9001/ingest\n"
        "CollectDestinationCSVs=../archive, /srv/collect\n"
        "ScheduleStartTime=2026-12-01 06:30\n"
        "ScheduleRepeatSecs=3600\n"
        "ScheduleCycles=5\n",
    )
    load_tasks_file(path)
    docs = FetchTask.objects.get(name="DOCS")
    assert docs.file_exclude_match == ["*.tmp", "~*"]
    assert docs.ingest_directory == str(folders / "ingest")
    assert docs.ingest_path == folders / "ingest"
    assert docs.ingest_url == "https://idol.example.com:9001/ingest"
    assert docs.collect_destinations == [str(folders / "archive"), "/srv/collect"]
    assert docs.schedule_start_time == "2026-12-01 06:30"
    assert (docs.schedule_repeat_secs, docs.schedule_cycles) == (3600, 5)
    assert load_tasks_file(path).unchanged == ["DOCS"]


def test_a_repeat_interval_alone_starts_the_schedule_now(folders: Path) -> None:
    load_tasks_file(one_task(folders, "ScheduleRepeatSecs=60\nScheduleCycles=-1"))
    docs = FetchTask.objects.get(name="DOCS")
    assert (docs.schedule_start_time, docs.schedule_repeat_secs) == ("now", 60)


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("DirectoryFollowSymlinks=true", "DirectoryFollowSymlinks", "not supported yet"),
        ("DirectoryFollowSymlinks=perhaps", "DirectoryFollowSymlinks", "must be true or false"),
        ("FileExcludeMatch=tmp/*", "FileExcludeMatch", "matches file names only"),
        ("IngestURL=ftp://example.com/in", "IngestURL", "http:// or https://"),
        ("IngestURL=http://", "IngestURL", "with a host"),
        ("IngestDirectory=../docs/ingest", "IngestDirectory", "inside the task's root"),
        ("IngestDirectory=tasks.cfg", "IngestDirectory", "is not a folder"),
        ("ScheduleStartTime=tomorrow", "ScheduleStartTime", "must be now, HH:MM"),
        ("ScheduleStartTime=25:00", "ScheduleStartTime", "must be now, HH:MM"),
        ("ScheduleStartTime=2026-02-30 10:00", "ScheduleStartTime", "does not exist"),
        ("ScheduleRepeatSecs=0", "ScheduleRepeatSecs", "at least 1"),
        ("ScheduleRepeatSecs=1h", "ScheduleRepeatSecs", "whole number"),
        ("ScheduleCycles=0", "ScheduleCycles", "-1 (no limit) or at least 1"),
        ("ScheduleCycles=-2", "ScheduleCycles", "at least -1"),
    ],
)
def test_bad_further_keys_are_refused(folders: Path, extra: str, key: str, problem: str) -> None:
    with pytest.raises(TasksConfigError, match=re.escape(problem)) as refused:
        load_tasks_file(one_task(folders, extra))
    assert (refused.value.section, refused.value.key) == ("DOCS", key)
    assert not FetchTask.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("directory_follow_symlinks", True, "not supported yet"),
        ("ingest_url", "gopher://x/", "http:// or https://"),
        ("schedule_start_time", "noon", "must be now"),
    ],
)
def test_the_admin_refuses_what_the_file_refuses(field: str, value: object, problem: str) -> None:
    task = FetchTask(name="DOCS", directory_paths=["/srv"], **{field: value})
    with pytest.raises(ValidationError, match=problem):
        task.full_clean()
