"""Object-level authorization (OWASP API1/API5): every route of the OpenAPI document, called
by every role with ids that belong to someone else, answers as the table below says, and
no answer to an outsider carries another user's data.

Personal data by need to know: no answer to any role (JSON, or the text of a PDF) names a
person, by email, user id or wallet id, whom that role has no need to know (MAY_SEE):
borrower_a's loan carries investor_a's investment, an operator's decision and investor_a's
agreement, and still borrower_a learns neither's email nor id, nor investor_a borrower_a's.

The table must name every route: a new route fails this test until someone decides who may
call it."""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pypdf
import pytest
from sqlalchemy import update

from api.routers.users import create_user
from compliance.audit import append_audit
from core.db import unit_of_work
from core.errors import NotFound
from core.pseudonyms import pseudonym
from documents.agreements import _LoanFacts, investment_agreement_context
from documents.register import register_document
from documents.render import render_pdf
from documents.store import DocumentStore
from ledger.accounts import wallet_of_user
from ledger.cash import confirm_deposit, request_deposit, request_withdrawal
from ledger.wallets import reserve
from loans.requests import create_loan_request
from models.loans import Investment, LoanRequest
from models.market import MarketListing
from models.plans import AwardEvent, Seller
from models.products import LoanProduct
from models.users import BorrowerProfile, User
from plans.requests import PlanAsk, create_plan
from tests.api_helpers import login

D = Decimal
ROLES = ("anonymous", "borrower_a", "investor_a", "borrower_b", "investor_b", "operator", "compliance")
OUTSIDERS = ("anonymous", "borrower_b", "investor_b")
OK = "allowed"  # any answer but 401/403/404: the call got past authorization
PEOPLE = (*ROLES[1:], "victim")
# Whose email, user id and wallet id each role may see besides their own: operators and
# compliance, everyone (their work needs it); nobody else, anyone (roles and pseudonyms instead).
MAY_SEE: dict[str, tuple[str, ...]] = {"operator": PEOPLE, "compliance": PEOPLE}

# (method, path) -> what each role gets with the ids of borrower_a's loan, investor_a's
# wallet, deposit, withdrawal and agreement, and borrower_a's simulation. A role not named
# gets the route's `others` answer. borrower_a owns the loan; investor_a invested in it.
_PUBLIC = {role: OK for role in ROLES}
_ANY_USER = {**{role: OK for role in ROLES}, "anonymous": 401}
_STAFF = {"anonymous": 401, "operator": OK, "compliance": OK, "others": 403}
_OPERATOR = {"anonymous": 401, "operator": OK, "others": 403}
_WALLET_OWNERS = {
    "anonymous": 401,
    "borrower_a": OK,
    "investor_a": OK,
    "borrower_b": OK,
    "investor_b": OK,
    "others": 403,
}
_BORROWERS = {"anonymous": 401, "borrower_a": OK, "borrower_b": OK, "others": 403}
_OWNER_AND_STAFF = {"anonymous": 401, "borrower_a": OK, "operator": OK, "compliance": OK, "others": 404}
_INVESTORS = {"anonymous": 401, "investor_a": OK, "investor_b": OK, "others": 403}

