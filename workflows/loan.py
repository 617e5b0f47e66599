"""The loan workflow: one durable workflow per loan, from request to repaid or defaulted.

    pending -> scoring -> approved -> funding -> funded -> active -> repaid
                      \\-> rejected            \\-> rejected  \\-> rejected  \\-> defaulted

`run` follows that diagram, one phase per method; every status change goes through
`_transition`, which checks it against models/loan_status.py's table and records it. The
rules (investment checks, the early-repayment quote, the collection waterfall, late fees,
the default's split) are domain/; the money moves in activities, called by reference with an
explicit timeout and retry policy; business refusals are domain/refusals.py's classes, sent
as non-retryable ApplicationErrors whose type names the class.

Deterministic: no I/O, no clock but workflow.now(). The sandbox clock: the repayment phase
runs on "loan time", which passes `time_scale` times faster than workflow time from the
moment of disbursement. Due dates are real calendar dates of loan time, whole days in the
platform's time zone; timers sleep the scaled-down real duration.

The borrower's time (patch borrowers-time; README "How a loan lives"): an installment is
overdue only once a collection attempt after its due day ended found the wallet short, and
from that attempt on; a loan defaults only right after an attempt to collect everything due
failed, once an installment has stayed overdue that long; late fees stop when money arrives.

The agreements (patch agreements-beside-repayment): asked for right after the payout, they
render beside the repayment (a task of the run, carried across continue-as-new by
`agreements_pending`); trades wait for them, and a loan's workflow ends, repaid or defaulted,
only once they are registered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.documents import DocumentActivities
    from activities.loans import LoanActivities
    from core.errors import InsufficientFunds
    from domain.calendar import day_of, day_start
    from domain.early_repayment import quote_early_repayment
    from domain.fees import accrue_late_fee, late_fee_exact
    from domain.investment_rules import check_investment
    from domain.money import ZERO, round_money
    from domain.refusals import (
        AgreementsPending,
        AgreementsRefused,
        EarlyRepaymentUnaffordable,
        InvalidInvestment,
        LoanNotActive,
        LoanNotFunding,
        LoanRefusal,
        NotAwaitingReview,
        NotThisLoan,
        NotTradeable,
        TryAgain,
    )
    from domain.schedule import ScheduleError, build_schedule
    from models.auto_invest_io import AutoInvestInput
    from models.documents_io import LoanAgreementsInput, documents_task_queue
    from models.loan_status import LoanStatus, check_transition
    from models.loan_workflow import (
        AmountsDue,
        ApprovalDecision,
        ApprovalResult,
        CollectInput,
        CollectResult,
        CompleteInput,
        DefaultInput,
        DisburseInput,
        EarlyRepaymentRequest,
        EarlyRepaymentResult,
        FundsArrived,
        InstallmentState,
        InvestmentAccepted,
        InvestmentRequest,
        LoanSnapshot,
        LoanState,
        LoanWorkflowInput,
        OverdueNotice,
        RegisterLoanInput,
        ReleaseInvestmentsInput,
        ReserveInvestmentInput,
        ScheduledInstallment,
        ScoreLoanInput,
        SettleTradeInput,
        StatusChange,
        TradeDocumentsInput,
        TradeRequest,
        TradeSettled,
    )
    from models.search_attributes import BORROWER_ID, LOAN_STATUS, PRODUCT, RISK_GRADE

from workflows.auto_invest import AutoInvestWorkflow

# Money activities keep retrying (an operator sees them in the UI) rather than give up.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=2)
)
AGREEMENTS_TIMEOUT = timedelta(minutes=15)
# Agreements refused for good are asked for again after this (workflow time), then twice as
# long each time up to a day, until an operator has mended what they need; the loan repays
# meanwhile. (Backing off keeps a long refusal's history small: a few events a day.)
AGREEMENTS_RETRY = timedelta(hours=1)
AGREEMENTS_RETRY_MAX = timedelta(days=1)
# The server refuses updates past 2,000 in one run, refused ones included: a run ends before.
UPDATES_PER_RUN_LIMIT = 1900
# Status changes that money activities used to record themselves, recorded like every other
# since these patches (a loan.status step on the trail; the activities no longer write it).
# One patch per transition: a loan paid out before the change still records its repayment.
# Since this patch a loan runs on the borrower's time (the module's docstring).
BORROWERS_TIME = "borrowers-time"
RECORDED_SINCE_PATCH = {
    LoanStatus.active: "record-status-active",
    LoanStatus.defaulted: "record-status-defaulted",
    LoanStatus.repaid: "record-status-repaid",
}

Input = TypeVar("Input")
Result = TypeVar("Result")


def _failure(refusal: LoanRefusal) -> ApplicationError:
    """A refusal as Temporal carries it to the caller (the API maps the type back)."""
    return ApplicationError(
        refusal.message,
        *([refusal.details] if refusal.details else []),
        type=refusal.failure_type,
        non_retryable=refusal.non_retryable,
    )


def _refused_by_activity(error: BaseException, refusal: type[Exception]) -> bool:
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type == refusal.__name__


@workflow.defn(name="LoanWorkflow")
class LoanWorkflow:
    @workflow.init
    def __init__(self, input: LoanWorkflowInput) -> None:
        self._input = input
        self._state = input.state.model_copy(deep=True) if input.state else LoanState()
        self._state.updates_this_run = 0
        self._state.accepted_this_run = 0
        # Serializes handlers and the main loop around every await that touches money.
        self._lock = asyncio.Lock()
        self._funds_arrived = False
        self._awaiting_review = False
        self._approval: ApprovalDecision | None = None
        self._draining = False
        # Updates of a repaying loan (trades, early repayment asks) taken by this run.
        self._repaying_updates = 0
        self._waiting_for = ""
        # The loan's agreements, rendering beside its repayment (asked for by this run), and
        # why they were refused for good, if they were.
        self._agreements: asyncio.Task[None] | None = None
        self._agreements_refused: str | None = None
        # Decided once per run, before any handler: a run of a loan started before the patch
        # keeps the old rules until it continues as new.
        self._on_borrowers_time = workflow.patched(BORROWERS_TIME)

    # -- run: the lifecycle diagram ----------------------------------------------------------
    @workflow.run
    async def run(self, input: LoanWorkflowInput) -> LoanSnapshot:
        if workflow.info().workflow_id != f"loan-{input.loan_id}":
            # A sealed input copied into a workflow of another id would run a second life of
            # that loan beside its own: refused before anything (every loan runs as loan-<id>).
            raise _failure(NotThisLoan(f"loan {input.loan_id} runs only as workflow loan-{input.loan_id}"))
        if input.state is None:
            await self._register()
        if self._state.status in (LoanStatus.pending, LoanStatus.scoring):
            await self._score()  # -> approved | rejected
        if self._state.status in (LoanStatus.approved, LoanStatus.funding):
            await self._fund()  # -> funded | rejected
        if self._state.status == LoanStatus.funded:
            await self._disburse()  # -> active | rejected
        if self._state.agreements_pending and self._agreements is None:
            self._ask_for_agreements()  # (a run continued while they rendered)
        if self._state.status == LoanStatus.active:
            await self._repay()  # -> repaid | defaulted
        await self._await_agreements()  # a loan's life ends with its agreements on record
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.snapshot()

    async def _register(self) -> None:
        input = self._input
        await self._call(
            LoanActivities.register_loan_request,
            RegisterLoanInput(
                loan_id=input.loan_id,
                borrower_id=input.borrower_id,
                product_id=input.terms.product_id,
                amount=input.amount,
                term_months=input.term_months,
                workflow_id=workflow.info().workflow_id,
            ),
            summary=f"register the request: {input.amount:.2f} {input.terms.currency}, {input.term_months} months",
        )
        if input.search_attributes:
            workflow.upsert_search_attributes(
                [BORROWER_ID.value_set(str(input.borrower_id)), PRODUCT.value_set(input.terms.product_code)]
            )

    # -- transitions ----------------------------------------------------------------------------
    async def _transition(
        self,
        to: LoanStatus,
        *,
        record: bool = True,
        side_effect: Callable[[], Awaitable[str]] | None = None,
        rejection_reason: str | None = None,
        scoring_details: dict[str, Any] | None = None,
        funding_deadline: datetime | None = None,
        notify_borrower: str | None = None,
        actor_id: uuid.UUID | None = None,
        actor_role: str | None = None,
    ) -> None:
        """The one way a loan's status changes: checked against the lifecycle's table, set at
        once (handlers see it from here on), then, after `side_effect` (the change's own work,
        whose answer is what the borrower is told), recorded on the read side and the trail by
        record_loan_status, and shown in the search attributes."""
        state = self._state
        check_transition(state.status, to)
        state.status = to
        self._waiting_for = ""
        if rejection_reason is not None:
            state.rejection_reason = rejection_reason
        if side_effect is not None:
            notify_borrower = await side_effect()
        if record:
            await self._call(
                LoanActivities.record_loan_status,
                StatusChange(
                    loan_id=self._input.loan_id,
                    status=to,
                    score=state.score,
                    grade=state.grade,
                    rate_annual=state.rate_annual,
                    rejection_reason=rejection_reason,
                    scoring_details=scoring_details,
                    funding_deadline=funding_deadline,
                    notify_borrower=notify_borrower,
                    at=workflow.now(),
                    actor_id=actor_id,
                    actor_role=actor_role,
                ),
                summary=f"record: the loan is {to}",
            )
        self._upsert_status()

    async def _reject(
        self, reason: str, details: dict[str, Any] | None = None, operator_id: uuid.UUID | None = None
    ) -> None:
        await self._transition(
            LoanStatus.rejected,
            rejection_reason=reason,
            scoring_details=details,
            notify_borrower=f"your loan request was not accepted: {reason}",
            actor_id=operator_id,
            actor_role="operator" if operator_id else None,
        )

    async def _reject_and_release(self, reason: str, what_happened: str) -> None:
        """Every reservation back to its investor; the loan ends rejected with the reason."""

        async def release() -> str:
            released = await self._call(
                LoanActivities.release_investments,
                ReleaseInvestmentsInput(loan_id=self._input.loan_id, reason=reason),
                summary=f"release every reservation: {reason}",
            )
            self._state.funded_amount = ZERO
            return f"{what_happened}; {released.released} reservation(s) released"

        await self._transition(LoanStatus.rejected, side_effect=release, rejection_reason=reason)

    # -- scoring and approval -------------------------------------------------------------------
    async def _score(self) -> None:
        state, input = self._state, self._input
        await self._transition(LoanStatus.scoring)
        result = await self._call(
            LoanActivities.score_loan_request,
            ScoreLoanInput(
                loan_id=input.loan_id,
                borrower_id=input.borrower_id,
                amount=input.amount,
                term_months=input.term_months,
                terms=input.terms,
            ),
            summary="score the request",
        )
        state.score, state.grade, state.rate_annual = result.score, result.grade, result.rate_annual
        details: dict[str, Any] = {
            "decision": result.decision,
            "reasons": result.reasons,
            "rules_version": result.rules_version,
            "score": result.score,
            "grade": result.grade,
        }
        if result.decision == "reject":
            await self._reject(result.reject_reason or "scoring", details)
            return
        if result.decision == "review" or input.terms.requires_manual_approval:
            decision = await self._await_review(details)
            if decision is None:
                await self._reject("review_timeout", details)
                return
            details["operator_decision"] = {
                "approve": decision.approve,
                "operator_id": str(decision.operator_id),
                "reason": decision.reason,
            }
            if not decision.approve:
                reason = f"rejected by operator: {decision.reason or 'no reason given'}"
                await self._reject(reason, details, operator_id=decision.operator_id)
                return
            await self._transition(
                LoanStatus.approved, scoring_details=details, actor_id=decision.operator_id, actor_role="operator"
            )
            return
        await self._transition(LoanStatus.approved, scoring_details=details)

    async def _await_review(self, details: dict[str, Any]) -> ApprovalDecision | None:
        """Scored, now waiting for an operator's `decide` (None: nobody decided in time)."""
        self._awaiting_review = True
        await self._transition(LoanStatus.scoring, scoring_details={**details, "awaiting": "operator review"})
        timeout = timedelta(days=self._input.review_timeout_days)
        until = f"{(workflow.now() + timeout):%Y-%m-%d %H:%M} UTC"
        self._show_waiting_for(f"an operator's decision (the review times out {until})")
        try:
            await workflow.wait_condition(
                lambda: self._approval is not None,
                timeout=timeout,
                timeout_summary=f"operator review times out {until}",
            )
        except TimeoutError:
            return None
        finally:
            self._awaiting_review = False
        return self._approval

    @workflow.update
    async def decide(self, decision: ApprovalDecision) -> ApprovalResult:
        """An operator's approval or rejection of a loan awaiting review."""
        self._approval = decision
        await workflow.wait_condition(lambda: not self._awaiting_review and self._state.status != LoanStatus.scoring)
        return ApprovalResult(status=self._state.status)

    def _check_for_this_loan(self, named: uuid.UUID | None) -> None:
        # (validators do not run on replay: histories with requests that name no loan replay as they ran)
        if named != self._input.loan_id:
            raise _failure(NotThisLoan(f"the request is for loan {named}, not this one"))

    @decide.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        self._check_for_this_loan(decision.loan_id)
        if not self._awaiting_review or self._approval is not None:
            raise _failure(NotAwaitingReview(f"the loan is {self._state.status}, not awaiting an operator's decision"))

    # -- funding -------------------------------------------------------------------------------
    async def _fund(self) -> None:
        state, input = self._state, self._input
        if state.status == LoanStatus.approved:
            window = (
                timedelta(minutes=input.terms.funding_window_minutes)
                if input.terms.funding_window_minutes
                else timedelta(days=input.terms.funding_window_days)
            )
            state.funding_deadline = workflow.now() + window
            await self._transition(LoanStatus.funding, funding_deadline=state.funding_deadline)
            if workflow.patched("auto-invest-on-funding"):
                await self._start_auto_invest()
        deadline = state.funding_deadline
        assert deadline is not None
        closes = f"{deadline:%Y-%m-%d %H:%M} UTC"
        if workflow.patched("refused-updates-do-not-count"):

            def run_is_full() -> bool:
                # Accepted investments fill a run; refused updates only near the server's
                # limit; and a history grown long (refused updates are events too).
                info = workflow.info()
                return (
                    state.accepted_this_run >= input.updates_per_run
                    or state.updates_this_run >= UPDATES_PER_RUN_LIMIT
                    or info.is_continue_as_new_suggested()
                    or info.get_current_history_length() > input.history_events_per_run
                )
        else:

            def run_is_full() -> bool:
                return state.updates_this_run >= input.updates_per_run

        while True:
            left = deadline - workflow.now()
            if left > timedelta(0):
                self._show_funding()
                try:
                    await workflow.wait_condition(
                        lambda: state.funded_amount == input.amount or run_is_full(),
                        timeout=left,
                        timeout_summary=f"funding window closes {closes}",
                    )
                except TimeoutError:
                    pass
            if state.funded_amount != input.amount and workflow.now() < deadline:
                await self._continue_as_new()  # too many updates for one run
            async with self._lock:  # no investment is half-done past this point
                if state.funded_amount == input.amount:
                    await self._transition(LoanStatus.funded)
                    return
                expired = workflow.now() >= deadline
            if expired:
                # Rejected at once (before the first await): investments waiting for the lock
                # are refused, not kept waiting while the reservations are released.
                await self._reject_and_release(
                    "funding_expired", "the funding window closed before the loan was funded"
                )
                return

    async def _start_auto_invest(self) -> None:
        """Auto-invest for this loan at once, not at the next scheduled run. Its investments
        come back as `invest` updates like anyone's; the run lives on its own (abandoned)."""
        loan_id = self._input.loan_id
        try:
            await workflow.start_child_workflow(
                AutoInvestWorkflow.run,
                AutoInvestInput(loan_ids=[loan_id], reason="the loan entered funding"),
                id=f"auto-invest-{loan_id}",
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary="auto-invest for the loan that entered funding",
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier run of this loan

    def _earlier_answer(self, request: InvestmentRequest) -> InvestmentAccepted | None:
        """The answer this investment got when the loan accepted it (None: never accepted).
        The same id with other terms is refused: an id names one investment."""
        prior = self._state.accepted_investments.get(str(request.investment_id))
        if prior is not None and (prior.amount != request.amount or prior.investor_id != request.investor_id):
            raise _failure(InvalidInvestment(f"investment {request.investment_id} was accepted with other terms"))
        return prior

    def _check_investment(self, request: InvestmentRequest) -> None:
        state, input = self._state, self._input
        try:
            if self._draining:
                raise TryAgain("the loan is moving to a new run; send again")
            if state.status != LoanStatus.funding:
                raise LoanNotFunding(f"the loan is {state.status}, not open for investment")
            check_investment(
                request.amount,
                loan_amount=input.amount,
                funded_amount=state.funded_amount,
                min_investment=input.terms.min_investment,
                max_investor_share_percent=input.terms.max_investor_share_percent,
                already_invested=state.invested_by.get(str(request.investor_id), ZERO),
            )
        except LoanRefusal as refusal:
            raise _failure(refusal) from None

    @workflow.update
    async def invest(self, request: InvestmentRequest) -> InvestmentAccepted:
        """Reserves the investor's money for this loan; never over-funds (one at a time)."""
        state, input = self._state, self._input
        state.updates_this_run += 1
        async with self._lock:
            if workflow.patched("remember-investments"):
                prior = self._earlier_answer(request)
                if prior is not None:
                    return prior  # accepted before (in this run or an earlier one): never added twice
            self._check_investment(request)  # again: others may have invested meanwhile
            try:
                await self._call(
                    LoanActivities.reserve_investment,
                    ReserveInvestmentInput(
                        loan_id=input.loan_id,
                        investment_id=request.investment_id,
                        investor_id=request.investor_id,
                        amount=request.amount,
                        at=workflow.now(),
                    ),
                    summary=f"reserve {request.amount:.2f} of an investor",
                )
            except ActivityError as error:
                cause = error.cause
                if isinstance(cause, ApplicationError):  # the ledger's refusal: the investor's answer
                    raise ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True) from None
                raise
            state.funded_amount += request.amount
            key = str(request.investor_id)
            state.invested_by[key] = state.invested_by.get(key, ZERO) + request.amount
            self._show_funding()
            accepted = InvestmentAccepted(
                investment_id=request.investment_id,
                investor_id=request.investor_id,
                amount=request.amount,
                funded_amount=state.funded_amount,
                remaining=input.amount - state.funded_amount,
            )
            state.accepted_investments[str(request.investment_id)] = accepted
            state.accepted_this_run += 1
            return accepted

    @invest.validator
    def _validate_investment(self, request: InvestmentRequest) -> None:
        self._check_for_this_loan(request.loan_id)
        if self._earlier_answer(request) is None:
            self._check_investment(request)

    # -- disbursement ---------------------------------------------------------------------------
    async def _disburse(self) -> None:
        """funded -> active: the money to the borrower, the repayment clock started, the
        agreements asked for (rendering beside the repayment); or rejected, every reservation
        released, if the payout is refused for good."""
        state = self._state
        try:
            schedule = self._fix_schedule()
        except ScheduleError as error:
            # (Requests are checked against every rate of their product when made: a loan
            # gets here only if the rules changed under it.) Nothing was paid out.
            await self._reject_and_release(f"no_schedule: {error}", "the loan's schedule could not be fixed")
            return
        if not await self._pay_out(schedule):
            return
        if workflow.patched("agreements-beside-repayment"):
            # The money is out and the schedule fixed: the agreements render on their own queue
            # while the loan repays. A renderer's backlog, outage or refusal never holds a
            # collection, so it never delays what investors are paid. (Their figures are fixed
            # at the payout: the same bytes whenever they render, README "How a loan lives".)
            # Trades wait for them (_check_tradeable), and the loan's life ends only once they
            # are registered.
            state.agreements_pending = True
            self._ask_for_agreements()
            clock_restarts = True
        else:
            clock_restarts = workflow.patched("loan-agreements")
            if clock_restarts:
                await self._generate_agreements()
        # The sandbox clock starts when repayment does: seconds spent paying out (and, before
        # the patch above, rendering PDFs) would be days or months of loan time at a large
        # scale, gone before the borrower could act. (At scale 1 this changes nothing.)
        if clock_restarts and self._input.clock_origin is None:
            state.clock_origin = workflow.now()
        state.installments = [
            InstallmentState(payment_num=i.payment_num, due_date=i.due_date, principal=i.principal, interest=i.interest)
            for i in schedule
        ]
        # Only needed while funding: keeps the state small. (A resent investment is refused
        # from here on as "not funding"; the API then answers it from the read side.)
        state.invested_by = {}
        state.accepted_investments = {}
        async with self._lock:  # an early repayment waits until "active" is recorded, not overtakes it
            await self._transition(LoanStatus.active, record=workflow.patched(RECORDED_SINCE_PATCH[LoanStatus.active]))

    def _fix_schedule(self) -> list[ScheduledInstallment]:
        """The repayment schedule, from the day the loan's clock starts."""
        state, input, terms = self._state, self._input, self._input.terms
        if state.clock_origin is None:
            state.clock_origin = input.clock_origin or workflow.now()
            state.disbursed_on = self._day_of(state.clock_origin)
        assert state.rate_annual is not None and state.disbursed_on is not None
        schedule = build_schedule(
            input.amount,
            state.rate_annual,
            input.term_months,
            state.disbursed_on,
            terms.amortization_method,
            terms.interest_only_months,
            # a loan disbursed before the patch rebuilds its schedule as it was fixed then
            legacy_rounding=not self._on_borrowers_time,
            paying_months=terms.paying_months or (),
            grace_months=terms.grace_months,
        )
        return [
            ScheduledInstallment(
                payment_num=i.payment_num, due_date=i.due_date, principal=i.principal, interest=i.interest
            )
            for i in schedule.installments
        ]

    async def _pay_out(self, schedule: list[ScheduledInstallment]) -> bool:
        """The disbursement (one ledger transaction); False if it was refused for good and the
        loan is now rejected."""
        state, input, terms = self._state, self._input, self._input.terms
        assert state.rate_annual is not None
        fee = round_money(input.amount * terms.platform_fee_percent / 100)
        reserve = round_money(input.amount * terms.reserve_fund_percent / 100)
        self._show_waiting_for("the disbursement")
        try:
            await self._call(
                LoanActivities.disburse_loan,
                DisburseInput(
                    loan_id=input.loan_id,
                    borrower_id=input.borrower_id,
                    amount=input.amount,
                    currency=terms.currency,
                    platform_fee=fee,
                    reserve_contribution=reserve,
                    rate_annual=state.rate_annual,
                    at=workflow.now(),
                    installments=schedule,
                ),
                summary=f"disburse {input.amount - fee - reserve:.2f} to the borrower "
                f"(fee {fee:.2f}, reserve fund {reserve:.2f})",
            )
        except ActivityError as error:
            cause = error.cause
            # Refused for good (one database transaction: nothing was posted). The investors'
            # money must not stay reserved for a loan that will never pay out.
            if not (isinstance(cause, ApplicationError) and cause.non_retryable) or not workflow.patched(
                "compensate-refused-disbursement"
            ):
                raise
            await self._reject_and_release(
                f"disbursement_refused: {cause.message}", "the loan could not be paid out and was cancelled"
            )
            return False
        return True

    async def _generate_agreements(self) -> None:
        """The schedule is fixed: the agreements (the borrower's, one per investment) follow."""
        await workflow.execute_activity_method(
            DocumentActivities.generate_loan_agreements,
            LoanAgreementsInput(loan_id=self._input.loan_id),
            task_queue=self._documents_queue(),
            start_to_close_timeout=AGREEMENTS_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=DB_RETRY,
            summary="render the loan agreements",
        )

    def _ask_for_agreements(self) -> None:
        self._agreements = asyncio.create_task(self._agreements_beside_repayment())
        self._show_details()

    async def _agreements_beside_repayment(self) -> None:
        """The agreements, asked for until they are registered. Refused for good (the loan's
        facts do not add up: documents/agreements.py), they are asked for again after
        AGREEMENTS_RETRY, backing off to AGREEMENTS_RETRY_MAX, and an operator reads why in the
        UI and the worker's log; the loan repays meanwhile."""
        retry = AGREEMENTS_RETRY
        while True:
            try:
                await self._generate_agreements()
                break
            except ActivityError as error:
                cause = error.cause
                if isinstance(cause, CancelledError):
                    raise  # (the workflow is being cancelled: not a refusal)
                self._agreements_refused = cause.message if isinstance(cause, ApplicationError) else str(error)
                workflow.logger.error("the loan agreements were refused: %s", self._agreements_refused)
                self._show_details()
                await workflow.sleep(retry, summary="ask again for the refused agreements")
                retry = min(retry * 2, AGREEMENTS_RETRY_MAX)
        self._agreements_refused = None
        self._state.agreements_pending = False
        self._show_details()  # (an operator reads in the UI that they are done)

    async def _await_agreements(self) -> None:
        """Until the agreements this run asked for are registered."""
        if self._agreements is None:
            return
        if self._state.agreements_pending:
            self._show_waiting_for("the loan agreements")
        await self._agreements

    def _documents_queue(self) -> str | None:
        """Where a loan's PDFs render: since the patch documents-own-queue, on the documents'
        own task queue (worker.py), so that agreements waiting for a renderer never hold the
        activity slots that investments and collections wait for; before it, the loan's."""
        if workflow.patched("documents-own-queue"):
            return documents_task_queue(workflow.info().task_queue)
        return None

    # -- repayment ------------------------------------------------------------------------------
    def _loan_now(self) -> datetime:
        origin = self._state.clock_origin
        now = workflow.now()
        if origin is None:
            return now
        return origin + (now - origin) * self._input.time_scale

    def _real_delay_until(self, loan_moment: datetime) -> timedelta:
        return max((loan_moment - self._loan_now()) / self._input.time_scale, timedelta(0))

    def _unsettled(self) -> list[InstallmentState]:
        return [i for i in self._state.installments if not i.settled]

    async def _repay(self) -> None:
        state, input = self._state, self._input
        # A run of an active loan also ends once it has taken its budget of updates (trades on
        # the secondary market, early repayment asks) or grown long, not only at a due date:
        # the server refuses updates past its limit, and a month may hold many trades.
        ends_when_full = workflow.patched("repaying-run-full")

        def run_is_full() -> bool:
            info = workflow.info()
            return ends_when_full and (
                # (the repaying updates only: the funding phase had its own budget)
                self._repaying_updates >= input.updates_per_run
                or state.updates_this_run >= UPDATES_PER_RUN_LIMIT
                or info.is_continue_as_new_suggested()
                or info.get_current_history_length() > input.history_events_per_run
            )

        while state.status == LoanStatus.active:
            self._funds_arrived = False
            async with self._lock:
                if state.status != LoanStatus.active:
                    break
                await self._collect_due()
                if not self._unsettled():
                    await self._complete()
                    break
                # Right after an attempt to collect everything due: what is still overdue,
                # the borrower really did not pay.
                if self._threshold_passed():
                    await self._default()
                    break
            wake, why = self._next_wake()
            self._show_waiting_for(f"{why}, or money in the borrower's wallet")
            try:
                await workflow.wait_condition(
                    lambda: self._funds_arrived or state.status != LoanStatus.active or run_is_full(),
                    timeout=self._real_delay_until(wake),
                    timeout_summary=why,
                )
            except TimeoutError:
                pass
            info = workflow.info()
            if state.status == LoanStatus.active and (
                run_is_full()
                or info.is_continue_as_new_suggested()
                or info.get_current_history_length() > input.history_events_per_run
            ):
                await self._continue_as_new()  # (agreements still rendering: the next run asks again)

    # -- the borrower's time ----------------------------------------------------------------------
    def _time_zone(self) -> str:
        return self._input.time_zone if self._on_borrowers_time else "UTC"

    def _day_of(self, moment: datetime) -> date:
        """The calendar day of a (loan-time) moment in the platform's time zone."""
        return day_of(moment, self._time_zone())

    def _day_start(self, day: date) -> datetime:
        return day_start(day, self._time_zone())

    def _today(self) -> date:
        return self._day_of(self._loan_now())

    def _to_loan_time(self, moment: datetime) -> datetime:
        origin = self._state.clock_origin
        if origin is None or moment <= origin:
            return moment
        return origin + (moment - origin) * self._input.time_scale

    @staticmethod
    def _counted_from(item: InstallmentState) -> date:
        """The day an overdue installment's days are counted from: the day before the attempt
        that found it short (the due date itself when the platform was there on time)."""
        return item.overdue_since - timedelta(days=1) if item.overdue_since else item.due_date

    def _overdue(self, today: date) -> list[InstallmentState]:
        """What counts toward the default threshold: installments overdue (before the patch:
        every unsettled one whose due date has come)."""
        if self._on_borrowers_time:
            return [i for i in self._unsettled() if i.status == "overdue"]
        return [i for i in self._unsettled() if i.due_date <= today]

    def _threshold_passed(self) -> bool:
        today = self._today()
        overdue = self._overdue(today)
        return bool(overdue) and (
            (today - min(self._counted_from(i) for i in overdue)).days >= self._input.terms.default_after_days_overdue
        )

    def _next_wake(self) -> tuple[datetime, str]:
        """When the loan next has something to do (in loan time), and what."""
        today = self._today()
        unsettled = self._unsettled()
        count = len(self._state.installments)
        threshold_days = timedelta(days=self._input.terms.default_after_days_overdue)
        moments = [
            (self._day_start(i.due_date), f"installment {i.payment_num} of {count} due {i.due_date:%Y-%m-%d}")
            for i in unsettled
            if i.due_date > today
        ][:1]
        # Short on its due day: paid on time until the day ends; then tried again.
        short_today = next((i for i in unsettled if i.status == "pending" and i.due_date <= today), None)
        if short_today is not None and self._on_borrowers_time:
            moments.append(
                (
                    self._day_start(short_today.due_date + timedelta(days=1)),
                    f"the end of installment {short_today.payment_num}'s due day {short_today.due_date:%Y-%m-%d}",
                )
            )
        overdue = self._overdue(today)
        if overdue:
            first = min(overdue, key=self._counted_from)
            threshold = self._counted_from(first) + threshold_days
            moments.append(
                (
                    self._day_start(threshold),
                    f"default threshold of installment {first.payment_num} on {threshold:%Y-%m-%d}",
                )
            )
        return min(moments, key=lambda m: m[0])

    def _accrue_fees(self, until: date) -> None:
        """Late fees of overdue installments up to the day `until`."""
        terms = self._input.terms
        borrowers_time = self._on_borrowers_time
        for item in self._unsettled():
            if borrowers_time and item.status != "overdue":
                continue  # not overdue (yet): no fee, whatever the calendar says
            days = (until - self._counted_from(item)).days
            if days <= item.fee_accrued_day:
                continue
            overdue_amount = item.principal_due + item.interest_due
            if borrowers_time:
                if item.fee_exact == 0 and item.fee_accrued > 0:
                    item.fee_exact = item.fee_accrued  # accrued before fees were rounded once
                item.fee_exact += late_fee_exact(
                    overdue_amount,
                    terms.late_fee_percent_per_day,
                    terms.late_fee_grace_days,
                    item.fee_accrued_day,
                    days,
                )
                item.fee_accrued = round_money(item.fee_exact)
            else:
                item.fee_accrued += accrue_late_fee(
                    overdue_amount,
                    terms.late_fee_percent_per_day,
                    terms.late_fee_grace_days,
                    item.fee_accrued_day,
                    days,
                )
            item.fee_accrued_day = days

    async def _collect(
        self, items: list[AmountsDue], key: str, purpose: str, require_full: bool, summary: str
    ) -> CollectResult:
        input = self._input
        result = await self._call(
            LoanActivities.collect_installments,
            CollectInput(
                loan_id=input.loan_id,
                borrower_id=input.borrower_id,
                currency=input.terms.currency,
                key=key,
                purpose=purpose,
                items=items,
                require_full=require_full,
                at=workflow.now(),
            ),
            summary=summary,
        )
        by_num = {i.payment_num: i for i in self._state.installments}
        wanted = {i.payment_num: i for i in items}
        for paid in result.items:
            item = by_num[paid.payment_num]
            item.paid_fee += paid.fee
            item.paid_interest += paid.interest
            item.paid_principal += paid.principal
            if paid.settles(wanted[paid.payment_num]):
                # Early repayment forgives the interest of months not yet begun.
                item.interest = item.paid_interest
                item.fee_accrued = item.paid_fee
                item.status = "paid"
        return result

    async def _collect_due(self) -> None:
        """One attempt to collect everything due. Whatever is still short after it, once its
        due day has ended, is overdue from this attempt on."""
        state, input = self._state, self._input
        today = self._today()
        due = [i for i in self._unsettled() if i.due_date <= today]
        if not due:
            return
        fees_until = today
        if state.funds_arrived_at is not None and self._on_borrowers_time:
            # Money that arrived while the loan was not looking stops the fees when it came.
            fees_until = min(today, self._day_of(self._to_loan_time(state.funds_arrived_at)))
        state.funds_arrived_at = None
        state.last_attempt_at = workflow.now()
        self._accrue_fees(fees_until)
        state.collection_seq += 1
        numbers = ", ".join(str(i.payment_num) for i in due)
        await self._collect(
            [i.outstanding() for i in due],
            key=f"loan:{input.loan_id}:collection:{state.collection_seq}",
            purpose="installment",
            require_full=False,
            summary=f"collect installment(s) {numbers} of {len(state.installments)} (loan date {today:%Y-%m-%d})",
        )
        borrowers_time = self._on_borrowers_time
        for item in due:
            if item.status != "pending":
                continue
            if borrowers_time:
                if item.due_date >= today:
                    continue  # its due day has not ended: money later today is still on time
                item.overdue_since = today
            item.status = "overdue"
            await self._call(
                LoanActivities.mark_installment_overdue,
                OverdueNotice(
                    loan_id=input.loan_id,
                    borrower_id=input.borrower_id,
                    payment_num=item.payment_num,
                    amount_due=item.principal_due + item.interest_due,
                    due_date=item.due_date,
                ),
                summary=f"installment {item.payment_num} of {item.due_date:%Y-%m-%d} is overdue",
            )

    async def _default(self) -> None:
        input = self._input
        unsettled = self._unsettled()
        outstanding = sum((i.principal_due for i in unsettled), ZERO)
        await self._call(
            LoanActivities.default_loan,
            DefaultInput(
                loan_id=input.loan_id,
                currency=input.terms.currency,
                outstanding_principal=outstanding,
                written_off=[i.outstanding() for i in unsettled],
                at=workflow.now(),
            ),
            summary=f"default: write off, the reserve fund covers up to {outstanding:.2f} of principal",
        )
        for item in unsettled:
            item.status = "written_off"
        await self._transition(
            LoanStatus.defaulted, record=workflow.patched(RECORDED_SINCE_PATCH[LoanStatus.defaulted])
        )

    async def _complete(self) -> None:
        await self._call(
            LoanActivities.complete_loan,
            CompleteInput(loan_id=self._input.loan_id, at=workflow.now()),
            summary="the loan is repaid: close it",
        )
        await self._transition(LoanStatus.repaid, record=workflow.patched(RECORDED_SINCE_PATCH[LoanStatus.repaid]))

    @workflow.signal
    def funds_arrived(self, *inputs: Any) -> None:
        """Money arrived in the borrower's wallet: try to collect what is overdue.

        It takes any inputs and checks them itself: a signal the platform did not send (no
        input, which has no payload whose seal could be checked; two inputs; one that is not a
        FundsArrived; one for another loan) is dropped, never an exception, which would fail
        every workflow task of the loan from then on. (A clear-text or made-up-seal input
        never gets here: refusing to convert it, the SDK drops the signal.)"""
        event = self._funds_arrived_event(inputs)
        if event is None:
            workflow.logger.warning("a funds_arrived signal the platform did not send was dropped")
            return
        self._funds_arrived = True
        arrived = min(event.at, workflow.now()) if event.at else workflow.now()
        state = self._state
        if state.last_attempt_at is not None and arrived <= state.last_attempt_at:
            return  # a late signal for money the last attempt already saw: a wake-up, no more
        if state.funds_arrived_at is None or arrived < state.funds_arrived_at:
            state.funds_arrived_at = arrived

    def _funds_arrived_event(self, inputs: tuple[Any, ...]) -> FundsArrived | None:
        if len(inputs) != 1:
            return None
        try:
            event = FundsArrived.model_validate(inputs[0])
        except ValidationError:
            return None
        # (signals from before loans were named in them carry no loan id: still taken)
        if event.loan_id is not None and event.loan_id != self._input.loan_id:
            return None
        return event

    @workflow.update
    async def repay_early(self, request: EarlyRepaymentRequest) -> EarlyRepaymentResult:
        """Repays the outstanding principal, the interest accrued to today (actual/365) and
        anything overdue with its late fees, at once; the loan ends repaid."""
        state, input = self._state, self._input
        state.updates_this_run += 1
        self._repaying_updates += 1
        async with self._lock:
            if state.status != LoanStatus.active:
                raise _failure(LoanNotActive(f"the loan is {state.status}, not active"))
            assert state.rate_annual is not None and state.disbursed_on is not None
            today = self._today()
            self._accrue_fees(today)
            items = quote_early_repayment(state.installments, today, state.disbursed_on, state.rate_annual)
            # One key per request: a refusal is recorded under its key for good
            # (loans/exactly_once.py), and the borrower may ask again with more money.
            key = f"loan:{input.loan_id}:early-repayment"
            if workflow.patched("early-repayment-key-per-request"):
                state.collection_seq += 1
                key = f"{key}:{state.collection_seq}"
            try:
                result = await self._collect(
                    items,
                    key=key,
                    purpose="early_repayment",
                    require_full=True,
                    summary=f"early repayment on loan date {today:%Y-%m-%d}",
                )
            except ActivityError as error:
                if _refused_by_activity(error, InsufficientFunds):
                    owed = sum((i.fee + i.interest + i.principal for i in items), ZERO)
                    raise _failure(
                        EarlyRepaymentUnaffordable(
                            f"early repayment needs {owed:.2f} available in the borrower's wallet", needed=f"{owed:.2f}"
                        )
                    ) from None
                raise
            await self._complete()
            return EarlyRepaymentResult(
                paid=result.total,
                principal=sum((p.principal for p in result.items), ZERO),
                interest=sum((p.interest for p in result.items), ZERO),
                late_fees=sum((p.fee for p in result.items), ZERO),
            )

    @repay_early.validator
    def _validate_early_repayment(self, request: EarlyRepaymentRequest) -> None:
        self._check_for_this_loan(request.loan_id)
        # (refused, not admitted: the next run takes it; a validator's refusal leaves no event)
        if self._draining:
            raise _failure(TryAgain("the loan is moving to a new run; send again"))
        if self._state.status != LoanStatus.active:
            raise _failure(LoanNotActive(f"the loan is {self._state.status}, not active"))

    # -- the secondary market -------------------------------------------------------------------
    @workflow.update
    async def trade(self, request: TradeRequest) -> TradeSettled:
        """A buyer takes part of an investor's claim (investing/market.py): settled under the
        loan's lock, so never in the middle of a collection; every installment after it is
        split by the holdings' agreed parts. Then the assignment agreement is registered."""
        state, input = self._state, self._input
        state.updates_this_run += 1
        self._repaying_updates += 1
        async with self._lock:
            self._check_tradeable()  # again: a collection may have run meanwhile
            try:
                settled = await self._call(
                    LoanActivities.settle_trade,
                    SettleTradeInput(
                        trade_id=request.trade_id,
                        listing_id=request.listing_id,
                        buyer_id=request.buyer_id,
                        principal=request.principal,
                        loan_id=input.loan_id,
                        on=self._today(),
                        traded_at=workflow.now(),
                        time_zone=self._time_zone(),
                        max_buyer_pays=request.max_buyer_pays,
                    ),
                    summary=f"settle a trade of {request.principal:.2f} of a holding",
                )
            except ActivityError as error:
                cause = error.cause
                if isinstance(cause, ApplicationError):  # the market's or the ledger's refusal
                    raise ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True) from None
                raise
        await workflow.execute_activity_method(
            DocumentActivities.register_trade_documents,
            TradeDocumentsInput(trade_id=request.trade_id, loan_id=input.loan_id),
            task_queue=self._documents_queue(),
            start_to_close_timeout=AGREEMENTS_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=DB_RETRY,
            summary="register the assignment agreement",
        )
        return settled

    @trade.validator
    def _validate_trade(self, request: TradeRequest) -> None:
        self._check_for_this_loan(request.loan_id)
        self._check_tradeable()

    def _check_tradeable(self) -> None:
        if self._draining:
            raise _failure(TryAgain("the loan is moving to a new run; send again"))
        if self._state.status != LoanStatus.active:
            raise _failure(LoanNotActive(f"the loan is {self._state.status}, not active"))
        if self._agreements_refused is not None:
            raise _failure(
                AgreementsRefused(
                    f"the loan's agreements were refused ({self._agreements_refused}): "
                    "no trade until an operator has mended them"
                )
            )
        if self._state.agreements_pending:
            raise _failure(AgreementsPending("the loan's agreements are still being registered; send again shortly"))
        unsettled = self._unsettled()
        if any(i.status == "overdue" for i in unsettled):
            raise _failure(NotTradeable("an installment of the loan is overdue"))
        if len(unsettled) < 2:
            raise _failure(NotTradeable("the loan is on its last installment"))

    # -- reads ----------------------------------------------------------------------------------
    @workflow.query
    def snapshot(self) -> LoanSnapshot:
        state, input = self._state, self._input
        return LoanSnapshot(
            loan_id=input.loan_id,
            status=state.status,
            amount=input.amount,
            funded_amount=state.funded_amount,
            remaining=input.amount - state.funded_amount,
            rate_annual=state.rate_annual,
            risk_grade=state.grade,
            score=state.score,
            rejection_reason=state.rejection_reason,
            loan_today=self._today() if state.clock_origin else None,
            installments=state.installments,
            agreements_pending=state.agreements_pending,
        )

    # -- plumbing -------------------------------------------------------------------------------
    async def _call(self, activity: Callable[[LoanActivities, Input], Result], arg: Input, *, summary: str) -> Result:
        """A loan activity, by reference, with the loan's timeout and the money retry policy;
        `summary` is what an operator reads for it in the Temporal UI."""
        return await workflow.execute_activity_method(
            activity,
            arg,
            retry_policy=DB_RETRY,
            summary=summary,
            start_to_close_timeout=timedelta(seconds=self._input.activity_timeout_seconds),
            heartbeat_timeout=timedelta(seconds=self._input.heartbeat_timeout_seconds),
        )

    def _show_funding(self) -> None:
        state = self._state
        assert state.funding_deadline is not None
        self._show_waiting_for(
            f"investments: {self._input.amount - state.funded_amount:.2f} left to fund, "
            f"the window closes {state.funding_deadline:%Y-%m-%d %H:%M} UTC"
        )

    def _show_waiting_for(self, what: str) -> None:
        self._waiting_for = what
        self._show_details()

    def _show_details(self) -> None:
        state, input = self._state, self._input
        workflow.set_current_details(
            f"**{state.status}** · {input.amount:.2f} {input.terms.currency} · {input.term_months} months"
            + (f" · grade {state.grade}" if state.grade else "")
            + (f"\n\nwaiting for: {self._waiting_for}" if self._waiting_for and not state.status.is_final else "")
            + self._agreements_details()
        )

    def _agreements_details(self) -> str:
        """What an operator reads of the agreements in the UI, whatever the loan's status (a
        repaid loan's workflow still waits for them)."""
        trades = "; trades wait" if self._state.status == LoanStatus.active else ""
        if self._agreements_refused is not None:
            return (
                f"\n\nthe agreements were refused ({self._agreements_refused}): asked again after an hour, "
                f"backing off to a day{trades}"
            )
        if self._state.agreements_pending:
            return f"\n\nthe agreements are rendering{trades}"
        return ""

    def _upsert_status(self) -> None:
        if self._input.search_attributes:
            updates = [LOAN_STATUS.value_set(self._state.status)]
            if self._state.grade:
                updates.append(RISK_GRADE.value_set(self._state.grade))
            workflow.upsert_search_attributes(updates)
        self._show_details()

    async def _continue_as_new(self) -> None:
        self._draining = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._input.model_copy(update={"state": self._state}))
