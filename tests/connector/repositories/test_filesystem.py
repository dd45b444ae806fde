"""The file-system repository: listing, identifiers, and that nothing leaves the roots."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from connector.models import FetchTask
from connector.repositories import (
    FileSystemRepository,
    IdentifierError,
    ItemNotFound,
    ItemUnreadable,
    RepositoryUnavailable,
    repository_for,
    task_name_of,
)
from connector.repositories.filesystem import decode_identifier, encode_identifier


def task(*roots: Path, name: str = "DOCS", **fields: object) -> FetchTask:
    """An unsaved task: the repository needs no database."""
    return FetchTask(name=name, directory_paths=[str(root) for root in roots], **fields)


def raw_identifier(raw: bytes) -> str:
    """An identifier made by hand, bypassing every check of encode_identifier."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def crafted(path: str, *, task: str = "DOCS", root: str = "0") -> str:
    return raw_identifier(b"\0".join([b"FS1", task.encode(), root.encode(), os.fsencode(path)]))


@pytest.fixture
def repo(docs_tree: Path) -> FileSystemRepository:
    return FileSystemRepository(task(docs_tree))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the root with a secret no identifier may reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def paths(items) -> list[str]:  # type: ignore[no-untyped-def]
    return [item.path for item in items]


# --- Listing ------------------------------------------------------------------------


def test_roots_are_containers_without_parent(repo: FileSystemRepository, docs_tree: Path) -> None:
    [root] = repo.roots()
    assert root.is_container and root.is_root
    assert (root.name, root.path, root.parent, root.size) == ("docs", "", None, None)
    assert root.modified is not None and root.modified.tzinfo is not None


def test_children_are_sorted_with_types_sizes_and_parents(repo: FileSystemRepository) -> None:
    [root] = repo.roots()
    children = list(repo.children(root.identifier))
    assert paths(children) == ["mail", "readme.txt", "reports"]
    mail, readme, reports = children
    assert mail.is_container and reports.is_container and not readme.is_container
    assert readme.size == len("Read me.") and mail.size is None
    assert {child.parent for child in children} == {root.identifier}


def test_nested_paths_use_slashes(repo: FileSystemRepository) -> None:
    [root] = repo.roots()
    reports = next(c for c in repo.children(root.identifier) if c.name == "reports")
    year = next(c for c in repo.children(reports.identifier) if c.name == "2026")
    assert paths(repo.children(year.identifier)) == ["reports/2026/q3.txt", "reports/2026/q4.txt"]


def test_containers_only_leaves_documents_out(repo: FileSystemRepository) -> None:
    [root] = repo.roots()
    assert paths(repo.children(root.identifier, containers_only=True)) == ["mail", "reports"]


def test_file_match_applies_case_insensitively_to_documents_not_folders(docs_tree: Path) -> None:
    repo = FileSystemRepository(task(docs_tree, file_match=["*.TXT"]))
    [root] = repo.roots()
    assert paths(repo.children(root.identifier)) == ["mail", "readme.txt", "reports"]
    reports = repo.stat(crafted("reports"))
    assert paths(repo.children(reports.identifier)) == ["reports/2026"]
    with pytest.raises(ItemNotFound, match="FileMatch"):
        repo.stat(crafted("reports/summary.md"))


def test_several_file_match_patterns(docs_tree: Path) -> None:
    repo = FileSystemRepository(task(docs_tree, file_match=["*.md", "READ*"]))
    reports = repo.stat(crafted("reports"))
    assert paths(repo.children(reports.identifier)) == ["reports/2026", "reports/summary.md"]
    assert "readme.txt" in paths(repo.children(repo.roots()[0].identifier))


