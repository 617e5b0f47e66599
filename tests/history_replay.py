"""Replaying saved loan histories against today's LoanWorkflow, and checking what it decides.

Temporal's replayer compares commands (an activity was scheduled, a timer started), not their
content: a loan that now collects a different amount, or ends with another status, replays
cleanly. So each replay here also records what today's code does with the history's events
(every activity's and child workflow's input, every update's answer, the final result or
the continue-as-new input) and compares it, field by field, with what the history says the
code that wrote it did, and with the outcome stored beside the history when it was
recorded. Fields added since (with defaults) are allowed; any recorded value that changed is
a failure.

Every activity's task queue is compared too, relative to its workflow's own (a replay runs on a
queue of its own): the loans' PDFs go to the documents' queue since patch documents-own-queue,
and the replayer would not notice one sent elsewhere.

Beyond what an interceptor sees, every timer the replay starts (its duration) and every
search-attribute upsert (its values) are compared with the history's TimerStarted and
UpsertWorkflowSearchAttributes events: a due date, grace period or funding window that moved
is caught even when no amount changed.

Saved histories live in tests/histories/: `<name>.json` (a run's history as the server
exports it), `<name>.outcome.json` (the path it stands for, the history's sha256, and the
run's final outcome) and MANIFEST (every saved history and its sha256, one per line: a
history deleted with its outcome is still missed). Recording never replaces a file: a second
recording of a path gets a new name beside the first (running loans may have the old
history).

    python -m tests.history_replay adopt <path name> <history.json>

adopts a history exported elsewhere (`temporal workflow show -w loan-<id> -o json`, a
production loan's): it is replayed with today's code, and its outcome is taken from its own
last event and saved beside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.worker import (
    ContinueAsNewInput,
    ExecuteWorkflowInput,
    HandleUpdateInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    StartChildWorkflowInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from tests.codec_keys import test_data_converter
from workflows.award_event import AwardEventWorkflow, award_event_workflow_id
from workflows.loan import LoanWorkflow
from workflows.purchase_plan import PurchasePlanWorkflow

HISTORIES = Path(__file__).parent / "histories"


# -- what today's code does, replaying -------------------------------------------------------------
@dataclass
class Replayed:
    """What the workflow code did while replaying one history, in order."""

    activities: list[tuple[str, list[Any]]] = field(default_factory=list)
    # the task queue of each activity, in the same order, relative to the workflow's own
    # (relative_queue: "" for its own, "-documents" for the loans' PDFs)
    activity_queues: list[str] = field(default_factory=list)
    children: list[tuple[str, list[Any]]] = field(default_factory=list)
    updates: dict[str, tuple[str, Any]] = field(default_factory=dict)
    result: Any = None
    continued_as_new: list[Any] | None = None
    timers: list[timedelta] = field(default_factory=list)
    search_attributes: list[dict[str, Any]] = field(default_factory=list)


def relative_queue(queue: str, own: str) -> str:
    """A task queue as its workflow's own names it: a replay runs on a queue of its own."""
    return queue.removeprefix(own) if queue.startswith(own) else queue


