"""The API's in-flight slots per loan (api/workflow_calls.py): a request that cannot get one
in time, or gets one with too little time left for an answer, is 503 "nothing was done" and
sends nothing; every slot comes back. A stand-in for Temporal's client: these are the API's
own rules, before anything reaches a server (the real server's answers are in
tests/test_exactly_once_api.py)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pytest

from api import workflow_calls
from api.workflow_calls import IN_FLIGHT_PER_LOAN, execute_loan_update
from core.errors import ServiceUnavailable
from workflows.loan import LoanWorkflow

# The test's BUSY_RETRY_SECONDS: the held requests', and the one under test's (each request
# reads it when it starts; LEAST_ATTEMPT_SECONDS stays 2.0).
HELD_DEADLINE = 60.0
DEADLINE = 4.0


class CountedGate(asyncio.Semaphore):
    """The loan's slots, counting the slots handed out (a timed-out wait gets none)."""

    def __init__(self) -> None:
        super().__init__(IN_FLIGHT_PER_LOAN)
        self.granted = 0

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.granted += 1
        return True


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> CountedGate:
    """The one loan's slots (each test's requests all go to one loan)."""
    counted = CountedGate()
    monkeypatch.setattr(workflow_calls, "_gate", lambda workflow_id: counted)
    return counted


async def _every_slot_free(gate: CountedGate) -> None:
    for _ in range(IN_FLIGHT_PER_LOAN):
        await asyncio.wait_for(asyncio.Semaphore.acquire(gate), 1.0)
    for _ in range(IN_FLIGHT_PER_LOAN):
        gate.release()


class HeldUpdates:
    """A stand-in client whose updates are answered only when the test lets each go."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.answer: dict[str, asyncio.Event] = {}

    def get_workflow_handle(self, workflow_id: str) -> HeldUpdates:
        return self

    async def execute_update(self, update: Any, arg: Any, *, id: str, rpc_timeout: Any) -> str:
        self.sent.append(id)
        await self.answer.setdefault(id, asyncio.Event()).wait()
        return f"answer to {id}"


def _send(client: HeldUpdates, workflow_id: str, update_id: str) -> asyncio.Task[str]:
    return asyncio.create_task(
        execute_loan_update(
            client,  # type: ignore[arg-type]
            workflow_id,
            LoanWorkflow.invest,
            None,
            update_id=update_id,
        )
    )


async def _hold_every_slot(client: HeldUpdates, loan: str, monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Task[str]]:
    monkeypatch.setattr(workflow_calls, "BUSY_RETRY_SECONDS", HELD_DEADLINE)
    held = [_send(client, loan, f"held-{n}") for n in range(IN_FLIGHT_PER_LOAN)]
    while len(client.sent) < IN_FLIGHT_PER_LOAN:
        await asyncio.sleep(0.01)
    monkeypatch.setattr(workflow_calls, "BUSY_RETRY_SECONDS", DEADLINE)
    return held


async def test_a_request_that_gets_no_slot_in_time_is_503_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, gate: CountedGate
) -> None:
    client, loan = HeldUpdates(), "loan-no-slot"
    held = await _hold_every_slot(client, loan, monkeypatch)
    with pytest.raises(ServiceUnavailable) as refused:
        await _send(client, loan, "ninth")
    assert type(refused.value) is ServiceUnavailable  # not OutcomeUnknown: nothing was sent
    assert "nothing was done" in refused.value.detail
    assert "ninth" not in client.sent and gate.granted == IN_FLIGHT_PER_LOAN
    # The held ones still get their answers, and every slot comes back.
    for n in range(IN_FLIGHT_PER_LOAN):
        client.answer[f"held-{n}"].set()
    assert await asyncio.gather(*held) == [f"answer to held-{n}" for n in range(IN_FLIGHT_PER_LOAN)]
    await _every_slot_free(gate)


async def test_a_slot_got_with_too_little_time_left_is_not_used_and_comes_back(
    monkeypatch: pytest.MonkeyPatch, gate: CountedGate
) -> None:
    client, loan = HeldUpdates(), "loan-late-slot"
    held = await _hold_every_slot(client, loan, monkeypatch)
    late = _send(client, loan, "late")
    # One slot frees up when about 1.5 s of the late request's 4 s is left (under the 2 s an
    # answer needs): it takes the slot, and gives it back unsent.
    await asyncio.sleep(DEADLINE - 1.5)
    client.answer["held-0"].set()
    with pytest.raises(ServiceUnavailable) as refused:
        await late
    assert type(refused.value) is ServiceUnavailable
    assert "nothing was done" in refused.value.detail
    assert "late" not in client.sent
    assert gate.granted == IN_FLIGHT_PER_LOAN + 1  # it got the slot (not the slot's timeout)
    # The slot it took is free again: a request now gets it and is sent.
    client.answer["again"] = asyncio.Event()
    client.answer["again"].set()
    assert await _send(client, loan, "again") == "answer to again"
    for n in range(1, IN_FLIGHT_PER_LOAN):
        client.answer[f"held-{n}"].set()
    await asyncio.gather(*held)
    await _every_slot_free(gate)
