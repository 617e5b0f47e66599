"""How every process (API, worker, runner, tests) connects to Temporal: one place, with the
pydantic data converter (Decimal-safe), payloads and failure messages encrypted by the
payload codec, and TLS or an API key for a managed service."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, EncodingPayloadConverter
from temporalio.exceptions import ApplicationError
from temporalio.service import TLSConfig

from core.payload_codec import CLAIMED_ENCODING, REFUSAL, UNKNOWN_KEY, UNSEALED_ENCODING, EncryptionCodec
from core.settings import Settings

UNSEALED_PAYLOAD = "UnsealedPayload"


def payload_codec(settings: Settings, unsealed: Literal["refuse", "show"] = "refuse") -> EncryptionCodec:
    """The codec of these settings' keys: the same for Temporal clients and the codec server."""
    return EncryptionCodec(settings.payload_keys(), settings.PAYLOAD_ENCRYPTION_KEY_ID, unsealed=unsealed)


class _RefuseUnsealed(EncodingPayloadConverter):
    """Reads the codec's marker for a clear-text payload as a non-retryable error: an update
    carrying one is rejected, a signal dropped, a workflow input fails its run."""

    @property
    def encoding(self) -> str:
        return UNSEALED_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        claimed = payload.metadata.get(CLAIMED_ENCODING, b"").decode("utf-8", "replace")
        if payload.metadata.get(REFUSAL) == UNKNOWN_KEY:
            # Not a failure the workflow sees: a workflow input is retried (the key may be
            # configured yet), a signal is dropped, an update rejected.
            raise RuntimeError("refused a payload sealed with a key this process does not have")
        raise ApplicationError(
            f"refused a payload not sealed with a platform key (it claimed {claimed!r})",
            type=UNSEALED_PAYLOAD,
            non_retryable=True,
        )


class SealedOnlyPayloadConverter(PydanticPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._set_converters(_RefuseUnsealed(), *self.converters.values())


def _converter(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SealedOnlyPayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def encrypted_data_converter(
    keys: Mapping[str, bytes], active_key_id: str, unsealed: Literal["refuse", "show"] = "refuse"
) -> DataConverter:
    return _converter(EncryptionCodec(keys, active_key_id, unsealed=unsealed))


def data_converter(settings: Settings) -> DataConverter:
    return _converter(payload_codec(settings))


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.TEMPORAL_TLS_CLIENT_CERT_PATH and settings.TEMPORAL_TLS_CLIENT_KEY_PATH:
        return TLSConfig(
            client_cert=settings.TEMPORAL_TLS_CLIENT_CERT_PATH.read_bytes(),
            client_private_key=settings.TEMPORAL_TLS_CLIENT_KEY_PATH.read_bytes(),
            server_root_ca_cert=(
                settings.TEMPORAL_TLS_SERVER_CA_PATH.read_bytes() if settings.TEMPORAL_TLS_SERVER_CA_PATH else None
            ),
        )
    # An API key implies TLS (Temporal Cloud).
    return bool(settings.TEMPORAL_TLS or settings.TEMPORAL_API_KEY)


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.TEMPORAL_NAMESPACE,
        api_key=settings.TEMPORAL_API_KEY.get_secret_value() if settings.TEMPORAL_API_KEY else None,
        tls=_tls(settings),
        data_converter=data_converter(settings),
    )


def workflow_ui_url(settings: Settings, workflow_id: str | None) -> str | None:
    """Where an operator opens this workflow in the Temporal UI: TEMPORAL_UI_URL, or the dev
    server's UI on this machine in dev and test. None when there is no UI to link to (production
    without TEMPORAL_UI_URL: a guessed address would point operators at nothing) or no workflow."""
    base = settings.TEMPORAL_UI_URL.rstrip("/")
    if not base and settings.ENVIRONMENT in ("dev", "test"):
        base = f"http://localhost:{settings.TEMPORAL_UI_PORT}"
    if not base or not workflow_id:
        return None
    return f"{base}/namespaces/{quote(settings.TEMPORAL_NAMESPACE, safe='')}/workflows/{quote(workflow_id, safe='')}"
