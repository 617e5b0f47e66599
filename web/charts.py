"""Charts for the back office: plain SVG built here, no JavaScript and no chart library.

Every chart is an inline `<svg role="img">` named by its `<title>` and described by its `<desc>` (one
sentence with the figures' range), as wide as its container (a viewBox, `width="100%"`, no fixed height).
Series differ in pattern as well as colour and are named in a legend; every bar and point carries a
`<title>` with its label, series and exact amount. All text is escaped here (markupsafe.escape), every
id is `[a-z0-9-]` only and the result is a `Markup`, so a template inserts it as it is: `{{ chart }}`.

Amounts are `Decimal` (money): labels show them exactly; only the geometry is turned into floats, from a
Decimal fraction of the axis, so no amount can make a coordinate NaN or infinite. No `style` attribute and
no `<style>` element: presentation attributes only, so a strict Content-Security-Policy is enough.

The page's id for a chart (chart_id) must be unique on the page: it prefixes the ids inside the SVG.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Sequence
from decimal import MAX_EMAX, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Context, Decimal, localcontext
from enum import Enum

from markupsafe import Markup, escape

from models.loan_status import ALLOWED_TRANSITIONS, LoanStatus

__all__ = ["bar_chart", "line_chart", "lifecycle_diagram"]

SVG_NS = "http://www.w3.org/2000/svg"
_FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
# An average glyph's width over the font size, on the wide side (capitals), to keep labels apart.
_GLYPH = 0.62
_TEXT = "#1a1a1a"
_MUTED = "#444444"
_GRID = "#d9d9d9"
# Okabe-Ito, told apart with colour-vision deficiencies (its yellow left out: too pale on white)
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
_PATTERNS = ("solid", "stripes", "dots", "crosshatch")

_W = 720  # a chart's viewBox width: text stays readable when the page shows it 480-960 px wide
_TITLE_FONT = 16
_FONT = 13
_SMALL_FONT = 12
_PLOT_HEIGHT = 240
_LABEL_CHARS = 16  # an axis label longer than this is cut short (the bar's tooltip has it whole)
_NAME_CHARS = 28  # a series name in the legend

# Arithmetic for geometry: 28 digits and any exponent (an amount's size never overflows it)
_GEOM = Context(prec=28, Emax=MAX_EMAX, Emin=MIN_EMIN)
_NICE = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5))

# Characters XML 1.0 does not allow (control characters, lone surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_ID = re.compile("[^a-z0-9]+")


# --- text and markup -------------------------------------------------------------------------------


def _clean(text: object) -> str:
    return _NOT_XML.sub("", str(text))


def _line(text: object) -> str:
    """One line of text, any character XML cannot hold dropped."""
    return " ".join(_clean(text).split())


def _short(text: object, limit: int) -> str:
    line = _line(text)
    return line if len(line) <= limit else line[: max(1, limit - 1)].rstrip() + "\u2026"


def _safe_id(chart_id: str) -> str:
    """`[a-z0-9-]` only, starting with a letter (an XML id cannot start with a digit)."""
    slug = _NOT_ID.sub("-", str(chart_id).lower()).strip("-")
    if not slug:
        return "chart"
    return slug if slug[0].isalpha() else f"chart-{slug}"


def _n(value: float) -> str:
    """A coordinate: two decimals at most, never NaN or infinite."""
    if not math.isfinite(value):
        raise ValueError(f"a chart coordinate is not finite: {value!r}")
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _el(tag: str, attrs: dict[str, object] | None = None, *children: object) -> Markup:
    """One element: attribute values and text children escaped, Markup children kept as they are."""
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        if value is None:
            continue
        text = _n(value) if isinstance(value, float) else _clean(value)
        parts.append(f' {name}="{escape(text)}"')
    head = "".join(parts)
    if not children:
        return Markup(head + "/>")
    inner = "".join(str(c) if isinstance(c, Markup) else str(escape(_line(c))) for c in children)
    return Markup(f"{head}>{inner}</{tag}>")


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _text_width(text: str, font_size: float) -> float:
    return len(text) * font_size * _GLYPH


# --- amounts ---------------------------------------------------------------------------------------


def _amounts(values: Iterable[object], what: str) -> list[Decimal]:
    out: list[Decimal] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"{what}: amounts are Decimal (or int), not {type(value).__name__}")
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError(f"{what}: {value} is not an amount")
        out.append(amount)
    return out


def _exact(amounts: Sequence[Decimal]) -> Context:
    """A context in which sums of these amounts are exact (a total shown is the true total)."""
    if not amounts:
        return Context(prec=28, Emax=MAX_EMAX, Emin=MIN_EMIN)
    top = max(a.adjusted() for a in amounts)
    bottom = min(int(a.as_tuple().exponent) for a in amounts)
    return Context(prec=max(28, top - bottom + len(str(len(amounts))) + 2), Emax=MAX_EMAX, Emin=MIN_EMIN)


def _amount_text(amount: Decimal, unit: str) -> str:
    if amount.is_zero():
        amount = abs(amount)  # no "-0.00"
    text = f"{amount:,f}"
    return f"{text} {_line(unit)}" if _line(unit) else text


def _nice_ticks(lo: Decimal, hi: Decimal) -> list[Decimal]:
    """4 to 6 ticks a step of 1, 2, 2.5 or 5 x 10^n apart, the first at or below lo, the last at or above hi."""
    if lo > hi:
        lo, hi = hi, lo
    if lo == hi:
        lo, hi = min(lo, Decimal(0)), max(hi, Decimal(0))
        if lo == hi:  # all zeros
            hi = Decimal(1)
    magnitude = _GEOM.subtract(hi, lo).adjusted()
    fallback: list[Decimal] | None = None
    for exponent in range(magnitude - 2, magnitude + 2):
        for mantissa in _NICE:
            step = mantissa.scaleb(exponent, context=_GEOM)
            first = int(_GEOM.divide(lo, step).to_integral_value(rounding=ROUND_FLOOR, context=_GEOM))
            last = int(_GEOM.divide(hi, step).to_integral_value(rounding=ROUND_CEILING, context=_GEOM))
            # the divisions round at 28 digits: make sure the ends do cover lo and hi
            while _GEOM.multiply(Decimal(first), step) > lo:
                first -= 1
            while _GEOM.multiply(Decimal(last), step) < hi:
                last += 1
            count = last - first + 1
            if count <= 6:
                ticks = [_GEOM.multiply(Decimal(k), step) for k in range(first, last + 1)]
                if count >= 4:
                    return ticks
                fallback = fallback or ticks
    assert fallback is not None  # a step of 5 x 10^(magnitude+1) always gives 6 ticks or fewer
    return fallback


# --- the frame shared by bar and line charts -------------------------------------------------------


class _Frame:
    """The plot area, its value axis (ticks) and its categories (one slot per label)."""

    def __init__(
        self,
        labels: Sequence[str],
        ticks: list[Decimal],
        top: float,
        unit: str,
    ) -> None:
        self.ticks = ticks
        self.lo, self.hi = ticks[0], ticks[-1]
        self.tick_texts = [f"{t:,f}" for t in ticks]
        self.unit = _line(unit)
        self.shown = [_short(label, _LABEL_CHARS) for label in labels]
        label_width = max((_text_width(s, _SMALL_FONT) for s in self.shown), default=0.0)
        tick_width = max(_text_width(t, _SMALL_FONT) for t in self.tick_texts)
        self.left = min(max(tick_width + 16, label_width / 2 + 6, 40.0), _W / 2)  # huge amounts: labels clipped
        self.right = _W - max(label_width / 2 + 6, 20.0)
        self.top = top
        self.bottom = top + _PLOT_HEIGHT
        self.height = self.bottom + 36  # the axis labels' row below
        self.count = len(labels)
        self.slot = (self.right - self.left) / max(1, self.count)
        # show every `every`-th label, far enough apart not to overlap
        self.every = max(1, math.ceil((label_width + 10) / self.slot)) if self.count else 1

    def y(self, value: Decimal) -> float:
        fraction = _GEOM.divide(_GEOM.subtract(self.hi, value), _GEOM.subtract(self.hi, self.lo))
        return round(self.top + float(fraction) * (self.bottom - self.top), 2)

    def centre(self, index: int) -> float:
        return self.left + (index + 0.5) * self.slot

    def grid(self) -> Markup:
        parts = []
        if self.unit:
            parts.append(
                _el(
                    "text",
                    {"class": "unit", "x": 16.0, "y": self.top - 12, "font-size": _SMALL_FONT, "fill": _MUTED},
                    _short(self.unit, 60),
                )
            )
        for tick, text in zip(self.ticks, self.tick_texts, strict=True):
            y = self.y(tick)
            parts.append(
                _el(
                    "line",
                    {
                        "class": "grid",
                        "data-value": str(tick),
                        "x1": self.left,
                        "x2": self.right,
                        "y1": y,
                        "y2": y,
                        "stroke": _GRID,
                        "stroke-width": 1,
                    },
                )
            )
            parts.append(
                _el(
                    "text",
                    {
                        "class": "tick-label",
                        "x": self.left - 8,
                        "y": y + 4,
                        "text-anchor": "end",
                        "font-size": _SMALL_FONT,
                        "fill": _MUTED,
                    },
                    text,
                )
            )
        return _el("g", {"class": "y-axis"}, *parts)

    def zero_line(self) -> Markup:
        y = self.y(Decimal(0))
        return _el(
            "line",
            {"class": "zero-line", "x1": self.left, "x2": self.right, "y1": y, "y2": y, "stroke": "#222222"}
            | {"stroke-width": 1.5},
        )

    def x_labels(self) -> Markup:
        texts = [
            _el(
                "text",
                {
                    "class": "x-label",
                    "x": self.centre(i),
                    "y": self.bottom + 20,
                    "text-anchor": "middle",
                    "font-size": _SMALL_FONT,
                    "fill": _TEXT,
                },
                self.shown[i],
            )
            for i in range(0, self.count, self.every)
        ]
        return _el("g", {"class": "x-labels"}, *texts)


def _svg(cid: str, kind: str, title: str, desc: str, width: float, height: float, *body: Markup) -> Markup:
    return _el(
        "svg",
        {
            "xmlns": SVG_NS,
            "id": cid,
            "class": f"chart-svg {kind}",
            "role": "img",
            "aria-labelledby": f"{cid}-title {cid}-desc",
            "viewBox": f"0 0 {_n(width)} {_n(height)}",
            "width": "100%",
            "preserveAspectRatio": "xMidYMid meet",
            "font-family": _FONT_FAMILY,
        },
        _el("title", {"id": f"{cid}-title"}, title),
        _el("desc", {"id": f"{cid}-desc"}, desc),
        *body,
    )


def _title_text(title: str) -> Markup:
    return _el(
        "text",
        {"class": "chart-title", "x": 16.0, "y": 26.0, "font-size": _TITLE_FONT, "font-weight": 600, "fill": _TEXT},
        _short(title, int((_W - 32) / (_TITLE_FONT * _GLYPH))),
    )


def _no_data(cid: str, kind: str, title: str) -> Markup:
    return _svg(
        cid,
        f"{kind} empty",
        title,
        f"{title}: no data.",
        _W,
        140,
        _title_text(title),
        _el(
            "text",
            {"class": "no-data", "x": _W / 2, "y": 90.0, "text-anchor": "middle", "font-size": _FONT, "fill": _MUTED},
            "no data",
        ),
    )


def _span_text(labels: Sequence[str]) -> str:
    first, last = _short(labels[0], 40), _short(labels[-1], 40)
    return f"1 category ({first})" if len(labels) == 1 else f"{len(labels)} categories ({first} to {last})"


def _chart_title(title: str) -> str:
    return _line(title) or "Chart"


# --- bar chart -------------------------------------------------------------------------------------


def _fill(cid: str, index: int) -> tuple[str, str, Markup | None]:
    """A series' colour, its fill (the colour or a pattern of it) and the pattern's definition."""
    colour = _PALETTE[index % len(_PALETTE)]
    kind = _PATTERNS[index % len(_PATTERNS)]
    if kind == "solid":
        return colour, colour, None
    pid = f"{cid}-pattern-{index}"
    white = {"fill": "#ffffff", "fill-opacity": 0.75}
    if kind == "stripes":
        marks = [_el("rect", {"x": 0, "y": 0, "width": 3, "height": 8} | white)]
    elif kind == "dots":
        marks = [_el("circle", {"cx": 4, "cy": 4, "r": 1.6} | white)]
    else:
        marks = [
            _el("rect", {"x": 0, "y": 0, "width": 2, "height": 8} | white),
            _el("rect", {"x": 0, "y": 0, "width": 8, "height": 2} | white),
        ]
    pattern = _el(
        "pattern",
        {
            "id": pid,
            "patternUnits": "userSpaceOnUse",
            "width": 8,
            "height": 8,
            "patternTransform": "rotate(45)" if kind != "dots" else None,
        },
        _el("rect", {"x": 0, "y": 0, "width": 8, "height": 8, "fill": colour}),
        *marks,
    )
    return colour, f"url(#{pid})", pattern


def _legend(names: Sequence[str], fills: Sequence[tuple[str, str]], top: float) -> tuple[Markup, float]:
    """The series' names next to a swatch of their fill, wrapped in rows; returns it and its bottom."""
    items = []
    x, y = 16.0, top
    for name, (colour, fill) in zip(names, fills, strict=True):
        shown = _short(name, _NAME_CHARS)
        width = 22 + _text_width(shown, _FONT) + 18
        if x > 16 and x + width > _W - 16:
            x, y = 16.0, y + 22
        items.append(
            _el(
                "g",
                {"class": "legend-item"},
                _el(
                    "rect",
                    {"x": x, "y": y, "width": 16, "height": 16, "fill": fill, "stroke": colour, "stroke-width": 1},
                ),
                _el("text", {"x": x + 22, "y": y + 13, "font-size": _FONT, "fill": _TEXT}, shown),
            )
        )
        x += width
    return _el("g", {"class": "legend"}, *items), y + 16


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal]]],
    *,
    stacked: bool = True,
    unit: str = "",
) -> Markup:
    """Bars per label, one per series: stacked (negative amounts stack down from zero) or side by side.

    Each series is (name, one amount per label). No labels or no series: a chart saying "no data".
    Raises ValueError if a series has not one amount per label or an amount is not finite.
    """
    cid, title = _safe_id(chart_id), _chart_title(title)
    labels = [str(label) for label in labels]
    names = [_line(name) or "(unnamed)" for name, _ in series]
    columns = [_amounts(values, f"series {name!r}") for name, values in series]
    for name, values in zip(names, columns, strict=True):
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} amounts for {len(labels)} labels")
    kind = "bar-chart"
    if not labels or not columns:
        return _no_data(cid, kind, title)

    every_amount = [a for values in columns for a in values]
    with localcontext(_exact(every_amount)):
        if stacked:
            highs = [sum((v[i] for v in columns if v[i] > 0), Decimal(0)) for i in range(len(labels))]
            lows = [sum((v[i] for v in columns if v[i] < 0), Decimal(0)) for i in range(len(labels))]
            figures = [sum((v[i] for v in columns), Decimal(0)) for i in range(len(labels))]
            lo, hi = min(lows), max(highs)
        else:
            figures = every_amount
            lo, hi = min(min(figures), Decimal(0)), max(max(figures), Decimal(0))

        fills = [_fill(cid, j) for j in range(len(columns))]
        legend, legend_bottom = _legend(names, [(c, f) for c, f, _ in fills], 42.0)
        frame = _Frame(labels, _nice_ticks(lo, hi), legend_bottom + 34, unit)

        bars = []
        for i, label in enumerate(labels):
            up = down = Decimal(0)
            group = frame.slot * (0.7 if stacked else 0.8)
            x = frame.left + i * frame.slot + (frame.slot - group) / 2
            width = group if stacked else group / len(columns)
            for j, (name, values) in enumerate(zip(names, columns, strict=True)):
                amount = values[i]
                start = Decimal(0)
                if stacked:
                    if amount < 0:
                        start, down = down, down + amount
                    else:
                        start, up = up, up + amount
                y_start, y_end = frame.y(start), frame.y(start + amount)
                colour, fill, _ = fills[j]
                bars.append(
                    _el(
                        "rect",
                        {
                            "class": "bar",
                            "data-series": name,
                            "data-value": str(amount),
                            "x": x if stacked else x + j * width,
                            "y": min(y_start, y_end),
                            "width": width,
                            "height": abs(y_start - y_end),
                            "fill": fill,
                            "stroke": colour,
                            "stroke-width": 0.75,
                        },
                        _el("title", {}, f"{_line(label)}, {name}: {_amount_text(amount, unit)}"),
                    )
                )

    what = "totals" if stacked and len(columns) > 1 else "amounts"
    chart = "Stacked bar chart" if stacked and len(columns) > 1 else "Bar chart"
    desc = (
        f"{chart} of {_join([_short(n, 40) for n in names])} across {_span_text(labels)}; "
        f"{what} range from {_amount_text(min(figures), unit)} to {_amount_text(max(figures), unit)}."
    )
    defs = [pattern for _, _, pattern in fills if pattern is not None]
    return _svg(
        cid,
        kind,
        title,
        desc,
        _W,
        frame.height,
        *([_el("defs", {}, *defs)] if defs else []),
        _title_text(title),
        legend,
        frame.grid(),
        _el("g", {"class": "bars"}, *bars),
        frame.zero_line(),
        frame.x_labels(),
    )


