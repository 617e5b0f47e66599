"""The payload encryption key every test process shares (test-only, not a secret): the API,
the workers, the clients and the replayer must all read each other's payloads, and a
history saved with RECORD_HISTORIES=1 must replay in later runs."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import SecretStr
from temporalio.converter import DataConverter

from core.temporal_client import encrypted_data_converter

TEST_PAYLOAD_KEY_ID = "test-1"
TEST_PAYLOAD_KEY = base64.b64encode(b"test-payload-key-32-bytes-long!!").decode()
TEST_PAYLOAD_KEYS = {TEST_PAYLOAD_KEY_ID: SecretStr(TEST_PAYLOAD_KEY)}


def test_data_converter(unsealed: Literal["refuse", "show"] = "refuse") -> DataConverter:
    """As every platform process has it; the replayer's shows clear payloads (histories saved
    before encryption)."""
    return encrypted_data_converter(
        {TEST_PAYLOAD_KEY_ID: base64.b64decode(TEST_PAYLOAD_KEY)}, TEST_PAYLOAD_KEY_ID, unsealed=unsealed
    )


test_data_converter.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
