"""MCP tool servers over streamable HTTP, served in-process through an ASGI transport."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp")

import httpx2  # the HTTP library of mcp 2.x
from mcp_server_fixture import build_server

from agentrt.tools import ToolFailure, mcp_http_tools


@pytest.mark.anyio
async def test_tools_of_an_http_server_are_listed_and_called() -> None:
    server = build_server()
    app = server.streamable_http_app()
    transport = httpx2.ASGITransport(app=app)
    async with (
        server.session_manager.run(),
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
        mcp_http_tools("http://127.0.0.1:8000/mcp", http_client=client) as tools,
    ):
        by_name = {t.name: t for t in tools}
        assert "add" in by_name and by_name["add"].side_effect_free
        assert await by_name["add"].invoke({"a": 20, "b": 22}) == "42"
        with pytest.raises(ToolFailure, match="nope"):
            await by_name["fail"].invoke({"message": "nope"})
