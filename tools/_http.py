"""The ``http_get`` tool: fetch a URL from allow-listed hosts, with size and time limits.

Redirects are followed by hand so that every hop's host is checked against the same
allow-list; the body is streamed and reading stops once the size limit is reached.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import anyio
import httpx

from ._tool import Tool, ToolFailure, tool

_TEXTUAL_TYPES = ("json", "xml", "javascript", "yaml", "csv", "x-www-form-urlencoded")


def _normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


class HostAllowList:
    """Hosts a tool may contact: exact names, or ``*.example.com`` for any subdomain.

    The port is not part of the match. An empty list allows no host at all.
    """

    __slots__ = ("_exact", "_suffixes")

    def __init__(self, hosts: Collection[str]) -> None:
        exact: set[str] = set()
        suffixes: set[str] = set()
        for entry in hosts:
            host = _normalize_host(entry)
            if host.startswith("*."):
                suffixes.add(host[1:])  # keeps the dot: "*.a.com" does not match "xa.com"
            elif host and "/" not in host and "*" not in host and ":" not in host:
                exact.add(host)
            else:
                raise ValueError(
                    f"allowed_hosts: {entry!r} must be a host name like 'example.com' or "
                    "'*.example.com' (no scheme, port or path)"
                )
        self._exact = frozenset(exact)
        self._suffixes = frozenset(suffixes)

    def allows(self, host: str) -> bool:
        """Whether ``host`` may be contacted."""
        host = _normalize_host(host)
        return host in self._exact or any(host.endswith(s) for s in self._suffixes)

    def describe(self) -> str:
        """The list as the model reads it."""
        entries = sorted(self._exact) + sorted(f"*{s}" for s in self._suffixes)
        return ", ".join(entries) if entries else "none"


def _parse_url(url: str, allow: HostAllowList, *, field: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ToolFailure(f"{field}: {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ToolFailure(f"{field}: only http and https URLs can be fetched, got {url!r}")
    if not parsed.host:
        raise ToolFailure(f"{field}: {url!r} has no host")
    if not allow.allows(parsed.host):
        raise ToolFailure(
            f"{field}: host {parsed.host!r} is not on the allow-list of this agent "
            f"(allowed hosts: {allow.describe()})"
        )
    return parsed


def _is_textual(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media.startswith("text/") or any(t in media for t in _TEXTUAL_TYPES)


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        room = limit - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            return bytes(body), True  # stop reading: the rest is never downloaded
        body += chunk
    return bytes(body), False


def _render(response: httpx.Response, body: bytes, truncated: bool, limit: int) -> str:
    content_type = response.headers.get("content-type", "")
    status = f"HTTP {response.status_code} {response.reason_phrase}"
    head = f"{status}\ncontent-type: {content_type or '-'}"
    if not _is_textual(content_type) or b"\0" in body[:8192]:
        size = "more than " + f"{limit:,}" if truncated else f"{len(body):,}"
        return f"{head}\n[binary body of {size} bytes not shown]"
    try:
        text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = body.decode("utf-8", errors="replace")
    if truncated:
        text += f"\n[... truncated: the body is longer than {limit:,} bytes]"
    return f"{head}\n\n{text}"


def http_get_tool(
    allowed_hosts: Collection[str] = (),
    *,
    max_bytes: int = 200_000,
    timeout_s: float = 15.0,
    max_redirects: int = 5,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    name: str = "http_get",
) -> Tool:
    """A tool that GETs a URL, but only from hosts the agent allows.

    Args:
        allowed_hosts: host names (``"docs.python.org"``) or wildcards
            (``"*.wikipedia.org"``); the default, empty, refuses every host.
        max_bytes: the most body bytes read; the rest is not downloaded.
        timeout_s: wall-clock limit of the whole fetch, redirects included.
        max_redirects: redirects followed (each target host must be allowed too).
        headers: extra request headers (e.g. a User-Agent).
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        name: the tool name the model sees.

    Raises:
        ValueError: a malformed allow-list entry or a non-positive limit.
    """
    allow = HostAllowList(allowed_hosts)
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if max_redirects < 0:
        raise ValueError(f"max_redirects must be >= 0, got {max_redirects}")
    request_headers = {"user-agent": "agentrt-http_get/0.1", **(headers or {})}

    async def http_get(url: str) -> str:
        """Fetch a URL.

        Args:
            url: the http(s) URL to fetch, e.g. "https://example.com/page".
        """
        current = _parse_url(url, allow, field="url")
        try:
            with anyio.fail_after(timeout_s):
                async with httpx.AsyncClient(
                    transport=transport,
                    headers=request_headers,
                    timeout=timeout_s,
                    follow_redirects=False,  # by hand below, so each hop's host is checked
                ) as client:
                    for _ in range(max_redirects + 1):
                        async with client.stream("GET", current) as response:
                            location = response.headers.get("location")
                            if response.is_redirect and location:
                                target = str(current.join(location))
                                current = _parse_url(target, allow, field="url (redirect)")
                                continue
                            body, truncated = await _read_bounded(response, max_bytes)
                            return _render(response, body, truncated, max_bytes)
        except TimeoutError:
            raise ToolFailure(f"url: no complete answer within {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ToolFailure(f"url: request failed: {type(exc).__name__}: {exc}") from None
        raise ToolFailure(f"url: more than {max_redirects} redirects")

    description = (
        "Fetch a web page or API response with HTTP GET and answer its status, content type "
        f"and text body (at most {max_bytes:,} bytes). Only these hosts can be reached: "
        f"{allow.describe()}."
    )
    return tool(
        name=name,
        description=description,
        timeout_s=timeout_s + 1.0,
        expected_latency_s=1.0,
        # GET is a safe method in HTTP's own terms: starting it speculatively is harmless.
        side_effect_free=True,
    )(http_get)