EXPECTED: dict[tuple[str, str], dict[str, object]] = {
    ("GET", "/health"): _PUBLIC,
    ("GET", "/livez"): _PUBLIC,
    ("POST", "/v1/users"): _PUBLIC,
    ("POST", "/v1/auth/token"): _PUBLIC,
    ("POST", "/v1/auth/refresh"): {role: 401 for role in ROLES},  # a made-up refresh token
    ("POST", "/v1/auth/logout"): _PUBLIC,
    ("GET", "/v1/users/me"): _ANY_USER,
    ("PUT", "/v1/users/me/profile"): _BORROWERS,
    # borrower_b has not filled theirs in
    ("GET", "/v1/users/me/profile"): {"anonymous": 401, "borrower_a": OK, "borrower_b": 404, "others": 403},
    ("POST", "/v1/operator/users"): _OPERATOR,
    ("POST", "/v1/operator/users/{user_id}/block"): _OPERATOR,
    ("POST", "/v1/operator/users/{user_id}/unblock"): _OPERATOR,
    ("GET", "/v1/wallets/me"): _WALLET_OWNERS,
    ("GET", "/v1/wallets/me/transactions"): _WALLET_OWNERS,
    ("GET", "/v1/wallets/me/deposits"): _WALLET_OWNERS,
    ("GET", "/v1/wallets/{wallet_id}"): {
        "anonymous": 401,
        "investor_a": OK,
        "operator": OK,
        "compliance": OK,
        "others": 404,
    },
    ("POST", "/v1/wallets/deposits"): _WALLET_OWNERS,
    ("POST", "/v1/wallets/withdrawals"): _WALLET_OWNERS,
    ("GET", "/v1/wallets/deposits/{deposit_id}"): {
        "anonymous": 401,
        "investor_a": OK,
        "borrower_a": 404,
        "borrower_b": 404,
        "investor_b": 404,
        "others": 403,
    },
    ("GET", "/v1/wallets/withdrawals/{withdrawal_id}"): {
        "anonymous": 401,
        "investor_a": OK,
        "borrower_a": 404,
        "borrower_b": 404,
        "investor_b": 404,
        "others": 403,
    },
    ("GET", "/v1/operator/deposits"): _OPERATOR,
    ("POST", "/v1/operator/deposits/{deposit_id}/confirm"): _OPERATOR,
    ("POST", "/v1/operator/deposits/{deposit_id}/reject"): _OPERATOR,
    ("GET", "/v1/operator/withdrawals"): _OPERATOR,
    ("POST", "/v1/operator/withdrawals/{withdrawal_id}/pay"): _OPERATOR,
    ("POST", "/v1/operator/withdrawals/{withdrawal_id}/reject"): _OPERATOR,
    ("GET", "/v1/operator/ledger/trial-balance"): _STAFF,
    ("GET", "/v1/operator/ledger/reserve-fund"): _STAFF,
    ("GET", "/v1/products"): _PUBLIC,
    ("GET", "/v1/products/{code}"): _PUBLIC,
    ("GET", "/v1/operator/products/{code}/versions"): _STAFF,
    ("POST", "/v1/operator/products"): _OPERATOR,
    ("PUT", "/v1/operator/products/{code}"): _OPERATOR,
    ("POST", "/v1/calculator"): _PUBLIC,
    ("POST", "/v1/simulations"): _BORROWERS,
    ("GET", "/v1/simulations/{simulation_id}"): {"anonymous": 401, "borrower_a": OK, "borrower_b": 404, "others": 403},
    ("POST", "/v1/loans"): _BORROWERS,
    ("GET", "/v1/loans"): _ANY_USER,
    ("GET", "/v1/loans/{loan_id}"): {
        "anonymous": 401,
        "borrower_a": OK,
        "investor_a": OK,
        "operator": OK,
        "compliance": OK,
        "others": 404,
    },
    ("GET", "/v1/loans/{loan_id}/schedule"): {
        "anonymous": 401,
        "borrower_a": OK,
        "investor_a": OK,
        "operator": OK,
        "compliance": OK,
        "others": 404,
    },
    ("POST", "/v1/loans/{loan_id}/investments"): {"anonymous": 401, "investor_a": OK, "investor_b": 404, "others": 403},
    ("POST", "/v1/loans/{loan_id}/early-repayment"): {
        "anonymous": 401,
        "borrower_a": OK,
        "borrower_b": 404,
        "others": 403,
    },
    ("POST", "/v1/operator/loans/{loan_id}/decision"): _OPERATOR,
    ("GET", "/v1/operator/loans/{loan_id}/live"): _STAFF,
    ("GET", "/v1/operator/loans/{loan_id}/overview"): _STAFF,
    ("GET", "/v1/operator/reviews"): _STAFF,
    ("GET", "/v1/loans/{loan_id}/documents"): {
        "anonymous": 401,
        "borrower_a": OK,
        "investor_a": OK,
        "operator": OK,
        "compliance": OK,
        "others": 404,
    },
    ("GET", "/v1/users/me/documents"): _ANY_USER,
    ("GET", "/v1/register"): _STAFF,
    # investor_a's agreement with borrower_a: both are parties to it
    ("GET", "/v1/documents/{document_id}"): {
        "anonymous": 401,
        "investor_a": OK,
        "borrower_a": OK,
        "operator": OK,
        "compliance": OK,
        "others": 404,
    },
    ("GET", "/v1/loans/{loan_id}/trail"): {
        "anonymous": 401,
        "borrower_a": OK,
        "operator": OK,
        "compliance": OK,
        "investor_a": 403,
        "others": 404,
    },
    ("GET", "/v1/loans/{loan_id}/trail.pdf"): {
        "anonymous": 401,
        "borrower_a": OK,
        "operator": OK,
        "compliance": OK,
        "investor_a": 403,
        "others": 404,
    },
    ("GET", "/v1/loans/{loan_id}/trail/verify"): {
        "anonymous": 401,
        "borrower_a": OK,
        "operator": OK,
        "compliance": OK,
        "investor_a": 403,
        "others": 404,
    },
    ("GET", "/v1/operator/scoring-rules"): _STAFF,
    ("PUT", "/v1/operator/scoring-rules"): _OPERATOR,
    ("GET", "/v1/operator/scoring-rules/versions"): _STAFF,
    ("GET", "/v1/operator/scoring-rules/versions/{version}"): _STAFF,
    ("GET", "/v1/loans/{loan_id}/scoring"): {
        "anonymous": 401,
        "borrower_a": OK,
        "operator": OK,
        "compliance": OK,
        "investor_a": 403,
        "others": 404,
    },
    ("GET", "/v1/users/me/points"): _BORROWERS,
    ("GET", "/v1/auto-invest/rule"): _INVESTORS,
    ("PUT", "/v1/auto-invest/rule"): _INVESTORS,
    ("GET", "/v1/auto-invest/allocations"): _INVESTORS,
    ("GET", "/v1/investors/me/annual-limit"): _INVESTORS,
    ("GET", "/v1/investors/me/portfolio"): _INVESTORS,
    ("POST", "/v1/market/listings"): _INVESTORS,
    ("GET", "/v1/market/listings"): _INVESTORS,
    ("GET", "/v1/market/listings/mine"): _INVESTORS,
    ("GET", "/v1/market/trades"): _INVESTORS,
    # the seller's own; another investor is told no such listing
    ("DELETE", "/v1/market/listings/{listing_id}"): {
        "anonymous": 401,
        "investor_a": OK,
        "investor_b": 404,
        "others": 403,
    },
    # any investor may buy (investor_a's own is refused 409: "allowed" past authorization)
    ("POST", "/v1/market/listings/{listing_id}/purchase"): _INVESTORS,
    # financing modalities: plans are their borrower's (and staff's to read); sellers are
    # registered by operators and listed to everyone signed in; award events are held by
    # operators and read by staff (an entrant reads the event on its plan's trail)
    ("POST", "/v1/plans"): _BORROWERS,
    ("GET", "/v1/plans"): _ANY_USER,
    ("GET", "/v1/plans/{plan_id}"): {**_OWNER_AND_STAFF},
    ("GET", "/v1/plans/{plan_id}/trail"): {**_OWNER_AND_STAFF},
    ("POST", "/v1/plans/{plan_id}/cancel"): {"anonymous": 401, "borrower_a": OK, "borrower_b": 404, "others": 403},
    ("POST", "/v1/plans/{plan_id}/bids"): {"anonymous": 401, "borrower_a": OK, "borrower_b": 404, "others": 403},
    ("GET", "/v1/sellers"): _ANY_USER,
    ("POST", "/v1/operator/sellers"): _OPERATOR,
    ("POST", "/v1/operator/award-events"): _OPERATOR,
    ("GET", "/v1/award-events/{event_id}"): _STAFF,
    ("POST", "/v1/calculator/fit"): _PUBLIC,
    ("GET", "/v1/operator/codec-endpoint"): _OPERATOR,
    ("POST", "/codec/decode"): _OPERATOR,
    # a codec link is its own credential; a made-up one is refused whoever sends it
    ("POST", "/codec/{codec_token}/decode"): {role: 401 for role in ROLES},
}