class _Recording(Interceptor):
    """Sees, from inside the replayed workflow, what it decides. Holds no state of the
    workflow's own: it only appends to `self.seen`."""

    def __init__(self) -> None:
        self.seen = Replayed()

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput):
        seen = self.seen

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput):
                seen.activities.append((input.activity, list(input.args)))
                own = workflow.info().task_queue
                seen.activity_queues.append(relative_queue(input.task_queue or own, own))
                return super().start_activity(input)

            async def start_child_workflow(self, input: StartChildWorkflowInput):
                seen.children.append((input.workflow, list(input.args)))
                return await super().start_child_workflow(input)

            def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
                seen.continued_as_new = list(input.args)
                super().continue_as_new(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                seen.result = await super().execute_workflow(input)
                return seen.result

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                try:
                    answer = await super().handle_update_handler(input)
                except Exception as error:  # a refusal is an answer too
                    seen.updates[input.id] = ("failure", getattr(error, "type", type(error).__name__))
                    raise
                seen.updates[input.id] = ("success", answer)
                return answer

        return Inbound


def _indexed(fields: Any) -> dict[str, Any]:
    """Search attributes as comparable values (they are never encrypted). The server's own
    TemporalChangeVersion (patch markers) is not the workflow's."""
    return {key: json.loads(payload.data) for key, payload in fields.items() if key != "TemporalChangeVersion"}


@contextmanager
def _commands_of(seen: Replayed) -> Iterator[None]:
    """Reads the commands today's code sends back for each activation: the timers and the
    search-attribute upserts, which no interceptor sees. (The SDK's workflow instance is not
    public API: if it changes, this fails loudly rather than check nothing.)"""
    from temporalio.worker import _workflow_instance

    instance = _workflow_instance._WorkflowInstanceImpl
    original = instance.activate
    assert callable(original), "the SDK's workflow instance changed: update _commands_of"

    def activate(self, activation):  # type: ignore[no-untyped-def]
        completion = original(self, activation)
        if completion.HasField("successful"):
            commands = completion.successful.commands
            # a timer started and cancelled in one activation never reaches the server
            cancelled = {c.cancel_timer.seq for c in commands if c.WhichOneof("variant") == "cancel_timer"}
            for command in commands:
                kind = command.WhichOneof("variant")
                if kind == "start_timer" and command.start_timer.seq not in cancelled:
                    seen.timers.append(command.start_timer.start_to_fire_timeout.ToTimedelta())
                elif kind == "upsert_workflow_search_attributes":
                    seen.search_attributes.append(
                        _indexed(command.upsert_workflow_search_attributes.search_attributes.indexed_fields)
                    )
        return completion

    instance.activate = activate  # type: ignore[method-assign]
    try:
        yield
    finally:
        instance.activate = original  # type: ignore[method-assign]


async def replay(history: WorkflowHistory) -> Replayed:
    """Replays with today's LoanWorkflow (raises on a nondeterministic change) and returns
    what it did."""
    recording = _Recording()
    replayer = Replayer(
        workflows=[LoanWorkflow, PurchasePlanWorkflow, AwardEventWorkflow],
        data_converter=test_data_converter(unsealed="show"),
        interceptors=[recording],
    )
    with _commands_of(recording.seen):
        await replayer.replay_workflow(history)
    return recording.seen


# -- what the history says the recording code did -----------------------------------------------------
def _json_of_payload(payload: Payload) -> Any:
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return None
    if encoding != b"json/plain":
        raise AssertionError(f"a payload the replay check cannot read: encoding {encoding!r}")
    return json.loads(payload.data)


async def _decoded(payloads) -> list[Any]:
    codec = test_data_converter(unsealed="show").payload_codec
    assert codec is not None
    return [_json_of_payload(p) for p in await codec.decode(list(payloads))]


def _json_of_values(values: list[Any]) -> list[Any]:
    converter = test_data_converter(unsealed="show").payload_converter
    return [_json_of_payload(p) for p in converter.to_payloads(values)] if values else []


@dataclass
class Written:
    activities: list[tuple[str, list[Any]]] = field(default_factory=list)
    activity_queues: list[str] = field(default_factory=list)
    children: list[tuple[str, list[Any]]] = field(default_factory=list)
    updates: dict[str, tuple[str, Any]] = field(default_factory=dict)
    outcome: str = "running"  # completed | continued_as_new | failed | terminated | ...
    result: Any = None
    timers: list[timedelta] = field(default_factory=list)
    search_attributes: list[dict[str, Any]] = field(default_factory=list)


async def written(history: WorkflowHistory) -> Written:
    """The history's own record of what the code that wrote it decided, decoded."""
    out = Written()
    assert history.events[0].HasField("workflow_execution_started_event_attributes"), history.workflow_id
    own = history.events[0].workflow_execution_started_event_attributes.task_queue.name
    for event in history.events:
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            attrs = event.activity_task_scheduled_event_attributes
            out.activities.append((attrs.activity_type.name, await _decoded(attrs.input.payloads)))
            out.activity_queues.append(relative_queue(attrs.task_queue.name, own))
        elif kind == "start_child_workflow_execution_initiated_event_attributes":
            attrs = event.start_child_workflow_execution_initiated_event_attributes
            out.children.append((attrs.workflow_type.name, await _decoded(attrs.input.payloads)))
        elif kind == "workflow_execution_update_completed_event_attributes":
            attrs = event.workflow_execution_update_completed_event_attributes
            update_id = attrs.meta.update_id
            if attrs.outcome.HasField("success"):
                out.updates[update_id] = ("success", (await _decoded(attrs.outcome.success.payloads) or [None])[0])
            else:
                out.updates[update_id] = ("failure", attrs.outcome.failure.application_failure_info.type)
        elif kind == "timer_started_event_attributes":
            out.timers.append(event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta())
        elif kind == "upsert_workflow_search_attributes_event_attributes":
            values = _indexed(event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
            if values:  # (an upsert of patch markers only is the server's)
                out.search_attributes.append(values)
        elif kind == "workflow_execution_completed_event_attributes":
            out.outcome = "completed"
            out.result = (
                await _decoded(event.workflow_execution_completed_event_attributes.result.payloads) or [None]
            )[0]
        elif kind == "workflow_execution_continued_as_new_event_attributes":
            out.outcome = "continued_as_new"
            out.result = await _decoded(event.workflow_execution_continued_as_new_event_attributes.input.payloads)
        elif kind == "workflow_execution_failed_event_attributes":
            out.outcome = "failed"
        elif kind == "workflow_execution_terminated_event_attributes":
            out.outcome = "terminated"
    return out


async def load_history(text: str) -> WorkflowHistory:
    """A saved history under its real workflow id (`loan-<id>`, `plan-<id>`, or an award
    event's, from its own input): the workflow reads its id, and what it does with it is
    checked like the rest."""
    history = WorkflowHistory.from_json("unknown", text)
    started = history.events[0].workflow_execution_started_event_attributes
    arg = (await _decoded(started.input.payloads))[0]
    if "loan_id" in arg:
        return WorkflowHistory(f"loan-{arg['loan_id']}", history.events)
    if "plan_id" in arg:
        return WorkflowHistory(f"plan-{arg['plan_id']}", history.events)
    return WorkflowHistory(award_event_workflow_id(arg["product_code"], arg["period"]), history.events)


# -- comparing ---------------------------------------------------------------------------------------
def assert_same(recorded: Any, replayed: Any, where: str) -> None:
    """Every value the recording holds is in the replay, unchanged. The replay may carry
    fields the recording did not have yet (fields added later, with defaults)."""
    if isinstance(recorded, dict):
        assert isinstance(replayed, dict), f"{where}: {replayed!r} is not an object"
        for key, value in recorded.items():
            assert key in replayed, f"{where}.{key}: missing from today's code"
            assert_same(value, replayed[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(replayed, list) and len(replayed) == len(recorded), (
            f"{where}: {len(recorded)} items recorded, today {replayed!r}"
        )
        for n, (a, b) in enumerate(zip(recorded, replayed)):
            assert_same(a, b, f"{where}[{n}]")
    else:
        assert recorded == replayed, f"{where}: recorded {recorded!r}, today {replayed!r}"


def final_outcome(seen: Replayed, history: Written) -> tuple[str, Any]:
    """The run's final outcome as today's code reached it, in the history's terms."""
    if history.outcome == "continued_as_new":
        assert seen.continued_as_new is not None, "the history continued as new; today's code did not"
        return "continued_as_new", _json_of_values(seen.continued_as_new)
    if history.outcome == "completed":
        assert seen.continued_as_new is None, "today's code continues as new where the history completed"
        return "completed", _json_of_values([seen.result])[0]
    return history.outcome, None


async def check_replay(history: WorkflowHistory, expected: dict | None = None) -> tuple[str, Any]:
    """Replays the history and checks, beyond the commands, every decision's content against
    the history itself and, when given, the outcome stored with it. Returns the outcome."""
    seen = await replay(history)
    wrote = await written(history)
    name = history.workflow_id
    assert [a for a, _ in seen.activities] == [a for a, _ in wrote.activities], name
    assert seen.activity_queues == wrote.activity_queues, f"{name}: an activity on another task queue"
    for n, ((activity, today), (_, recorded)) in enumerate(zip(seen.activities, wrote.activities)):
        assert_same(recorded, _json_of_values(today), f"{name}: activity {n} {activity} input")
    assert [c for c, _ in seen.children] == [c for c, _ in wrote.children], name
    for n, ((child, today), (_, recorded)) in enumerate(zip(seen.children, wrote.children)):
        assert_same(recorded, _json_of_values(today), f"{name}: child workflow {n} {child} input")
    assert set(seen.updates) == set(wrote.updates), name
    for update_id, (kind, recorded) in wrote.updates.items():
        today_kind, today = seen.updates[update_id]
        assert today_kind == kind, f"{name}: update {update_id} was a {kind}, today a {today_kind}"
        assert_same(
            recorded, _json_of_values([today])[0] if kind == "success" else today, f"{name}: update {update_id} answer"
        )
    assert seen.timers == wrote.timers, f"{name}: timers recorded {wrote.timers}, today {seen.timers}"
    assert seen.search_attributes == wrote.search_attributes, (
        f"{name}: search attributes recorded {wrote.search_attributes}, today {seen.search_attributes}"
    )
    outcome, result = final_outcome(seen, wrote)
    assert outcome == wrote.outcome
    assert outcome in ("completed", "continued_as_new"), f"{name}: a history that ended {outcome} proves no outcome"
    assert_same(wrote.result, result, f"{name}: {outcome} result")
    if expected is not None:
        assert expected["outcome"] == outcome, f"{name}: stored outcome {expected['outcome']}, today {outcome}"
        assert_same(expected["result"], result, f"{name}: stored {outcome} result")
    return outcome, result


# -- the saved histories ---------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outcome_file(history_file: Path) -> Path:
    return history_file.with_name(history_file.stem + ".outcome.json")


MANIFEST = HISTORIES / "MANIFEST"


def saved_histories() -> list[Path]:
    return sorted(p for p in HISTORIES.glob("*.json") if not p.name.endswith(".outcome.json"))


def manifest() -> dict[str, str]:
    """Every saved history's file name -> its sha256, as recorded."""
    lines = MANIFEST.read_text().splitlines() if MANIFEST.exists() else []
    entries = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {name: sha for sha, name in entries}


def _add_to_manifest(file: Path) -> None:
    if not MANIFEST.exists():
        MANIFEST.write_text("# sha256 and file of every saved loan history: the replay test misses none\n")
    assert file.name not in manifest(), f"{file.name} is in the manifest already: histories are never replaced"
    with MANIFEST.open("a") as out:
        out.write(f"{sha256_of(file)}  {file.name}\n")


def _free_stem(path_name: str, runs: int) -> str:
    """A name no saved history has: `<path>`, then `<path>-2`, `<path>-3`, ..."""
    n = 1
    while True:
        stem = path_name if n == 1 else f"{path_name}-{n}"
        taken = [HISTORIES / f"{stem}.json"] + [HISTORIES / f"{stem}.run{k}.json" for k in range(1, runs + 1)]
        if not any(p.exists() for p in taken):
            return stem
        n += 1


async def run_histories(handle: WorkflowHandle) -> list[WorkflowHistory]:
    """Every run of the workflow, first to last, following continue-as-new."""
    client = handle._client  # the handle's own client (and data converter)
    run_id: str | None = handle.first_execution_run_id
    if run_id is None:  # a handle by workflow id only: its history names the chain's first run
        started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
        run_id = started.first_execution_run_id or started.original_execution_run_id
    histories = []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    return histories


async def replay_and_maybe_record(handle: WorkflowHandle, path_name: str) -> None:
    """Replays every run of this loan against today's code with the content checks above;
    with RECORD_HISTORIES=1, also saves each run (and its outcome) under tests/histories/
    for the replay test, beside, never over, what is saved already."""
    histories = await run_histories(handle)
    outcomes = [await check_replay(history) for history in histories]
    if not _records(path_name):
        return
    stem = _free_stem(path_name, len(histories))
    for k, (history, (outcome, result)) in enumerate(zip(histories, outcomes), start=1):
        file = HISTORIES / (f"{stem}.json" if len(histories) == 1 else f"{stem}.run{k}.json")
        file.write_text(history.to_json())
        write_outcome(file, path_name, outcome, result, run=k, runs=len(histories))


def _records(path_name: str) -> bool:
    """RECORD_HISTORIES=1 (or all): record every path the tests live; =missing: only paths
    with no saved history yet; otherwise a comma-separated list of path names."""
    wanted = os.environ.get("RECORD_HISTORIES", "")
    if wanted in ("1", "all"):
        return True
    if wanted == "missing":
        return not any(json.loads(p.read_text())["path"] == path_name for p in HISTORIES.glob("*.outcome.json"))
    return path_name in {name.strip() for name in wanted.split(",") if name.strip()}


def write_outcome(file: Path, path_name: str, outcome: str, result: Any, run: int = 1, runs: int = 1) -> None:
    target = outcome_file(file)
    assert not target.exists(), f"{target} exists: saved outcomes are never replaced"
    target.write_text(
        json.dumps(
            {
                "path": path_name,
                "run": run,
                "runs": runs,
                "history_sha256": sha256_of(file),
                "outcome": outcome,
                "result": result,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    _add_to_manifest(file)


async def adopt(path_name: str, source: Path) -> Path:
    """Saves a history exported elsewhere (one run) for the replay test, with the outcome its
    own events show, after replaying it with today's code."""
    history = await load_history(source.read_text())
    outcome, result = await check_replay(history)
    file = HISTORIES / f"{_free_stem(path_name, 1)}.json"
    file.write_text(source.read_text())
    write_outcome(file, path_name, outcome, result)
    return file


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "adopt":
        sys.exit("usage: python -m tests.history_replay adopt <path name> <history.json>")
    print(asyncio.run(adopt(sys.argv[2], Path(sys.argv[3]))))
