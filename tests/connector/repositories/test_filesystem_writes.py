"""Writes and deletes of the file-system repository: all or nothing, inside the root only."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.models import FetchTask
from connector.repositories import (
    IdentifierError,
    ItemNotFound,
    ItemUnreadable,
    WriteRefused,
    write_below,
)
from connector.repositories.filesystem import FileSystemRepository


def task(*roots: Path, **fields: object) -> FetchTask:
    return FetchTask(name="DOCS", directory_paths=[str(root) for root in roots], **fields)


def crafted(path: str) -> str:
    raw = b"\0".join([b"FS1", b"DOCS", b"0", os.fsencode(path)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.fixture
def repo(docs_tree: Path) -> FileSystemRepository:
    return FileSystemRepository(task(docs_tree))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def test_write_creates_folders_and_returns_the_document(
    repo: FileSystemRepository, docs_tree: Path
) -> None:
    item = repo.write_document(repo.identifier(0, "new/deep/a.txt"), iter([b"ab", b"c"]))
    assert (docs_tree / "new/deep/a.txt").read_bytes() == b"abc"
    assert item.path == "new/deep/a.txt" and item.size == 3 and not item.is_container
    assert hidden_files(docs_tree) == []


def test_write_replaces_an_existing_document(repo: FileSystemRepository, docs_tree: Path) -> None:
    repo.write_document(repo.identifier(0, "readme.txt"), [b"new"])
    assert (docs_tree / "readme.txt").read_bytes() == b"new"


def test_a_failure_while_writing_leaves_the_old_document_and_no_temporary_file(
    repo: FileSystemRepository, docs_tree: Path
) -> None:
    def failing() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        repo.write_document(repo.identifier(0, "readme.txt"), failing())
    assert (docs_tree / "readme.txt").read_text() == "Read me."
    assert hidden_files(docs_tree) == []


def test_write_refuses_folders_roots_and_names_outside_file_match(
    docs_tree: Path, repo: FileSystemRepository
) -> None:
    with pytest.raises(WriteRefused, match="not a regular file"):
        repo.write_document(repo.identifier(0, "reports"), [b"x"])
    with pytest.raises(WriteRefused, match="root"):
        repo.write_document(repo.identifier(0, ""), [b"x"])
    matching = FileSystemRepository(task(docs_tree, file_match=["*.txt"]))
    with pytest.raises(WriteRefused, match="FileMatch"):
        matching.write_document(matching.identifier(0, "a.exe"), [b"x"])
    flat = FileSystemRepository(task(docs_tree, directory_recursive=False))
    with pytest.raises(WriteRefused, match="not recursive"):
        flat.write_document(flat.identifier(0, "sub/a.txt"), [b"x"])
    assert not (docs_tree / "a.exe").exists() and not (docs_tree / "sub").exists()


@pytest.mark.parametrize("path", ["../outside/evil.txt", "/etc/evil", "a/../../evil.txt"])
def test_write_refuses_paths_that_leave_the_root(
    repo: FileSystemRepository, tmp_path: Path, path: str
) -> None:
    with pytest.raises(IdentifierError):
        repo.write_document(crafted(path), [b"x"])
    assert not list(tmp_path.rglob("evil*"))


def test_write_never_goes_through_a_symlink(
    repo: FileSystemRepository, docs_tree: Path, outside: Path
) -> None:
    (docs_tree / "out-dir").symlink_to(outside, target_is_directory=True)
    (docs_tree / "out-file.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(WriteRefused):
        repo.write_document(repo.identifier(0, "out-dir/new.txt"), [b"x"])
    with pytest.raises(WriteRefused):
        repo.write_document(repo.identifier(0, "out-file.txt"), [b"x"])
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_write_below_refuses_a_link_swapped_in_after_the_checks(
    docs_tree: Path, outside: Path
) -> None:
    # No realpath check here: the walk itself must refuse the link.
    (docs_tree / "swapped").symlink_to(outside, target_is_directory=True)
    with pytest.raises(WriteRefused):
        write_below(os.path.realpath(docs_tree), ["swapped", "evil.txt"], [b"x"])
    with pytest.raises(WriteRefused):
        write_below(os.path.realpath(docs_tree), ["..", "evil.txt"], [b"x"])
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_delete_removes_a_document(repo: FileSystemRepository, docs_tree: Path) -> None:
    repo.delete_document(repo.identifier(0, "reports/2026/q3.txt"))
    assert not (docs_tree / "reports/2026/q3.txt").exists()
    with pytest.raises(ItemNotFound):
        repo.delete_document(repo.identifier(0, "reports/2026/q3.txt"))


def test_delete_refuses_folders_links_and_paths_outside(
    repo: FileSystemRepository, docs_tree: Path, outside: Path
) -> None:
    (docs_tree / "out-file.txt").symlink_to(outside / "secret.txt")
    (docs_tree / "in-file.txt").symlink_to(docs_tree / "readme.txt")
    with pytest.raises(ItemNotFound):
        repo.delete_document(repo.identifier(0, "reports"))
    with pytest.raises(IdentifierError):
        repo.delete_document(repo.identifier(0, "out-file.txt"))
    with pytest.raises(ItemNotFound, match="symbolic link"):
        repo.delete_document(repo.identifier(0, "in-file.txt"))
    with pytest.raises(IdentifierError):
        repo.delete_document(crafted("../outside/secret.txt"))
    assert (outside / "secret.txt").exists() and (docs_tree / "reports").is_dir()
    assert (docs_tree / "in-file.txt").is_symlink() and (docs_tree / "readme.txt").exists()


def test_check_identifier_touches_nothing(repo: FileSystemRepository) -> None:
    repo.check_identifier(repo.identifier(0, "not/there/yet.txt"))
    with pytest.raises(IdentifierError):
        repo.check_identifier(crafted("../x"))


def test_a_folder_that_cannot_be_made_is_an_error_not_a_refusal(
    repo: FileSystemRepository, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mkdir(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(ItemUnreadable, match="Permission denied"):
        repo.write_document(repo.identifier(0, "locked/a.txt"), [b"x"])


@pytest.mark.parametrize(
    ("mode", "made"), [(0o4777, 0o755), (0o2640, 0o640), (0o1600, 0o600), (0o7000, 0o000)]
)
def test_write_below_creates_with_the_bits_given_masked_never_set_id(
    tmp_path: Path, mode: int, made: int
) -> None:
    previous = os.umask(0o022)
    try:
        write_below(str(tmp_path), ["a", "b.txt"], [b"x"], mode=mode)
    finally:
        os.umask(previous)
    assert (tmp_path / "a/b.txt").stat().st_mode & 0o7777 == made
