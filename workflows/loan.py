"""The loan workflow: one durable workflow per loan, from request to repaid or defaulted.

pending -> scoring -> approved -> funding -> funded -> active -> repaid
                   \\-> rejected   \\-> rejected (funding_expired)  \\-> defaulted

Deterministic: no I/O, no clock but workflow.now(). Every side effect is an activity with
an explicit timeout and retry policy; business refusals come back as non-retryable
ApplicationErrors whose type names the rule (InsufficientFunds, ...).

The sandbox clock: the repayment phase runs on "loan time", which passes `time_scale`
times faster than workflow time from the moment of disbursement. Due dates are real
calendar dates of loan time; timers sleep the scaled-down real duration.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.fees import accrue_late_fee
    from domain.money import ZERO, round_money
    from domain.schedule import build_schedule
    from models.auto_invest_io import AutoInvestInput, AutoInvestResult
    from models.documents_io import LoanAgreementsInput, LoanAgreementsResult
    from models.loan_workflow import (
        ApprovalDecision,
        ApprovalResult,
        CollectInput,
        CollectResult,
        CompleteInput,
        DefaultInput,
        DefaultResult,
        DisburseInput,
        DisburseResult,
        DueItem,
        EarlyRepaymentRequest,
        EarlyRepaymentResult,
        FundsArrived,
        InstallmentState,
        InvestmentAccepted,
        InvestmentRequest,
        LoanSnapshot,
        LoanState,
        LoanStatus,
        LoanWorkflowInput,
        OverdueNotice,
        RegisterLoanInput,
        ReleaseInvestmentsInput,
        ReleaseInvestmentsResult,
        ReserveInvestmentInput,
        ScheduledInstallment,
        ScoreLoanInput,
        ScoreLoanResult,
        StatusChange,
    )
    from models.search_attributes import BORROWER_ID, LOAN_STATUS, PRODUCT, RISK_GRADE

# Money activities keep retrying (an operator sees them in the UI) rather than give up.
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                       maximum_interval=timedelta(minutes=2))


def _is(error: BaseException, kind: str) -> bool:
    cause = error.cause if isinstance(error, ActivityError) else error
    return isinstance(cause, ApplicationError) and cause.type == kind


@workflow.defn(name="LoanWorkflow")
class LoanWorkflow:
    @workflow.init
    def __init__(self, input: LoanWorkflowInput) -> None:
        self._input = input
        self._state = input.state.model_copy(deep=True) if input.state else LoanState()
        self._state.updates_this_run = 0
        # Serializes handlers and the main loop around every await that touches money.
        self._lock = asyncio.Lock()
        self._funds_arrived = False
        self._awaiting_review = False
        self._approval: ApprovalDecision | None = None
        self._draining = False

    # -- run ------------------------------------------------------------------------------
    @workflow.run
    async def run(self, input: LoanWorkflowInput) -> LoanSnapshot:
        state = self._state
        if input.state is None:
            await self._activity("register_loan_request", RegisterLoanInput(
                loan_id=input.loan_id, borrower_id=input.borrower_id, product_id=input.terms.product_id,
                amount=input.amount, term_months=input.term_months, workflow_id=workflow.info().workflow_id))
            if input.search_attributes:
                workflow.upsert_search_attributes([BORROWER_ID.value_set(str(input.borrower_id)),
                                                   PRODUCT.value_set(input.terms.product_code)])
        if state.status in ("pending", "scoring"):
            await self._score()
        if state.status in ("approved", "funding"):
            await self._fund()
        if state.status == "funded":
            await self._disburse()
        if state.status == "active":
            await self._repay()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.snapshot()

    # -- scoring and approval ---------------------------------------------------------------
    async def _score(self) -> None:
        state, input = self._state, self._input
        await self._set_status("scoring")
        result: ScoreLoanResult = await self._activity(
            "score_loan_request", ScoreLoanInput(loan_id=input.loan_id, borrower_id=input.borrower_id,
                                                 amount=input.amount, term_months=input.term_months,
                                                 terms=input.terms), result_type=ScoreLoanResult)
        state.score, state.grade, state.rate_annual = result.score, result.grade, result.rate_annual
        details = {"decision": result.decision, "reasons": result.reasons, "rules_version": result.rules_version,
                   "score": result.score, "grade": result.grade}
        if result.decision == "reject":
            await self._reject(result.reject_reason or "scoring", details)
            return
        if result.decision == "review" or input.terms.requires_manual_approval:
            self._awaiting_review = True
            await self._set_status("scoring", scoring_details={**details, "awaiting": "operator review"})
            try:
                await workflow.wait_condition(lambda: self._approval is not None,
                                              timeout=timedelta(days=input.review_timeout_days))
            except asyncio.TimeoutError:
                self._awaiting_review = False
                await self._reject("review_timeout", details)
                return
            self._awaiting_review = False
            decision = self._approval
            assert decision is not None
            details["operator_decision"] = {"approve": decision.approve, "operator_id": str(decision.operator_id),
                                            "reason": decision.reason}
            operator = {"actor_id": decision.operator_id, "actor_role": "operator"}
            if not decision.approve:
                await self._reject(f"rejected by operator: {decision.reason or 'no reason given'}", details,
                                   **operator)
                return
            await self._set_status("approved", scoring_details=details, **operator)
            return
        await self._set_status("approved", scoring_details=details)

    async def _reject(self, reason: str, details: dict | None = None, **actor) -> None:
        self._state.rejection_reason = reason
        await self._set_status("rejected", rejection_reason=reason, scoring_details=details,
                               notify_borrower=f"your loan request was not accepted: {reason}", **actor)

    @workflow.update
    async def decide(self, decision: ApprovalDecision) -> ApprovalResult:
        """An operator's approval or rejection of a loan awaiting review."""
        self._approval = decision
        await workflow.wait_condition(lambda: not self._awaiting_review and self._state.status != "scoring")
        return ApprovalResult(status=self._state.status)

    @decide.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        if not self._awaiting_review or self._approval is not None:
            raise ApplicationError(f"the loan is {self._state.status}, not awaiting an operator's decision",
                                   type="NotAwaitingReview")

    # -- funding ---------------------------------------------------------------------------
    async def _fund(self) -> None:
        state, input = self._state, self._input
        if state.status == "approved":
            window = (timedelta(minutes=input.terms.funding_window_minutes) if input.terms.funding_window_minutes
                      else timedelta(days=input.terms.funding_window_days))
            state.funding_deadline = workflow.now() + window
            await self._set_status("funding", funding_deadline=state.funding_deadline)
            if workflow.patched("auto-invest-on-funding"):
                await self._start_auto_invest()
        assert state.funding_deadline is not None
        while True:
            left = state.funding_deadline - workflow.now()
            if left > timedelta(0):
                try:
                    await workflow.wait_condition(
                        lambda: state.funded_amount == input.amount or state.updates_this_run >= input.updates_per_run,
                        timeout=left)
                except asyncio.TimeoutError:
                    pass
            if state.funded_amount != input.amount and workflow.now() < state.funding_deadline:
                await self._continue_as_new()  # too many updates for one run
            async with self._lock:  # no investment is half-done past this point
                if state.funded_amount == input.amount:
                    await self._set_status("funded")
                    return
                if workflow.now() >= state.funding_deadline:
                    state.status = "rejected"  # validators refuse from now on
                    state.rejection_reason = "funding_expired"
                    break
        await self._release_and_reject("funding_expired", "the funding window closed before the loan was funded")

    async def _release_and_reject(self, reason: str, what_happened: str) -> None:
        """Every reservation back to its investor; the loan ends rejected with the reason."""
        state = self._state
        state.status = "rejected"  # validators refuse from now on
        state.rejection_reason = reason
        released: ReleaseInvestmentsResult = await self._activity(
            "release_investments", ReleaseInvestmentsInput(loan_id=self._input.loan_id, reason=reason),
            result_type=ReleaseInvestmentsResult)
        state.funded_amount = ZERO
        await self._set_status("rejected", rejection_reason=reason,
                               notify_borrower=f"{what_happened}; {released.released} reservation(s) released")

    async def _start_auto_invest(self) -> None:
        """Auto-invest for this loan at once, not at the next scheduled run. Its investments
        come back as `invest` updates like anyone's; the run lives on its own (abandoned)."""
        loan_id = self._input.loan_id
        try:
            await workflow.start_child_workflow(
                "AutoInvestWorkflow", AutoInvestInput(loan_ids=[loan_id], reason="the loan entered funding"),
                id=f"auto-invest-{loan_id}", task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON, result_type=AutoInvestResult)
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier run of this loan

    def _check_investment(self, request: InvestmentRequest) -> None:
        state, input, terms = self._state, self._input, self._input.terms
        if self._draining:
            raise ApplicationError("the loan is moving to a new run; send again", type="TryAgain")
        if state.status != "funding":
            raise ApplicationError(f"the loan is {state.status}, not open for investment", type="LoanNotFunding")
        amount = request.amount
        if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise ApplicationError("the amount must be positive with at most two decimals", type="InvalidInvestment")
        remaining = input.amount - state.funded_amount
        if amount > remaining:
            raise ApplicationError(f"only {remaining:.2f} is left to fund", type="OverFunding",
                                   non_retryable=True)
        if amount < terms.min_investment and amount != remaining:
            raise ApplicationError(f"the minimum investment is {terms.min_investment:.2f} "
                                   f"(or exactly the {remaining:.2f} left)", type="InvalidInvestment")
        cap = round_money(input.amount * terms.max_investor_share_percent / 100)
        already = state.invested_by.get(str(request.investor_id), ZERO)
        if already + amount > cap:
            percent = f"{terms.max_investor_share_percent:f}".rstrip("0").rstrip(".")
            raise ApplicationError(f"one investor may hold at most {percent}% "
                                   f"of this loan ({cap:.2f}); you hold {already:.2f}", type="InvalidInvestment")

    @workflow.update
    async def invest(self, request: InvestmentRequest) -> InvestmentAccepted:
        """Reserves the investor's money for this loan; never over-funds (one at a time)."""
        state, input = self._state, self._input
        state.updates_this_run += 1
        async with self._lock:
            self._check_investment(request)  # again: others may have invested meanwhile
            try:
                await self._activity("reserve_investment", ReserveInvestmentInput(
                    loan_id=input.loan_id, investment_id=request.investment_id, investor_id=request.investor_id,
                    amount=request.amount, at=workflow.now()))
            except ActivityError as error:
                cause = error.cause
                if isinstance(cause, ApplicationError):
                    raise ApplicationError(cause.message, *cause.details, type=cause.type,
                                           non_retryable=True) from None
                raise
            state.funded_amount += request.amount
            key = str(request.investor_id)
            state.invested_by[key] = state.invested_by.get(key, ZERO) + request.amount
            return InvestmentAccepted(investment_id=request.investment_id, amount=request.amount,
                                      funded_amount=state.funded_amount,
                                      remaining=input.amount - state.funded_amount)

    @invest.validator
    def _validate_investment(self, request: InvestmentRequest) -> None:
        self._check_investment(request)

    # -- disbursement ----------------------------------------------------------------------
    async def _disburse(self) -> None:
        state, input, terms = self._state, self._input, self._input.terms
        if state.clock_origin is None:
            state.clock_origin = input.clock_origin or workflow.now()
            state.disbursed_on = state.clock_origin.date()
        assert state.rate_annual is not None and state.disbursed_on is not None
        schedule = build_schedule(input.amount, state.rate_annual, input.term_months, state.disbursed_on,
                                  terms.amortization_method, terms.interest_only_months)
        fee = round_money(input.amount * terms.platform_fee_percent / 100)
        reserve = round_money(input.amount * terms.reserve_fund_percent / 100)
        try:
            await self._activity("disburse_loan", DisburseInput(
                loan_id=input.loan_id, borrower_id=input.borrower_id, amount=input.amount, currency=terms.currency,
                platform_fee=fee, reserve_contribution=reserve, rate_annual=state.rate_annual, at=workflow.now(),
                installments=[ScheduledInstallment(payment_num=i.payment_num, due_date=i.due_date,
                                                   principal=i.principal, interest=i.interest)
                              for i in schedule.installments]), result_type=DisburseResult)
        except ActivityError as error:
            cause = error.cause
            # Refused for good (one database transaction: nothing was posted). The investors'
            # money must not stay reserved for a loan that will never pay out.
            if not (isinstance(cause, ApplicationError) and cause.non_retryable) \
                    or not workflow.patched("compensate-refused-disbursement"):
                raise
            await self._release_and_reject(f"disbursement_refused: {cause.message}",
                                           "the loan could not be paid out and was cancelled")
            return
        if workflow.patched("loan-agreements"):
            # The schedule is fixed: the agreements (borrower's, one per investment) follow.
            await workflow.execute_activity(
                "generate_loan_agreements", LoanAgreementsInput(loan_id=input.loan_id),
                result_type=LoanAgreementsResult, start_to_close_timeout=timedelta(minutes=15),
                heartbeat_timeout=timedelta(minutes=1), retry_policy=DB_RETRY)
            # The sandbox clock starts when repayment does: seconds spent rendering PDFs are
            # months of loan time at a large scale. (At scale 1 this changes nothing.)
            if input.clock_origin is None:
                state.clock_origin = workflow.now()
        state.installments = [InstallmentState(payment_num=i.payment_num, due_date=i.due_date,
                                               principal=i.principal, interest=i.interest)
                              for i in schedule.installments]
        state.invested_by = {}  # only needed while funding: keeps the state small
        state.status = "active"
        self._upsert_status()

    # -- repayment -------------------------------------------------------------------------
    def _loan_now(self) -> datetime:
        origin = self._state.clock_origin
        now = workflow.now()
        if origin is None:
            return now
        return origin + (now - origin) * self._input.time_scale

    def _real_delay_until(self, loan_moment: datetime) -> timedelta:
        return max((loan_moment - self._loan_now()) / self._input.time_scale, timedelta(0))

    @staticmethod
    def _midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=timezone.utc)

    def _unsettled(self) -> list[InstallmentState]:
        return [i for i in self._state.installments if not i.settled]

    async def _repay(self) -> None:
        state, input, terms = self._state, self._input, self._input.terms
        while state.status == "active":
            self._funds_arrived = False
            async with self._lock:
                if state.status != "active":
                    break
                await self._collect_due()
                unsettled = self._unsettled()
                if not unsettled:
                    await self._complete()
                    break
                today = self._loan_now().date()
                oldest = unsettled[0]
                if oldest.due_date <= today and (today - oldest.due_date).days >= terms.default_after_days_overdue:
                    await self._default()
                    break
            wake = self._next_wake()
            try:
                await workflow.wait_condition(lambda: self._funds_arrived or state.status != "active",
                                              timeout=self._real_delay_until(wake))
            except asyncio.TimeoutError:
                pass
            info = workflow.info()
            if state.status == "active" and (info.is_continue_as_new_suggested()
                                             or info.get_current_history_length() > input.history_events_per_run):
                await self._continue_as_new()

    def _next_wake(self) -> datetime:
        today = self._loan_now().date()
        unsettled = self._unsettled()
        moments = [self._midnight(i.due_date) for i in unsettled if i.due_date > today][:1]
        overdue = [i for i in unsettled if i.due_date <= today]
        if overdue:
            moments.append(self._midnight(overdue[0].due_date
                                          + timedelta(days=self._input.terms.default_after_days_overdue)))
        return min(moments)

    def _accrue_fees(self, today: date) -> None:
        terms = self._input.terms
        for item in self._unsettled():
            days = (today - item.due_date).days
            if days > item.fee_accrued_day:
                item.fee_accrued += accrue_late_fee(item.principal_due + item.interest_due,
                                                    terms.late_fee_percent_per_day, terms.late_fee_grace_days,
                                                    item.fee_accrued_day, days)
                item.fee_accrued_day = days

    async def _collect(self, items: list[DueItem], key: str, purpose: str, require_full: bool) -> CollectResult:
        input = self._input
        result: CollectResult = await self._activity("collect_installments", CollectInput(
            loan_id=input.loan_id, borrower_id=input.borrower_id, currency=input.terms.currency, key=key,
            purpose=purpose, items=items, require_full=require_full, at=workflow.now()), result_type=CollectResult)
        by_num = {i.payment_num: i for i in self._state.installments}
        wanted = {i.payment_num: i for i in items}
        for paid in result.items:
            item = by_num[paid.payment_num]
            item.paid_fee += paid.fee
            item.paid_interest += paid.interest
            item.paid_principal += paid.principal
            w = wanted[paid.payment_num]
            if (paid.fee, paid.interest, paid.principal) == (w.fee, w.interest, w.principal):
                # Early repayment forgives the interest of months not yet begun.
                item.interest = item.paid_interest
                item.fee_accrued = item.paid_fee
                item.status = "paid"
        return result

    async def _collect_due(self) -> None:
        state, input = self._state, self._input
        today = self._loan_now().date()
        due = [i for i in self._unsettled() if i.due_date <= today]
        if not due:
            return
        self._accrue_fees(today)
        state.collection_seq += 1
        await self._collect([i.outstanding() for i in due],
                            key=f"loan:{input.loan_id}:collection:{state.collection_seq}",
                            purpose="installment", require_full=False)
        for item in due:
            if item.status == "pending":
                item.status = "overdue"
                await self._activity("mark_installment_overdue", OverdueNotice(
                    loan_id=input.loan_id, borrower_id=input.borrower_id, payment_num=item.payment_num,
                    amount_due=item.principal_due + item.interest_due, due_date=item.due_date))

    async def _default(self) -> None:
        state, input = self._state, self._input
        unsettled = self._unsettled()
        outstanding = sum((i.principal_due for i in unsettled), ZERO)
        await self._activity("default_loan", DefaultInput(
            loan_id=input.loan_id, currency=input.terms.currency, outstanding_principal=outstanding,
            written_off=[i.outstanding() for i in unsettled],
            at=workflow.now()), result_type=DefaultResult)
        for item in unsettled:
            item.status = "written_off"
        state.status = "defaulted"
        self._upsert_status()

    async def _complete(self) -> None:
        await self._activity("complete_loan", CompleteInput(loan_id=self._input.loan_id, at=workflow.now()))
        self._state.status = "repaid"
        self._upsert_status()

    @workflow.signal
    def funds_arrived(self, event: FundsArrived) -> None:
        """Money arrived in the borrower's wallet: try to collect what is overdue."""
        self._funds_arrived = True

    @workflow.update
    async def repay_early(self, request: EarlyRepaymentRequest) -> EarlyRepaymentResult:
        """Repays the outstanding principal, the interest accrued to today (actual/365) and
        anything overdue with its late fees, at once; the loan ends repaid."""
        state, input = self._state, self._input
        state.updates_this_run += 1
        async with self._lock:
            if state.status != "active":
                raise ApplicationError(f"the loan is {state.status}, not active", type="LoanNotActive")
            assert state.rate_annual is not None and state.disbursed_on is not None
            today = self._loan_now().date()
            self._accrue_fees(today)
            items: list[DueItem] = []
            period_start = state.disbursed_on
            current_done = False
            for item in state.installments:
                if item.settled:
                    period_start = item.due_date
                    continue
                if item.due_date <= today:
                    items.append(item.outstanding())
                    period_start = item.due_date
                elif not current_done:
                    balance = sum((i.principal_due for i in self._unsettled() if i.due_date > today), ZERO)
                    days = (today - period_start).days
                    accrued = min(round_money(balance * state.rate_annual / 100 * days / 365), item.interest_due)
                    items.append(DueItem(payment_num=item.payment_num, fee=ZERO, interest=accrued,
                                         principal=item.principal_due))
                    current_done = True
                else:
                    items.append(DueItem(payment_num=item.payment_num, fee=ZERO, interest=ZERO,
                                         principal=item.principal_due))
            try:
                result = await self._collect(items, key=f"loan:{input.loan_id}:early-repayment",
                                             purpose="early_repayment", require_full=True)
            except ActivityError as error:
                if _is(error, "InsufficientFunds"):
                    owed = sum((i.fee + i.interest + i.principal for i in items), ZERO)
                    raise ApplicationError(f"early repayment needs {owed:.2f} available in the borrower's wallet",
                                           {"needed": f"{owed:.2f}"}, type="InsufficientFunds") from None
                raise
            await self._complete()
            return EarlyRepaymentResult(
                paid=result.total, principal=sum((p.principal for p in result.items), ZERO),
                interest=sum((p.interest for p in result.items), ZERO),
                late_fees=sum((p.fee for p in result.items), ZERO))

    @repay_early.validator
    def _validate_early_repayment(self, request: EarlyRepaymentRequest) -> None:
        if self._state.status != "active":
            raise ApplicationError(f"the loan is {self._state.status}, not active", type="LoanNotActive")

    # -- reads -----------------------------------------------------------------------------
    @workflow.query
    def snapshot(self) -> LoanSnapshot:
        state, input = self._state, self._input
        return LoanSnapshot(
            loan_id=input.loan_id, status=state.status, amount=input.amount, funded_amount=state.funded_amount,
            remaining=input.amount - state.funded_amount, rate_annual=state.rate_annual, risk_grade=state.grade,
            score=state.score, rejection_reason=state.rejection_reason,
            loan_today=self._loan_now().date() if state.clock_origin else None,
            installments=state.installments)

    # -- plumbing --------------------------------------------------------------------------
    async def _activity(self, name: str, arg, result_type=None):
        return await workflow.execute_activity(
            name, arg, result_type=result_type, retry_policy=DB_RETRY,
            start_to_close_timeout=timedelta(seconds=self._input.activity_timeout_seconds))

    async def _set_status(self, status: LoanStatus, **fields) -> None:
        state = self._state
        state.status = status
        await self._activity("record_loan_status", StatusChange(
            loan_id=self._input.loan_id, status=status, score=state.score, grade=state.grade,
            rate_annual=state.rate_annual, at=workflow.now(), **fields))
        self._upsert_status()

    def _upsert_status(self) -> None:
        if self._input.search_attributes:
            updates = [LOAN_STATUS.value_set(self._state.status)]
            if self._state.grade:
                updates.append(RISK_GRADE.value_set(self._state.grade))
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(f"**{self._state.status}** · {self._input.amount:.2f} "
                                     f"{self._input.terms.currency} · {self._input.term_months} months"
                                     + (f" · grade {self._state.grade}" if self._state.grade else ""))

    async def _continue_as_new(self) -> None:
        self._draining = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._input.model_copy(update={"state": self._state}))
