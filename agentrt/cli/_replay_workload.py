"""The workload of ``agentrt replay``: a trace file, an importer's output or the synthetic
generator, filtered by the number of LLM calls and the size of the recorded context."""

from __future__ import annotations

import argparse

from agentrt.replay.trace._import_mooncake import import_mooncake
from agentrt.replay.trace._import_swe import import_swe
from agentrt.replay.trace._import_weka import import_weka
from agentrt.replay.trace._pressure import pressure_trace
from agentrt.replay.trace._schema import TokenContent, TraceRequest
from agentrt.replay.trace._synthetic import SyntheticConfig, generate_synthetic
from agentrt.replay.trace._trace import Trace, load_trace


def load_source(args: argparse.Namespace) -> Trace:
    """The trace the options name, filtered by ``--min-calls``, ``--max-calls`` and
    ``--max-context``, then cut to ``--max-requests``.

    Raises:
        ValueError: ``--token-scale`` with a source that carries its own scale.
    """
    scale = args.token_scale
    if scale is not None and (args.trace or args.swe or args.pressure):
        raise ValueError("--token-scale applies to --weka, --mooncake and --synthetic only")
    filters = (args.max_calls, args.min_calls, args.max_context)
    early = args.max_requests if all(f is None for f in filters) else None
    if args.trace:
        trace = load_trace(args.trace)
    elif args.weka:
        trace = import_weka(
            args.weka,
            token_scale=scale or 1.0,
            max_conversations=args.max_conversations,
            max_requests=early,
            include_subagents=not args.no_subagents,
            max_tool_latency_s=args.max_tool_latency,
        )
    elif args.mooncake:
        trace = import_mooncake(args.mooncake, token_scale=scale or 1.0, max_requests=early)
    elif args.swe:
        trace = import_swe(args.swe, max_requests=early)
    elif args.pressure:
        trace = pressure_trace(seed=args.seed)
    else:
        if len(args.synthetic_calls) != 2:
            raise ValueError("--synthetic-calls takes LO,HI")
        lo, hi = args.synthetic_calls
        trace = generate_synthetic(
            SyntheticConfig(
                n_requests=args.synthetic_requests,
                seed=args.seed,
                token_scale=scale or 1.0,
                llm_calls=(lo, hi),
                system_tokens=args.synthetic_system_tokens,
                tool_latency_median_s=args.synthetic_tool_median,
            )
        )
    requests = list(trace.requests)
    if args.max_calls is not None:
        requests = [r for r in requests if len(r.calls) <= args.max_calls]
    if args.min_calls is not None:
        requests = [r for r in requests if len(r.calls) >= args.min_calls]
    if args.max_context is not None:
        requests = [r for r in requests if context_tokens(r) <= args.max_context]
    if args.max_requests is not None:
        requests = requests[: args.max_requests]
    if not requests:
        raise ValueError("no requests left to replay (check --max-calls / --max-requests)")
    return trace.with_requests(requests)


def context_tokens(request: TraceRequest) -> int:
    """The request's whole recorded context in tokens: system, query, every output, tool
    result and extra input (text estimated at 4 characters per token)."""
    return sum(
        c.tokens if isinstance(c, TokenContent) else len(c.text) // 4 for _, c in request.contents()
    )
