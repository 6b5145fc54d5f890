"""``HTTPEngine``: the thin API over a remote vLLM server (``agentrt engine serve`` or plain).

Prompts go as token ids to the completions endpoint and stream back as SSE; cache hints,
releases and forced outputs ride in ``vllm_xargs``. Against a plain vLLM server (no
agentrt plugin or scheduler) everything works but hints have no effect, and the
tokenizer must be given as a local folder.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
import orjson

from ._base import EngineBase
from ._clock import now
from ._constraints import structured_outputs_args
from ._prom import parse_prometheus
from ._protocol import EngineError
from ._tier_wire import decode_tier_stats
from ._tokenizer import ChatTokenizer, HFCodec
from ._types import (
    KV_FULL,
    EngineInfo,
    EngineLoad,
    EngineStats,
    FinishReason,
    GenerateRequest,
    RequestId,
    RequestStats,
    TierStats,
    TokenDelta,
)
from ._vllm_args import agentrt_extra_args


class HTTPEngine(EngineBase):
    """The Engine protocol over HTTP. Create with ``await HTTPEngine.connect(url)``.

    Invariants: one ``httpx.AsyncClient`` per engine; closing a stream early closes its
    HTTP response, which makes the server abort the request.
    """

    def __init__(
        self, client: httpx.AsyncClient, tokenizer: ChatTokenizer, info: EngineInfo, num_blocks: int
    ) -> None:
        super().__init__(tokenizer, info)
        self._client = client
        self._num_blocks = num_blocks

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        tokenizer: str | Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 600.0,
    ) -> HTTPEngine:
        """Connect to a server and learn its model, context length and tokenizer.

        Raises:
            EngineError: the server is unreachable, or no tokenizer can be had.
        """
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
        )
        try:
            models = (await client.get("/v1/models")).raise_for_status().json()["data"]
            info_resp = await client.get("/agentrt/info")
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            await client.aclose()
            raise EngineError(f"cannot reach an engine at {url}: {exc}") from exc
        extra: dict[str, Any] = info_resp.json() if info_resp.status_code == 200 else {}
        model = models[0]
        if tokenizer is not None:
            chat_tok = ChatTokenizer.from_folder(tokenizer)
        elif extra.get("tokenizer_json"):
            chat_tok = ChatTokenizer(HFCodec.from_json_str(extra["tokenizer_json"]))
        else:
            await client.aclose()
            raise EngineError(
                f"{url} does not serve its tokenizer; pass tokenizer=<local model folder>"
            )
        info = EngineInfo(
            model=str(model["id"]),
            max_model_len=int(extra.get("max_model_len") or model.get("max_model_len") or 4096),
            block_size=int(extra.get("block_size") or 16),
            supports_hints=bool(extra.get("supports_hints", False)),
            backend="http",
        )
        return cls(client, chat_tok, info, int(extra.get("num_blocks") or 0))

    def _body(self, request: GenerateRequest, rid: RequestId) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self._info.model,
            "prompt": list(request.prompt),
            "max_tokens": self._max_output_tokens(request),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_token_ids": True,
            "request_id": rid,
            "priority": request.priority,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        if s.ignore_eos or request.forced_output is not None:
            body["ignore_eos"] = True
        if request.cache_salt is not None:
            body["cache_salt"] = request.cache_salt
        if request.constraint is not None:
            body["structured_outputs"] = structured_outputs_args(request.constraint)
        xargs = agentrt_extra_args(
            request, self._take_releases(), hints=self._info.supports_hints, flat=True
        )
        if xargs:
            body["vllm_xargs"] = xargs
        return body

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        rid = self._accept(request)
        arrival = now()
        first: float | None = None
        n_out, cached = 0, 0
        # No finish reason before the stream ends: the server dropped the request.
        finish: FinishReason = "abort"
        error: str | None = None
        pending: TokenDelta | None = None
        async with self._client.stream(
            "POST", "/v1/completions", json=self._body(request, rid)
        ) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise _error_from(resp)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = orjson.loads(data)
                if chunk.get("error"):
                    raise EngineError(f"engine error: {chunk['error']}")
                usage = chunk.get("usage")
                if usage:
                    details = usage.get("prompt_tokens_details") or {}
                    cached = int(details.get("cached_tokens") or 0)
                for choice in chunk.get("choices") or []:
                    t = now()
                    ids = tuple(choice.get("token_ids") or ())
                    if ids and first is None:
                        first = t
                    n_out += len(ids)
                    if choice.get("finish_reason"):
                        finish, error = self._finish_reason(
                            request, str(choice["finish_reason"]), n_out
                        )
                    # Hold one delta back: the last one must carry the stats (usage comes after).
                    if pending is not None:
                        yield pending
                    pending = TokenDelta(ids, choice.get("text") or "", t)
        t = now()
        stats = RequestStats(
            rid, len(request.prompt), cached, n_out, finish, arrival, first, t, error=error
        )
        last = pending or TokenDelta((), "", t)
        yield TokenDelta(last.token_ids, last.text, last.t, stats)

    async def stats(self) -> EngineStats:
        text = (await self._client.get("/metrics")).text
        m = parse_prometheus(text)
        tiers: dict[str, TierStats] = {}
        if self._info.supports_hints:
            tiers = decode_tier_stats((await self._client.get("/agentrt/tier_stats")).json())
        return EngineStats(
            prefix_cache_queries=int(m.get("vllm:prefix_cache_queries_total", 0)),
            prefix_cache_hits=int(m.get("vllm:prefix_cache_hits_total", 0)),
            kv_usage=float(m.get("vllm:kv_cache_usage_perc", 0.0)),
            num_running=int(m.get("vllm:num_requests_running", 0)),
            num_waiting=int(m.get("vllm:num_requests_waiting", 0)),
            block_size=self._info.block_size,
            num_blocks=self._num_blocks,
            tiers=tiers,
        )

    async def load(self) -> EngineLoad:
        """From the server's ``/metrics`` (vLLM's gauges, with or without agentrt's plugin).

        A server whose metrics cannot be read or lack the queue gauges gives an unknown
        load, which counts as saturated: background work is skipped rather than risked.
        """
        try:
            resp = await self._client.get("/metrics")
        except httpx.HTTPError:
            return EngineLoad(0, 0, known=False)
        m = parse_prometheus(resp.text) if resp.status_code == 200 else {}
        if "vllm:num_requests_waiting" not in m or "vllm:num_requests_running" not in m:
            return EngineLoad(0, 0, known=False)
        return EngineLoad(
            waiting=int(m["vllm:num_requests_waiting"]),
            running=int(m["vllm:num_requests_running"]),
            full=float(m.get("vllm:kv_cache_usage_perc", 0.0)) >= KV_FULL,
        )

    async def reset_prefix_cache(self) -> None:
        """Ask the server to forget its prefix cache (vLLM serves this in dev mode)."""
        resp = await self._client.post("/reset_prefix_cache")
        if resp.status_code >= 400:
            raise EngineError(f"server refused to reset its prefix cache: {resp.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_from(resp: httpx.Response) -> Exception:
    try:
        message = resp.json().get("error", {}).get("message") or resp.text
    except ValueError:
        message = resp.text
    if resp.status_code == 400:
        return ValueError(f"engine rejected the request: {message}")
    return EngineError(f"engine answered {resp.status_code}: {message}")