# Valid bodies where the object check comes after body validation (otherwise a 422 would
# hide the answer this test is about).
BODIES: dict[tuple[str, str], dict] = {
    ("POST", "/v1/loans/{loan_id}/investments"): {"amount": "1000.00"},
    ("POST", "/v1/operator/users/{user_id}/block"): {"reason": "matrix test"},
    ("POST", "/v1/operator/withdrawals/{withdrawal_id}/reject"): {"reason": "matrix test"},
    ("POST", "/v1/operator/deposits/{deposit_id}/reject"): {"reason": "matrix test"},
    ("POST", "/v1/auth/refresh"): {"refresh_token": "x" * 43},
    ("POST", "/v1/auth/logout"): {"refresh_token": "x" * 43},
    ("POST", "/codec/{codec_token}/decode"): {"payloads": []},
    ("POST", "/codec/decode"): {"payloads": []},
    ("GET", "/v1/loans/{loan_id}/documents"): {},
    ("POST", "/v1/plans/{plan_id}/bids"): {"period": "2027-01", "amount": "1000.00"},
    ("POST", "/v1/operator/sellers"): {
        "email": "matrix-seller@example.com",
        "password": "matrix password 123",
        "legal_name": "Matrix Dealer",
    },
    ("POST", "/v1/operator/award-events"): {"product": "standard", "period": "2027-01"},
    ("POST", "/v1/calculator/fit"): {"payment": "10000.00", "term_months": 12},
}