# --- line chart ------------------------------------------------------------------------------------


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[Decimal],
    *,
    unit: str = "",
) -> Markup:
    """A line through one amount per label (the axis always shows zero), a circle with a tooltip per point.

    No labels: a chart saying "no data". Raises ValueError if there is not one amount per label.
    """
    cid, title = _safe_id(chart_id), _chart_title(title)
    labels = [str(label) for label in labels]
    amounts = _amounts(values, "values")
    if len(amounts) != len(labels):
        raise ValueError(f"{len(amounts)} amounts for {len(labels)} labels")
    kind = "line-chart"
    if not labels:
        return _no_data(cid, kind, title)

    frame = _Frame(labels, _nice_ticks(min(min(amounts), Decimal(0)), max(max(amounts), Decimal(0))), 58.0, unit)
    colour = _PALETTE[0]
    xs = [round(frame.centre(i), 2) for i in range(len(labels))]
    ys = [frame.y(a) for a in amounts]
    radius = min(4.0, max(1.5, frame.slot * 0.3))
    points = [
        _el(
            "circle",
            {"class": "point", "data-value": str(a), "cx": x, "cy": y, "r": radius, "fill": colour}
            | {"stroke": "#ffffff", "stroke-width": 1},
            _el("title", {}, f"{_line(label)}: {_amount_text(a, unit)}"),
        )
        for label, a, x, y in zip(labels, amounts, xs, ys, strict=True)
    ]
    line = _el(
        "polyline",
        {
            "class": "line",
            "points": " ".join(f"{_n(x)},{_n(y)}" for x, y in zip(xs, ys, strict=True)),
            "fill": "none",
            "stroke": colour,
            "stroke-width": 2.5,
            "stroke-linejoin": "round",
        },
    )
    count = "1 point" if len(labels) == 1 else f"{len(labels)} points"
    desc = (
        f"Line chart of {title} over {count} ({_short(labels[0], 40)}"
        + ("" if len(labels) == 1 else f" to {_short(labels[-1], 40)}")
        + f"): from {_amount_text(amounts[0], unit)} to {_amount_text(amounts[-1], unit)}, "
        f"lowest {_amount_text(min(amounts), unit)}, highest {_amount_text(max(amounts), unit)}."
    )
    return _svg(
        cid,
        kind,
        title,
        desc,
        _W,
        frame.height,
        _title_text(title),
        frame.grid(),
        frame.zero_line(),
        line,
        _el("g", {"class": "points"}, *points),
        frame.x_labels(),
    )


