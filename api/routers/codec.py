"""The codec server: lets operators read encrypted Temporal payloads in the Temporal UI or
CLI, and nobody else.

Temporal's codec-server protocol: POST {endpoint}/decode with
{"payloads": [{"metadata": {name: base64}, "data": base64}]}, answered in the same shape.
There is no /encode: sealing is what makes the worker accept a payload (core/payload_codec.py),
so nothing outside the platform's own processes may seal; loans change through the API's
rules only, never by a signal or an update typed into the UI or the CLI.
Two ways in, both for active operators only:
- `Authorization: Bearer <operator access token>` on /codec/decode, as the CLI sends it
  (`temporal workflow show --codec-endpoint .../codec --codec-auth "Bearer ..."`);
- a codec link from GET /v1/operator/codec-endpoint, for the UI's "Codec Server" setting
  (the browser sends no token of ours): /codec/<short-lived codec token>, then /decode.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import re
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload

from api.deps import OperatorUser, SettingsDep
from api.schemas.base import StrictModel
from core.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from core.payload_codec import EncryptionCodec, PayloadDecryptionError
from core.security import decode_codec_token, issue_codec_token, token_is_live
from models.users import Role, User

log = logging.getLogger("api")

router = APIRouter(tags=["codec"])

_LINK_IN_PATH = re.compile(r"^/codec/[^/]+/")


class RedactCodecLinks(logging.Filter):
    """A codec link is a credential: access logs show /codec/<redacted>/decode."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = _LINK_IN_PATH.sub("/codec/<redacted>/", args[2])
            record.args = tuple(args)
        return True


def redact_codec_links_in_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCodecLinks) for f in access.filters):
        access.addFilter(RedactCodecLinks())


MAX_PAYLOADS = 1000


class CodecPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)
    data: str = ""


class CodecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)


class CodecEndpointOut(StrictModel):
    endpoint: str
    expires_at: datetime


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{what} is not base64") from None


def _to_protos(body: CodecBody) -> list[Payload]:
    return [
        Payload(
            metadata={name: _b64(value, f"metadata {name!r}") for name, value in p.metadata.items()},
            data=_b64(p.data, "data"),
        )
        for p in body.payloads
    ]


def _from_protos(payloads: list[Payload]) -> CodecBody:
    return CodecBody(
        payloads=[
            CodecPayload(
                metadata={name: base64.b64encode(value).decode() for name, value in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


async def _decode(request: Request, body: CodecBody) -> CodecBody:
    """Each payload opened on its own: one that cannot be (a made-up seal a stranger put in a
    loan's history, a retired key) is shown as it is stored, and the rest of the history
    stays readable."""
    codec: EncryptionCodec = request.app.state.payload_codec  # built once, with the app
    result = []
    for proto in _to_protos(body):
        try:
            result.append(codec.open(proto))
        except PayloadDecryptionError as exc:
            log.warning("codec: shown as stored, not decoded: %s", exc)
            result.append(proto)
    return _from_protos(result)


def _operator_by_codec_token(request: Request, settings, token: str) -> User:
    claims = decode_codec_token(settings, token)
    with request.app.state.sessionmaker() as session:
        user = session.get(User, claims.user_id)
    if not token_is_live(user, claims.token_version):
        raise Unauthorized("the codec link is no longer valid; ask for a new one")
    if user.role != Role.operator.value:
        raise Forbidden("decoding payloads is for operators")
    return user


@router.get("/v1/operator/codec-endpoint", response_model=CodecEndpointOut, tags=["operator"])
def codec_endpoint(operator: OperatorUser, request: Request, settings: SettingsDep) -> CodecEndpointOut:
    """A codec link for the Temporal UI (Settings, Codec Server), valid CODEC_LINK_HOURS.
    Treat it as a password: it decodes payloads as you."""
    now = datetime.now(UTC)
    token = issue_codec_token(settings, operator.id, operator.token_version, now)
    base = str(request.base_url).rstrip("/")
    return CodecEndpointOut(
        endpoint=f"{base}/codec/{token}", expires_at=now + timedelta(hours=settings.CODEC_LINK_HOURS)
    )


@router.post("/codec/decode", response_model=CodecBody)
async def decode_with_bearer(body: CodecBody, operator: OperatorUser, request: Request) -> CodecBody:
    return await _decode(request, body)


def _only_the_person_at_this_machine(request: Request, settings: SettingsDep) -> None:
    """The local-dev codec answers only on a dev platform that `make run` started on this
    machine (LOCAL_DEV_CODEC), with the API listening on loopback, a request straight from
    loopback (no proxy in between: no forwarding headers) and, from a browser, only the dev
    UI's own origin. Anyone else gets 404, before the body is read, as if it were absent."""
    client = request.client.host if request.client else ""
    origin = request.headers.get("origin")
    try:
        local = ipaddress.ip_address(client).is_loopback and ipaddress.ip_address(settings.API_HOST).is_loopback
    except ValueError:
        local = False
    forwarded = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    if (
        settings.ENVIRONMENT != "dev"
        or not settings.LOCAL_DEV_CODEC
        or not local
        or forwarded
        or (origin is not None and origin not in settings.local_ui_origins)
    ):
        raise NotFound("Not Found")


LocalDevOnly = Depends(_only_the_person_at_this_machine)


@router.post("/codec/local-dev/decode", response_model=CodecBody, include_in_schema=False, dependencies=[LocalDevOnly])
async def decode_for_local_dev(body: CodecBody, request: Request) -> CodecBody:
    """`make run` points the dev server's UI here: decoded payloads out of the box for the
    person at the machine (see _only_the_person_at_this_machine)."""
    return await _decode(request, body)


@router.post("/codec/{codec_token}/decode", response_model=CodecBody)
async def decode_with_link(codec_token: str, body: CodecBody, request: Request, settings: SettingsDep) -> CodecBody:
    await asyncio.to_thread(_operator_by_codec_token, request, settings, codec_token)
    return await _decode(request, body)
