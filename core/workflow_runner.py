"""The worker's workflow runner: Temporal's sandbox, without asking it for contexts nothing reads.

For every payload it encodes or decodes, the SDK asks the workflow's instance for a
serialization context (which workflow or activity the payload belongs to) and a store context
(for external payload storage), so that a converter or codec that signs or routes by them can.
In the sandbox each ask compiles and executes a snippet inside it with the sandbox's importer
applied: four asks per payload sequence, about a sixth of the worker's CPU in a due-date burst
(py-spy). The platform's converter (pydantic, then the encryption codec) takes no context and
stores no payload externally, so every answer ends up unused. The runner below answers those two
asks outside the sandbox when, and only when, the data converter proves it so: a workflow's and
an activity's context give back the very same converter, and it has no external storage.
Everything a workflow runs still runs in the sandbox, with its restrictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import temporalio.bridge.proto.workflow_activation
import temporalio.bridge.proto.workflow_completion
import temporalio.workflow
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner


def takes_no_context(converter: DataConverter) -> bool:
    """Whether serialization contexts and store contexts change nothing for this converter."""
    if converter.external_storage is not None:
        return False
    workflow = WorkflowSerializationContext(namespace="default", workflow_id="probe")
    activity = ActivitySerializationContext(
        namespace="default",
        activity_id="probe",
        activity_type="probe",
        activity_task_queue="probe",
        workflow_id="probe",
        workflow_type="probe",
        is_local=False,
    )
    return converter.with_context(workflow) is converter and converter.with_context(activity) is converter


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
