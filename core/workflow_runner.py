"""The worker's workflow runner: Temporal's sandbox, without asking it for contexts nothing reads.

For every payload sequence it encodes or decodes, the SDK asks the workflow's instance for a
serialization context (which workflow or activity the payloads belong to; once per sequence
when it decodes an activation, once in each of its three passes when it encodes a completion)
and, when it encodes, for a store context (for external payload storage), so that a converter
or codec that signs or routes by them can. In the sandbox each ask compiles and executes a
snippet inside it with the sandbox's importer applied. The platform's converter (pydantic, then
the encryption codec) takes no context and stores nothing externally, so every answer ends up
unused. Measured on a due-date burst of 200 loans (bench/platform_bench.py's, on this
machine's 2 cores), the worker spent 5.48 s of CPU with the SDK's runner and 4.59 s with
this one; the burst took 5.96 s and 5.14 s.

The runner below answers those two asks outside the sandbox when, and only when, the data
converter shows they change nothing: no external storage, a codec and a failure converter that
take no context, and a payload converter that gives itself back for a workflow's, an
activity's and a Nexus operation's context. Everything a workflow runs still runs in the
sandbox, with its restrictions; the commands and payloads it produces are the same, so
histories replay alike on either runner (the replay tests use the SDK's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import temporalio.bridge.proto.workflow_activation
import temporalio.bridge.proto.workflow_completion
import temporalio.workflow
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    NexusSerializationContext,
    SerializationContext,
    StorageDriverStoreContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


def takes_no_context(converter: DataConverter) -> bool:
    """Whether serialization contexts and store contexts change nothing for this converter."""
    if converter.external_storage is not None:
        return False
    if isinstance(converter.payload_codec, WithSerializationContext):
        return False
    if isinstance(converter.failure_converter, WithSerializationContext):
        return False
    # The payload converter (a composite of encoding converters) says itself whether any of
    # its parts takes a context: given one, it gives itself back when none does.
    contexts: list[SerializationContext] = [
        WorkflowSerializationContext(namespace="default", workflow_id="probe"),
        ActivitySerializationContext(
            namespace="default",
            activity_id="probe",
            activity_type="probe",
            activity_task_queue="probe",
            workflow_id="probe",
            workflow_type="probe",
            is_local=False,
        ),
        NexusSerializationContext(endpoint="probe", service="probe", operation="probe"),
    ]
    return all(converter.with_context(context) is converter for context in contexts)


@dataclass(frozen=True)
class _ContextFreeSandboxedRunner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """The sandboxed instance, answering the two context asks itself (see the module's text)."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(
        self, act: temporalio.bridge.proto.workflow_activation.WorkflowActivation
    ) -> temporalio.bridge.proto.workflow_completion.WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return None  # (the converter is the same with any context)

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)  # (no external storage reads it)

    def get_info(self) -> temporalio.workflow.Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self._sandboxed.get_thread_id()  # (the deadlock detector's stack dump)


def workflow_runner(converter: DataConverter) -> WorkflowRunner:
    """Temporal's sandbox for this converter: the context-free one when contexts change nothing."""
    return _ContextFreeSandboxedRunner() if takes_no_context(converter) else SandboxedWorkflowRunner()


__all__ = ["takes_no_context", "workflow_runner"]
