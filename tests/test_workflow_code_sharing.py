"""Workflow sandboxes share compiled code, and nothing else: each cached run still has its own
module namespace and the sandbox's restrictions (core/workflow_code_sharing.py)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import uuid

from temporalio.worker import Worker

from core.workflow_code_sharing import SharedCodeFinder, share_compiled_workflow_code
from tests.sandbox_probe import probe_module
from workflows.loan import LoanWorkflow

# A workflow module of its own package, written for each test: waits forever; its query
# tells which code, which function object and which module namespace its sandbox runs, and
# whether the sandbox still refuses the wall clock.
PROBE = textwrap.dedent(
    """
    from datetime import datetime

    from temporalio import workflow
    from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError

    RUNS_IN_THIS_MODULE = []


    def marker():
        return None


    @workflow.defn
    class ProbeWorkflow:
        @workflow.run
        async def run(self) -> None:
            RUNS_IN_THIS_MODULE.append(workflow.info().workflow_id)
            await workflow.wait_condition(lambda: False)

        @workflow.query
        def probe(self) -> dict:
            try:
                datetime.now()
                wall_clock = "allowed"
            except RestrictedWorkflowAccessError:
                wall_clock = "restricted"
            return {
                "code": id(marker.__code__),
                "function": id(marker),
                "runs_in_module": len(RUNS_IN_THIS_MODULE),
                "wall_clock": wall_clock,
            }
    """
)


async def _probe_two_runs(env, module) -> list[dict]:
    task_queue = f"probe-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=task_queue, workflows=[module.ProbeWorkflow]):
        handles = [
            await env.client.start_workflow(
                module.ProbeWorkflow.run, id=f"probe-{n}-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            for n in range(2)
        ]
        answers = [await handle.query(module.ProbeWorkflow.probe) for handle in handles]
        for handle in handles:
            await handle.terminate()
    return answers


async def test_cached_runs_share_compiled_code_and_nothing_else(time_skipping_env, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # (the finder goes when the test ends)
    package, _ = probe_module(tmp_path, monkeypatch, PROBE)
    finder = share_compiled_workflow_code([package])
    assert share_compiled_workflow_code([package]) is finder, "installed once"
    module = importlib.import_module(f"{package}.probe")
    first, second = await _probe_two_runs(time_skipping_env, module)
    assert first["code"] == second["code"], "both sandboxes run the same compiled code"
    assert first["function"] != second["function"], "each sandbox has its own functions"
    assert first["runs_in_module"] == second["runs_in_module"] == 1, "each sandbox has its own module state"
    assert first["wall_clock"] == second["wall_clock"] == "restricted", "the sandbox still refuses the wall clock"


async def test_without_the_finder_each_sandbox_compiles_again(time_skipping_env, tmp_path, monkeypatch):
    # The probe can tell: without the finder, two cached runs hold two copies of the code.
    _, module = probe_module(tmp_path, monkeypatch, PROBE)
    first, second = await _probe_two_runs(time_skipping_env, module)
    assert first["code"] != second["code"]
    assert first["wall_clock"] == second["wall_clock"] == "restricted"


def test_the_finder_covers_only_its_packages_and_loads_the_same_code_as_a_plain_import():
    finder = SharedCodeFinder(["workflows"])
    assert finder.covers("workflows") and finder.covers("workflows.loan")
    assert not finder.covers("workflowsx") and not finder.covers("models.loan_workflow")
    assert finder.find_spec("models.loan_workflow", None) is None
    spec = finder.find_spec("workflows.loan", sys.modules["workflows"].__path__)
    assert spec is not None and spec.origin == sys.modules["workflows.loan"].__file__
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    again = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(again)
    assert fresh.LoanWorkflow is not again.LoanWorkflow is not LoanWorkflow
    assert fresh.LoanWorkflow.run.__code__ is again.LoanWorkflow.run.__code__
    assert fresh.LoanWorkflow.run.__code__.co_code == LoanWorkflow.run.__code__.co_code
