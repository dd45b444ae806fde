"""The optional HTTP ingest target: each committed batch is POSTed to it."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

#: Seconds to wait for the ingest server; a batch that times out is retried next run.
POST_TIMEOUT_SECONDS = 30.0

CONTENT_TYPES = {"idx": "application/x-idx; charset=utf-8", "del": "text/plain; charset=utf-8"}


class IngestPostFailed(Exception):
    """The ingest URL did not accept a batch; the message says why."""


def post_batch(url: str, path: Path, kind: str, *, timeout: float | None = None) -> None:
    """POST a batch file's bytes; raise IngestPostFailed unless the answer is 2xx."""
    # Checked again here, not only when the task was loaded: urllib would
    # also open file: and ftp: URLs.
    if not url.lower().startswith(("http://", "https://")):
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
            with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
                request, timeout=POST_TIMEOUT_SECONDS if timeout is None else timeout
            ) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raise IngestPostFailed(f"{url} answered {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise IngestPostFailed(f"cannot post to {url}: {reason}") from None
    if not 200 <= status < 300:
        raise IngestPostFailed(f"{url} answered {status}")
