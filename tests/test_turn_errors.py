"""An engine failure inside an iteration reaches ``Agent.run``'s caller as itself.

The iteration runs in task groups (tools, split prefill), which wrap what fails in them;
a caller writing ``except EngineError`` (a replica that died behind a router) must not
get an exception group instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from agentrt import Agent
from agentrt._turn import sole_cause
from agentrt.engine import EngineError, EngineProxy, GenerateRequest, ScriptedEngine, TokenDelta

pytestmark = pytest.mark.anyio


class BreaksOff(EngineProxy):
    """Streams a few tokens of the scripted reply, then fails as a dead server would."""

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[TokenDelta, None]:
        n = 0
        async for delta in self.inner.generate(request):
            yield delta
            n += 1
            if n == 2:
                raise EngineError("the engine's stream broke off; the replica may have died")


async def test_an_engine_error_mid_stream_is_raised_as_itself() -> None:
    engine = BreaksOff(ScriptedEngine(["A long enough answer to be cut."]), owns_inner=True)
    agent = Agent(instructions="Be brief.", engine=engine)
    with pytest.raises(EngineError, match="replica may have died"):
        await agent.run("Hello?")
    await engine.aclose()


def test_a_group_of_one_error_is_that_error_and_of_several_stays_a_group() -> None:
    one = ExceptionGroup("outer", [ExceptionGroup("inner", [EngineError("boom")])])
    assert isinstance(sole_cause(one), EngineError)
    two = ExceptionGroup("outer", [EngineError("boom"), KeyError("k")])
    assert sole_cause(two) is two
