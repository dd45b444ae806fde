"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from processes import Server, Site

from connector.models import FetchTask


def make_tree(root: Path, files: dict[str, str]) -> Path:
    """Create files (relative path -> text) under root and return root."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Each test starts with no ACI submissions counted (issue 6's rate limit).

    Only a per-process cache is cleared: clearing a Redis cache would empty a
    database other users of the server share.
    """
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    for cache in caches.all():
        if isinstance(cache, LocMemCache):
            cache.clear()
    yield


@pytest.fixture(autouse=True)
def _endpoint_connections_closed() -> Iterator[None]:
    """After each test, the action endpoint's threads (connector.aci.handler) hold no
    database connection: one kept open would keep the test database from being dropped."""
    yield
    from connector.aci.handler import close_connections

    close_connections()


@pytest.fixture
async def wakes() -> AsyncIterator[list[object]]:
    """What other threads schedule on the test's event loop (``call_soon_threadsafe``):
    each is a wake-up of the loop."""
    loop = asyncio.get_running_loop()
    made: list[object] = []
    original = loop.call_soon_threadsafe

    def counted(callback, *args, **kwargs):
        made.append(callback)
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    yield made
    del loop.call_soon_threadsafe


@pytest.fixture
def docs_tree(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "docs",
        {
            "readme.txt": "Read me.",
            "reports/2026/q3.txt": "Q3 figures.",
            "reports/2026/q4.txt": "Q4 figures.",
            "reports/summary.md": "# Summary",
            "mail/inbox/hello.eml": "Subject: hello",
        },
    )


@pytest.fixture
def docs_task(db, docs_tree: Path) -> FetchTask:
    return FetchTask.objects.create(name="DOCS", directory_paths=[str(docs_tree)])


#: Fixtures whose processes run on a database of their own choosing (a Site is
#: always SQLite; the one-writer site makes its own), whatever DATABASE_URL says.
_OWN_DATABASE_FIXTURES = {"site", "writer_site"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that ``make test-postgres`` would only run a second time as they are."""
    for item in items:
        if _OWN_DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.independent_of_database_url)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A connector installation whose processes are killed when the test ends."""
    installation = Site(tmp_path)
    try:
        yield installation
    finally:
        installation.stop_all()


@pytest.fixture
def server(site: Site) -> Iterator[Server]:
    """A real ``serve`` of the site (with its worker), stopped with SIGTERM at the end."""
    running = Server(site)
    yield running
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(15) == 0, site.logs()