@dataclass
class World:
    tokens: dict[str, str | None]
    ids: dict[str, str]
    secrets: list[str]  # what no outsider may ever see
    people: dict[str, list[str]]  # each person's email, user id and wallet id

    def forbidden(self, role: str) -> list[str]:
        """Who this role may not know, by what would name them."""
        known = (role, *MAY_SEE.get(role, ()))
        return [s for person in PEOPLE if person not in known for s in self.people[person]]


def _build_world(client, session_factory, settings) -> World:
    password = "matrix password 123"
    users, emails = {}, {}
    with unit_of_work(session_factory) as session:
        for name, role in (
            ("borrower_a", "borrower"),
            ("investor_a", "investor"),
            ("borrower_b", "borrower"),
            ("investor_b", "investor"),
            ("operator", "operator"),
            ("compliance", "compliance"),
            ("victim", "borrower"),
        ):
            emails[name] = f"{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}@example.com"
            users[name] = create_user(session, emails[name], password, role).id
    with unit_of_work(session_factory) as session:
        session.add(
            BorrowerProfile(
                user_id=users["borrower_a"],
                monthly_income=D("666666.66"),
                monthly_obligations=D("0"),
                employment_months=60,
                updated_at=datetime.now(UTC),
            )
        )
        session.flush()
        loan, _ = create_loan_request(
            session,
            users["borrower_a"],
            product_code="standard",
            amount=D("100000.00"),
            term_months=12,
            purpose="purpose-secret-7f3a",
            simulation_id=None,
            client_key=None,
        )
        session.execute(
            update(LoanRequest)
            .where(LoanRequest.id == loan.id)
            .values(status="active", funded_amount=D("100000.00"), disbursed_at=datetime.now(UTC))
        )
        investment = Investment(
            investor_id=users["investor_a"], loan_id=loan.id, amount=D("100000.00"), status="active"
        )
        session.add(investment)
        session.flush()
        operator_id = users["operator"]
        # An operator decided the loan (its scoring and its trail say so); investor_a invested
        # (the trail names the investment and the wallet it reserved from).
        decision = {"approve": True, "operator_id": str(operator_id), "reason": "matrix review"}
        session.execute(
            update(LoanRequest)
            .where(LoanRequest.id == loan.id)
            .values(scoring_details={"decision": "review", "reasons": [], "operator_decision": decision})
        )
        append_audit(
            session,
            loan.id,
            "status:approved:matrix",
            "loan.status",
            actor_id=operator_id,
            actor_role="operator",
            note="approved by an operator",
            details={"from": "scoring", "to": "approved", "scoring": {"operator_decision": decision}},
        )
        paid, _ = request_deposit(session, users["investor_a"], D("777.77"))
        confirm_deposit(session, paid.id, operator_id)
        pending, _ = request_deposit(session, users["investor_a"], D("333.33"))
        withdrawal, _ = request_withdrawal(session, users["investor_a"], D("111.11"))
        reserve(
            session,
            wallet_of_user(session, users["investor_a"]).id,
            D("12.34"),
            kind="investment_reserve",
            loan_id=loan.id,
            key=f"loan:{loan.id}:investment:{investment.id}:reserve",
            description="investment reserved",
        )
        append_audit(
            session,
            loan.id,
            f"investment:{investment.id}",
            "investment.placed",
            actor_id=users["investor_a"],
            actor_role="investor",
            note="an investor reserved 12.34 for the loan",
            details={"investment_id": investment.id, "investor_id": users["investor_a"], "amount": "12.34"},
        )
        # investor_a's agreement as the platform renders it: both parties read it.
        session.refresh(loan)
        facts = _LoanFacts(
            loan,
            session.get_one(User, users["borrower_a"]),
            session.get_one(LoanProduct, loan.product_id),
            [],
            [investment],
        )
        agreement = investment_agreement_context(
            facts, investment, session.get_one(User, users["investor_a"]), [], settings
        )
        document, _ = register_document(
            session,
            DocumentStore(settings.documents_dir),
            kind="investment_agreement",
            subject_key=f"investment:{investment.id}",
            loan_id=loan.id,
            owner_id=users["investor_a"],
            render=lambda: render_pdf("investment_agreement.html", agreement),
        )
        people: dict[str, list[str]] = {}
        for name, user_id in users.items():
            people[name] = [emails[name], str(user_id)]
            try:
                people[name].append(str(wallet_of_user(session, user_id).id))
            except NotFound:  # operators and compliance have no wallet
                pass

        # investor_a offers half of the holding on the secondary market
        listing = MarketListing(
            investment_id=investment.id,
            loan_id=loan.id,
            seller_id=users["investor_a"],
            principal=D("6.17"),
            remaining_principal=D("6.17"),
            price_percent=D("100.00"),
            status="open",
        )
        session.add(listing)
        session.flush()
        # borrower_a saves toward a truck (a programmed purchase); one award event was held
        seller = create_user(session, f"seller-{uuid.uuid4().hex[:6]}@example.com", password, "seller")
        session.add(Seller(user_id=seller.id, legal_name="Matrix Dealer LLC"))
        session.flush()
        plan, _ = create_plan(
            session,
            users["borrower_a"],
            PlanAsk(
                product_code="vehicle-plan",
                asset_kind="truck",
                asset_description="a truck",
                asset_price=D("600000.00"),
                seller_id=seller.id,
                monthly_contribution=D("20000.00"),
                contribution_months=12,
                loan_term_months=12,
            ),
            simulation_id=None,
            client_key=None,
        )
        event = AwardEvent(product_code="vehicle-plan", period="2026-12", rule="draw", seed="0" * 64, entries=[])
        session.add(event)
        session.flush()
        ids = {
            "plan_id": str(plan.id),
            "event_id": str(event.id),
            "listing_id": str(listing.id),
            "loan_id": str(loan.id),
            "deposit_id": str(pending.id),
            "withdrawal_id": str(withdrawal.id),
            "document_id": str(document.id),
            "wallet_id": str(wallet_of_user(session, users["investor_a"]).id),
            "user_id": str(users["victim"]),
            "code": "standard",
            "version": "1",
            "codec_token": "not-a-codec-link",
        }
        secrets = [
            emails["borrower_a"],
            emails["investor_a"],
            "purpose-secret-7f3a",
            str(investment.id),
            str(paid.id),
            str(pending.id),
            str(withdrawal.id),
            str(document.id),
            str(users["borrower_a"]),
            str(users["investor_a"]),
            ids["wallet_id"],
            ids["loan_id"],
            "777.77",
            "333.33",
            "111.11",
            "55555.00",
            "666666.66",
        ]
    tokens: dict[str, str | None] = {"anonymous": None}
    for name in ROLES[1:]:
        tokens[name] = login(client, emails[name], password)
    simulation = client.post(
        "/v1/simulations",
        json={"product": "standard", "amount": "55555.00", "term_months": 12},
        headers={"Authorization": f"Bearer {tokens['borrower_a']}"},
    )
    assert simulation.status_code == 201, simulation.text
    rule = {
        "is_active": False,
        "max_amount_per_loan": "1000.00",
        "min_loan_amount": "10000.00",
        "max_loan_amount": "100000.00",
        "allowed_grades": ["A"],
        "min_rate": "10.00",
        "max_term_months": 12,
        "reinvest_returns": False,
    }
    for name in ("investor_a", "investor_b"):
        put = client.put("/v1/auto-invest/rule", json=rule, headers={"Authorization": f"Bearer {tokens[name]}"})
        assert put.status_code == 200, put.text
    ids["simulation_id"] = simulation.json()["id"]
    secrets.append(ids["simulation_id"])
    return World(tokens=tokens, ids=ids, secrets=secrets, people=people)


