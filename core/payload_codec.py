"""Temporal payloads encrypted at rest: AES-256-GCM, with the key id in each payload.

Everything the platform hands to Temporal (workflow and activity inputs and results,
update and query payloads, summaries, failure messages) passes through this codec, so the
Temporal server and its database see ciphertext only. Each payload names the key that
sealed it: to rotate, add a new key, make it the active one, and keep the old one as long
as histories sealed with it are retained.

Temporal is a trust boundary: whoever reaches its frontend without our key must not move
money. So workers and clients refuse every payload that is not sealed with a known key
(`unsealed="refuse"`), and every payload that claims a seal it does not have (an unknown key,
an altered text): it is replaced by a marker that no converter reads
(core/temporal_client.py turns it into a non-retryable UnsealedPayload error), so a clear-text
update is rejected before its validator, a clear-text signal is dropped, a clear-text
workflow input fails that run, and nothing reaches an activity. Only the codec endpoint that
shows histories to operators (`unsealed="show"`) passes clear payloads through: what Temporal
itself writes there (search attributes, a terminate reason) and histories from before
encryption.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
log = logging.getLogger("payload_codec")
# What a refused payload becomes: the encoding it claimed, and why it was refused.
UNSEALED_ENCODING = b"binary/unsealed-refused"
CLAIMED_ENCODING = "claimed-encoding"
REFUSAL = "refusal"
# Sealed with a key this process does not have: perhaps a key not yet configured here (a
# rotation half done), so a workflow input refused for it is retried, not failed for good.
UNKNOWN_KEY = b"unknown-key"


class PayloadDecryptionError(ValueError):
    """A payload cannot be opened: its key is not configured, or it was altered."""


def parse_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a payload encryption key is 32 bytes in base64") from None
    if len(key) != 32:
        raise ValueError("a payload encryption key is 32 bytes in base64 (AES-256)")
    return key


class EncryptionCodec(PayloadCodec):
    def __init__(
        self, keys: Mapping[str, bytes], active_key_id: str, *, unsealed: Literal["refuse", "show"] = "refuse"
    ) -> None:
        if active_key_id not in keys:
            raise ValueError(f"the active payload key {active_key_id!r} is not among the keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active = active_key_id
        self._unsealed = unsealed

    @property
    def active_key_id(self) -> str:
        return self._active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._active.encode()
        # The key id is authenticated too: a payload cannot be relabelled to another key.
        sealed = self._ciphers[self._active].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding")
        if encoding != ENCODING:
            return payload if self._unsealed == "show" else self._refused(encoding or b"<none>", b"unsealed")
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            problem, reason = f"payload sealed with key {key_id!r}, which is not configured", UNKNOWN_KEY
        else:
            try:
                return Payload.FromString(
                    cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
                )
            except InvalidTag:
                problem, reason = f"payload sealed with key {key_id!r} was altered or is corrupt", b"altered"
        if self._unsealed == "show":
            raise PayloadDecryptionError(problem)
        # Refused, not raised: an exception here would fail the whole workflow activation,
        # again at every retry, and a loan sent one such signal would stop for good.
        log.error("refused a Temporal payload: %s", problem)
        return self._refused(ENCODING, reason)

    @staticmethod
    def _refused(claimed: bytes, reason: bytes) -> Payload:
        # (data dropped: nothing of a refused payload is ever parsed)
        return Payload(metadata={"encoding": UNSEALED_ENCODING, CLAIMED_ENCODING: claimed, REFUSAL: reason})
