"""Static files for the dashboard, answered like every other page.

Django's ``ASGIStaticFilesHandler`` serves in front of the middleware: its
answers lack the security headers, and a path that climbs out of the static
folder (``/static/../..``) raises ``SuspiciousFileOperation`` past its 404
handling, which daphne answers with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponseNotFound
from django.http.response import HttpResponseBase

from connector.intake import security_headers

logger = logging.getLogger(__name__)


class StaticFiles(ASGIStaticFilesHandler):
    async def get_response_async(self, request: Any) -> HttpResponseBase:
        try:
            response = await super().get_response_async(request)
        except SuspiciousOperation as error:
            logger.warning("Static file path refused: %s", error)
            response = HttpResponseNotFound(
                b"Not found.\n", content_type="text/plain; charset=utf-8"
            )
        for name, value in security_headers():
            header = name.decode("latin-1")
            if header not in response:
                response[header] = value.decode("latin-1")
        return response