def test_file_exclude_match_leaves_matching_documents_out(docs_tree: Path) -> None:
    repo = FileSystemRepository(task(docs_tree, file_exclude_match=["*.MD", "q4*"]))
    reports = repo.stat(crafted("reports"))
    assert paths(repo.children(reports.identifier)) == ["reports/2026"]
    assert paths(repo.children(crafted("reports/2026"))) == ["reports/2026/q3.txt"]
    with pytest.raises(ItemNotFound, match="FileExcludeMatch"):
        repo.stat(crafted("reports/2026/q4.txt"))


def test_file_exclude_match_wins_over_file_match_and_never_hides_folders(docs_tree: Path) -> None:
    repo = FileSystemRepository(
        task(docs_tree, file_match=["*.txt"], file_exclude_match=["readme.*", "reports"])
    )
    [root] = repo.roots()
    assert paths(repo.children(root.identifier)) == ["mail", "reports"]
    assert paths(repo.children(crafted("reports/2026"))) == [
        "reports/2026/q3.txt", "reports/2026/q4.txt",
    ]  # fmt: skip


def test_not_recursive_means_the_roots_own_documents_only(docs_tree: Path) -> None:
    repo = FileSystemRepository(task(docs_tree, directory_recursive=False))
    [root] = repo.roots()
    assert paths(repo.children(root.identifier)) == ["readme.txt"]
    for path in ("reports", "reports/summary.md", "reports/2026/q3.txt"):
        with pytest.raises(ItemNotFound, match="not recursive"):
            repo.stat(crafted(path))


def test_special_files_are_not_documents(repo: FileSystemRepository, docs_tree: Path) -> None:
    os.mkfifo(docs_tree / "pipe")
    assert "pipe" not in paths(repo.children(repo.roots()[0].identifier))
    with pytest.raises(ItemNotFound):
        repo.stat(crafted("pipe"))


def test_several_roots_are_told_apart(docs_tree: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "readme.txt").write_text("Another.")
    repo = FileSystemRepository(task(docs_tree, second))
    first_root, second_root = repo.roots()
    [other] = [c for c in repo.children(second_root.identifier) if c.name == "readme.txt"]
    [mine] = [c for c in repo.children(first_root.identifier) if c.name == "readme.txt"]
    assert other.path == mine.path == "readme.txt"
    assert other.identifier != mine.identifier
    assert b"".join(repo.read_chunks(other.identifier)) == b"Another."


