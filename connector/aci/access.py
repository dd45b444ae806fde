"""Who may call which action, as IDOL decides it: by role.

A role names the actions it may run and the clients that hold it (IP
addresses and CIDR ranges, ``*`` for all), and may also require an API key,
sent in the ``X-API-Key`` header. A request may run its action when at least
one role that the client holds allows that action. The roles come from
``settings.CONNECTOR_ACI_ROLES``::

    {"admin":  {"actions": ["change", "status", "view"], "clients": ["127.0.0.1", "::1"]},
     "status": {"actions": ["status"], "clients": ["10.0.0.0/8"], "api_key": "..."}}

An entry of ``actions`` is a class of actions, an action name, or one
QueueAction of QueueInfo (all case-insensitive):

- ``change``: everything that changes something: ``Fetch`` and the QueueInfo
  actions Cancel, Stop, Pause, Resume, ChangePriority and Duplicate (and any
  QueueAction not known to be read-only: when unsure, it is a change);
- ``status``: ``GetStatus``, ``GetVersion``, QueueInfo GetStatus, Progress,
  QueueStatus and GetActionParameters, and unknown actions (they change
  nothing and are answered ERRORNOTIMPLEMENTED);
- ``view``: ``View``, which returns documents' content;
- ``*``: every action;
- ``Fetch``, ``GetStatus``, ``QueueInfo`` (every QueueAction),
  ``QueueInfo:Cancel`` and so on.

The client address is ``connector.addresses.client_address`` (the trusted-proxy
rule). A client whose address is unknown holds no role. An ``X-API-Key`` that
matches no role's key is refused outright, so a client with a wrong key learns
so even where a role without a key would have let it in.

A role's ``api_key`` is the key itself or its SHA-256, written
``sha256:<64 hex digits>``, so the configuration need not hold the key.
Keys are UTF-8: the header arrives decoded as latin-1 (WSGI and ASGI both),
so its bytes are taken back from that before they are compared. Every
comparison is of two SHA-256 digests, constant in time whatever the lengths.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from connector.aci.errors import AciError
from connector.addresses import IPNetwork, in_networks, parse_ip, parse_networks

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
#: How a role's api_key names the key by its hash instead of holding it.
HASHED_KEY_PREFIX = "sha256:"

CHANGE = "change"
STATUS = "status"
VIEW = "view"
CLASSES = (CHANGE, STATUS, VIEW)

#: QueueActions that only read. Every other QueueAction counts as a change.
READ_ONLY_QUEUE_ACTIONS = frozenset({"getstatus", "progress", "queuestatus", "getactionparameters"})
#: QueueActions that queue a new action, like Fetch (rate-limited as submissions).
SUBMITTING_QUEUE_ACTIONS = frozenset({"duplicate"})
KNOWN_ACTIONS = ("fetch", "getstatus", "getversion", "queueinfo", "view")
#: The QueueActions a role may name (kept equal to queueinfo.QUEUE_ACTIONS by a test;
#: importing it here would load the models before settings are done).
KNOWN_QUEUE_ACTIONS = (
    "getstatus",
    "progress",
    "queuestatus",
    "getactionparameters",
    "cancel",
    "stop",
    "pause",
    "resume",
    "changepriority",
    "duplicate",
)


@dataclass(frozen=True)
class Role:
    name: str
    #: Lower-case entries: classes, action names, ``queueinfo:<queueaction>``, ``*``.
    actions: frozenset[str]
    clients: tuple[IPNetwork, ...]
    #: As configured: the key, or ``sha256:<hex>``.
    api_key: str = ""
    #: The SHA-256 of the key (b"" without one): what a sent key is compared with.
    key_digest: bytes = b""


@dataclass(frozen=True)
class Call:
    """What a request asks for, as far as access and limits are concerned."""

    #: The action, lower case ("" if none).
    action: str
    #: The QueueAction of QueueInfo, lower case ("" otherwise).
    queue_action: str
    action_class: str

    @property
    def submits(self) -> bool:
        """Whether the call queues a new action (Fetch, Duplicate)."""
        return self.action == "fetch" or (
            self.action == "queueinfo" and self.queue_action in SUBMITTING_QUEUE_ACTIONS
        )

    @property
    def shown(self) -> str:
        return f"QueueInfo:{self.queue_action}" if self.queue_action else self.action

    def grants(self) -> frozenset[str]:
        """The role entries that allow this call."""
        names = {"*", self.action_class, self.action}
        if self.queue_action:
            names.add(f"{self.action}:{self.queue_action}")
        return frozenset(names)


def classify(action: str, queue_action: str = "") -> Call:
    # The same folding as the dispatcher (upper case) and QueueInfo (lower case):
    # "QueueInfo" spelled with a dotless i is QUEUEINFO to the dispatcher, so it
    # must be QueueInfo here too, not an unknown (status) action.
    action = action.strip().upper().lower()
    queue_action = queue_action.strip().lower() if action == "queueinfo" else ""
    if action == "fetch":
        action_class = CHANGE
    elif action == "queueinfo":
        action_class = STATUS if queue_action in READ_ONLY_QUEUE_ACTIONS else CHANGE
    elif action == "view":
        action_class = VIEW
    else:
        action_class = STATUS
    return Call(action=action, queue_action=queue_action, action_class=action_class)


# --- The roles setting -----------------------------------------------------------


def _valid_entries() -> set[str]:
    return {
        "*",
        *CLASSES,
        *KNOWN_ACTIONS,
        *(f"queueinfo:{queue_action}" for queue_action in KNOWN_QUEUE_ACTIONS),
    }


def parse_roles(raw: Any, *, setting: str = "CONNECTOR_ACI_ROLES") -> tuple[Role, ...]:
    """The roles of the setting, checked; ImproperlyConfigured says what is wrong."""
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{setting} must be a JSON object of roles by name")
    valid = _valid_entries()
    roles = []
    for name, spec in raw.items():
        where = f"{setting}, role {name!r}"
        if not isinstance(spec, Mapping):
            raise ImproperlyConfigured(f"{where}: must be an object with actions and clients")
        unknown_keys = set(spec) - {"actions", "clients", "api_key"}
        if unknown_keys:
            raise ImproperlyConfigured(
                f"{where}: unknown keys {sorted(unknown_keys)}; use actions, clients, api_key"
            )
        actions = spec.get("actions", [])
        clients = spec.get("clients", [])
        api_key = spec.get("api_key") or ""
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise ImproperlyConfigured(f"{where}: actions must be a list of names")
        if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
            raise ImproperlyConfigured(f"{where}: clients must be a list of addresses or ranges")
        if not isinstance(api_key, str):
            raise ImproperlyConfigured(f"{where}: api_key must be a string")
        key_digest = b""
        if api_key.lower().startswith(HASHED_KEY_PREFIX):
            hex_digest = api_key[len(HASHED_KEY_PREFIX) :].strip()
            if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_digest):
                raise ImproperlyConfigured(
                    f"{where}: api_key {HASHED_KEY_PREFIX}... must be followed by the 64 hex "
                    "digits of the key's SHA-256"
                )
            key_digest = bytes.fromhex(hex_digest)
        elif api_key:
            key_digest = hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).digest()
        entries = frozenset(entry.strip().lower() for entry in actions)
        if bad := sorted(entries - valid):
            raise ImproperlyConfigured(
                f"{where}: unknown actions {bad}; use classes ({', '.join(CLASSES)}, *), "
                "action names (Fetch, GetStatus, GetVersion, QueueInfo, View) or "
                "QueueInfo:<QueueAction>"
            )
        roles.append(
            Role(
                name=str(name),
                actions=entries,
                clients=parse_networks(clients, setting=where),
                api_key=api_key,
                key_digest=key_digest,
            )
        )
    return tuple(roles)


_parsed: tuple[object, tuple[Role, ...]] = (None, ())


def configured_roles() -> tuple[Role, ...]:
    from django.conf import settings

    global _parsed
    raw = settings.CONNECTOR_ACI_ROLES
    # Parsed again only when the setting is another object (tests override it).
    if _parsed[0] is not raw:
        _parsed = (raw, parse_roles(raw))
    return _parsed[1]


# --- The decision ----------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: The role that allowed the call, or why it was refused (for the log and the caller).
    reason: str


def decide(call: Call, *, client: str, api_key: str | None) -> Decision:
    """Whether ``client``, sending ``api_key`` (None: no header), may make ``call``."""
    roles = configured_roles()
    sent = None if api_key is None else hashlib.sha256(_header_bytes(api_key)).digest()
    if sent is not None and not any([_key_matches(sent, role) for role in roles if role.api_key]):
        # A list, not a generator: every keyed role is compared, so the time
        # taken says nothing about which key came close.
        return Decision(False, f"the {API_KEY_HEADER} header holds no valid API key")
    address = parse_ip(client)
    if address is None:
        return Decision(False, "the client's address is unknown")
    grants = call.grants()
    needs_key = False
    for role in roles:
        if not in_networks(address, role.clients) or not (role.actions & grants):
            continue
        if role.api_key and not _key_matches(sent, role):
            needs_key = True
            continue
        return Decision(True, role.name)
    if needs_key:
        return Decision(False, f"this action needs an API key in the {API_KEY_HEADER} header")
    return Decision(False, f"no role lets client {client or '(unknown)'} run {call.shown}")


def _key_matches(sent: bytes | None, role: Role) -> bool:
    """Whether the SHA-256 ``sent`` is the role's key's (two 32-byte digests: constant time)."""
    return sent is not None and hmac.compare_digest(sent, role.key_digest)


def _header_bytes(value: str) -> bytes:
    """The bytes a client sent as a header: servers hand them over decoded as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # Not from the wire (a test or a caller passing text): the text's own UTF-8.
        return value.encode("utf-8", "surrogateescape")


