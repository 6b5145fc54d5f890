"""The http_get tool: allow-listed hosts only (redirects included), size and time limits.

Every test uses ``httpx.MockTransport`` or is refused before any request: no network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from agentrt.tools import ToolFailure, http_get_tool
from agentrt.tools._http import HostAllowList


def _site(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/hello":
        return httpx.Response(200, text="hello world", headers={"content-type": "text/plain"})
    if request.url.path == "/json":
        return httpx.Response(200, json={"answer": 42})
    if request.url.path == "/to-docs":
        return httpx.Response(302, headers={"location": "https://docs.example.com/hello"})
    if request.url.path == "/to-evil":
        return httpx.Response(302, headers={"location": "https://evil.test/steal"})
    if request.url.path == "/loop":
        return httpx.Response(302, headers={"location": "/loop"})
    if request.url.path == "/image":
        return httpx.Response(
            200, content=b"\x89PNG\x00\x00", headers={"content-type": "image/png"}
        )
    return httpx.Response(404, text="not here")


def _refuse_all(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, got {request.url}")


@pytest.mark.anyio
async def test_fetches_an_allowed_url() -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_site))
    assert await tool.invoke({"url": "https://example.com/hello"}) == (
        "HTTP 200 OK\ncontent-type: text/plain\n\nhello world"
    )


@pytest.mark.anyio
async def test_json_and_error_statuses_are_answered_as_text() -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_site))
    assert (await tool.invoke({"url": "https://example.com/json"})).endswith('{"answer":42}')
    assert (await tool.invoke({"url": "https://example.com/nope"})).startswith("HTTP 404 Not Found")


@pytest.mark.anyio
async def test_by_default_every_host_is_refused() -> None:
    # No transport, no allow-list: the refusal happens before any connection is made.
    with pytest.raises(
        ToolFailure, match=r"host 'example\.com' is not on the allow-list .*allowed hosts: none"
    ):
        await http_get_tool().invoke({"url": "https://example.com/"})


@pytest.mark.anyio
async def test_a_host_off_the_allow_list_is_refused_without_a_request() -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_refuse_all))
    with pytest.raises(ToolFailure, match=r"host 'example\.org' is not on the allow-list"):
        await tool.invoke({"url": "http://example.org/"})
    with pytest.raises(ToolFailure, match=r"host 'sub\.example\.com' is not on the allow-list"):
        await tool.invoke({"url": "http://sub.example.com/"})


@pytest.mark.anyio
async def test_a_redirect_to_an_allowed_host_is_followed() -> None:
    tool = http_get_tool(["example.com", "*.example.com"], transport=httpx.MockTransport(_site))
    assert (await tool.invoke({"url": "https://example.com/to-docs"})).endswith("hello world")


@pytest.mark.anyio
async def test_a_redirect_to_a_host_off_the_allow_list_is_refused() -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_site))
    with pytest.raises(
        ToolFailure, match=r"url \(redirect\): host 'evil\.test' is not on the allow-list"
    ):
        await tool.invoke({"url": "https://example.com/to-evil"})


@pytest.mark.anyio
async def test_redirect_loops_stop() -> None:
    tool = http_get_tool(["example.com"], max_redirects=3, transport=httpx.MockTransport(_site))
    with pytest.raises(ToolFailure, match="more than 3 redirects"):
        await tool.invoke({"url": "https://example.com/loop"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("not a url", "only http and https"),
        ("http:///path-only", "has no host"),
    ],
)
async def test_malformed_or_non_http_urls_are_refused(url: str, message: str) -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_refuse_all))
    with pytest.raises(ToolFailure, match=message):
        await tool.invoke({"url": url})


@pytest.mark.anyio
async def test_the_body_stops_being_read_at_the_size_limit() -> None:
    chunks_sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        while True:
            chunks_sent += 1
            yield b"a" * 1_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "text/plain"})

    tool = http_get_tool(["example.com"], max_bytes=5_500, transport=httpx.MockTransport(handler))
    text = await tool.invoke({"url": "https://example.com/stream"})
    head, body = text.split("\n\n", 1)
    assert head == "HTTP 200 OK\ncontent-type: text/plain"
    assert body == "a" * 5_500 + "\n[... truncated: the body is longer than 5,500 bytes]"
    assert chunks_sent <= 7


@pytest.mark.anyio
async def test_a_slow_server_times_out() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(10)
        return httpx.Response(200)

    tool = http_get_tool(["example.com"], timeout_s=0.2, transport=httpx.MockTransport(handler))
    started = anyio.current_time()
    with pytest.raises(ToolFailure, match=r"no complete answer within 0\.2 s"):
        await tool.invoke({"url": "https://example.com/"})
    assert anyio.current_time() - started < 2.0


@pytest.mark.anyio
async def test_connection_errors_become_tool_failures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(handler))
    with pytest.raises(ToolFailure, match="request failed: ConnectError: connection refused"):
        await tool.invoke({"url": "https://example.com/"})


@pytest.mark.anyio
async def test_binary_bodies_are_not_shown() -> None:
    tool = http_get_tool(["example.com"], transport=httpx.MockTransport(_site))
    assert await tool.invoke({"url": "https://example.com/image"}) == (
        "HTTP 200 OK\ncontent-type: image/png\n[binary body of 6 bytes not shown]"
    )


def test_allow_list_matching() -> None:
    allow = HostAllowList(["Example.COM.", "*.wiki.org"])
    assert allow.allows("example.com") and allow.allows("EXAMPLE.com.")
    assert allow.allows("en.wiki.org") and allow.allows("a.b.wiki.org")
    assert not allow.allows("wiki.org") and not allow.allows("xwiki.org")
    assert not allow.allows("example.com.evil.test")
    assert allow.describe() == "example.com, *.wiki.org"


@pytest.mark.parametrize("entry", ["https://example.com", "example.com:8080", "exa*mple.com", ""])
def test_malformed_allow_list_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        http_get_tool([entry])


def test_tool_metadata() -> None:
    tool = http_get_tool(["example.com"])
    assert tool.name == "http_get" and tool.side_effect_free
    assert "Only these hosts can be reached: example.com." in tool.description
