"""The catalogue of ACI error codes: one place, so the docs and the tests can list them all.

An error's ``errorid`` is ``CONNECTOR<ACTION><number>`` and its ``rawerrorid``
the same number in hex, as IDOL does (``CONNECTORQUEUEINFO104`` / ``0x68``).
``docs/aci.md`` documents every entry; keep the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.params import MissingParameter, ParameterError


@dataclass(frozen=True)
class ErrorKind:
    code: str
    number: int
    #: The short ``errorstring``.
    errorstring: str
    #: The ``errordescription`` used when the raising code gives none.
    description: str


_KINDS = (
    # IDOL's own codes.
    ErrorKind("ERRORNOTIMPLEMENTED", 101, "ERROR", "The requested action was not recognised"),
    ErrorKind(
        "ERRORMISSINGPARAMS",
        102,
        "Missing parameter",
        "A required parameter is missing; add it and send the request again.",
    ),
    ErrorKind(
        "ERRORPARAMINVALID",
        103,
        "Invalid parameter",
        "A parameter has a value the action cannot use; correct it and send the request again.",
    ),
    # Ours.
    ErrorKind(
        "ERRORNOTQUEUED",
        104,
        "Action is not queued",
        "This applies to queued actions only.",
    ),
    ErrorKind(
        "ERRORNOTRUNNING",
        105,
        "Action is not running",
        "Stop applies to running (Processing) actions only.",
    ),
    ErrorKind(
        "ERRORTOKENINVALID",
        106,
        "Token is malformed",
        "The Token is not one this connector issues; send the token exactly as the "
        "Fetch action returned it.",
    ),
    ErrorKind(
        "ERRORTOKENUNKNOWN",
        107,
        "Token is unknown",
        "No action of this queue has that token; check the token and the QueueName.",
    ),
    ErrorKind(
        "ERRORUNKNOWNQUEUE",
        108,
        "Unknown queue",
        "There is no queue of that name; use one of the configured queues.",
    ),
    ErrorKind(
        "ERRORPARAMTOOLONG",
        109,
        "Parameter too long",
        "A parameter value is longer than this connector accepts; send less in one request.",
    ),
    ErrorKind(
        "ERRORREQUESTTOOLARGE",
        110,
        "Request too large",
        "The request body is larger than this connector accepts; send less in one request.",
    ),
    ErrorKind(
        "ERRORMETHODNOTALLOWED",
        111,
        "Method not allowed",
        "Send actions with GET or POST.",
    ),
    ErrorKind(
        "ERRORINTERNAL",
        112,
        "Internal error",
        "The connector failed to handle the request; nothing was changed by the failed step. "
        "Try again, and if it keeps failing report it with the time of the error "
        "(details are in the connector's log).",
    ),
    ErrorKind(
        "ERRORDOCUMENTNOTFOUND",
        113,
        "Document not found",
        "No document has that Identifier any more (it was moved or deleted, or is outside"
        " the task's FileMatch); list identifiers again.",
    ),
    ErrorKind(
        "ERRORDOCUMENTUNREADABLE",
        114,
        "Document cannot be read",
        "The document exists but cannot be read (permissions, or a failing disk).",
    ),
    ErrorKind(
        "ERRORDOCUMENTTOOLARGE",
        115,
        "Document too large",
        "The document is too large for an ACI answer; leave out NoACI=false.",
    ),
    # Access and limits (issue 6).
    ErrorKind(
        "ERRORNOTAUTHORIZED",
        116,
        "Not authorized",
        "This client may not run this action; ask the connector's administrator for a role "
        "that allows it.",
    ),
    ErrorKind(
        "ERRORQUEUEFULL",
        117,
        "Queue is full",
        "The queue holds as many queued actions as it may; wait for some to run and submit again.",
    ),
    ErrorKind(
        "ERRORTOOMANYREQUESTS",
        118,
        "Too many requests",
        "This client submitted more actions than this connector accepts in a short time; "
        "wait and submit again.",
    ),
    # Browsers acting for another origin (issue 13).
    ErrorKind(
        "ERRORCROSSORIGIN",
        119,
        "Request from another origin",
        "A browser sent this request for a page of another origin; the action endpoint does "
        "not act for other sites' pages. Call it from a script or an ACI client, or from a "
        "page of an origin listed in CSRF_TRUSTED_ORIGINS.",
    ),
    # Requests refused before they reach the endpoint (issue 14).
    ErrorKind(
        "ERRORHOSTNOTALLOWED",
        120,
        "Host not allowed",
        "The request's Host header names no host this connector answers as; send the "
        "request to one of the connector's configured host names.",
    ),
)

CATALOGUE: dict[str, ErrorKind] = {kind.code: kind for kind in _KINDS}


class AciError(Exception):
    """A request the connector refuses; rendered as the ACI error envelope (HTTP 200)."""

    def __init__(self, code: str, description: str | None = None) -> None:
        self.kind = CATALOGUE[code]
        self.description = description or self.kind.description
        super().__init__(f"{code}: {self.description}")

    @property
    def code(self) -> str:
        return self.kind.code


def from_parameter_error(error: ParameterError) -> AciError:
    code = "ERRORMISSINGPARAMS" if isinstance(error, MissingParameter) else "ERRORPARAMINVALID"
    return AciError(code, str(error))


def error_id(action: str, kind: ErrorKind) -> str:
    # The action may be whatever the client sent: keep the id a plain token.
    name = re.sub(r"[^A-Z0-9]", "", action.upper())[:40]
    return f"CONNECTOR{name}{kind.number}"


def raw_error_id(kind: ErrorKind) -> str:
    return hex(kind.number)
