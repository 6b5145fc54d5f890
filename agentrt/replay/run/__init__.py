"""The run room: replaying a trace through the orchestrator, one mode at one load at a time.

``_vocab`` and ``_layout`` turn recorded outputs into the exact tokens each call emits;
``_plan`` turns a trace into per-request plans; ``_replay_engine`` forces those outputs and
records every engine call, ``_replay_tools`` sleeps and answers as recorded; ``_sources``
names what a run varies (mode, load, engine) and ``_driver`` runs every request as a real
agent run. It reads traces (the trace room) and writes records (the report room).

The public names are re-exported by :mod:`agentrt.replay`.
"""
