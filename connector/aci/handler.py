"""The action endpoint's own ASGI handler, in front of Django's (issue 17).

Django's ASGI handler runs every request in a thread made for it alone (its
``ThreadSensitiveContext``), so each request opens a database connection of
its own (SQLite's pragmas, PostgreSQL's connection set-up) and starts a
thread, and it sends ``request_started`` and ``request_finished`` through more
threads, and runs the session, CSRF, authentication, messages, htmx and
sign-in throttle middleware that an ACI request never uses. Profiled under
load, that was most of the CPU of a ``GetStatus`` (bench/README.md, "Endpoint
CPU per request").

This handler answers the requests that resolve to the endpoint (the URL names
in ``ENDPOINT_URL_NAMES``) with the same Django request, the same URL
resolver, view and error handlers (``connector.aci.fallbacks``), and every
middleware of ``settings.MIDDLEWARE`` that can change an answer (security
headers and HTTPS redirect, the content security policy, the host check of
``CommonMiddleware``, ``X-Frame-Options``): only ``NOT_FOR_ENDPOINT`` is left
out. The difference is where it runs: in a few long-lived threads
(``CONNECTOR_ACI_THREADS``), each keeping its database connection from one
request to the next (closed when it failed or is left in a transaction,
as Django closes one), one thread hop per request, and the answers that end
together handed back to the event loop together (``connector.aci.handback``).
On SQLite the requests that come while earlier ones are answered are answered
together, in one thread and one transaction (``connector.aci.batches``,
``respond_together``), and the loop waits in place for each batch's answers,
for at most ``WAIT_IN_PLACE_SECONDS``: there, answering is CPU in this
process, which the GIL lets only one thread use at a time anyway.

Everything else goes to Django's handler.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import setting_changed
from django.db import connections, reset_queries
from django.dispatch import receiver
from django.http.response import HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve, set_script_prefix
from django.utils.module_loading import import_string

from connector.aci.batches import Batches
from connector.aci.handback import HandBack
from connector.group_commit import SharedTransaction

logger = logging.getLogger(__name__)

#: URL names of the endpoint (connector/urls.py).
ENDPOINT_URL_NAMES = frozenset({"aci", "aci-path"})

#: Middleware an ACI request never needs: it carries no session or sign-in, is
#: exempt from CSRF (connector.aci.origin checks instead), shows no messages,
#: is no htmx request, and signs nobody in. The last one only keeps Django's
#: own chain in one thread.
NOT_FOR_ENDPOINT = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "axes.middleware.AxesMiddleware",
        "connector.middleware.SyncMiddlewareChain",
    }
)


#: On SQLite, the longest the event loop stays blocked waiting for an answer;
#: then it goes on, and the answer comes back as any other (connector.aci.handback).
#: A Fetch takes about 1 ms, a GetStatus by token a third of that.
WAIT_IN_PLACE_SECONDS = 0.005

#: The most requests answered together (SQLite): the batch's transaction holds
#: the write lock from its first write to its end, which the worker waits for.
MOST_PER_BATCH = 32
#: A batch answering for longer than this (a wait for the write lock, a large
#: listing) no longer holds the requests that came after it: the next batch
#: starts beside it, in another thread. A full batch of Fetches takes about 50 ms.
OVERDUE_SECONDS = 0.1

#: Every handler made, for ``close_connections`` (tests, a server that stops).
_HANDLERS: weakref.WeakSet[EndpointHandler] = weakref.WeakSet()


def close_connections() -> None:
    """Close the database connections every handler's threads keep."""
    for handler in list(_HANDLERS):
        handler.close_connections()


def endpoint_middleware() -> list[str]:
    return [path for path in settings.MIDDLEWARE if path not in NOT_FOR_ENDPOINT]