def authorize(call: Call, *, client: str, api_key: str | None) -> None:
    """Refuse (AciError, logged) a call that no role of the client allows."""
    decision = decide(call, client=client, api_key=api_key)
    if decision.allowed:
        return
    logger.warning(
        "ACI %s from %s refused: not authorized (%s)", call.shown, client, decision.reason
    )
    raise AciError(
        "ERRORNOTAUTHORIZED",
        f"This client may not run {call.shown}: {decision.reason}. Ask the connector's "
        "administrator for a role that allows it (CONNECTOR_ACI_ROLES).",
    )


# --- Before the body ---------------------------------------------------------------


def may_send_body(client: str, api_key: str | None) -> Decision:
    """Whether ``client`` (sending ``api_key``) could be allowed any action at all.

    Asked by the server (connector.intake) from the address and headers alone,
    before a byte of an ACI request's body is read: a client that no role lets
    run anything is refused without its body. It is ``decide`` over every call
    there is, so it follows the same rules (addresses, keys) by construction;
    which action the body asks for is decided later, by ``authorize``.
    """
    calls = [classify(action) for action in KNOWN_ACTIONS]
    calls += [classify("queueinfo", queue_action) for queue_action in KNOWN_QUEUE_ACTIONS]
    refusals = []
    for call in calls:
        decision = decide(call, client=client, api_key=api_key)
        if decision.allowed:
            return decision
        refusals.append(decision.reason)
    # A key problem says best what to do; otherwise the client holds no role.
    for reason in refusals:
        if API_KEY_HEADER in reason:
            return Decision(False, reason)
    return Decision(False, f"no role lets client {client or '(unknown)'} run any action")
