"""agentrt.cli — the ``agentrt`` program (also ``python -m agentrt``): every command-line module.

``_main`` picks the sub-command and imports only its module; each sub-command lives in its
own module here (``_model``, ``_engine``, ``_run``, ``_bench``, ``_replay``, with
``_engine_options`` for the engine flags they share). ``agentrt serve`` is the exception: its
module stays with the REST server it starts (``agentrt.server._cli``).
"""

from __future__ import annotations

from ._main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
