"""Numbers as clients write them: ASCII digits only.

Python's Decimal() reads the digits of every script ("１４" and "١٤" are 14), and pydantic
passes a decimal sent as text to it. A number that is not ASCII is a spoofing attempt or a
mistake, never what a client meant to send through a JSON API, so it is refused (422)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator


def ascii_number(value: Any) -> Any:
    if isinstance(value, str) and not value.isascii():
        raise ValueError("a number is written with the ASCII digits 0-9")
    return value


# A Decimal read from text only when that text is ASCII (values stored by the platform always are).
AsciiDecimal = Annotated[Decimal, BeforeValidator(ascii_number)]
