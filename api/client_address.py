"""Who is calling: the peer's address, or the client's as named by a reverse proxy we trust.

uvicorn runs with --no-proxy-headers, so this is the one place X-Forwarded-For is read, and
only from proxies named in TRUSTED_PROXIES (default none): otherwise anyone could name a new
address on every request and escape every per-address limit."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from fastapi import Request

MAX_ADDRESS_LENGTH = 100


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _is_trusted(host: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The rightmost address in X-Forwarded-For that is not one of our proxies: each trusted
    proxy appends the address it saw, and whatever a client wrote itself stays to the left."""
    networks = _networks(trusted)
    if not networks or not _is_trusted(peer, networks):
        return peer[:MAX_ADDRESS_LENGTH]
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop[:MAX_ADDRESS_LENGTH]
    return (hops[0] if hops else peer)[:MAX_ADDRESS_LENGTH]


def limited_as(address: str) -> str:
    """What per-address limits count: an IPv6 client by its /64 (one subscriber's network,
    whose 2^64 addresses are all theirs to rotate through), anything else as it is."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address
    if not isinstance(parsed, IPv6Address):
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ip_network(f"{parsed}/64", strict=False))


def client_address(request: Request) -> str:
    """The caller as the per-address limits see it."""
    peer = request.client.host if request.client else "unknown"
    trusted = tuple(request.app.state.settings.TRUSTED_PROXIES)
    return limited_as(forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted))