def test_a_root_given_through_a_symlink_works(docs_tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "docs-link"
    link.symlink_to(docs_tree)
    repo = FileSystemRepository(task(link))
    [root] = repo.roots()
    assert paths(repo.children(root.identifier)) == ["mail", "readme.txt", "reports"]


def test_names_that_are_not_utf8_round_trip(repo: FileSystemRepository, docs_tree: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    (docs_tree / name).write_text("coffee")
    [item] = [c for c in repo.children(repo.roots()[0].identifier) if c.name == name]
    assert repo.stat(item.identifier) == item
    assert b"".join(repo.read_chunks(item.identifier)) == b"coffee"


def test_names_with_backslashes_are_left_out(repo: FileSystemRepository, docs_tree: Path) -> None:
    (docs_tree / "a\\b.txt").write_text("x")
    assert "a\\b.txt" not in paths(repo.children(repo.roots()[0].identifier))


def test_an_unreadable_folder_raises_item_unreadable(
    repo: FileSystemRepository, docs_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir
    locked = str(docs_tree / "reports")

    def scandir(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ItemUnreadable, match="Permission denied"):
        repo.children(crafted("reports"))


def test_a_folder_removed_since_is_not_found(repo: FileSystemRepository, docs_tree: Path) -> None:
    mail = repo.stat(crafted("mail"))
    (docs_tree / "mail/inbox/hello.eml").unlink()
    (docs_tree / "mail/inbox").rmdir()
    (docs_tree / "mail").rmdir()
    with pytest.raises(ItemNotFound):
        repo.children(mail.identifier)
    with pytest.raises(ItemNotFound):
        repo.stat(mail.identifier)


def test_children_of_a_document_is_refused(repo: FileSystemRepository) -> None:
    with pytest.raises(ItemNotFound, match="document"):
        repo.children(crafted("readme.txt"))


def test_check_refuses_missing_roots(tmp_path: Path, docs_tree: Path) -> None:
    with pytest.raises(RepositoryUnavailable, match="does not exist"):
        FileSystemRepository(task(docs_tree, tmp_path / "gone")).check()
    with pytest.raises(RepositoryUnavailable, match="no root folders"):
        FileSystemRepository(task()).check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RepositoryUnavailable, match="not a folder"):
        FileSystemRepository(task(tmp_path / "file")).roots()


# --- Reading --------------------------------------------------------------------------


def test_read_chunks_in_pieces_and_from_an_offset(repo: FileSystemRepository) -> None:
    identifier = crafted("reports/2026/q3.txt")
    assert list(repo.read_chunks(identifier, chunk_size=4)) == [b"Q3 f", b"igur", b"es."]
    assert b"".join(repo.read_chunks(identifier, start=3)) == b"figures."


def test_read_chunks_of_a_folder_is_refused(repo: FileSystemRepository) -> None:
    with pytest.raises(ItemNotFound, match="folder"):
        repo.read_chunks(crafted("reports"))


# --- Identifiers ----------------------------------------------------------------------


def test_identifiers_round_trip(repo: FileSystemRepository) -> None:
    [root] = repo.roots()
    for item in [root, *repo.children(root.identifier)]:
        assert repo.stat(item.identifier) == item
        location = decode_identifier(item.identifier)
        assert (location.task, location.root, location.path) == ("DOCS", 0, item.path)


def test_identifiers_are_stable_and_url_safe(docs_tree: Path) -> None:
    first = FileSystemRepository(task(docs_tree))
    second = repository_for(task(docs_tree))
    listed_first = [c.identifier for c in first.children(first.roots()[0].identifier)]
    listed_second = [c.identifier for c in second.children(second.roots()[0].identifier)]
    assert listed_first == listed_second
    assert listed_first[1] == encode_identifier("DOCS", 0, "readme.txt")
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", identifier) for identifier in listed_first)


def test_task_name_of_reads_the_task_from_an_identifier() -> None:
    assert task_name_of(encode_identifier("MAIL", 1, "inbox/a.eml")) == "MAIL"


def test_encode_refuses_paths_that_are_not_normalised() -> None:
    for path in ("..", "a/../b", "/etc", "a//b", "a\\b", "a/", "a\0b"):
        with pytest.raises(ValueError):
            encode_identifier("DOCS", 0, path)


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../outside/secret.txt",
        "reports/../../outside/secret.txt",
        "reports/..",
        "./readme.txt",
        "reports/./summary.md",
        "/etc/passwd",
        "//etc/passwd",
        "reports//summary.md",
        "reports/",
        "..\\outside\\secret.txt",
        "reports\\..\\..\\outside\\secret.txt",
    ],
)
def test_paths_that_leave_or_bend_the_root_are_refused(
    repo: FileSystemRepository, outside: Path, path: str
) -> None:
    with pytest.raises(IdentifierError, match="leaves the task's root"):
        repo.stat(crafted(path))
    with pytest.raises(IdentifierError):
        repo.read_chunks(crafted(path))


def test_encoded_separators_are_names_not_separators(
    repo: FileSystemRepository, outside: Path
) -> None:
    # Identifiers are never URL-decoded by the repository: "%2F" is three
    # characters of one name, which names nothing here.
    for path in ("..%2Foutside%2Fsecret.txt", "%2E%2E/outside/secret.txt", "..%5Csecret.txt"):
        with pytest.raises(ItemNotFound):
            repo.stat(crafted(path))


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "!!!!",
        "a",  # no base64 string has this length
        "Zm9v",  # base64 of "foo": not our shape
        "..%2F..%2Fetc%2Fpasswd",
        "RlMxAERPQ1MAMAByZWFkbWUudHh0%2F",
        "RlMxAERPQ1MAMAByZWFkbWUudHh0==",  # padded: not the canonical spelling
        "RlMx/ERPQ1MAMAByZWFkbWUudHh0",  # standard base64 alphabet
        "RlMxAERPQ1MAMAByZWFkbWUudHh0 ",
        "x" * 10_000,
    ],
)
def test_garbage_identifiers_are_refused(repo: FileSystemRepository, identifier: str) -> None:
    with pytest.raises(IdentifierError):
        repo.stat(identifier)


