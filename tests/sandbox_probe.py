"""A workflow module written for one test: each Temporal sandbox imports it afresh, as it
imports the platform's workflow modules."""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path
from types import ModuleType

import pytest


def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> tuple[str, ModuleType]:
    """`source` as the module `probe` of a package of its own; returns the package's name and
    the module."""
    package = f"probe_{uuid.uuid4().hex[:10]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "probe.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return package, importlib.import_module(f"{package}.probe")
