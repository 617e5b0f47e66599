"""`make run` in dev: the Temporal UI shows loans decoded out of the box, for the person at the
machine only. The dev server is started the way `make run` starts it (its UI pointed at the
API's local-dev codec); the codec decodes a real loan's payloads for a request from this
machine and the UI's origin, and answers 404 to anyone else, and outside dev."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import Settings
from runner.ports import free_port
from runner.run import dev_server, local_dev_codec_endpoint
from tests.codec_keys import TEST_PAYLOAD_KEY_ID, TEST_PAYLOAD_KEYS

HISTORY = Path(__file__).parent / "histories" / "loan_repaid_search_attributes.json"


def _settings(database_url: str, tmp_path: Path, environment: str) -> Settings:
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
    )


def _a_loans_sealed_payloads() -> dict:
    """The input and the first activity's input of a real loan, as the server stores them."""
    events = json.loads(HISTORY.read_text())["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    scheduled = next(e for e in events if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    payloads = started + scheduled["activityTaskScheduledEventAttributes"]["input"]["payloads"]
    assert all(base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted" for p in payloads)
    return {"payloads": payloads}


def test_the_dev_servers_ui_decodes_through_the_local_codec(database_url, tmp_path):
    settings = _settings(database_url, tmp_path, "dev")
    endpoint = local_dev_codec_endpoint(settings)
    assert endpoint == f"http://localhost:{settings.API_PORT}/codec/local-dev"
    server = dev_server(settings)
    server.persistent = False
    server.start()
    try:
        ui = httpx.get(f"http://127.0.0.1:{settings.TEMPORAL_UI_PORT}/api/v1/settings", timeout=10).json()
    finally:
        server.stop()
    assert ui["Codec"]["Endpoint"] == endpoint
    assert local_dev_codec_endpoint(_settings(database_url, tmp_path, "production")) is None


def test_the_local_codec_decodes_a_loan_for_this_machine_only(database_url, tmp_path):
    body = _a_loans_sealed_payloads()
    ui_origin = "http://localhost:8233"
    dev = create_app(_settings(database_url, tmp_path, "dev"))
    with TestClient(dev, client=("127.0.0.1", 50000)) as here:
        decoded = here.post("/codec/local-dev/decode", json=body, headers={"Origin": ui_origin})
        assert decoded.status_code == 200, decoded.text
        payloads = decoded.json()["payloads"]
        assert [base64.b64decode(p["metadata"]["encoding"]) for p in payloads] == [b"json/plain"] * 2
        loan = json.loads(base64.b64decode(payloads[0]["data"]))
        assert loan["terms"]["product_code"] == "standard" and loan["search_attributes"] is True
        # the CLI or a script on this machine (no Origin) too
        assert here.post("/codec/local-dev/decode", json=body).status_code == 200
        # a web page of another origin, in this machine's browser: nothing
        evil = here.post("/codec/local-dev/decode", json=body, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 404
    with TestClient(dev, client=("192.0.2.7", 50000)) as elsewhere:  # another machine on the network
        assert elsewhere.post("/codec/local-dev/decode", json=body).status_code == 404
    dev.state.engine.dispose()


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_dev_the_local_codec_is_absent(database_url, tmp_path, environment):
    app = create_app(_settings(database_url, tmp_path, environment))
    with TestClient(app, client=("127.0.0.1", 50000)) as here:
        answer = here.post(
            "/codec/local-dev/decode", json=_a_loans_sealed_payloads(), headers={"Origin": "http://localhost:8233"}
        )
    assert answer.status_code == 404
    app.state.engine.dispose()
