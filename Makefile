# The two commands of the README. Both set up first (idempotent, fast when done).
PY := .venv/bin/python

.PHONY: setup demo test test-replicas lint bench-engine conformance

setup:
	@bash scripts/setup.sh

# Main job: an example agent answers a question end to end on the embedded engine.
demo: setup
	@$(PY) examples/agents/units_agent.py

# The whole test suite (CI runs this).
test: setup
	@$(PY) -m pytest -q

# Two engine replicas behind vllm-router (opt-in: several minutes; not part of `test`).
test-replicas: setup
	@AGENTRT_REPLICA_TESTS=1 $(PY) -m pytest -q -s tests/test_replicas_engine.py

lint: setup
	@$(PY) -m ruff check agentrt engine tools tests examples
	@bash scripts/typecheck.sh

# The differential suite: the same requests through vLLM's own OpenAI server and agentrt
# serve (starts both; writes its table under runs/conformance-*). Not part of `test`.
conformance: setup
	@$(PY) -m pytest -q -s -m conformance tests/conformance
