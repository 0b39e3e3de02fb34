"""The client's network address, the same everywhere it is recorded or counted: the audit trail,
sign-in lockout (django-axes), refused signatures, report downloads and unknown questionnaire
links.

Behind the TLS proxy (BEHIND_PROXY, which sets SECURE_PROXY_SSL_HEADER) every REMOTE_ADDR is the
proxy's own, so the address the proxy appended to X-Forwarded-For is used: the last entry, since
earlier ones come from the client and can be forged. Without a proxy, X-Forwarded-For is ignored
for the same reason.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text ("" when unknown or not an IP address)."""
    address = request.META.get("REMOTE_ADDR", "")
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        address = forwarded or address
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""


def client_network(request: HttpRequest) -> str:
    """What rate limits count against: the address, or for IPv6 its /64, which one household or
    phone holds whole."""
    address = client_address(request)
    if address and ipaddress.ip_address(address).version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return address
