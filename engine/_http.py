"""``HTTPEngine``: the thin API over a remote vLLM server (``agentrt engine serve`` or plain).

Prompts go as token ids to the completions endpoint and stream back as SSE; cache hints,
releases and forced outputs ride in ``vllm_xargs``. Against a plain vLLM server (no
agentrt plugin or scheduler) everything works but hints have no effect, and the
tokenizer must be given as a local folder. Against a ``vllm-router`` in front of several
servers, requests are routed by their session and releases and statistics go by
replica (``_replicas``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from ._base import EngineBase
from ._clock import now
from ._constraints import structural_tag_args, structured_outputs_args
from ._http_sampling import completion_logprobs, sampling_body
from ._jump_forward import HeadOnce, Jump, engine_jump
from ._prom import parse_prometheus
from ._protocol import EngineError
from ._replicas import RouterLink, server_stats, session_headers, sum_stats
from ._tokenizer import ChatTokenizer, HFCodec
from ._types import (
    EngineInfo,
    EngineLoad,
    EngineStats,
    FinishReason,
    GenerateRequest,
    RequestId,
    RequestStats,
    SessionId,
    TokenDelta,
)
from ._vllm_args import agentrt_extra_args


class HTTPEngine(EngineBase):
    """The Engine protocol over HTTP. Create with ``await HTTPEngine.connect(url)``.

    Invariants: one ``httpx.AsyncClient`` per engine; closing a stream early closes its
    HTTP response, which makes the server abort the request; behind a router
    (``router`` set) every request of a session goes out with its session header, and so
    does its release.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        tokenizer: ChatTokenizer,
        info: EngineInfo,
        num_blocks: int,
        router: RouterLink | None = None,
        *,
        jump_forward: bool = True,
    ) -> None:
        super().__init__(tokenizer, info)
        self._client = client
        self._num_blocks = num_blocks
        self.router = router
        self.jump_forward = jump_forward
        """Prefill a forced call's fixed head instead of decoding it (``_jump_forward``)."""
        self.jumped_tokens = 0
        """Output tokens prefilled instead of decoded by jump-forward."""

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        tokenizer: str | Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 600.0,
        jump_forward: bool = True,
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
        router = await RouterLink.detect(client)
        num_blocks = int(extra.get("num_blocks") or 0)
        return cls(client, chat_tok, info, num_blocks, router, jump_forward=jump_forward)

    def _jump(self, request: GenerateRequest) -> Jump | None:
        if not self.jump_forward:
            return None
        return engine_jump(request, self.tokenizer.encode_text, self._info.max_model_len)

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
        body.update(sampling_body(s))
        if request.forced_output is not None:
            body.pop("stop_token_ids", None)  # the forced tokens must all come out
        if request.cache_salt is not None:
            body["cache_salt"] = request.cache_salt
        if request.session:
            # The body names the session too: vllm-router's hash policies read ``user``
            # when a proxy on the way dropped the header (vLLM itself ignores the field).
            body["user"] = request.session
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
        done = False
        top = request.sampling.logprobs
        jump = self._jump(request)
        body = self._body(jump.engine_request(request) if jump is not None else request, rid)
        if jump is not None:
            body["structured_outputs"] = structural_tag_args(jump.rest)
            self.jumped_tokens += len(jump.head)
        head = HeadOnce(jump)  # the jumped head is output to the caller
        async with _completions_stream(
            self._client, body, session_headers(request.session)
        ) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise _error_from(resp, routed=self.router is not None)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = orjson.loads(data)
                if chunk.get("error"):
                    raise EngineError(f"engine error: {chunk['error']}")
                usage = chunk.get("usage")
                if usage:
                    details = usage.get("prompt_tokens_details") or {}
                    # A jumped head is output, not prompt: its cached KV is not counted.
                    cached = min(int(details.get("cached_tokens") or 0), len(request.prompt))
                for choice in chunk.get("choices") or []:
                    t = now()
                    ids = tuple(choice.get("token_ids") or ())
                    lps = completion_logprobs(choice.get("logprobs"), ids, top)
                    ids, text = head.apply(ids, choice.get("text") or "")
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
                    pending = TokenDelta(ids, text, t, logprobs=lps)
        if not done:
            # vLLM always ends a stream with [DONE]; a stream cut short means the server
            # (or, behind a router, the replica serving the request) went away mid-answer.
            raise EngineError(
                f"the engine's stream for {rid} ended before it finished: the server, or "
                "the replica behind a router that served it, may have died"
            )
        t = now()
        stats = RequestStats(
            rid, len(request.prompt), cached, n_out, finish, arrival, first, t, error=error
        )
        last = pending or TokenDelta((), "", t)
        yield TokenDelta(last.token_ids, last.text, last.t, stats, last.logprobs)

    async def release(self, session: SessionId) -> None:
        """Release the run's KV. Behind a router, at once, on the replica that holds the
        session (the next request may go elsewhere); else with the next request."""
        if self.router is None:
            await super().release(session)
        else:
            await self.router.release(session, to_engine=self._info.supports_hints)

    async def stats(self) -> EngineStats:
        """The server's statistics; behind a router, every replica's summed.

        Raises:
            EngineError: the server (or a replica) cannot be reached.
        """
        parts = await self.replica_stats()
        return sum_stats(list(parts.values()))

    async def replica_stats(self) -> dict[str, EngineStats]:
        """Statistics by replica URL (one entry, "", when no router is in front).

        Raises:
            EngineError: the server (or a replica) cannot be reached.
        """
        info = self._info
        if self.router is None:
            one = await server_stats(
                self._client,
                "",
                block_size=info.block_size,
                hints=info.supports_hints,
                num_blocks=self._num_blocks,
            )
            return {"": one}
        return {
            url: await server_stats(
                self._client, url, block_size=info.block_size, hints=info.supports_hints
            )
            for url in await self.router.replicas()
        }

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
        return EngineLoad.from_gauges(
            waiting=int(m["vllm:num_requests_waiting"]),
            running=int(m["vllm:num_requests_running"]),
            kv_usage=float(m.get("vllm:kv_cache_usage_perc", 0.0)),
            max_num_seqs=None,  # a server's metrics do not say
        )

    async def reset_prefix_cache(self) -> None:
        """Ask the server (every replica, behind a router) to forget its prefix cache
        (vLLM serves this in dev mode)."""
        urls = ("",) if self.router is None else await self.router.replicas()
        for url in urls:
            resp = await self._client.post(f"{url}/reset_prefix_cache")
            if resp.status_code >= 400:
                raise EngineError(
                    f"{url or 'server'} refused to reset its prefix cache: {resp.status_code}"
                )

    async def aclose(self) -> None:
        await self._client.aclose()


@asynccontextmanager
async def _completions_stream(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
) -> AsyncIterator[httpx.Response]:
    """``POST /v1/completions`` streamed; transport failures, also while the body streams
    in, become an ``EngineError`` saying what broke."""
    try:
        async with client.stream("POST", "/v1/completions", json=body, headers=headers) as resp:
            yield resp
    except httpx.ConnectError as exc:
        raise EngineError(f"cannot reach the engine at {client.base_url}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise EngineError(
            f"the engine's stream broke off ({type(exc).__name__}: {exc}); the server, "
            "or the replica behind a router that served the request, may have died"
        ) from exc


def _error_from(resp: httpx.Response, *, routed: bool = False) -> Exception:
    try:
        message = resp.json().get("error", {}).get("message") or resp.text
    except ValueError:
        message = resp.text
    if resp.status_code == 400:
        return ValueError(f"engine rejected the request: {message}")
    if routed and resp.status_code >= 500:
        # vllm-router answers 5xx when the replica it chose cannot be reached.
        return EngineError(
            f"the router answered {resp.status_code} (is a replica down?): {message}"
        )
    return EngineError(f"engine answered {resp.status_code}: {message}")
