"""``python manage.py runworker fetch``: the fetch worker on its own.

Replaces channels' runworker (the connector app comes before channels in
INSTALLED_APPS): same command line, but the server also runs the worker engine
and shuts it down gracefully on SIGTERM or SIGINT; a second one exits at once
(``connector.worker.stopping``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.management.commands.runworker import Command as ChannelsRunworkerCommand
from channels.routing import get_default_application
from django.conf import settings
from django.core.management import CommandError

from connector import wakeups
from connector.ingest import readers
from connector.worker.server import FETCH_CHANNEL, FetchWorkerServer
from connector.worker.stopping import (
    STOP_SIGNALS,
    StopSignals,
    end_threads,
    exit_process,
    report_crashes,
)

logger = logging.getLogger(__name__)


class Command(ChannelsRunworkerCommand):
    help = "Run the fetch worker: python manage.py runworker fetch"
    worker_class = FetchWorkerServer

    def handle(self, *args: Any, **options: Any) -> None:
        channels: list[str] = options["channels"]
        if FETCH_CHANNEL not in channels:
            raise CommandError(
                f"This connector's worker listens on the {FETCH_CHANNEL!r} channel:"
                f" run `python manage.py runworker {FETCH_CHANNEL}`"
            )
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("No channel layer is configured (CHANNEL_LAYERS).")
        if isinstance(layer, InMemoryChannelLayer):
            logger.warning(
                "The in-memory channel layer reaches only this process: wake-ups and Stops"
                " from the web processes arrive by database poll (every %s s) and heartbeat"
                " (every %s s). Set REDIS_URL to share a channel layer.",
                settings.CONNECTOR_POLL_SECONDS,
                settings.CONNECTOR_HEARTBEAT_SECONDS,
            )
        server = FetchWorkerServer(
            application=get_default_application(), channels=channels, channel_layer=layer
        )
        grace = float(settings.CONNECTOR_SHUTDOWN_GRACE_SECONDS)

        report_crashes()
        stop_signals = StopSignals(lambda signum: _on_signal(server, signum, grace))

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in STOP_SIGNALS:
                loop.add_signal_handler(signum, stop_signals.handle, signum)
            await server.arun()

        logger.info("Worker for channels %s, shutdown grace %s s", channels, grace)
        asyncio.run(main())
        readers.close()
        # No thread of ours may run while the interpreter finalizes (issue 14, 2).
        wakeups.close()
        left = end_threads()
        self.stdout.write(f"Worker {server.engine.id} stopped.")
        self.stdout.flush()
        exit_process(left)


def _on_signal(server: FetchWorkerServer, signum: int, grace: float) -> None:
    logger.info(
        "%s: no more claims; running actions are asked to stop at their next checkpoint"
        " (up to %s s) and queued again. Send it again to exit at once.",
        signal.Signals(signum).name,
        grace,
    )
    server.begin_shutdown(grace)
