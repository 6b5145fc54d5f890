"""Engine replicas behind vLLM's router: the session header, routed releases, summed stats.

``HTTPEngine`` pointed at a ``vllm-router`` finds its replicas here (the router answers
``GET /list_workers``). What changes behind a router:

* every request names its session in the ``X-Session-Id`` header, the first header
  vllm-router's session-affine policies (``consistent_hash``, ``sticky_least_loaded``)
  key on, so a run's iterations land where its KV lives (the body carries the session
  too, in the tier payload, for the replica's scheduler);
* a release can no longer ride on the engine's next request — that request may belong
  to another session and go to another replica — so it is a request of its own,
  ``POST /agentrt/release``, routed by the same header, followed by the router's
  ``POST /finish_session`` (which ``sticky_least_loaded`` counts active sessions by);
* ``/metrics`` through the router reaches one replica only, so statistics are read from
  each replica and summed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from ._prom import parse_prometheus
from ._protocol import EngineError
from ._session_ledger import SessionRecord, decode_sessions
from ._tier_wire import decode_tier_stats, merge_tier_stats
from ._types import EngineStats, SessionId, TierStats

logger = logging.getLogger(__name__)

SESSION_HEADER = "X-Session-Id"
"""Header naming the request's session; vllm-router hashes or pins on it."""


def session_headers(session: SessionId | None) -> dict[str, str]:
    """The headers that route a request by its session (none for a session-less one)."""
    return {SESSION_HEADER: session} if session else {}


async def server_stats(
    client: httpx.AsyncClient,
    url: str,
    *,
    block_size: int,
    hints: bool,
    num_blocks: int | None = None,
) -> EngineStats:
    """One ``agentrt engine serve`` server's statistics (``url`` "" is the client's base;
    ``num_blocks`` None: asked of the server).

    Raises:
        EngineError: the server cannot be reached or answers with an error.
    """
    try:
        metrics = (await client.get(f"{url}/metrics")).raise_for_status().text
        tiers: dict[str, TierStats] = {}
        if hints:
            resp = (await client.get(f"{url}/agentrt/tier_stats")).raise_for_status()
            tiers = decode_tier_stats(resp.json())
        if num_blocks is None:
            info = await client.get(f"{url}/agentrt/info")
            ok = info.status_code == 200
            num_blocks = int(info.json().get("num_blocks") or 0) if ok else 0
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineError(f"cannot read the statistics of {url or client.base_url}: {exc}") from exc
    m = parse_prometheus(metrics)
    return EngineStats(
        prefix_cache_queries=int(m.get("vllm:prefix_cache_queries_total", 0)),
        prefix_cache_hits=int(m.get("vllm:prefix_cache_hits_total", 0)),
        kv_usage=float(m.get("vllm:kv_cache_usage_perc", 0.0)),
        num_running=int(m.get("vllm:num_requests_running", 0)),
        num_waiting=int(m.get("vllm:num_requests_waiting", 0)),
        block_size=block_size,
        num_blocks=num_blocks,
        tiers=tiers,
    )


def sum_stats(parts: Sequence[EngineStats]) -> EngineStats:
    """Several replicas as one engine: counts and blocks add up, KV usage is the share
    of all blocks in use (the mean when block counts are unknown).

    Raises:
        ValueError: no replica to sum.
    """
    if not parts:
        raise ValueError("sum_stats needs at least one replica's statistics")
    blocks = sum(p.num_blocks for p in parts)
    usage = (
        sum(p.kv_usage * p.num_blocks for p in parts) / blocks
        if blocks
        else sum(p.kv_usage for p in parts) / len(parts)
    )
    tiers = merge_tier_stats(p.tiers for p in parts) if any(p.tiers for p in parts) else {}
    return EngineStats(
        prefix_cache_queries=sum(p.prefix_cache_queries for p in parts),
        prefix_cache_hits=sum(p.prefix_cache_hits for p in parts),
        kv_usage=usage,
        num_running=sum(p.num_running for p in parts),
        num_waiting=sum(p.num_waiting for p in parts),
        block_size=parts[0].block_size,
        num_blocks=blocks,
        tiers=tiers,
    )


async def server_sessions(
    client: httpx.AsyncClient, url: str = ""
) -> dict[SessionId, SessionRecord]:
    """The sessions one server's scheduler saw (``GET /agentrt/sessions``).

    Raises:
        EngineError: the server cannot be reached or answers with an error or a bad body.
    """
    try:
        resp = (await client.get(f"{url}/agentrt/sessions")).raise_for_status()
        return decode_sessions(resp.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise EngineError(f"cannot read the sessions of {url or client.base_url}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RouterLink:
    """What ``HTTPEngine`` knows of the router it talks to.

    Invariant: ``client`` is the engine's own client, whose base URL is the router; the
    replica URLs are asked for when needed (the router's set may change).
    """

    client: httpx.AsyncClient = field(repr=False)

    @classmethod
    async def detect(cls, client: httpx.AsyncClient) -> RouterLink | None:
        """A link if the server behind ``client`` is a vllm-router, else None.

        A vLLM server has no ``/list_workers``; the router answers ``{"urls": [...]}``.
        """
        try:
            resp = await client.get("/list_workers")
            urls = resp.json().get("urls") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        if not isinstance(urls, list):
            return None
        return cls(client)

    async def replicas(self) -> tuple[str, ...]:
        """The replica URLs the router routes to now.

        Raises:
            EngineError: the router cannot be reached or answers oddly.
        """
        try:
            urls = (await self.client.get("/list_workers")).raise_for_status().json()["urls"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"cannot list the router's replicas: {exc}") from exc
        return tuple(sorted(str(u).rstrip("/") for u in urls))

    async def release(self, session: SessionId, *, to_engine: bool) -> None:
        """Release ``session`` on the replica that holds it (routed by its header), then
        tell the router the session is over.

        Never raises: a release only orders eviction, so a lost one (a dead replica, an
        old router) costs cache order, not correctness, and must not hide the error that
        may have ended the run. Failures are logged.
        """
        if to_engine:
            await self._post(session, "/agentrt/release", json={"sessions": [session]})
        await self._post(session, "/finish_session", params={"session_id": session})

    async def _post(
        self,
        session: SessionId,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
    ) -> None:
        try:
            resp = await self.client.post(
                path, headers=session_headers(session), json=json, params=params
            )
        except httpx.HTTPError as exc:
            logger.warning("release of %s: %s failed: %s", session, path, exc)
            return
        if resp.status_code >= 400:
            logger.warning(
                "release of %s: %s answered %s: %s",
                session,
                path,
                resp.status_code,
                resp.text[:200],
            )
