"""The ASGI application: HTTP (Django), websockets (the dashboard), and the
``fetch`` channel, on which ``runworker fetch`` runs the fetch worker."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
django_asgi_app = get_asgi_application()

# Imported after Django is set up: they use models.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402

from connector import intake  # noqa: E402
from connector.aci.handler import EndpointRouter  # noqa: E402
from connector.ops.drain import FinishRequestsOnShutdown  # noqa: E402
from connector.static_files import StaticFiles  # noqa: E402
from connector.websocket_origin import SameOriginValidator  # noqa: E402
from connector.worker.consumer import FetchConsumer  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

# daphne builds its protocol factory after it has loaded this module: from here
# on it reads requests through connector.intake (bounded, the body only once its
# caller may send it), under `manage.py serve` and plain `daphne` alike.
intake.install()

application = ProtocolTypeRouter(
    {
        # Static files straight from the finders, in front of the middleware: the
        # dashboard has a handful of small assets, and a sync-only static
        # middleware would cost every request two extra thread switches.
        # It serves with DEBUG off and under plain daphne too; a proxy may
        # serve a collectstatic copy instead (docs/deployment.md).
        # On SIGTERM, requests in flight get time to answer (connector.ops.drain).
        # Static answers carry the security headers too (connector.static_files).
        # The action endpoint's requests go to its own handler: the same view,
        # middleware that can change an answer, and error handlers, in long-lived
        # threads that keep their database connections (connector.aci.handler).
        "http": FinishRequestsOnShutdown(StaticFiles(EndpointRouter(django_asgi_app))),  # type: ignore[arg-type]
        # Only pages of this very origin (scheme, host and port) may open a
        # socket with the operator's cookie (connector.websocket_origin).
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "channel": ChannelNameRouter({"fetch": FetchConsumer.as_asgi()}),
    }
)