def _visible_text(response) -> str:
    """What the answer shows a reader: its body, or the text of a PDF; without whitespace
    (a PDF's table cells break lines anywhere)."""
    text = response.text
    if response.headers.get("content-type", "").startswith("application/pdf"):
        reader = pypdf.PdfReader(io.BytesIO(response.content))
        text = " ".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", "", text)


def _operations(client) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return sorted((method.upper(), path) for path, ops in spec["paths"].items() for method in ops)


def test_the_table_names_every_route(client):
    operations = set(_operations(client))
    assert operations - set(EXPECTED) == set(), "routes nobody decided about"
    assert set(EXPECTED) - operations == set(), "the table names routes that no longer exist"


@pytest.mark.timeout(600)
def test_every_route_every_role_with_someone_elses_ids(client, session_factory, settings, seeded):
    world = _build_world(client, session_factory, settings)
    failures: list[str] = []
    # Outsiders first: the allowed calls that follow may change state (confirm, block, ...).
    order = sorted(ROLES, key=lambda role: role not in OUTSIDERS)
    for role in order:
        token = world.tokens[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for method, path in _operations(client):
            rule = EXPECTED[(method, path)]
            expected = rule.get(role, rule.get("others"))
            url = re.sub(r"\{(\w+)\}", lambda m: world.ids[m.group(1)], path)
            body = BODIES.get((method, path))
            response = client.request(
                method, url, headers=headers, json=body if body is not None or method in ("POST", "PUT") else None
            )
            got = response.status_code
            where = f"{role:11} {method:4} {path}: {got}"
            if expected == OK:
                if got in (401, 403, 404):
                    failures.append(f"{where}, expected to be allowed ({response.text[:120]})")
            elif got != expected:
                failures.append(f"{where}, expected {expected} ({response.text[:120]})")
            text = _visible_text(response)
            if role in OUTSIDERS:
                leaked = [s for s in world.secrets if s in text and s not in url]
                if leaked:
                    failures.append(f"{where} leaks {leaked}")
            named = [s for s in world.forbidden(role) if s in text and s not in url]
            if named:
                failures.append(f"{where} names people it need not know: {named}")
            assert got != 500, f"{where}: {response.text}"
    assert failures == [], "\n".join(failures)


def test_others_are_named_by_role_and_pseudonym_and_staff_see_who(client, session_factory, settings, seeded):
    """What need to know leaves: the borrower still reads that an investor invested and an
    operator decided (role and pseudonym, the same in every answer), both parties' agreement
    names them so, and operators and compliance still see who everyone is."""
    world = _build_world(client, session_factory, settings)
    loan = world.ids["loan_id"]
    investor_email, investor_id, investor_wallet = world.people["investor_a"]
    operator_email, operator_id = world.people["operator"]
    investor = pseudonym("investor", uuid.UUID(investor_id), settings)
    operator = pseudonym("operator", uuid.UUID(operator_id), settings)
    borrower = pseudonym("borrower", uuid.UUID(world.people["borrower_a"][1]), settings)
    assert re.fullmatch(r"investor-[0-9a-f]{8}", investor) and len({investor, operator, borrower}) == 3

    def get(role: str, path: str) -> httpx.Response:
        answer = client.get(path, headers={"Authorization": f"Bearer {world.tokens[role]}"})
        assert answer.status_code == 200, answer.text
        return answer

    trail = get("borrower_a", f"/v1/loans/{loan}/trail").json()
    steps = {step["action"]: step for step in trail["steps"]}
    placed, decided = steps["investment.placed"], steps["loan.status"]
    assert (placed["actor_role"], placed["actor_pseudonym"], placed["actor_id"], placed["actor_email"]) == (
        "investor",
        investor,
        None,
        None,
    )
    assert placed["details"]["investor_id"] == investor
    assert (decided["actor_role"], decided["actor_pseudonym"], decided["actor_id"]) == ("operator", operator, None)
    assert decided["details"]["scoring"]["operator_decision"]["operator_id"] == operator
    legs = [leg["account"] for leg in steps["ledger.investment_reserve"]["details"]["legs"]]
    assert legs == [f"wallet:{investor}:available", f"wallet:{investor}:reserved"]
    assert trail["chain"]["intact"]  # checked on the records as stored
    scoring = get("borrower_a", f"/v1/loans/{loan}/scoring").json()
    assert scoring["operator_decision"] == {"approve": True, "operator_id": operator, "reason": "matrix review"}
    (document,) = get("borrower_a", f"/v1/loans/{loan}/documents").json()
    assert (document["owner_id"], document["owner_pseudonym"]) == (None, investor)
    trail_pdf = _visible_text(get("borrower_a", f"/v1/loans/{loan}/trail.pdf"))
    assert investor in trail_pdf and operator in trail_pdf
    for party in ("borrower_a", "investor_a"):
        agreement = _visible_text(get(party, f"/v1/documents/{world.ids['document_id']}"))
        assert investor in agreement and borrower in agreement

    # the investor sees their own agreement's listing with their own id
    (own,) = get("investor_a", f"/v1/loans/{loan}/documents").json()
    assert (own["owner_id"], own["owner_pseudonym"]) == (investor_id, investor)

    for staff in ("operator", "compliance"):
        text = get(staff, f"/v1/loans/{loan}/trail").text
        assert all(s in text for s in (investor_email, investor_id, investor_wallet, operator_email, operator_id))
        assert investor in text and operator in text  # and the pseudonyms others are shown
        assert operator_id in get(staff, f"/v1/loans/{loan}/scoring").text
        assert investor_id in get(staff, f"/v1/loans/{loan}/documents").text
        staff_pdf = _visible_text(get(staff, f"/v1/loans/{loan}/trail.pdf"))
        assert investor_email in staff_pdf and operator_email in staff_pdf
