"""``python -m agentrt`` is the ``agentrt`` command."""

from __future__ import annotations

import sys

from agentrt.cli import main

if __name__ == "__main__":
    sys.exit(main())
