"""The optional HTTP ingest target: each committed batch is POSTed to it.

Only a 2xx answer to the POST itself is a delivery. Redirects are never
followed: urllib's default handler would resend the batch as a bodiless GET
and take the landing page's 200 for a delivery, so a 3xx is a failed
delivery like any other error (the batch is kept as ``.failed`` and sent
again next run). Only ``http``/``https`` URLs are opened.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

#: Seconds to wait for the ingest server; a batch that times out is retried next run.
POST_TIMEOUT_SECONDS = 30.0

CONTENT_TYPES = {"idx": "application/x-idx; charset=utf-8", "del": "text/plain; charset=utf-8"}


class IngestPostFailed(Exception):
    """The ingest URL did not accept a batch; the message says why."""


def _opener() -> urllib.request.OpenerDirector:
    """An opener for http(s) only that never follows a redirect.

    Built by hand, not with ``build_opener``, which would add the redirect
    handler and the file:, ftp: and data: ones. Without a redirect handler a
    3xx reaches ``HTTPDefaultErrorHandler`` and raises ``HTTPError``, as a 4xx
    does. Proxies from the environment are used as before.
    """
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def post_batch(url: str, path: Path, kind: str, *, timeout: float | None = None) -> None:
    """POST a batch file's bytes; raise IngestPostFailed unless the answer is 2xx."""
    # Checked again here, not only when the task was loaded: urllib would
    # also open file: and ftp: URLs.
    if not url.lower().startswith(("http://", "https://")):  # also checked at configuration
        raise IngestPostFailed(f"{url} is not an http(s) URL")
    size = path.stat().st_size
    with path.open("rb") as body:
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": CONTENT_TYPES.get(kind, "application/octet-stream"),
                "Content-Length": str(size),
                "X-Ingest-Batch": path.name,
                "X-Ingest-Kind": "delete" if kind == "del" else "documents",
            },
        )
        try:
            with _opener().open(
                request, timeout=POST_TIMEOUT_SECONDS if timeout is None else timeout
            ) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                location = error.headers.get("Location", "") if error.headers else ""
                raise IngestPostFailed(
                    f"{url} answered {error.code} {error.reason}, a redirect"
                    f"{f' to {location}' if location else ''}; redirects are not followed"
                ) from None
            raise IngestPostFailed(f"{url} answered {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise IngestPostFailed(f"cannot post to {url}: {reason}") from None
    if not 200 <= status < 300:
        raise IngestPostFailed(f"{url} answered {status}")
