"""The report room: what a replay measured and how it is reported.

``_records`` is what the driver records per agent request; ``_metrics`` are pure functions
over records (percentiles, the theoretical maximum hit rate, load at target, fluidity);
``_summary`` reduces one run, ``_results`` compares runs across modes and loads, and
``_report`` writes JSON, CSV, Markdown (``_markdown``) and PNG plots (``_plots``); ``_page``
combines several reports into the results page. Nothing here imports the other rooms.

The public names are re-exported by :mod:`agentrt.replay`.
"""
