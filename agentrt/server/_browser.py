"""Browsers against a key-less local server: cross-site requests and DNS rebinding.

With no API key, anything that can reach the port may call the server, and a web page
the user opens can reach ``127.0.0.1``:

* **Cross-site requests.** A page may POST a "simple" request (``text/plain``, form
  types) to another origin without asking first. Every request body must therefore be
  ``application/json``, which a page can only send after a CORS preflight this server
  never grants; and a request carrying a foreign ``Origin`` header is refused outright.
* **DNS rebinding.** A page on ``evil.example`` re-points that name at ``127.0.0.1``;
  its requests are then same-origin for the browser but carry ``Host: evil.example``.
  So the ``Host`` header must name the server: a loopback name unless configured.

Allowed by default: origins and hosts on loopback (``localhost``, ``127.0.0.0/8``,
``::1``, any port). The Host check applies when authentication is off, or when hosts are
configured; with keys a rebinding page cannot authenticate, and servers behind proxies
see many host names. ``"*"`` in a list allows everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ._errors import APIError

ANY = "*"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is loopback."""
    h = host.strip().strip("[]").lower().rstrip(".")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` header (``"[::1]:8000"`` -> ``"::1"``), None if malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        name = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _origin_host(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname


class BrowserGuard:
    """Refuses requests a browser could have been tricked into sending (see module doc).

    Args:
        allowed_hosts: extra ``Host`` names to accept; None: the default (check only
            when ``keys_enabled`` is false).
        allowed_origins: extra origins to accept (``"https://app.example:8443"``).
        keys_enabled: whether the server requires API keys.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str] | None,
        allowed_origins: Iterable[str],
        *,
        keys_enabled: bool,
    ) -> None:
        self.check_host = allowed_hosts is not None or not keys_enabled
        self.hosts = frozenset(h.strip().strip("[]").lower() for h in allowed_hosts or ())
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

    def refusal(self, method: str, headers: Mapping[str, str]) -> APIError | None:
        """Why this request must be refused, or None."""
        host = headers.get("host")
        if self.check_host and host is not None and not self._host_ok(host):
            return APIError(
                403,
                f"Host {host!r} is not a name of this server; start it with "
                f"--allowed-host to accept it",
                code="host_not_allowed",
            )
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin):
            return APIError(
                403,
                f"requests from origin {origin!r} are not allowed; start the server with "
                f"--allowed-origin to accept it",
                code="origin_not_allowed",
            )
        if method not in ("GET", "HEAD", "OPTIONS") and _has_body(headers):
            kind = headers.get("content-type", "")
            if kind.split(";", 1)[0].strip().lower() != "application/json":
                return APIError(
                    415,
                    f"request bodies must be sent as 'Content-Type: application/json', "
                    f"got {kind or 'none'!r}",
                    param="content-type",
                    code="unsupported_media_type",
                )
        return None

    def _host_ok(self, host: str) -> bool:
        if ANY in self.hosts:
            return True
        name = host_name(host)
        return name is not None and (is_loopback(name) or name.lower() in self.hosts)

    def _origin_ok(self, origin: str) -> bool:
        if ANY in self.origins or origin.strip().rstrip("/").lower() in self.origins:
            return True
        name = _origin_host(origin)
        return name is not None and is_loopback(name)


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers
