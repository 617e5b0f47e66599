"""The loan workflow's side effects: every write to the ledger and the read side.

Each activity is one database transaction, idempotent by keys built from business facts
(loan id, investment id, installment number, collection number): a retried activity finds
its own earlier work and returns the same answer. The money activities decide under the
loan's lock, once per key, even against a stalled attempt of their own
(loans/exactly_once.py); every activity heartbeats (activities/heartbeat.py), so a dead
worker's attempt is retried within seconds.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import business_errors_are_final
from activities.heartbeat import heartbeating
from compliance.audit import append_audit
from core.db import unit_of_work
from core.errors import Conflict
from domain.money import ZERO
from domain.schedule import ScheduleError
from domain.scoring import ScoringInput, score_request
from investing import market
from investing.annual_limit import count_investment, give_back, limit_year
from ledger.accounts import wallet_accounts, wallet_of_user
from ledger.postings import lock_accounts
from ledger.wallets import release, reserve
from loans import collections, defaults, disbursement
from loans.award_credit import asset_facts, return_escrow
from loans.common import investments_of, loan_row, notify
from loans.exactly_once import run_once
from models.loan_status import LoanStatus
from models.loan_workflow import (
    CollectInput,
    CollectResult,
    CompleteInput,
    DefaultInput,
    DefaultResult,
    DisburseInput,
    DisburseResult,
    OverdueNotice,
    RegisterLoanInput,
    ReleaseInvestmentsInput,
    ReleaseInvestmentsResult,
    ReserveInvestmentInput,
    ScoreLoanInput,
    ScoreLoanResult,
    SettleTradeInput,
    StatusChange,
    TradeSettled,
)
from models.loans import Investment, LoanRequest, RepaymentInstallment
from models.users import BorrowerProfile, User
from products.service import judged_starts, schedule_of
from scoring.points import award_points, payment_history
from scoring.rules import current_rules


def _status_note(previous: str, change: StatusChange) -> str:
    if change.actor_role == "operator":
        return f"an operator moved the loan from {previous} to {change.status}"
    if change.rejection_reason:
        return f"{previous} -> {change.status}: {change.rejection_reason}"
    return f"{previous} -> {change.status}"


class LoanActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    # -- request, scoring, status ------------------------------------------------------------
    @activity.defn(name="register_loan_request")
    @business_errors_are_final
    @heartbeating
    def register_loan_request(self, input: RegisterLoanInput) -> None:
        """The read-side row of the loan (the API usually wrote it already: then a no-op)."""
        with unit_of_work(self._session_factory) as session:
            session.execute(
                pg_insert(LoanRequest)
                .values(
                    id=input.loan_id,
                    borrower_id=input.borrower_id,
                    product_id=input.product_id,
                    amount=input.amount,
                    term_months=input.term_months,
                    purpose="",
                    workflow_id=input.workflow_id,
                    status="pending",
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            append_audit(
                session,
                input.loan_id,
                "requested",
                "loan.requested",
                actor_id=input.borrower_id,
                actor_role="borrower",
                note="the borrower asked for a loan",
                details={
                    "amount": f"{input.amount:.2f}",
                    "term_months": input.term_months,
                    "product_id": input.product_id,
                    **asset_facts(session.get_one(LoanRequest, input.loan_id)),
                },
            )

    @activity.defn(name="record_loan_status")
    @business_errors_are_final
    @heartbeating
    def record_loan_status(self, change: StatusChange) -> None:
        with unit_of_work(self._session_factory) as session:
            loan = loan_row(session, change.loan_id, lock=True)
            previous = loan.status
            if previous != change.status and previous.is_final:
                return  # a late record (a retried attempt) never moves an ended loan back
            loan.status = change.status
            for field in ("rejection_reason", "scoring_details", "funding_deadline"):
                value = getattr(change, field)
                if value is not None:
                    setattr(loan, field, value)
            if change.scoring_details and change.scoring_details.get("rules_version"):
                loan.scoring_rules_version = change.scoring_details["rules_version"]
            if change.score is not None:
                loan.scoring_score = change.score
            if change.grade is not None:
                loan.risk_grade = change.grade
            if change.rate_annual is not None:
                loan.rate_annual = change.rate_annual
            loan.updated_at = change.at
            if change.status.is_final:
                loan.closed_at = loan.closed_at or change.at  # (the repayment's or default's own moment)
            if change.status == LoanStatus.rejected:
                # An award credit that will never pay out: the down payment back to the borrower.
                return_escrow(
                    session, loan, change.rejection_reason or loan.rejection_reason or "the loan was rejected"
                )
            if change.notify_borrower:
                notify(
                    session,
                    loan.borrower_id,
                    loan.id,
                    f"loan_{change.status}",
                    change.notify_borrower,
                    f"loan:{loan.id}:status:{change.status}",
                )
            at = change.at.isoformat() if change.at else "-"
            details = {
                "from": previous,
                "to": change.status,
                "score": change.score,
                "grade": change.grade,
                "rate_annual": change.rate_annual,
                "rejection_reason": change.rejection_reason,
                "funding_deadline": change.funding_deadline,
                "scoring": change.scoring_details,
                "workflow_time": change.at,
            }
            append_audit(
                session,
                loan.id,
                f"status:{change.status}:{at}",
                "loan.status",
                actor_id=change.actor_id,
                actor_role=change.actor_role or "system",
                note=_status_note(previous, change),
                details={k: v for k, v in details.items() if v is not None},
            )

    @activity.defn(name="score_loan_request")
    @business_errors_are_final
    @heartbeating
    def score_loan_request(self, input: ScoreLoanInput) -> ScoreLoanResult:
        """Scores with the current rules; the result names the rules version it used."""
        with unit_of_work(self._session_factory) as session:
            profile = session.get(BorrowerProfile, input.borrower_id)
            version, rules = current_rules(session)
            history = payment_history(session, input.borrower_id)
        if profile is None:
            return ScoreLoanResult.refused("no borrower profile: PUT /v1/users/me/profile first", version)
        # The DTI test uses the most the borrower could owe in a month: the dearest grade's
        # rate, and the highest installment under the product's method (a differentiated
        # loan's first payment is above the annuity's; a seasonal plan's harvest payment is
        # spread over the months it pays for, at the worst month to start in).
        worst_rate = max(input.terms.rates_by_grade.values())
        try:
            payment = max(
                schedule_of(input.terms, input.amount, worst_rate, input.term_months, start).highest_monthly_burden
                for start in judged_starts(input.terms)
            )
        except ScheduleError as error:  # (requests are checked when made; this is the last guard)
            return ScoreLoanResult.refused(f"no schedule: {error}", version)
        result = score_request(
            rules,
            ScoringInput(
                monthly_income=profile.monthly_income,
                monthly_obligations=profile.monthly_obligations,
                employment_months=profile.employment_months,
                monthly_payment=payment,
                amount=input.amount,
                max_debt_to_income_percent=input.terms.max_debt_to_income_percent,
                history=history,
            ),
        )
        rate = input.terms.rates_by_grade.get(result.grade) if result.grade else None
        return ScoreLoanResult(
            score=result.score,
            grade=result.grade,
            rate_annual=rate,
            decision=result.decision,
            reasons=[{"factor": f.name, "points": f.points, "reason": f.reason} for f in result.factors],
            reject_reason=result.reject_reason,
            rules_version=version,
        )

    # -- funding ---------------------------------------------------------------------------
    @activity.defn(name="reserve_investment")
    @business_errors_are_final
    @heartbeating
    def reserve_investment(self, input: ReserveInvestmentInput) -> None:
        """The investment row, the reservation of the investor's money and the 259-FZ yearly
        count, together. Not enough available money (InsufficientFunds) or past the annual
        limit (AnnualLimitExceeded): nothing reserved, and the refusal is this investment's
        answer for good (an attempt that wakes up later does not reserve after all)."""
        run_once(
            self._session_factory,
            key=f"loan:{input.loan_id}:investment:{input.investment_id}:reserve",
            loan_id=input.loan_id,
            operation="reserve_investment",
            result_type=type(None),
            act=lambda session: self._reserve(session, input),
        )

    def _reserve(self, session: Session, input: ReserveInvestmentInput) -> None:
        wallet = wallet_of_user(session, input.investor_id)
        if wallet.type != "investor":
            raise Conflict("only investors invest")
        existing = session.get(Investment, input.investment_id)
        if existing is not None:
            if existing.amount != input.amount or existing.investor_id != input.investor_id:
                raise Conflict(f"investment {input.investment_id} exists with other terms")
            return
        investor = session.get_one(User, input.investor_id)
        with session.begin_nested():
            investment = Investment(
                id=input.investment_id,
                investor_id=input.investor_id,
                loan_id=input.loan_id,
                amount=input.amount,
                status="pending",
            )
            session.add(investment)
            session.flush()
            reserve(
                session,
                wallet.id,
                input.amount,
                kind="investment_reserve",
                loan_id=input.loan_id,
                key=f"loan:{input.loan_id}:investment:{input.investment_id}:reserve",
                description="investment reserved",
            )
            # After the wallet's locks, as a release takes them: the same order, no deadlock.
            investment.counted_year = count_investment(session, investor, input.amount, limit_year(input.at))
            append_audit(
                session,
                input.loan_id,
                f"investment:{input.investment_id}",
                "investment.placed",
                actor_id=input.investor_id,
                actor_role="investor",
                note=f"an investor reserved {input.amount:.2f} for the loan",
                details={
                    "investment_id": input.investment_id,
                    "investor_id": input.investor_id,
                    "amount": f"{input.amount:.2f}",
                },
            )
        session.execute(
            update(LoanRequest)
            .where(LoanRequest.id == input.loan_id)
            .values(funded_amount=LoanRequest.funded_amount + input.amount)
        )

    @activity.defn(name="release_investments")
    @business_errors_are_final
    @heartbeating
    def release_investments(self, input: ReleaseInvestmentsInput) -> ReleaseInvestmentsResult:
        """The loan will not be funded: every reservation goes back to its investor."""
        return run_once(
            self._session_factory,
            key=f"loan:{input.loan_id}:release",
            loan_id=input.loan_id,
            operation="release_investments",
            result_type=ReleaseInvestmentsResult,
            act=lambda session: self._release(session, input),
        )

    def _release(self, session: Session, input: ReleaseInvestmentsInput) -> ReleaseInvestmentsResult:
        total = ZERO
        investments = investments_of(session, input.loan_id, status="pending")
        # The lock order (ledger/postings.py): every investor's accounts at once, ascending,
        # before the first release and the first 259-FZ year given back.
        wallets = {i.investor_id: wallet_of_user(session, i.investor_id).id for i in investments}
        lock_accounts(session, {a.id for w in set(wallets.values()) for a in wallet_accounts(session, w)})
        for investment in investments:
            release(
                session,
                wallets[investment.investor_id],
                investment.amount,
                kind="investment_release",
                loan_id=input.loan_id,
                key=f"loan:{input.loan_id}:investment:{investment.id}:release",
                description=f"loan not funded: {input.reason}",
            )
            investment.status = "released"
            give_back(session, investment.investor_id, investment.amount, investment.counted_year)
            total += investment.amount
            notify(
                session,
                investment.investor_id,
                input.loan_id,
                "investment_released",
                f"the loan was not funded ({input.reason}); {investment.amount:.2f} is available again",
                f"loan:{input.loan_id}:investment:{investment.id}:released",
            )
        session.execute(update(LoanRequest).where(LoanRequest.id == input.loan_id).values(funded_amount=0))
        append_audit(
            session,
            input.loan_id,
            "investments:released",
            "investments.released",
            note=f"{len(investments)} reservation(s) released: {input.reason}",
            details={"reason": input.reason, "released": len(investments), "total": f"{total:.2f}"},
        )
        return ReleaseInvestmentsResult(released=len(investments), total=total)

    # -- disbursement --------------------------------------------------------------------
    @activity.defn(name="disburse_loan")
    @business_errors_are_final
    @heartbeating
    def disburse_loan(self, input: DisburseInput) -> DisburseResult:
        """One all-or-nothing ledger transaction: every investor's reserved money to the
        borrower, minus the platform fee and the reserve-fund contribution; the schedule is
        stored in the same database transaction."""
        return run_once(
            self._session_factory,
            key=f"loan:{input.loan_id}:disburse",
            loan_id=input.loan_id,
            operation="disburse_loan",
            result_type=DisburseResult,
            act=lambda session: disbursement.disburse_loan(session, input),
        )

    # -- repayment -----------------------------------------------------------------------
    @activity.defn(name="collect_installments")
    @business_errors_are_final
    @heartbeating
    def collect_installments(self, input: CollectInput) -> CollectResult:
        """Takes what the borrower's wallet holds, up to what is due; pays late fees, then
        interest, then principal, oldest installment first; distributes the money to the
        investors pro rata (largest remainder). A retry returns the first answer."""
        return run_once(
            self._session_factory,
            key=input.key,
            loan_id=input.loan_id,
            operation="collect_installments",
            result_type=CollectResult,
            act=lambda session: collections.collect_installments(session, input),
        )

    @activity.defn(name="settle_trade")
    @business_errors_are_final
    @heartbeating
    def settle_trade(self, input: SettleTradeInput) -> TradeSettled:
        """A secondary-market trade: the money, the claim and the listing move together, once
        per trade id (a retry or a stalled attempt gets the first answer)."""
        return run_once(
            self._session_factory,
            key=f"market:trade:{input.trade_id}",
            loan_id=input.loan_id,
            operation="settle_trade",
            result_type=TradeSettled,
            act=lambda session: market.settle_trade(session, input),
        )

    @activity.defn(name="mark_installment_overdue")
    @business_errors_are_final
    @heartbeating
    def mark_installment_overdue(self, notice: OverdueNotice) -> None:
        with unit_of_work(self._session_factory) as session:
            loan_row(session, notice.loan_id, lock=True)  # the lock order: the loan's row first
            session.execute(
                update(RepaymentInstallment)
                .where(
                    RepaymentInstallment.loan_id == notice.loan_id,
                    RepaymentInstallment.payment_num == notice.payment_num,
                    RepaymentInstallment.status == "pending",
                )
                .values(status="overdue")
            )
            market.close_listings_if_untradeable(session, notice.loan_id)
            award_points(
                session,
                notice.borrower_id,
                notice.loan_id,
                "late_installment",
                f"loan:{notice.loan_id}:installment:{notice.payment_num}:late",
                f"installment {notice.payment_num} of {notice.due_date.isoformat()} not paid on its due date",
            )
            append_audit(
                session,
                notice.loan_id,
                f"installment:{notice.payment_num}:overdue",
                "installment.overdue",
                note=f"installment {notice.payment_num} of {notice.due_date.isoformat()} is overdue",
                details={
                    "payment_num": notice.payment_num,
                    "due_date": notice.due_date,
                    "amount_due": f"{notice.amount_due:.2f}",
                },
            )
            notify(
                session,
                notice.borrower_id,
                notice.loan_id,
                "installment_overdue",
                f"installment {notice.payment_num} of {notice.due_date.isoformat()} is overdue: "
                f"{notice.amount_due:.2f} is due; late fees accrue after the grace days",
                f"loan:{notice.loan_id}:installment:{notice.payment_num}:overdue",
            )

    @activity.defn(name="default_loan")
    @business_errors_are_final
    @heartbeating
    def default_loan(self, input: DefaultInput) -> DefaultResult:
        """Writes off what is left and covers each investor's outstanding principal from the
        reserve fund, pro rata, up to what the fund holds; the rest is the investors' loss."""
        return run_once(
            self._session_factory,
            key=f"loan:{input.loan_id}:default",
            loan_id=input.loan_id,
            operation="default_loan",
            result_type=DefaultResult,
            act=lambda session: defaults.default_loan(session, input),
        )

    @activity.defn(name="complete_loan")
    @business_errors_are_final
    @heartbeating
    def complete_loan(self, input: CompleteInput) -> None:
        run_once(
            self._session_factory,
            key=f"loan:{input.loan_id}:complete",
            loan_id=input.loan_id,
            operation="complete_loan",
            result_type=type(None),
            act=lambda session: self._complete(session, input),
        )

    def _complete(self, session: Session, input: CompleteInput) -> None:
        for investment in investments_of(session, input.loan_id):
            investment.status = "repaid"
        loan = loan_row(session, input.loan_id, lock=True)
        loan.closed_at = input.at
        loan.updated_at = input.at
        market.close_listings(session, loan.id, "the loan is repaid")
        award_points(
            session,
            loan.borrower_id,
            loan.id,
            "loan_repaid",
            f"loan:{loan.id}:repaid",
            "the loan was repaid in full",
        )
        append_audit(session, loan.id, "repaid", "loan.repaid", note="the loan is fully repaid")
        notify(session, loan.borrower_id, loan.id, "loan_repaid", "your loan is fully repaid", f"loan:{loan.id}:repaid")
