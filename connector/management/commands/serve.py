"""``python manage.py serve``: the connector in one process (the embedded default).

Runs daphne (HTTP: the ACI endpoint and the dashboard; websockets) and the
fetch worker in the same asyncio loop, so the in-memory channel layer carries
the wake-ups and Stops between them. ``--no-worker`` serves the web only, for
scale-out with ``runworker fetch`` processes and a shared channel layer.

On SIGTERM or SIGINT the server stops accepting work, and the worker asks its
running actions to stop at their next checkpoint and queues them again (their
attempt not spent), waiting up to ``CONNECTOR_SHUTDOWN_GRACE_SECONDS``; a
second SIGTERM or SIGINT exits at once (``connector.worker.stopping``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import signal
import socket
import sys
import webbrowser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from connector.banner import manage_command, welcome_lines

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the ACI endpoint and the dashboard, with the fetch worker in the same process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
        parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on.")
        parser.add_argument(
            "--open",
            action="store_true",
            help="Open the dashboard in the desktop's web browser once serving (if there is one).",
        )
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="Serve the web only; run `manage.py runworker fetch` processes for the work.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        with_worker = not options["no_worker"]
        self._check_migrations()
        self._load_tasks()
        password = self._ensure_admin()
        # The main thread runs the reactor from here on; its connection would idle.
        connections.close_all()
        self._serve(
            host,
            port,
            with_worker=with_worker,
            admin_password=password,
            open_browser=options["open"],
        )

    # --- Before serving --------------------------------------------------------------

    def _check_migrations(self) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise CommandError(
                f"The database has {len(plan)} unapplied migration(s). Run"
                f" `{manage_command('migrate')}` (or `make run`, which does) and start again."
            )

    def _load_tasks(self) -> None:
        # Imported here: the fetch-task modules are optional to this command.
        if settings.CONNECTOR_CONFIG:
            path = Path(settings.CONNECTOR_CONFIG)
            try:
                from connector.tasks_config import load_tasks_file
            except ImportError as error:
                raise CommandError(f"Cannot load fetch tasks in this build: {error}") from error
            try:
                report = load_tasks_file(path)
            except Exception as error:
                raise CommandError(f"Could not load fetch tasks from {path}: {error}") from error
            self.stdout.write(f"Fetch tasks from {path}: {report.summary}")
            return
        try:
            from connector.demo import ensure_demo_task
        except ImportError:
            logger.warning("No demo fetch task in this build (connector.demo is missing)")
            return
        task = ensure_demo_task()
        if task is not None:
            self.stdout.write(
                f"Demo fetch task {task.name} over {', '.join(task.directory_paths)}"
                " (set CONNECTOR_CONFIG to load your own tasks)"
            )

    def _ensure_admin(self) -> str | None:
        """Create user admin with a random password on a first run; return the password."""
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            return None
        if user_model.objects.filter(username="admin").exists():
            return None
        from dashboard.roles import ADMIN, grant_role

        password = secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(username="admin", email="", password=password)
        # A superuser may do everything anyway; the group says which role it has.
        grant_role(user, ADMIN)
        return password

    # --- Serving ---------------------------------------------------------------------

    def _serve(
        self,
        host: str,
        port: int,
        *,
        with_worker: bool,
        admin_password: str | None,
        open_browser: bool = False,
    ) -> None:
        # daphne.server installs Twisted's asyncio reactor on import (the daphne
        # app already imported it); the reactor import must come after it.
        from channels.layers import get_channel_layer
        from channels.routing import get_default_application
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server, twisted_loop
        from twisted.internet import defer
        from twisted.internet import reactor as twisted_reactor

        from connector.worker.server import FETCH_CHANNEL, FetchWorkerServer

        # Typed as Any: mypy reads the zope interface methods without their self.
        reactor: Any = twisted_reactor
        application = get_default_application()
        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            root_path=getattr(settings, "FORCE_SCRIPT_NAME", "") or "",
            server_name="connector",
        )
        grace = float(settings.CONNECTOR_SHUTDOWN_GRACE_SECONDS)
        worker: FetchWorkerServer | None = None
        if with_worker:
            layer = get_channel_layer()
            if layer is None:
                raise CommandError("No channel layer is configured (CHANNEL_LAYERS).")
            worker = FetchWorkerServer(
                application=application, channels=[FETCH_CHANNEL], channel_layer=layer
            )
            worker_task: dict[str, asyncio.Future[None]] = {}

            def start_worker() -> None:
                worker_task["run"] = asyncio.ensure_future(worker.arun(), loop=twisted_loop)

            def stop_worker() -> defer.Deferred[None]:
                # A "before shutdown" trigger: Twisted waits for the Deferred, so
                # the loop (and the endpoint) keep running during the grace period.
                logger.info(
                    "Shutting down: running actions are asked to stop at their next checkpoint"
                    " (up to %s s) and queued again",
                    grace,
                )

                async def stop() -> None:
                    await worker.begin_shutdown(grace)
                    if run := worker_task.get("run"):
                        await asyncio.gather(run, return_exceptions=True)

                return defer.Deferred.fromFuture(asyncio.ensure_future(stop(), loop=twisted_loop))

            reactor.callWhenRunning(start_worker)
            reactor.addSystemEventTrigger("before", "shutdown", stop_worker)

        self._handle_stop_signals(reactor)
        base, _ = welcome_lines(host, port, worker=worker, admin_password=admin_password)

        def print_welcome() -> None:
            # Once the reactor runs, which it does only if the bind succeeded
            # (daphne does not start it after a listen failure): "listening"
            # is never printed for a port that is not ours.
            if server.listening_addresses:
                self._print_welcome(host, port, worker=worker, admin_password=admin_password)

        reactor.callWhenRunning(print_welcome)
        if open_browser and desktop_browser_available():
            reactor.callWhenRunning(
                lambda: reactor.callInThread(webbrowser.open, f"{base}/dashboard/")
            )
        server.run()
        # The worker stopped with the reactor; its reader processes end now,
        # not in the interpreter's exit hooks (connector.ingest.readers.close).
        from connector import wakeups
        from connector.ingest import readers
        from connector.worker.stopping import end_threads, exit_process

        readers.close()
        # No thread of ours may run while the interpreter finalizes (issue 14, 2).
        wakeups.close()
        left = end_threads()
        if not server.listening_addresses:
            if admin_password:
                # Made before the bind: shown now, or it would be lost with the run.
                self.stdout.write(
                    "Created the user admin for the dashboard; its password (shown only now) is:"
                    f"\n  {admin_password}"
                )
            raise CommandError(bind_failure(host, port))
        self.stdout.write("Connector stopped.")
        self.stdout.flush()
        exit_process(left)

    def _handle_stop_signals(self, reactor: Any) -> None:
        """The first SIGINT or SIGTERM stops as Twisted's own handler does (the
        shutdown triggers above run); a second exits at once."""
        from connector.worker.stopping import StopSignals, report_crashes

        report_crashes()

        def first(signum: int) -> None:
            logger.info("%s: stopping (send it again to exit at once)", signal.Signals(signum).name)
            reactor.callFromThread(reactor.stop)

        # Twisted installs its handlers as it starts running; these replace them.
        reactor.callWhenRunning(StopSignals(first).install)

    def _print_welcome(
        self, host: str, port: int, *, worker: Any, admin_password: str | None
    ) -> str:
        """Print the URLs, who may call what and how to sign in; return the base URL."""
        base, lines = welcome_lines(host, port, worker=worker, admin_password=admin_password)
        self.stdout.write("\n".join(lines))
        self.stdout.flush()
        return base


def bind_failure(host: str, port: int) -> str:
    """Why serve could not listen, plainly, and what to do about it."""
    reason = _bind_error(host, port)
    if reason is not None and reason.errno == errno.EADDRINUSE:
        return (
            f"Port {port} on {host} is already in use (another connector, or another program,"
            " listens there). Choose another port: `make run PORT=8001`, or"
            f" `{manage_command('serve --port 8001')}`."
        )
    if reason is not None and reason.errno == errno.EACCES:
        return (
            f"Not allowed to listen on port {port} of {host} (ports below 1024 need privileges)."
            " Choose another port: `make run PORT=8001`."
        )
    detail = f" ({reason.strerror})" if reason is not None else " (see the log above)"
    return f"Could not listen on {host}:{port}{detail}."


def _bind_error(host: str, port: int) -> OSError | None:
    """The error a bind to host:port gives now (the same one daphne met, for its message)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As Twisted binds: SO_REUSEADDR, so a port in TIME_WAIT is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host or "0.0.0.0", port))  # noqa: S104
    except OSError as error:
        return error
    return None


def desktop_browser_available() -> bool:
    """A graphical browser to open, not a text one that would take the terminal."""
    graphical = sys.platform in {"darwin", "win32"} or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not graphical:
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True