# --- loan lifecycle --------------------------------------------------------------------------------

# (column, row) of each known status: the main path left to right, the other final states below it.
# A status ALLOWED_TRANSITIONS gains later gets a place next to its neighbours (see _positions).
_LAYOUT: dict[str, tuple[float, float]] = {
    "pending": (0, 0),
    "scoring": (1, 0),
    "approved": (2, 0),
    "funding": (3, 0),
    "funded": (4, 0),
    "active": (5, 0),
    "repaid": (6, 0),
    "rejected": (2.5, 1),
    "defaulted": (5, 1),
}
_LOOP_LABELS = {"scoring": "review"}
_BOX_W, _BOX_H = 100.0, 44.0
_PITCH_X, _PITCH_Y = 124.0, 100.0
_X0, _Y0 = 20.0, 58.0  # room above the first row for a self-loop and its label

_STYLES = {
    # border width, dash, fill, border colour, text colour, text weight
    "current": (3.5, None, "#0b4f8a", "#000000", "#ffffff", 700),
    "visited": (1.5, None, "#d6e9f5", "#0072B2", _TEXT, 400),
    "": (1.5, "5 3", "#ffffff", "#767676", "#333333", 400),
}
_STATE_NOTES = {"current": "current state", "visited": "visited", "": "not reached"}