class EndpointHandler(ASGIHandler):
    """Django's ASGI handler for the endpoint's requests; see the module docstring."""

    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_endpoint_middleware()
        threads = settings.CONNECTOR_ACI_THREADS
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aci")
        # Its answers: one response, or a batch's list of them (SQLite).
        self.hand_back: HandBack[Any] = HandBack(
            self.executor, threads=threads, discard=close_answers
        )
        #: How long the event loop waits in place for a batch's answers: on SQLite
        #: only, where answering is CPU in this process (``WAIT_IN_PLACE_SECONDS``).
        sqlite = connections["default"].vendor == "sqlite"
        self.wait_in_place = WAIT_IN_PLACE_SECONDS if sqlite else 0.0
        #: On SQLite, the requests that come together are answered together.
        self.batches: Batches[tuple[dict[str, Any], Any], HttpResponseBase] | None = (
            Batches(
                self._answer_batch,
                most=MOST_PER_BATCH,
                overdue=OVERDUE_SECONDS,
                at_once=threads,
                discard=close_resources,
            )
            if sqlite
            else None
        )
        _HANDLERS.add(self)

    def close_connections(self) -> None:
        """Close the connections of every thread of the handler, each in its thread."""
        threads = self.hand_back.threads
        # Each task waits for all the others: so each runs in a thread of its own.
        barrier = threading.Barrier(threads)

        def close() -> None:
            connections.close_all()
            barrier.wait(timeout=60)

        for future in [self.executor.submit(close) for _ in range(threads)]:
            future.result()

    def load_endpoint_middleware(self) -> None:
        """``BaseHandler.load_middleware`` for ``endpoint_middleware()``, all synchronous."""
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(endpoint_middleware()):
            middleware = import_string(path)(handler)
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(middleware.process_template_response)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:  # the client went away
            return
        response: HttpResponseBase | None = None
        try:
            if self.batches is not None:
                response = await self.batches.answer((scope, body_file))
            else:
                response = await self.hand_back.run(self.respond, scope, body_file)
            await self.send_response(response, send)
        finally:
            if response is not None:
                close_resources(response)
            body_file.close()

    def resolve_request(self, request: Any) -> ResolverMatch:
        """The router's match of this very path, else ``BaseHandler.resolve_request``."""
        found = request.scope.get(MATCH)
        if found and found[0] == request.path_info and not hasattr(request, "urlconf"):
            request.resolver_match = found[1]
            return found[1]
        return super().resolve_request(request)  # type: ignore[no-any-return]

    async def _answer_batch(
        self, requests: list[tuple[dict[str, Any], Any]]
    ) -> list[HttpResponseBase]:
        return await self.hand_back.run(
            self.respond_together, requests, wait_in_place=self.wait_in_place
        )

    def respond(
        self, scope: dict[str, Any], body_file: Any, *, keep: bool = True
    ) -> HttpResponseBase:
        """The answer to one request, in one of the handler's threads; ``keep``:
        Django's end-of-request check of the thread's connections after it."""
        set_script_prefix(get_script_prefix_of(scope))
        reset_queries()
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                return error_response  # type: ignore[return-value]
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            return response
        finally:
            if keep:
                keep_connections()

    def respond_together(
        self, requests: list[tuple[dict[str, Any], Any]]
    ) -> list[HttpResponseBase]:
        """The answers to several requests, in turn, their writes in one transaction.

        The answers are returned once it is committed. Should the commit fail,
        or a request leave the transaction unusable, nothing of it is stored:
        the requests answered since it opened are then answered again, one by
        one, each as a lone request would be (their first answers are dropped).
        """
        shared = SharedTransaction()
        answers: list[HttpResponseBase] = []
        opened_by = len(requests)
        try:
            with shared.current():
                for index, (scope, body_file) in enumerate(requests):
                    was_open = shared.opened
                    answers.append(self.respond(scope, _KeptOpen(body_file), keep=False))
                    if shared.opened and not was_open:
                        opened_by = index
            if not shared.commit():
                for index in range(opened_by, len(requests)):
                    scope, body_file = requests[index]
                    close_resources(answers[index])
                    with contextlib.suppress(ValueError):  # closed: its client went away
                        body_file.seek(0)
                    answers[index] = self.respond(scope, body_file, keep=False)
        except BaseException:
            shared.roll_back()
            raise
        finally:
            keep_connections()
        return answers


class _KeptOpen:
    """A request's body that reading it does not close (Django's ``request.body``
    closes what it read): a batch may have to answer the request again. The
    handler closes the body itself once the request is answered."""

    def __init__(self, body_file: Any) -> None:
        self._body_file = body_file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body_file, name)

    def close(self) -> None:
        pass


def close_resources(response: HttpResponseBase) -> None:
    """``response.close()`` without its ``request_finished`` signal, which would
    close the thread's database connection that this handler keeps."""
    for closer in response._resource_closers:  # type: ignore[attr-defined]
        try:
            closer()
        except Exception:
            logger.exception("Closing a resource of an ACI answer failed")
    response.closed = True


def close_answers(answers: HttpResponseBase | list[HttpResponseBase]) -> None:
    """``close_resources`` of an answer or of each answer of a batch."""
    for response in answers if isinstance(answers, list) else [answers]:
        close_resources(response)


def get_script_prefix_of(scope: dict[str, Any]) -> str:
    if settings.FORCE_SCRIPT_NAME:
        return str(settings.FORCE_SCRIPT_NAME)
    return str(scope.get("root_path", "") or "")


def keep_connections() -> None:
    """Django's end-of-request check of this thread's connections, without the age limit.

    A connection stays open for the thread's next request unless it is in a
    transaction or off autocommit (a request left it so), or an error occurred
    on it and it no longer answers.
    """
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        if connection.in_atomic_block or (
            connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]
        ):
            connection.close()
        elif connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()


#: The scope key under which the router leaves the endpoint's URL match for the handler.
MATCH = "connector.endpoint_match"


def endpoint_match(scope: dict[str, Any]) -> tuple[str, ResolverMatch] | None:
    """The path and URL match of a request for the action endpoint; None for any other."""
    path = str(scope.get("path", ""))
    prefix = get_script_prefix_of(scope).rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return _match_path(str(settings.ROOT_URLCONF), path)


@functools.lru_cache(maxsize=128)
def _match_path(urlconf: str, path: str) -> tuple[str, ResolverMatch] | None:
    """``endpoint_match`` for one path, remembered: most requests are for the same
    few paths ("/" above all), and resolving one took 22 us of the event loop's time
    for each. Django never changes a ``ResolverMatch`` it made, so one serves all."""
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return None
    return (path, match) if match.url_name in ENDPOINT_URL_NAMES else None


@receiver(setting_changed)
def _forget_matches(**kwargs: Any) -> None:
    # Tests change the URLs (ROOT_URLCONF, or settings that urls.py reads).
    _match_path.cache_clear()


class EndpointRouter:
    """The endpoint's requests to ``EndpointHandler``, all others to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._endpoint: EndpointHandler | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> EndpointHandler:
        # Made at the first request: settings may change until then (tests).
        with self._lock:
            if self._endpoint is None:
                self._endpoint = EndpointHandler()
            return self._endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (match := endpoint_match(scope)):
            # The handler resolves the same path: it takes this match instead.
            await self.endpoint({**scope, MATCH: match}, receive, send)
        else:
            await self.app(scope, receive, send)
