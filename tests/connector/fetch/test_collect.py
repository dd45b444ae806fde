"""FetchAction=Collect: copies into allowed folders only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fetch_helpers import StopAfter, doc_id, failures, fetch, run, submit

from connector.fetch import collect
from connector.models import FetchTask, Status
from connector.params import InvalidParameter, MissingParameter


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "collected"
    folder.mkdir()
    return folder


@pytest.fixture
def task(docs_task: FetchTask, allowed: Path) -> FetchTask:
    docs_task.collect_destinations = [str(allowed)]
    docs_task.save()
    return docs_task


def everything_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_collect_copies_documents_keeping_their_paths(task: FetchTask, allowed: Path) -> None:
    missing = doc_id("nope.txt")
    ids = [doc_id("readme.txt"), doc_id("reports/2026/q3.txt"), missing]
    action = fetch("Collect", Identifiers=",".join(ids), Destination=str(allowed / "case-1"))
    assert action.status == Status.FINISHED, action.error
    assert action.counts == {"DOCS": {"collected": 2, "errors": 1}}
    assert action.result["success"] == ids[:2]
    assert failures(action) == {missing: "not found"}
    target = allowed / "case-1"
    assert everything_below(target) == ["readme.txt", "reports/2026/q3.txt"]
    assert (target / "reports/2026/q3.txt").read_text() == "Q3 figures."


def test_collect_copies_large_files_in_chunks_and_checks_for_stop_per_chunk(
    task: FetchTask, docs_tree: Path, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collect, "COPY_CHUNK", 4)
    (docs_tree / "big.bin").write_bytes(bytes(range(256)) * 4)
    action = fetch("Collect", Identifiers=doc_id("big.bin"), Destination=str(allowed))
    assert (allowed / "big.bin").read_bytes() == bytes(range(256)) * 4
    assert action.counts["DOCS"]["collected"] == 1
    # Stopped in the middle of the file: nothing half-written is left.
    (allowed / "big.bin").unlink()
    action = run(
        submit("Collect", Identifiers=doc_id("big.bin"), Destination=str(allowed)),
        StopAfter(10),
    )
    assert action.status == Status.STOPPED
    assert list(allowed.iterdir()) == []


def test_a_stop_keeps_the_counts_so_far(task: FetchTask, allowed: Path) -> None:
    ids = [doc_id("readme.txt"), doc_id("reports/summary.md"), doc_id("reports/2026/q4.txt")]
    action = run(
        submit("Collect", Identifiers=",".join(ids), Destination=str(allowed)), StopAfter(3)
    )
    assert action.status == Status.STOPPED
    assert action.counts["DOCS"]["collected"] == 1
    assert len(action.result["success"]) == action.counts["DOCS"]["collected"]
    assert len(everything_below(allowed)) == action.counts["DOCS"]["collected"]


@pytest.mark.parametrize(
    "destination",
    [
        "{tmp}/elsewhere",
        "{tmp}/collected/../elsewhere",
        "{tmp}/collected-not",
        "relative/folder",
        "{tmp}/docs/inside-the-root",
    ],
)
def test_a_destination_outside_the_allowed_folders_is_refused(
    task: FetchTask, tmp_path: Path, destination: str
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        submit(
            "Collect",
            Identifiers=doc_id("readme.txt"),
            Destination=destination.format(tmp=tmp_path),
        )
    assert refused.value.name == "Destination"


def test_a_symlink_destination_pointing_out_is_refused(
    task: FetchTask, tmp_path: Path, allowed: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (allowed / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(InvalidParameter, match="symbolic links resolved"):
        submit("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed / "link"))
    with pytest.raises(InvalidParameter, match="symbolic links resolved"):
        submit("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed / "link/sub"))


def test_a_symlink_swapped_in_after_submission_is_not_followed(
    task: FetchTask, tmp_path: Path, allowed: Path
) -> None:
    action = submit("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed / "out"))
    (tmp_path / "elsewhere").mkdir()
    (allowed / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    action = run(action)
    assert action.counts["DOCS"] == {"collected": 0, "errors": 1}
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_task_without_collect_destinations_cannot_collect(
    docs_task: FetchTask, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameter, match="CollectDestinationCSVs"):
        submit("Collect", Identifiers=doc_id("readme.txt"), Destination=str(tmp_path))


def test_destination_is_required(task: FetchTask) -> None:
    with pytest.raises(MissingParameter, match="Destination"):
        submit("Collect", Identifiers=doc_id("readme.txt"))


def test_a_destination_reached_through_a_link_inside_the_allowed_folder_works(
    task: FetchTask, allowed: Path
) -> None:
    (allowed / "real").mkdir()
    os.symlink(allowed / "real", allowed / "alias")
    action = fetch("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed / "alias"))
    assert action.counts["DOCS"]["collected"] == 1
    assert (allowed / "real/readme.txt").read_text() == "Read me."


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask, so the bits asked for are the bits made (restored after)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize(
    ("source", "copy"),
    [(0o600, 0o600), (0o640, 0o640), (0o444, 0o444), (0o4755, 0o755), (0o2750, 0o750),
     (0o1644, 0o644)],
)  # fmt: skip
def test_a_copy_keeps_its_documents_permission_bits_but_never_set_id_bits(
    task: FetchTask, docs_tree: Path, allowed: Path, umask_022: None, source: int, copy: int
) -> None:
    """A private document stays private when collected (copies were 0644 whatever the source)."""
    os.chmod(docs_tree / "readme.txt", source)
    (allowed / "readme.txt").write_text("an older copy, world-readable")
    os.chmod(allowed / "readme.txt", 0o666)
    action = fetch("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed))
    assert action.counts["DOCS"] == {"collected": 1, "errors": 0}
    assert (allowed / "readme.txt").stat().st_mode & 0o7777 == copy
    assert (allowed / "readme.txt").read_text() == "Read me."


def test_a_copy_is_created_with_its_bits_never_opened_wider_first(
    task: FetchTask, docs_tree: Path, allowed: Path, umask_022: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The bits are given to os.open: no chmod after, so no moment with wider bits."""
    os.chmod(docs_tree / "readme.txt", 0o600)
    chmods: list[object] = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: chmods.append(a))
    monkeypatch.setattr(os, "fchmod", lambda *a, **k: chmods.append(a))
    fetch("Collect", Identifiers=doc_id("readme.txt"), Destination=str(allowed))
    assert chmods == []
    assert (allowed / "readme.txt").stat().st_mode & 0o777 == 0o600
