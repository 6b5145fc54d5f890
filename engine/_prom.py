"""A small reader of Prometheus' text format: enough to read vLLM's ``/metrics``."""

from __future__ import annotations


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum each metric over its label sets (one engine per server: sums are the values).

    Comment lines and malformed lines are skipped; ``name{labels} value [timestamp]``.
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.rpartition("}") if "}" in line else ("", "", line)
        if head:
            name = head.split("{", 1)[0]
            fields = rest.split()
        else:
            parts = line.split()
            name, fields = parts[0], parts[1:]
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        out[name] = out.get(name, 0.0) + value
    return out
