"""Who sent a request and where it reached us: one place for both rules.

The client's address is recorded with every change and decides what the ACI
endpoint lets a caller do, so it must not be something a caller can forge. It
is the peer of the connection (``REMOTE_ADDR``), except when that peer is one
of ``CONNECTOR_TRUSTED_PROXIES``: then ``X-Forwarded-For`` is read from the
right (the hop our proxy added) to the left, skipping further trusted proxies,
and the first address that is not one of them is the client. Anything left of
it was written by the client itself and is never believed. An entry that is
not an IP address ends the walk with an unknown client (""), which no role of
the endpoint holds.

This module imports nothing of Django at run time, so settings can use it to
check the configured ranges when the process starts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What ``*`` stands for in a list of clients or proxies: every address.
EVERYWHERE: tuple[IPNetwork, ...] = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv6Network("::/0"),
)


def parse_ip(text: str) -> IPAddress | None:
    """The address in ``text`` (``1.2.3.4``, ``::1``, ``[::1]:80``, ``1.2.3.4:80``), or None.

    IPv4 addresses mapped into IPv6 (``::ffff:127.0.0.1``, as a dual-stack
    socket reports them) are the IPv4 address, so one rule covers both.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str], *, setting: str) -> tuple[IPNetwork, ...]:
    """IP addresses and CIDR ranges (``*`` = all) of a setting; ImproperlyConfigured if bad."""
    networks: list[IPNetwork] = []
    for entry in entries:
        entry = str(entry).strip()
        if entry == "*":
            networks.extend(EVERYWHERE)
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{setting}: {entry!r} is not an IP address or a CIDR range (like 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def in_networks(address: IPAddress | None, networks: Iterable[IPNetwork]) -> bool:
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


def _trusted_proxies() -> tuple[IPNetwork, ...]:
    from django.conf import settings

    return _cached_networks(tuple(getattr(settings, "CONNECTOR_TRUSTED_PROXIES", ())))


_NETWORK_CACHE: dict[tuple[str, ...], tuple[IPNetwork, ...]] = {}


def _cached_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Parsed once per distinct setting value; tests change the setting.
    if entries not in _NETWORK_CACHE:
        _NETWORK_CACHE[entries] = parse_networks(entries, setting="CONNECTOR_TRUSTED_PROXIES")
    return _NETWORK_CACHE[entries]


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent the request ("" when it cannot be known)."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    proxies = _trusted_proxies()
    if not proxies or not in_networks(parse_ip(peer), proxies):
        return peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return ""
        client = str(address)
        if not in_networks(address, proxies):
            return client
    # Every hop was one of our proxies: the leftmost is as far back as we can see.
    return client


def server_address(request: HttpRequest) -> tuple[str, int]:
    """The host and port the client reached us on."""
    try:
        host = request.get_host()
    except Exception:
        # Host validation is the middleware's job; a token still needs a host.
        host = request.META.get("SERVER_NAME", "localhost")
    port_text = ""
    if not host.endswith("]") and ":" in host:
        host, port_text = host.rsplit(":", 1)
    try:
        port = int(port_text or request.get_port())
    except ValueError:
        port = 443 if request.is_secure() else 80
    return host or "localhost", port
