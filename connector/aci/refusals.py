"""The audit of requests the endpoint refuses before they reach the queue (issues 13, 15).

A client without the right (``ERRORNOTAUTHORIZED``) or a browser acting for
another origin's page (``ERRORCROSSORIGIN``) asked for a change that was not
made: the audit log records it, counted per client, kind and minute
(``audit.record_refusal_counted``) so that a flood of them writes one row a
minute, not one a request. Only calls that would change something are
recorded, as the dashboard records refused POSTs and not GETs: a refused
GetStatus or View changes nothing and is logged only.
"""

from __future__ import annotations

import logging

from connector import audit
from connector.aci.access import Call
from connector.aci.errors import AciError
from connector.models import AuditVerb, AuditVia

logger = logging.getLogger(__name__)

#: The refusals recorded, and the kind each is counted under.
KINDS = {"ERRORNOTAUTHORIZED": "not authorized", "ERRORCROSSORIGIN": "cross-origin"}

_VERBS = {
    "fetch": AuditVerb.SUBMIT,
    "queueinfo:cancel": AuditVerb.CANCEL,
    "queueinfo:stop": AuditVerb.STOP,
    "queueinfo:pause": AuditVerb.PAUSE,
    "queueinfo:resume": AuditVerb.RESUME,
    "queueinfo:changepriority": AuditVerb.PRIORITY,
    "queueinfo:duplicate": AuditVerb.RETRY,
}


def verb_of(call: Call) -> AuditVerb | None:
    """The change ``call`` asks for; None for reads and QueueActions that do not exist."""
    key = f"{call.action}:{call.queue_action}" if call.queue_action else call.action
    return _VERBS.get(key)


def record(call: Call | None, *, client: str, error: AciError) -> None:
    """Audit ``error`` if it is a refusal of a change that the audit counts."""
    kind = KINDS.get(error.code)
    verb = verb_of(call) if call is not None else None
    if kind is None or call is None or verb is None:
        return
    try:
        audit.record_refusal_counted(
            verb=verb,
            who=audit.Who(via=AuditVia.ENDPOINT, client=client),
            kind=kind,
            reason=error.description,
            call=call.shown,
        )
    except Exception:
        # The refusal stands whether or not it could be recorded.
        logger.exception("Could not audit the refusal of %s from %s", call.shown, client)
