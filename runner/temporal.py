"""The Temporal dev server for `make run`, and namespace setup shared with tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client

from models.search_attributes import ALL as SEARCH_ATTRIBUTES
from runner.local_secrets import without_secrets
from runner.ports import die_with_parent, ensure_port_free, stop_process, wait_for_port


def temporal_cli() -> Path:
    return Path(sys.executable).parent / "temporal"


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Adds our custom search attributes if missing; returns the names it added."""
    existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


class TemporalDevServer:
    """`temporal server start-dev` on a persistent SQLite file, with its UI. We own its pid."""

    def __init__(
        self, data_dir: Path, port: int, ui_port: int, *, persistent: bool = True, ui_codec_endpoint: str | None = None
    ) -> None:
        self.persistent = persistent
        # The UI's codec server (its browser calls it to show payloads decoded): in dev, the
        # API's local-dev codec, which answers only the person at this machine.
        self.ui_codec_endpoint = ui_codec_endpoint
        self.data_dir = data_dir
        self.port = port
        self.ui_port = ui_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        ensure_port_free(self.port, "the Temporal dev server")
        ensure_port_free(self.ui_port, "the Temporal UI")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        if self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.persistent:
            args += [
                "--db-filename",
                str(self.data_dir / "temporal.db"),
                # Measured here: 78 activities/s with these pragmas, 26 without.
                "--sqlite-pragma",
                "journal_mode=wal",
                "--sqlite-pragma",
                "synchronous=normal",
            ]
        log = open(self.data_dir / "temporal.log", "ab")
        self.process = subprocess.Popen(
            args,
            env=without_secrets(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        log.close()
        if not wait_for_port(self.port, timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"the Temporal dev server did not start; see {self.data_dir / 'temporal.log'}")
        wait_for_port(self.ui_port, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        stop_process(self.process, signal.SIGTERM, timeout)
        self.process = None
