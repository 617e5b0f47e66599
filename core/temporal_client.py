"""How every process (API, worker, runner, tests) connects to Temporal: one place, with the
pydantic data converter (Decimal-safe), payloads and failure messages encrypted by the
payload codec, and TLS or an API key for a managed service."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig

from core.payload_codec import EncryptionCodec
from core.settings import Settings


def payload_codec(settings: Settings) -> EncryptionCodec:
    """The codec of these settings' keys: the same for Temporal clients and the codec server."""
    return EncryptionCodec(settings.payload_keys(), settings.PAYLOAD_ENCRYPTION_KEY_ID)


def _converter(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def encrypted_data_converter(keys: Mapping[str, bytes], active_key_id: str) -> DataConverter:
    return _converter(EncryptionCodec(keys, active_key_id))


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
