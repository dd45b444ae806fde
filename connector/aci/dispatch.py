"""Which handler answers which action."""

from __future__ import annotations

from collections.abc import Callable

from connector.aci import actions, queueinfo, view
from connector.aci.errors import AciError, from_parameter_error
from connector.aci.render import Element
from connector.aci.request import AciRequest
from connector.params import ParameterError

Handler = Callable[[AciRequest], list[Element]]

#: Action names (upper case) and their handlers.
ACTIONS: dict[str, Handler] = {
    "FETCH": actions.fetch,
    "GETSTATUS": actions.get_status,
    "GETVERSION": actions.get_version,
    "QUEUEINFO": queueinfo.queue_info,
    # NoACI=false only; the document itself is streamed by the view.
    "VIEW": view.view_aci,
}


def dispatch(aci: AciRequest) -> list[Element]:
    """The children of ``<responsedata>`` for a request, or ``AciError``."""
    handler = ACTIONS.get(aci.action.upper())
    if handler is None:
        raise AciError("ERRORNOTIMPLEMENTED")
    try:
        return handler(aci)
    except ParameterError as error:
        raise from_parameter_error(error) from None