def test_non_canonical_base64_is_refused(repo: FileSystemRepository) -> None:
    identifier = encode_identifier("DOCS", 0, "readme.txt")
    assert identifier == "RlMxAERPQ1MAMAByZWFkbWUudHh0"
    # 16 bytes take 22 characters with 4 bits to spare: setting a spare bit
    # spells the same bytes differently, and only one spelling is accepted.
    canonical = encode_identifier("DOCS", 0, "a.txt")
    assert len(canonical) == 22 and canonical.endswith("A")
    twin = canonical[:-1] + "B"
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(canonical + "==")
    with pytest.raises(IdentifierError, match="does not decode"):
        repo.stat(twin)


@pytest.mark.parametrize(
    "raw",
    [
        b"FS1\0DOCS\x000\0readme.txt\0",  # NUL in the path
        b"FS1\0DOCS\x000\0read\0me.txt",
        b"FS1\0DOCS\x000",
        b"FS2\0DOCS\x000\0readme.txt",
        b"FS1\0\x000\0readme.txt",
        b"FS1\0DOCS\0-1\0readme.txt",
        b"FS1\0DOCS\x0000\0readme.txt",
        b"FS1\0DOCS\0x\0readme.txt",
        b"FS1\0\xff\xfe\x000\0readme.txt",
    ],
)
def test_identifiers_of_the_wrong_shape_are_refused(repo: FileSystemRepository, raw: bytes) -> None:
    with pytest.raises(IdentifierError):
        repo.stat(raw_identifier(raw))


def test_an_identifier_of_another_task_is_refused(docs_tree: Path) -> None:
    docs = FileSystemRepository(task(docs_tree, name="DOCS"))
    mail = FileSystemRepository(task(docs_tree, name="MAIL"))
    identifier = docs.roots()[0].identifier
    with pytest.raises(IdentifierError, match="belongs to fetch task DOCS, not MAIL"):
        mail.stat(identifier)
    with pytest.raises(IdentifierError):
        mail.children(identifier)


def test_a_root_the_task_does_not_have_is_refused(repo: FileSystemRepository) -> None:
    with pytest.raises(IdentifierError, match="root folder 2"):
        repo.stat(encode_identifier("DOCS", 1, ""))


# --- Symbolic links --------------------------------------------------------------------


@pytest.fixture
def linked(docs_tree: Path, outside: Path) -> Path:
    """Links inside the root: out to a file, out to a folder, and to a folder inside."""
    (docs_tree / "out-file.txt").symlink_to(outside / "secret.txt")
    (docs_tree / "out-dir").symlink_to(outside, target_is_directory=True)
    (docs_tree / "reports/up").symlink_to("..", target_is_directory=True)
    (docs_tree / "in-dir").symlink_to(docs_tree / "reports", target_is_directory=True)
    (docs_tree / "in-file.txt").symlink_to(docs_tree / "readme.txt")
    return docs_tree


def test_listings_skip_symlinks(repo: FileSystemRepository, linked: Path) -> None:
    assert paths(repo.children(repo.roots()[0].identifier)) == ["mail", "readme.txt", "reports"]
    assert "reports/up" not in paths(repo.children(crafted("reports")))


