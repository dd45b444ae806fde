"""The audit of dashboard POSTs refused for want of a right (forged forms).

The buttons a user may not use are not rendered, so such a POST was made by
hand; the views refuse it with 403 and record it here. A refused GET of the
same pages is not recorded: it changes nothing.
"""

from __future__ import annotations

from django.http import HttpRequest

from connector import audit
from connector.addresses import client_address
from connector.models import AuditVerb, AuditVia

#: The change each button's URL asks for, for the audit of refused POSTs.
_VERBS = {
    "cancel": AuditVerb.CANCEL,
    "cancel-selected": AuditVerb.CANCEL,
    "cancel-matching": AuditVerb.CANCEL,
    "stop": AuditVerb.STOP,
    "retry": AuditVerb.RETRY,
    "priority": AuditVerb.PRIORITY,
    "pause": AuditVerb.PAUSE,
    "submit": AuditVerb.SUBMIT,
}


def record(request: HttpRequest, reason: str) -> None:
    """Record a POST refused for want of a right (a forged form); a GET changes nothing."""
    if request.method != "POST" or request.resolver_match is None:
        return
    match = request.resolver_match
    verb = _VERBS.get(match.url_name or "")
    if verb is None:
        return
    if verb == AuditVerb.PAUSE and request.POST.get("paused") != "1":
        verb = AuditVerb.RESUME
    pk = match.kwargs.get("pk")
    audit.record_refused(
        verb=verb,
        who=audit.Who(
            via=AuditVia.DASHBOARD,
            user=request.user.get_username(),
            client=client_address(request),
        ),
        reason=reason,
        action_pk=int(pk) if pk is not None else None,
        queue=str(match.kwargs.get("name", ""))[:40],
    )
