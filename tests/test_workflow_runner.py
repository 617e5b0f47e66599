"""The worker's runner (core/workflow_runner.py) answers the SDK's per-payload context asks
outside the sandbox only for a converter that ignores them; workflows still run sandboxed, and
their payloads still go through the converter and its codec."""

from __future__ import annotations

import dataclasses
import os
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.client import Client
from temporalio.converter import (
    ExternalStorage,
    PayloadCodec,
    SerializationContext,
    StorageDriver,
    WithSerializationContext,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

from core.payload_codec import ENCODING
from core.temporal_client import encrypted_data_converter
from core.workflow_runner import _ContextFreeSandboxedRunner, takes_no_context, workflow_runner
from tests.sandbox_probe import probe_module


def _platform_converter():
    return encrypted_data_converter({"k1": os.urandom(32)}, "k1")


class _SigningCodec(PayloadCodec, WithSerializationContext):
    """A codec that would sign payloads with their workflow's id: it takes the context."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    async def encode(self, payloads):
        return list(payloads)

    async def decode(self, payloads):
        return list(payloads)

    def with_context(self, context: SerializationContext) -> _SigningCodec:
        return _SigningCodec(context)


def test_the_platforms_converter_takes_no_context_and_gets_the_context_free_sandbox():
    converter = _platform_converter()
    assert takes_no_context(converter)
    runner = workflow_runner(converter)
    assert isinstance(runner, _ContextFreeSandboxedRunner) and isinstance(runner, SandboxedWorkflowRunner)


class _NowhereDriver(StorageDriver):
    def name(self) -> str:
        return "nowhere"

    async def store(self, context, payloads):
        raise AssertionError("not stored in this test")

    async def retrieve(self, context, claims):
        raise AssertionError("not retrieved in this test")


def test_a_converter_that_takes_contexts_or_stores_externally_keeps_the_sdks_own_sandbox():
    platform = _platform_converter()
    signing = dataclasses.replace(platform, payload_codec=_SigningCodec())
    storing = dataclasses.replace(platform, external_storage=ExternalStorage(drivers=[_NowhereDriver()]))
    for converter in (signing, storing):
        assert not takes_no_context(converter)
        assert type(workflow_runner(converter)) is SandboxedWorkflowRunner


# A workflow of its own package (the sandbox imports it afresh): it runs an activity with a
# Decimal in and out, and its query tells whether the sandbox still refuses the wall clock.
PROBE = textwrap.dedent(
    """
    from datetime import datetime, timedelta
    from decimal import Decimal

    from pydantic import BaseModel
    from temporalio import activity, workflow
    from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError


    class Amount(BaseModel):
        value: Decimal


    @activity.defn
    def double(amount: Amount) -> Amount:
        return Amount(value=amount.value * 2)


    @workflow.defn
    class ProbeWorkflow:
        @workflow.run
        async def run(self, amount: Amount) -> Amount:
            return await workflow.execute_activity(double, amount, start_to_close_timeout=timedelta(seconds=30))

        @workflow.query
        def wall_clock(self) -> str:
            try:
                datetime.now()
                return "allowed"
            except RestrictedWorkflowAccessError:
                return "restricted"
    """
)


async def _run_probe(env, module, converter, runner, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """Runs the probe on `runner`; returns its workflow id and how often the SDK asked the
    sandboxed instance for a context."""
    asks = {"n": 0}
    sandboxed = sandbox_runner._Instance
    for name in ("get_serialization_context", "get_external_store_context"):

        def counted(self, command_info, _ask=getattr(sandboxed, name)):
            asks["n"] += 1
            return _ask(self, command_info)

        monkeypatch.setattr(sandboxed, name, counted)
    client = Client(**{**env.client.config(), "data_converter": converter})
    task_queue = f"runner-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(2) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[module.ProbeWorkflow],
            activities=[module.double],
            activity_executor=executor,
            workflow_runner=runner,
        ):
            handle = await client.start_workflow(
                module.ProbeWorkflow.run,
                module.Amount(value="1234.56"),
                id=f"probe-{task_queue}",
                task_queue=task_queue,
            )
            assert str((await handle.result()).value) == "2469.12"
            assert await handle.query(module.ProbeWorkflow.wall_clock) == "restricted"
    return handle.id, asks["n"]


async def test_workflows_on_it_stay_sandboxed_and_their_payloads_sealed(time_skipping_env, tmp_path, monkeypatch):
    _, module = probe_module(tmp_path, monkeypatch, PROBE)
    converter = _platform_converter()
    workflow_id, asks = await _run_probe(time_skipping_env, module, converter, workflow_runner(converter), monkeypatch)
    assert asks == 0, "the sandbox was not asked for a context"
    # Every payload the workflow wrote (its activity's input and result, its own result) is
    # sealed by the codec, as on the SDK's own runner. (Read with no codec: as stored.)
    history = await time_skipping_env.client.get_workflow_handle(workflow_id).fetch_history()
    payloads = [
        payload
        for event in history.events
        for attributes in (
            event.activity_task_scheduled_event_attributes.input,
            event.activity_task_completed_event_attributes.result,
            event.workflow_execution_completed_event_attributes.result,
        )
        for payload in attributes.payloads
    ]
    assert len(payloads) == 3
    assert all(payload.metadata["encoding"] == ENCODING for payload in payloads)


async def test_the_sdks_own_sandbox_asks_it_for_contexts(time_skipping_env, tmp_path, monkeypatch):
    # The probe can tell: on the SDK's runner, the same workflow asks the sandbox.
    _, module = probe_module(tmp_path, monkeypatch, PROBE)
    converter = _platform_converter()
    _, asks = await _run_probe(time_skipping_env, module, converter, SandboxedWorkflowRunner(), monkeypatch)
    assert asks > 0
