"""Personal data never reaches Temporal in clear text: the payload codec (round trip, key
rotation, tampering), the codec server for operators only, and a real loan's stored history
read as the Temporal server holds it."""

from __future__ import annotations

import base64
import logging
import os
import uuid
from decimal import Decimal

import httpx
import pytest
from google.protobuf.message import Message
from pydantic import SecretStr, ValidationError
from sqlalchemy import update
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from api.main import create_app
from api.routers.codec import RedactCodecLinks
from core.db import unit_of_work
from core.payload_codec import ENCODING, UNSEALED_ENCODING, EncryptionCodec, PayloadDecryptionError
from core.security import issue_access_token
from core.settings import PUBLISHED_SECRETS, Settings
from core.temporal_client import UNSEALED_PAYLOAD, encrypted_data_converter
from models.users import User
from tests.api_helpers import sign_up
from tests.loan_helpers import make_borrower, make_investor, running_worker
from tests.test_loan_api import bearer, wait_loan_status

D = Decimal


def _key() -> bytes:
    return os.urandom(32)


async def test_codec_round_trip_seals_every_payload_with_its_key_id():
    converter = encrypted_data_converter({"k1": _key()}, "k1")
    values = ["ivan.petrov@example.com", {"monthly_income": "123457.89"}, 42, None]
    payloads = await converter.encode(values)
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCODING and payload.metadata["encryption-key-id"] == b"k1"
        assert b"ivan.petrov" not in payload.data and b"123457.89" not in payload.data
    assert await converter.decode(payloads, [str, dict, int, type(None)]) == values
    # the same value sealed twice gives different bytes (a fresh nonce each time)
    again = await converter.encode(values[:1])
    assert again[0].data != payloads[0].data


async def test_rotation_reads_old_payloads_and_seals_new_ones_with_the_new_key():
    old_key, new_key = _key(), _key()
    before = EncryptionCodec({"2026-05": old_key}, "2026-05")
    after = EncryptionCodec({"2026-11": new_key, "2026-05": old_key}, "2026-11")
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"a@example.com"}')
    sealed_before = await before.encode([plain])
    assert await after.decode(sealed_before) == [plain]
    sealed_after = await after.encode([plain])
    assert sealed_after[0].metadata["encryption-key-id"] == b"2026-11"
    # once the old key is dropped, its payloads say which key they need (to an operator);
    # a worker refuses them like clear text
    dropped = EncryptionCodec({"2026-11": new_key}, "2026-11", unsealed="show")
    with pytest.raises(PayloadDecryptionError, match="2026-05"):
        await dropped.decode(sealed_before)
    [refused] = await EncryptionCodec({"2026-11": new_key}, "2026-11").decode(sealed_before)
    assert refused.metadata["encoding"] == UNSEALED_ENCODING and refused.data == b""
    # ... as a key not configured *yet* (a rotation half done): a plain error, so a workflow
    # input is retried until the key is there, not failed for good; clear text is final
    converter = encrypted_data_converter({"2026-11": new_key}, "2026-11").payload_converter
    with pytest.raises(RuntimeError) as not_yet:
        converter.from_payloads([refused])
    assert not isinstance(not_yet.value, ApplicationError)
    [clear] = await after.decode([plain])
    with pytest.raises(ApplicationError, match="not sealed"):
        converter.from_payloads([clear])
    # payloads written before encryption was switched on: shown to operators, refused to workers
    shown = EncryptionCodec({"2026-11": new_key, "2026-05": old_key}, "2026-11", unsealed="show")
    assert await shown.decode([plain]) == [plain]
    [refused] = await after.decode([plain])
    assert refused.data == b"" and refused.metadata["claimed-encoding"] == b"json/plain"


