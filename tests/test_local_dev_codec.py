"""`make run` in dev: the Temporal UI shows loans decoded out of the box, for the person at the
machine only. The dev server and the API are started the way `make run` starts them (the UI
pointed at the API's local-dev codec, the API told so by LOCAL_DEV_CODEC); the codec decodes a
real loan's payloads for a request from this machine and the UI's own origin, over a real
socket, CORS preflight included, and answers 404 to anyone else, and outside dev."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.main import create_app
from core.settings import Settings
from runner.ports import free_port
from runner.run import dev_server, local_dev_codec_endpoint
from tests.codec_keys import TEST_PAYLOAD_KEY_ID, TEST_PAYLOAD_KEYS
from tests.worker_process import api_process

HISTORY = Path(__file__).parent / "histories" / "loan_repaid_search_attributes.json"


def _settings(database_url: str, tmp_path: Path, environment: str, **more) -> Settings:
    return Settings(
        _env_file=None,
        ENVIRONMENT=environment,
        DATABASE_URL=database_url,
        DATA_DIR=tmp_path / "data",
        JWT_SECRET=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS="127.0.0.1:1",
        TEMPORAL_DEV_PORT=free_port(),
        TEMPORAL_UI_PORT=free_port(),
        API_PORT=free_port(),
        PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
        PAYLOAD_ENCRYPTION_KEY_ID=TEST_PAYLOAD_KEY_ID,
        **more,
    )


def _a_loans_sealed_payloads() -> dict:
    """The input and the first activity's input of a real loan, as the server stores them."""
    events = json.loads(HISTORY.read_text())["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    scheduled = next(e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    payloads = started + scheduled["activityTaskScheduledEventAttributes"]["input"]["payloads"]
    assert all(base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted" for p in payloads)
    return {"payloads": payloads}


def _the_loan_in(answer: httpx.Response) -> dict:
    assert answer.status_code == 200, answer.text
    payloads = answer.json()["payloads"]
    assert [base64.b64decode(p["metadata"]["encoding"]) for p in payloads] == [b"json/plain"] * 2
    return json.loads(base64.b64decode(payloads[0]["data"]))


def test_the_dev_ui_decodes_a_loan_through_the_api_on_this_machine(database_url, tmp_path):
    settings = _settings(database_url, tmp_path, "dev")
    endpoint = local_dev_codec_endpoint(settings)
    assert endpoint == f"http://localhost:{settings.API_PORT}/codec/local-dev"
    server = dev_server(settings)
    server.persistent = False
    server.start()
    try:
        ui = httpx.get(f"http://127.0.0.1:{settings.TEMPORAL_UI_PORT}/api/v1/settings", timeout=10).json()
        assert ui["Codec"]["Endpoint"] == endpoint
        running = settings.model_copy(
            update={"LOCAL_DEV_CODEC": True, "TEMPORAL_ADDRESS": f"127.0.0.1:{settings.TEMPORAL_DEV_PORT}"}
        )
        ui_origin = f"http://localhost:{settings.TEMPORAL_UI_PORT}"
        with api_process(running, tmp_path / "api.log", settings.API_PORT):
            # the browser's preflight, then the UI's call, as the UI makes them
            preflight = httpx.options(
                f"{endpoint}/decode",
                headers={
                    "Origin": ui_origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace",
                },
            )
            assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ui_origin
            body = _a_loans_sealed_payloads()
            headers = {"Origin": ui_origin, "X-Namespace": "default"}
            loan = _the_loan_in(httpx.post(f"{endpoint}/decode", json=body, headers=headers))
            assert loan["terms"]["product_code"] == "standard" and loan["search_attributes"] is True
            # sealing is the platform's alone: the UI cannot send a loan a signal or an update
            plain = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": "e30="}
            sealed = httpx.post(f"{endpoint}/encode", json={"payloads": [plain]}, headers=headers)
            assert sealed.status_code == 404
            # through a proxy on this machine (forwarding headers), or from another web page: absent
            relayed = httpx.post(f"{endpoint}/decode", json=body, headers={**headers, "X-Forwarded-For": "203.0.113.9"})
            assert relayed.status_code == 404
            evil = httpx.post(f"{endpoint}/decode", json=body, headers={"Origin": "http://evil.example"})
            assert evil.status_code == 404
            assert "access-control-allow-origin" not in evil.headers
    finally:
        server.stop()
    assert local_dev_codec_endpoint(_settings(database_url, tmp_path, "production")) is None


def test_the_local_codec_answers_only_this_machine_in_dev(database_url, tmp_path):
    body = _a_loans_sealed_payloads()
    settings = _settings(database_url, tmp_path, "dev", LOCAL_DEV_CODEC=True)
    origin = {"Origin": settings.local_ui_origins[0]}
    app = create_app(settings)
    with TestClient(app, client=("127.0.0.1", 50000)) as here:
        assert _the_loan_in(here.post("/codec/local-dev/decode", json=body, headers=origin))["amount"]
        assert here.post("/codec/local-dev/decode", json=body).status_code == 200  # a script here, no browser
        # the operators' remote UI origins are not this machine's UI
        other = {"Origin": "http://localhost:8233"} if settings.TEMPORAL_UI_PORT != 8233 else {"Origin": "http://x"}
        assert here.post("/codec/local-dev/decode", json=body, headers=other).status_code == 404
    with TestClient(app, client=("192.0.2.7", 50000)) as elsewhere:  # another machine on the network
        assert elsewhere.post("/codec/local-dev/decode", json=body).status_code == 404
    app.state.engine.dispose()
    # the API listening beyond loopback, or started without `make run`'s flag: absent
    for unsafe in (
        settings.model_copy(update={"API_HOST": "0.0.0.0"}),
        settings.model_copy(update={"LOCAL_DEV_CODEC": False}),
    ):
        app = create_app(unsafe)
        with TestClient(app, client=("127.0.0.1", 50000)) as here:
            assert here.post("/codec/local-dev/decode", json=body).status_code == 404
        app.state.engine.dispose()
    assert "/codec/local-dev/decode" not in create_app(settings).openapi()["paths"]


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_dev_the_local_codec_is_refused_and_absent(database_url, tmp_path, environment):
    with pytest.raises(ValidationError, match="LOCAL_DEV_CODEC"):
        _settings(database_url, tmp_path, environment, LOCAL_DEV_CODEC=True)
    app = create_app(_settings(database_url, tmp_path, environment))
    with TestClient(app, client=("127.0.0.1", 50000)) as here:
        answer = here.post("/codec/local-dev/decode", json=_a_loans_sealed_payloads())
        assert answer.status_code == 404
        assert here.post("/codec/local-dev/decode", json={}).status_code == 404  # before the body is read
    app.state.engine.dispose()