@pytest.mark.parametrize("path", ["out-file.txt", "out-dir", "out-dir/secret.txt"])
def test_a_symlink_pointing_outside_is_never_reachable(
    repo: FileSystemRepository, linked: Path, path: str
) -> None:
    with pytest.raises(IdentifierError, match="leaves the task's root"):
        repo.stat(crafted(path))
    with pytest.raises(IdentifierError):
        repo.read_chunks(crafted(path))
    with pytest.raises(IdentifierError):
        list(repo.children(crafted(path)))


@pytest.mark.parametrize(
    "path", ["in-dir", "in-dir/summary.md", "in-file.txt", "reports/up", "reports/up/readme.txt"]
)
def test_a_symlink_inside_the_root_is_not_followed(
    repo: FileSystemRepository, linked: Path, path: str
) -> None:
    with pytest.raises(ItemNotFound, match="symbolic link"):
        repo.stat(crafted(path))
    with pytest.raises(ItemNotFound):
        repo.read_chunks(crafted(path))


# --- Reading by descriptor -------------------------------------------------------------


def test_reading_a_fifo_is_refused_without_blocking(
    repo: FileSystemRepository, docs_tree: Path
) -> None:
    # Opening a FIFO for reading would wait for a writer: it must never be opened.
    os.mkfifo(docs_tree / "pipe.txt")
    with pytest.raises(ItemNotFound, match="neither a folder nor a regular file"):
        repo.read_chunks(crafted("pipe.txt"))


def test_reading_what_the_task_does_not_list_is_refused(docs_tree: Path) -> None:
    flat = FileSystemRepository(task(docs_tree, directory_recursive=False))
    with pytest.raises(ItemNotFound, match="not recursive"):
        flat.read_chunks(crafted("reports/summary.md"))
    excluding = FileSystemRepository(task(docs_tree, file_exclude_match=["*.md"]))
    with pytest.raises(ItemNotFound, match="FileExcludeMatch"):
        excluding.read_chunks(crafted("reports/summary.md"))
    assert b"".join(excluding.read_chunks(crafted("readme.txt"))) == b"Read me."


def test_a_folder_swapped_for_a_link_after_listing_is_not_followed(
    repo: FileSystemRepository, docs_tree: Path, tmp_path: Path
) -> None:
    [q3, _] = repo.children(crafted("reports/2026"))
    # The same relative path now leads out of the root, through a link.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "2026").mkdir(parents=True)
    (elsewhere / "2026/q3.txt").write_text("not the task's")
    (docs_tree / "reports").rename(tmp_path / "reports-moved")
    (docs_tree / "reports").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(IdentifierError, match="leaves the task's root"):
        repo.read_chunks(q3.identifier)


def test_a_document_replaced_by_a_link_after_listing_is_not_followed(
    repo: FileSystemRepository, docs_tree: Path, outside: Path
) -> None:
    [readme] = [i for i in repo.children(repo.roots()[0].identifier) if i.path == "readme.txt"]
    (docs_tree / "readme.txt").unlink()
    (docs_tree / "readme.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(IdentifierError, match="leaves the task's root"):
        repo.read_chunks(readme.identifier)


def test_a_document_read_is_closed_even_if_never_iterated(repo: FileSystemRepository) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        repo.read_chunks(crafted("readme.txt"))
    assert len(os.listdir("/proc/self/fd")) <= before + 1


def test_close_releases_the_folder_kept_open_and_reading_goes_on(
    repo: FileSystemRepository,
) -> None:
    before = set(os.listdir("/proc/self/fd"))
    assert b"".join(repo.read_chunks(crafted("reports/2026/q3.txt"))) == b"Q3 figures."
    assert b"".join(repo.read_chunks(crafted("reports/2026/q4.txt"))) == b"Q4 figures."
    assert len(set(os.listdir("/proc/self/fd")) - before) == 1  # the folder, once
    repo.close()
    assert set(os.listdir("/proc/self/fd")) - before == set()
    assert b"".join(repo.read_chunks(crafted("readme.txt"))) == b"Read me."
    repo.close()