async def test_altered_or_relabelled_payloads_are_refused():
    keys = {"a": _key(), "b": _key()}
    codec = EncryptionCodec(keys, "a")
    sealed = (await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")]))[0]
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    relabelled = Payload(metadata={**sealed.metadata, "encryption-key-id": b"b"}, data=sealed.data)
    shown = EncryptionCodec(keys, "a", unsealed="show")
    for bad in (flipped, relabelled):
        with pytest.raises(PayloadDecryptionError, match="altered"):
            await shown.decode([bad])
        # a worker does not raise (that would fail the loan's every activation): refused
        [refused] = await codec.decode([bad])
        assert refused.metadata["encoding"] == UNSEALED_ENCODING and refused.data == b""


def test_settings_refuse_bad_or_development_keys(settings):
    with pytest.raises(ValidationError, match="PAYLOAD_ENCRYPTION_KEY_ID"):
        settings.model_validate({**settings.model_dump(), "PAYLOAD_ENCRYPTION_KEY_ID": "missing"})
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(_env_file=None, PAYLOAD_ENCRYPTION_KEYS={"k": SecretStr("c2hvcnQ=")}, PAYLOAD_ENCRYPTION_KEY_ID="k")
    with pytest.raises(ValidationError, match="PAYLOAD_ENCRYPTION_KEYS is not set"):
        Settings(_env_file=None, ENVIRONMENT="dev", JWT_SECRET=SecretStr("x" * 40))
    for published in PUBLISHED_SECRETS:
        with pytest.raises(ValidationError, match="published in this repository"):
            Settings(
                _env_file=None,
                JWT_SECRET=SecretStr("x" * 40),
                PAYLOAD_ENCRYPTION_KEYS={"old": SecretStr(published)},
                PAYLOAD_ENCRYPTION_KEY_ID="old",
            )


def _codec_body(payloads: list[Payload]) -> dict:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


async def test_codec_server_decodes_for_operators_only(client, settings, operator, compliance, session_factory):
    converter = encrypted_data_converter(settings.payload_keys(), settings.PAYLOAD_ENCRYPTION_KEY_ID)
    sealed = await converter.encode([{"monthly_income": "123457.89"}])
    body = _codec_body(sealed)
    decoded = client.post("/codec/decode", json=body, headers={**operator.headers, "X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    payload = decoded.json()["payloads"][0]
    assert base64.b64decode(payload["data"]) == b'{"monthly_income":"123457.89"}'
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    # nobody may seal through the API, an operator neither: a sealed payload is what the worker obeys
    assert client.post("/codec/encode", json=decoded.json(), headers=operator.headers).status_code == 404
    # a made-up seal (anyone can put one in a loan's history) does not hide the rest of it
    fake = Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"x"}, data=os.urandom(40))
    mixed = client.post("/codec/decode", json=_codec_body([fake, *sealed]), headers=operator.headers)
    assert mixed.status_code == 200
    shown, opened = mixed.json()["payloads"]
    assert base64.b64decode(shown["metadata"]["encoding"]) == ENCODING and opened == payload

    investor = sign_up(client, "investor")
    for headers, status in ((investor.headers, 403), (compliance.headers, 403), ({}, 401)):
        assert client.post("/codec/decode", json=body, headers=headers).status_code == status
    assert (
        client.post(
            "/codec/decode", json={"payloads": [{"metadata": {}, "data": "%%%"}]}, headers=operator.headers
        ).status_code
        == 422
    )

    # The UI's way in: a codec link, which dies with the operator's access.
    link = client.get("/v1/operator/codec-endpoint", headers=operator.headers).json()["endpoint"]
    path = link.removeprefix(str(client.base_url))
    assert client.post(f"{path}/decode", json=body).json() == decoded.json()
    assert client.get("/v1/operator/codec-endpoint", headers=investor.headers).status_code == 403
    assert client.post("/codec/not-a-token/decode", json=body).status_code == 401
    access_as_link, _ = issue_access_token(settings, uuid.UUID(operator.id), "operator", 0)
    assert client.post(f"/codec/{access_as_link}/decode", json=body).status_code == 401
    with unit_of_work(session_factory) as session:
        session.execute(update(User).where(User.id == operator.id).values(token_version=User.token_version + 1))
    assert client.post(f"{path}/decode", json=body).status_code == 401
    # CORS: the Temporal UI's origin may call it from the browser; another origin may not
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ui = client.options(f"{path}/decode", headers={"Origin": "http://localhost:8233", **preflight})
    assert ui.headers.get("access-control-allow-origin") == "http://localhost:8233"
    evil = client.options(f"{path}/decode", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in evil.headers


def _payloads(message: Message, path: str = ""):
    """Every Payload in a protobuf message, with where it sits."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}"
        if field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from _payloads(item, f"{where}[{key}]")
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _payloads(item, f"{where}[{index}]")
        else:
            yield from _payloads(value, where)


async def _a_loan_in_funding(api: httpx.AsyncClient, settings, borrower: uuid.UUID) -> str:
    """The borrower asks for 100,000 over 12 months ("roof") through the API; its id, once funding."""
    headers = bearer(settings, borrower, "borrower")
    created = await api.post(
        "/v1/loans", json={"amount": "100000.00", "term_months": 12, "purpose": "roof"}, headers=headers
    )
    assert created.status_code == 201, created.text
    loan_id: str = created.json()["id"]
    await wait_loan_status(api, loan_id, headers, "funding")
    return loan_id


async def test_a_loans_stored_history_holds_no_clear_text_personal_data(
    live_settings, dev_client, session_factory, seeded, task_queue, operator
):
    settings = live_settings
    income = "123457.89"
    borrower = make_borrower(session_factory, income=income)
    investor = make_investor(session_factory, "20000")
    with session_factory() as session:
        email = session.get(User, borrower).email
        investor_email = session.get(User, investor).email
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        loan_id = await _a_loan_in_funding(api, settings, borrower)
        invested = await api.post(
            f"/v1/loans/{loan_id}/investments",
            json={"amount": "15000.00"},
            headers=bearer(settings, investor, "investor"),
        )
        assert invested.status_code == 201, invested.text
        handle = dev_client.get_workflow_handle(f"loan-{loan_id}")
        await handle.terminate("test over")
        # Read the history as the server stores it: no codec on this client.
        raw_client = await type(dev_client).connect(dev_client.service_client.config.target_host)
        history = await raw_client.get_workflow_handle(f"loan-{loan_id}").fetch_history()
        description = await handle.describe()

        raw = b"".join(event.SerializeToString() for event in history.events) + history.to_json().encode()
        for secret in (email, investor_email, income, income.replace(".", ","), "roof"):
            assert secret.encode() not in raw, f"{secret!r} is in the stored history"
        found = list(_payloads(history.events[0])) + [p for e in history.events[1:] for p in _payloads(e)]
        assert len(found) > 10
        # In clear text, by Temporal's design: search attributes (the server indexes them) and
        # the SDK's patch markers (they hold only a patch id, such as "loan-agreements").
        patch_markers = [p for where, p in found if "details[patch-data]" in where]
        assert all(b'"id":"' in p.data and b"@" not in p.data for p in patch_markers)
        clear = [
            where
            for where, p in found
            if p.metadata.get("encoding") != ENCODING
            and "search_attributes" not in where
            and "details[patch-data]" not in where
        ]
        assert clear == [], f"payloads stored in clear text: {clear}"
        # The workflow id and the search attributes (the only clear-text fields) carry no PII.
        assert description.id == f"loan-{loan_id}"
        attributes = {key: str(value) for key, value in description.search_attributes.items()}
        assert all(email not in value and income not in value for value in attributes.values())
        assert attributes.get("BorrowerId") == f"['{borrower}']"

        # An operator reads the same input through the codec server.
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads
        decoded = await api.post(
            "/codec/decode",
            json=_codec_body(list(started)),
            headers=bearer(settings, uuid.UUID(operator.id), "operator"),
        )
        assert decoded.status_code == 200, decoded.text
        assert b'"amount":"100000' in base64.b64decode(decoded.json()["payloads"][0]["data"])


def test_codec_links_are_redacted_from_access_logs():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/codec/eyJhbGciOi.secret.sig/decode", "1.1", 200),
        None,
    )
    assert RedactCodecLinks().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /codec/<redacted>/decode HTTP/1.1" 200'


async def test_clear_text_sent_straight_to_temporal_is_refused_and_reserves_nothing(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    """Someone who reaches the Temporal frontend without the platform's key: an `invest`
    naming another investor, a wake-up signal, a loan started with a made-up input."""
    from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
    from temporalio.common import RawValue
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.exceptions import ApplicationError

    from loans.requests import workflow_input
    from models.loan_workflow import FundsArrived, InvestmentRequest
    from models.loans import Investment, LoanRequest
    from tests.loan_helpers import balance_of, invest, wait_for_status
    from workflows.loan import LoanWorkflow

    settings = live_settings
    borrower = make_borrower(session_factory)
    investor = make_investor(session_factory, "20000")
    before = balance_of(session_factory, investor)
    app = create_app(settings)
    async with (
        running_worker(dev_client, settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        loan_id = await _a_loan_in_funding(api, settings, borrower)
        # The same converter as the platform's, without its codec: clear text.
        intruder = await Client.connect(
            dev_client.service_client.config.target_host, data_converter=pydantic_data_converter
        )
        loan = intruder.get_workflow_handle(f"loan-{loan_id}")
        request = InvestmentRequest(
            investment_id=uuid.uuid4(), investor_id=investor, amount=D("15000.00"), loan_id=uuid.UUID(loan_id)
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await loan.execute_update(LoanWorkflow.invest, request, id=f"investment-{request.investment_id}")
        assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == UNSEALED_PAYLOAD
        # Signals: in clear text; with no input at all (no payload, so no seal to check); with
        # a made-up seal (a key the platform does not have).
        await loan.signal(LoanWorkflow.funds_arrived, FundsArrived())
        await loan.signal("funds_arrived")
        fake_seal = Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"x"}, data=os.urandom(64))
        await loan.signal("funds_arrived", RawValue(fake_seal))
        # A sealed request copied out of another loan's history (here: sealed by the platform's
        # own client, naming another loan, or none as before loans were named): refused.
        sealed = dev_client.get_workflow_handle(f"loan-{loan_id}")
        # Sealed signals the platform never sends: two inputs, one that is no FundsArrived, one
        # for another loan. Dropped, not an exception (that would fail every task from then on).
        await sealed.signal("funds_arrived", args=[FundsArrived(), FundsArrived()])
        await sealed.signal("funds_arrived", {"at": "not a time"})
        await sealed.signal(LoanWorkflow.funds_arrived, FundsArrived(loan_id=uuid.uuid4()))
        for elsewhere in (uuid.uuid4(), None):
            copied = request.model_copy(update={"investment_id": uuid.uuid4(), "loan_id": elsewhere})
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await sealed.execute_update(LoanWorkflow.invest, copied, id=f"investment-{copied.investment_id}")
            assert isinstance(refused.value.cause, ApplicationError) and refused.value.cause.type == "NotThisLoan"
        # The loan took nothing of it; nobody's money moved.
        snapshot = await wait_for_status(sealed, "funding")
        assert snapshot.funded_amount == 0
        assert balance_of(session_factory, investor) == before
        with session_factory() as session:
            assert session.query(Investment).filter(Investment.loan_id == uuid.UUID(loan_id)).count() == 0
        # And it goes on: the platform's own investment is taken, and no workflow task of the
        # loan ever failed on what it was sent (a failing task would stop the loan for good).
        await invest(sealed, investor, "15000.00")
        assert balance_of(session_factory, investor).available == before.available - D("15000.00")
        failed_tasks = [
            event
            async for event in sealed.fetch_history_events()
            if event.HasField("workflow_task_failed_event_attributes")
        ]
        assert failed_tasks == []
        # A loan started by hand with a made-up input fails at once, before any activity.
        made_up = uuid.uuid4()
        started = await intruder.start_workflow(
            "LoanWorkflow", {"loan_id": str(made_up)}, id=f"loan-{made_up}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await dev_client.get_workflow_handle(started.id).result()
        assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == UNSEALED_PAYLOAD
        with session_factory() as session:
            assert session.get(LoanRequest, made_up) is None
        # This loan's own sealed input, copied under another workflow id: a second life of the
        # loan beside its own would rewrite its status and release its reservations. Refused.
        with session_factory() as session:
            own_input = workflow_input(session, session.get(LoanRequest, uuid.UUID(loan_id)), 1)
        twin = await dev_client.start_workflow(
            LoanWorkflow.run, own_input, id=f"loan-{uuid.uuid4()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await twin.result()
        assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == "NotThisLoan"
        assert (await wait_for_status(sealed, "funding")).funded_amount == D("15000.00")
        await sealed.terminate("test over")
