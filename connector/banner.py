"""What ``serve`` prints once it listens: where to go, who may call what, commands that work.

The commands are spelled with the interpreter and the ``manage.py`` that are
running (``.venv/bin/python manage.py ...`` under ``make run``), so they work
when pasted into a fresh shell, where ``python`` may be another Python or none.
Who may call what is read from the settings in force, not from the defaults.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

_LOOPBACK = {"127.0.0.1", "::1", "127.0.0.0/8", "::1/128", "localhost"}


def _shown(path: str) -> str:
    """``path`` relative to the working folder when it is inside it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.getcwd())
    return shlex.quote(absolute if relative.startswith("..") else relative)


def manage_command(*arguments: str) -> str:
    """``.venv/bin/python manage.py ARGUMENTS`` as this process was started."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    return " ".join([_shown(sys.executable), _shown(str(manage)), *arguments])


def _is_loopback(client: str) -> bool:
    if client in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_network(client, strict=False).is_loopback
    except ValueError:
        return False


def _clients(clients: Iterable[str]) -> str:
    listed = [str(c) for c in clients]
    if not listed:
        return "nobody"
    if "*" in listed:
        return "any address"
    return ", ".join(listed)


def access_lines(
    roles: Mapping[str, Mapping[str, Any]] | None = None,
    trusted_proxies: Iterable[str] | None = None,
    metrics_clients: Iterable[str] | None = None,
) -> list[str]:
    """Who may call what, one line each, from the settings in force."""
    if roles is None:
        roles = dict[str, Mapping[str, Any]](settings.CONNECTOR_ACI_ROLES)
    proxies = list(
        settings.CONNECTOR_TRUSTED_PROXIES if trusted_proxies is None else trusted_proxies
    )
    metrics = list(
        settings.CONNECTOR_METRICS_ALLOWED_IPS if metrics_clients is None else metrics_clients
    )
    lines = ["Who may call what:"]
    local_admin = False
    for name, role in roles.items():
        listed: Any = role.get("actions", [])
        granted = [str(a).lower() for a in listed]
        listed = role.get("clients", [])
        clients = [str(c) for c in listed]
        key = "with its API key (X-API-Key)" if role.get("api_key") else "without a key"
        lines.append(
            f"  ACI role {name} ({', '.join(granted) or 'nothing'}): {_clients(clients)}, {key}"
        )
        changes = any(a in {"change", "*"} for a in granted)
        if changes and not role.get("api_key") and any(_is_loopback(c) for c in clients):
            local_admin = True
    lines.append("  ACI, any other client: refused")
    if local_admin:
        lines.append(
            "  (every process on this machine, of any user, may change the queue without a key)"
        )
    if proxies:
        lines.append(f"  X-Forwarded-For believed from: {', '.join(proxies)}")
        if any(_is_loopback(p) for p in proxies):
            lines.append(
                "  (a loopback proxy is trusted: any local process can claim any client address)"
            )
    else:
        lines.append("  X-Forwarded-For: ignored (no CONNECTOR_TRUSTED_PROXIES)")
    lines.append("  Dashboard: signed-in users, by role (viewer, operator, admin); /admin/: staff")
    lines.append(f"  /metrics: {_clients(metrics)}; /healthz, /readyz: anyone")
    return lines


def welcome_lines(
    host: str, port: int, *, worker: Any, admin_password: str | None
) -> tuple[str, list[str]]:
    """The base URL, and the lines serve prints once it listens."""
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}"
    lines = [
        f"Connector listening on http://{shown}:{port} (bound to {host}:{port})",
        f"  Dashboard:     {base}/dashboard/",
        f"  ACI endpoint:  {base}/action=GetVersion",
        f"  Try:           curl '{base}/action=Fetch&FetchAction=Identifiers&ConfigSection=DEMO'",
        f"  Follow it:     curl '{base}/action=QueueInfo&QueueName=fetch"
        "&QueueAction=GetStatus&Token=TOKEN'",
    ]
    if worker is not None:
        threads = ", ".join(f"{name} {n}" for name, n in worker.engine.queues.items())
        lines.append(f"  Worker:        in this process (MaximumThreads: {threads})")
    else:
        lines.append(
            f"  Worker:        none (--no-worker); run `{manage_command('runworker fetch')}`"
        )
    limit = settings.CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW
    if limit:
        lines.append(
            f"  Limit:         {limit} submissions per client per"
            f" {settings.CONNECTOR_ACI_RATE_WINDOW_SECONDS:g} s"
            " (CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW)"
        )
    lines += ["", *access_lines()]
    if admin_password:
        lines += [
            "",
            "Created the user admin for the dashboard; its password (shown only now) is:",
            f"  {admin_password}",
            f"Change it with: {manage_command('changepassword admin')}",
            "Users for your colleagues (each gets a password printed once):",
            f"  {manage_command('adduser NAME --role viewer')}     (sees everything)",
            f"  {manage_command('adduser NAME --role operator')}   (also cancels, stops, pauses)",
            f"  {manage_command('adduser NAME --role admin')}      (also fetch tasks and users)",
        ]
    lines.append("Stop with Ctrl-C.")
    return base, lines