def _status_name(status: object) -> str:
    return str(status.value) if isinstance(status, Enum) else str(status)


def _lifecycle() -> tuple[list[str], list[tuple[str, str]]]:
    """The statuses (LoanStatus's order, then any other ALLOWED_TRANSITIONS names) and the transitions."""
    names: list[str] = [_status_name(s) for s in LoanStatus]
    for source, targets in ALLOWED_TRANSITIONS.items():
        for status in (source, *targets):
            if _status_name(status) not in names:
                names.append(_status_name(status))
    order = {name: i for i, name in enumerate(names)}
    edges = sorted(
        {(_status_name(s), _status_name(t)) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets},
        key=lambda edge: (order[edge[0]], order[edge[1]]),
    )
    return names, edges


def _positions(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Each status's box (its top-left corner) from _LAYOUT's grid.

    A status _LAYOUT does not know goes next to the statuses it has transitions with: above the main path
    when they are all on it, below the lowest row otherwise, shifted right until its place is free.
    """
    grid = {name: _LAYOUT[name] for name in names if name in _LAYOUT}
    taken = list(grid.values())
    taken += [(grid[s][0], grid[s][1] - 1) for s, t in edges if s == t and s in grid]  # a self-loop's room
    bottom = max((row for _, row in grid.values()), default=0)
    for name in names:
        if name in grid:
            continue
        near = [grid[o] for s, t in edges for o in (s, t) if name in (s, t) and o != name and o in grid]
        below = [column for column, row in near if row > 0]
        if below:
            column, row = min(below), bottom + 1
        elif near:
            column, row = round(sum(c for c, _ in near) / len(near) * 2) / 2, min(r for _, r in near) - 1
        else:
            column, row = 0.0, bottom + 1
        while any(r == row and abs(c - column) < 1 for c, r in taken):
            column += 1
        grid[name] = (column, row)
        taken.append((column, row))
    top = min(row for _, row in grid.values())
    return {name: (_X0 + column * _PITCH_X, _Y0 + (row - top) * _PITCH_Y) for name, (column, row) in grid.items()}


def _towards(box: tuple[float, float], dx: float, dy: float, gap: float) -> tuple[float, float]:
    """Where a line from the box's centre in direction (dx, dy) leaves the box, `gap` beyond its border."""
    cx, cy = box[0] + _BOX_W / 2, box[1] + _BOX_H / 2
    length = math.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    reach = min(_BOX_W / 2 / abs(ux) if ux else math.inf, _BOX_H / 2 / abs(uy) if uy else math.inf)
    return cx + ux * (reach + gap), cy + uy * (reach + gap)


def _arrow(cid: str, source: str, target: str, boxes: dict[str, tuple[float, float]], both_ways: bool) -> Markup:
    attrs = {"fill": "none", "stroke": _MUTED, "stroke-width": 1.5, "marker-end": f"url(#{cid}-arrow)"}
    x, y = boxes[source]
    if source == target:
        cx = x + _BOX_W / 2
        label = _LOOP_LABELS.get(source, "")
        # out of the box's top, up and round, back into it (the arrowhead pointing down at the box)
        top = y - 34
        path = f"M {_n(cx - 14)} {_n(y)} C {_n(cx - 34)} {_n(top)}, {_n(cx + 34)} {_n(top)}, {_n(cx + 16)} {_n(y - 3)}"
        return _el(
            "g",
            {"class": "transition self-loop", "data-from": source, "data-to": target},
            _el("title", {}, f"{source} to {target}" + (f": {label}" if label else "")),
            _el("path", {"d": path} | attrs),
            *(
                [
                    _el(
                        "text",
                        {"x": cx, "y": y - 32, "text-anchor": "middle", "font-size": _SMALL_FONT, "fill": _TEXT},
                        label,
                    )
                ]
                if label
                else []
            ),
        )
    tx, ty = boxes[target]
    dx, dy = tx - x, ty - y
    x1, y1 = _towards(boxes[source], dx, dy, 1)
    x2, y2 = _towards(boxes[target], -dx, -dy, 2)
    if both_ways:  # two arrows between the same boxes: each 5 px to its right, apart
        length = math.hypot(dx, dy)
        shift_x, shift_y = -dy / length * 5, dx / length * 5
        x1, y1, x2, y2 = x1 + shift_x, y1 + shift_y, x2 + shift_x, y2 + shift_y
    return _el(
        "g",
        {"class": "transition", "data-from": source, "data-to": target},
        _el("title", {}, f"{source} to {target}"),
        _el("path", {"d": f"M {_n(x1)} {_n(y1)} L {_n(x2)} {_n(y2)}"} | attrs),
    )


def _state_box(name: str, state: str, x: float, y: float) -> Markup:
    border, dash, fill, stroke, ink, weight = _STYLES[state]
    texts = [
        _el(
            "text",
            {
                "x": x + _BOX_W / 2,
                "y": y + (19 if state == "current" else 27),
                "text-anchor": "middle",
                "font-size": _FONT,
                "font-weight": weight,
                "fill": ink,
            },
            _short(name, int((_BOX_W - 10) / (_FONT * _GLYPH))),
        )
    ]
    if state == "current":
        texts.append(
            _el(
                "text",
                {"class": "state-note", "x": x + _BOX_W / 2, "y": y + 36, "text-anchor": "middle"}
                | {"font-size": _SMALL_FONT, "fill": ink},
                "current",
            )
        )
    return _el(
        "g",
        {
            "class": f"state {state}".strip(),
            "data-status": name,
            "aria-current": "step" if state == "current" else None,
        },
        _el("title", {}, f"{name}: {_STATE_NOTES[state]}"),
        _el(
            "rect",
            {"x": x, "y": y, "width": _BOX_W, "height": _BOX_H, "rx": 6, "fill": fill, "stroke": stroke}
            | {"stroke-width": border, "stroke-dasharray": dash},
        ),
        *texts,
    )


def lifecycle_diagram(chart_id: str, current: str | None, visited: Collection[str] = ()) -> Markup:
    """The loan lifecycle (models.loan_status): a box per status, an arrow per allowed transition.

    `current` is highlighted; `visited` (the statuses the loan went through) are told apart from those not
    reached. Raises ValueError for a status the lifecycle does not have.
    """
    cid = _safe_id(chart_id)
    names, edges = _lifecycle()
    known = set(names)
    current_name = None if current is None else _status_name(current)
    visited_names = {_status_name(s) for s in visited}
    unknown = sorted((visited_names | ({current_name} if current_name is not None else set())) - known)
    if unknown:
        raise ValueError(f"not a loan status: {', '.join(unknown)}")

    boxes = _positions(names, edges)
    width = max(x for x, _ in boxes.values()) + _BOX_W + _X0
    legend_y = max(y for _, y in boxes.values()) + _BOX_H + 30

    def state_of(name: str) -> str:
        return "current" if name == current_name else "visited" if name in visited_names else ""

    legend_items = []
    x = _X0
    for state, text in (("current", "current state"), ("visited", "visited"), ("", "not reached")):
        border, dash, fill, stroke, _, _ = _STYLES[state]
        legend_items.append(
            _el(
                "g",
                {"class": "legend-item"},
                _el(
                    "rect",
                    {"x": x, "y": legend_y, "width": 22, "height": 16, "rx": 3, "fill": fill, "stroke": stroke}
                    | {"stroke-width": min(border, 2.5), "stroke-dasharray": dash},
                ),
                _el("text", {"x": x + 30, "y": legend_y + 13, "font-size": _FONT, "fill": _TEXT}, text),
            )
        )
        x += 30 + _text_width(text, _FONT) + 24

    incoming = {t for s, t in edges if s != t}
    starts = [n for n in names if n not in incoming]
    finals = [n for n in names if not any(s == n for s, _ in edges)]
    seen = [n for n in names if n in visited_names and n != current_name]
    desc = (
        f"Loan lifecycle of {len(names)} states and {len(edges)} transitions, from {_join(starts)} "
        f"to the final states {_join(finals)}; current state: {current_name or 'none'}"
        + (f"; visited: {_join(seen)}" if seen else "")
        + "."
    )
    marker = _el(
        "marker",
        {
            "id": f"{cid}-arrow",
            "viewBox": "0 0 10 10",
            "refX": 9,
            "refY": 5,
            "markerUnits": "userSpaceOnUse",
            "markerWidth": 10,
            "markerHeight": 10,
            "orient": "auto",
        },
        _el("path", {"d": "M 0 0 L 10 5 L 0 10 z", "fill": _MUTED}),
    )
    return _svg(
        cid,
        "lifecycle-diagram",
        "Loan lifecycle",
        desc,
        width,
        legend_y + 16 + 14,
        _el("defs", {}, marker),
        _el("g", {"class": "transitions"}, *(_arrow(cid, s, t, boxes, (t, s) in edges and s != t) for s, t in edges)),
        _el("g", {"class": "states"}, *(_state_box(n, state_of(n), *boxes[n]) for n in names)),
        _el("g", {"class": "legend"}, *legend_items),
    )
