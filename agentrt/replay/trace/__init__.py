"""The trace room: the canonical trace format "agentrt-trace/1" and everything that makes one.

``_schema`` (the pydantic models of one JSON Lines file) and ``_trace`` (a loaded trace, its
checks, reading and writing) define the format; ``_tokens`` gives token-count content its
deterministic token ids; ``_arrivals`` sets when requests arrive. The importers turn public
workloads into it (``_importers`` holds what they share; ``_import_weka`` with ``_weka_raw``,
``_import_mooncake``, ``_import_swe``), ``_synthetic`` generates one, and ``_samples``
rebuilds the samples in ``traces/``. Nothing here knows how a trace is replayed.

The public names are re-exported by :mod:`agentrt.replay`.
"""
