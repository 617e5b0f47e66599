"""HTML templates (Jinja2) to PDF (WeasyPrint).

Rendering is deterministic: the same context gives the same bytes (the templates print
business times, never the wall clock), so a regenerated document has the same sha256.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"

# Without HarfBuzz-Subset, WeasyPrint subsets fonts with fontTools, which stamps each font
# with the current time unless SOURCE_DATE_EPOCH (the reproducible-builds convention) is
# set: then the same document renders to the same bytes, whenever it is rendered.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1704067200")


def _money(value: Decimal | str | None) -> str:
    """1234567.8 -> "1 234 567.80": a space between thousands, as Russian agreements write it."""
    if value is None:
        return "-"
    amount = Decimal(value).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else ""
    whole, cents = f"{abs(amount):.2f}".split(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{' '.join(groups)}.{cents}"


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["money"] = _money


def render_html(template: str, context: dict[str, Any]) -> str:
    return _environment.get_template(template).render(**context)


# One font configuration per rendering thread, kept: WeasyPrint otherwise loads fontconfig's
# configuration and fonts again for every document (7% of an agreement's CPU here). The bytes
# are the same either way (tests/test_documents_and_trail.py). Per thread, as pango's font
# maps are not thread-safe; the render pools start their processes by spawn, so none inherits
# a parent's. (The templates have no @font-face: one would put font files in a temporary folder
# that only the configuration's finalizer removes, and a render process does not run it.)
_fonts = threading.local()


def _render_here(template: str, context: dict[str, Any]) -> bytes:
    # Imported here: WeasyPrint loads pango at import, which the API needs only for PDFs.
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    if getattr(_fonts, "config", None) is None:
        _fonts.config = FontConfiguration()
    return HTML(string=render_html(template, context), base_url=str(TEMPLATES)).write_pdf(font_config=_fonts.config)


_pool: ProcessPoolExecutor | None = None


def render_in_processes(workers: int) -> None:
    """From now on this process renders in a pool of `workers` processes. The worker calls
    it: rendering is pure Python and holds the GIL for a tenth of a second or more a
    document; in the worker's own process it starves the loans' timers and collections
    (make bench saw 100 loans fall 90 days behind on the sandbox clock while their
    agreements rendered)."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def render_pdf(template: str, context: dict[str, Any]) -> bytes:
    if _pool is None:
        return _render_here(template, context)
    return _pool.submit(_render_here, template, context).result()
