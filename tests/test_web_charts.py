"""The back office's SVG charts: parsed as XML and checked for what they show, not for their text."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

import web.charts as charts
from models.loan_status import ALLOWED_TRANSITIONS, LoanStatus
from web.charts import bar_chart, lifecycle_diagram, line_chart

SVG = "{http://www.w3.org/2000/svg}"
GEOMETRY = ("x", "y", "width", "height", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf", re.IGNORECASE)
ID = re.compile(r"^[a-z][a-z0-9-]*$")
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    return root


def with_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def child_text(element: ET.Element, tag: str) -> str:
    found = element.find(f"{SVG}{tag}")
    assert found is not None, f"no <{tag}> in {element.tag}"
    return "".join(found.itertext())


def all_text(root: ET.Element) -> str:
    return " ".join(root.itertext())


def attr(element: ET.Element, name: str) -> str:
    value = element.get(name)
    assert value is not None, f"no {name} on {element.tag}"
    return value


def f(element: ET.Element, name: str) -> float:
    return float(attr(element, name))


def one(root: ET.Element, tag: str) -> ET.Element:
    found = root.find(f"{SVG}{tag}")
    assert found is not None, f"no <{tag}> in {root.tag}"
    return found


def svg_desc(root: ET.Element) -> str:
    return one(root, "desc").text or ""


def svg_title(root: ET.Element) -> str:
    return one(root, "title").text or ""


class Axis:
    """The value axis read back from the grid lines: where zero is and how many units a pixel is."""

    def __init__(self, root: ET.Element) -> None:
        lines = with_class(root, "grid")
        self.ticks = [Decimal(attr(line, "data-value")) for line in lines]
        self.tick_ys = [f(line, "y1") for line in lines]
        self.labels = ["".join(t.itertext()) for t in with_class(root, "tick-label")]
        (zero,) = with_class(root, "zero-line")
        self.zero_y = f(zero, "y1")
        span = float(self.ticks[-1] - self.ticks[0])
        self.scale = (self.tick_ys[0] - self.tick_ys[-1]) / span  # pixels per unit
        self.top, self.bottom = min(self.tick_ys), max(self.tick_ys)


def tick_values(labels: list[str], unit: str = "") -> list[Decimal]:
    return [Decimal(label.replace(",", "").removesuffix(unit).strip()) for label in labels]


def assert_nice_ticks(axis: Axis, lo: Decimal, hi: Decimal) -> None:
    values = tick_values(axis.labels)
    assert values == axis.ticks
    assert 4 <= len(values) <= 6
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) == 1
    (step,) = steps
    assert step > 0
    assert step.normalize().as_tuple().digits in ((1,), (2,), (2, 5), (5,))
    assert values[0] <= min(lo, Decimal(0)) and values[-1] >= max(hi, Decimal(0))
    assert Decimal(0) in values


def assert_geometry_finite(root: ET.Element) -> None:
    for element in root.iter():
        for name, value in element.attrib.items():
            if name in GEOMETRY or name in ("points", "d", "viewBox"):
                numbers = NUMBER.findall(value)
                assert numbers or name == "d", (name, value)
                for number in numbers:
                    assert math.isfinite(float(number)), (element.tag, name, value)


def view_box(root: ET.Element) -> tuple[float, float]:
    x, y, width, height = (float(v) for v in attr(root, "viewBox").split())
    assert (x, y) == (0, 0)
    return width, height


# --- every chart --------------------------------------------------------------------------------------


def every_kind(chart_id: str = "c", title: str = "T") -> list[Markup]:
    return [
        bar_chart(chart_id, title, ["a", "b"], [("s", [Decimal(1), Decimal(2)])]),
        line_chart(chart_id, title, ["a", "b"], [Decimal(1), Decimal(2)]),
        bar_chart(chart_id, title, [], []),
        line_chart(chart_id, title, [], []),
        lifecycle_diagram(chart_id, "funding"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_every_chart_is_an_accessible_responsive_svg(index: int) -> None:
    root = parse(every_kind("Cash flow 2025")[index])
    assert root.get("role") == "img"
    assert root.get("width") == "100%"
    assert root.get("height") is None
    assert root.get("preserveAspectRatio") == "xMidYMid meet"
    width, height = view_box(root)
    assert width > 0 and height > 0
    title_id, desc_id = attr(root, "aria-labelledby").split()
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text
    assert desc is not None and desc.get("id") == desc_id and desc.text and desc.text.endswith(".")
    assert root[0] is title and root[1] is desc  # the accessible name comes first
    for element in root.iter():
        if element.get("id") is not None:
            assert ID.match(attr(element, "id")), element.get("id")
        assert element.get("style") is None  # presentation attributes only (a strict CSP)
        if element.tag == f"{SVG}text":
            assert float(element.get("font-size") or 0) >= 12
    assert_geometry_finite(root)


@pytest.mark.parametrize(
    ("chart_id", "expected"),
    [
        ("Cash Flow <2025>", "cash-flow-2025"),
        ("investor:42/flows", "investor-42-flows"),
        ("", "chart"),
        ("<>&\"'", "chart"),
        ("2025", "chart-2025"),
        ("élan vital", "lan-vital"),
    ],
)
def test_chart_ids_are_made_safe(chart_id: str, expected: str) -> None:
    for markup in every_kind(chart_id):
        root = parse(markup)
        assert root.get("id") == expected
        ids = {attr(e, "id") for e in root.iter() if e.get("id")}
        assert set(attr(root, "aria-labelledby").split()) <= ids
        assert all(i.startswith(expected) for i in ids)


def test_text_is_escaped_and_the_svg_still_parses() -> None:
    title = '<script>alert("x")</script> Tom & Jerry\'s'
    label = "A & B <i>"
    name = '"><script>alert(1)</script>'
    for markup in (
        bar_chart("x", title, [label], [(name, [Decimal("1.5")])], unit="<b>EUR</b>"),
        line_chart("x", title, [label], [Decimal("1.5")], unit="& co"),
        bar_chart("x", title, [], []),
    ):
        assert "<script" not in str(markup)
        root = parse(markup)
        assert not [e for e in root.iter() if not e.tag.startswith(SVG)]  # no element smuggled in
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert svg_title(root) == title
    root = parse(bar_chart("x", title, [label], [(name, [Decimal("1.5")])], unit="<b>EUR</b>"))
    (bar,) = with_class(root, "bar")
    assert child_text(bar, "title") == f"{label}, {name}: 1.5 <b>EUR</b>"
    assert label in all_text(root) and "Tom & Jerry's" in all_text(root)


def test_characters_xml_cannot_hold_are_dropped() -> None:
    root = parse(bar_chart("x", "a\x00b\x1bc\ud800", ["l\x07abel"], [("s\x0c", [Decimal(1)])]))
    assert svg_title(root) == "abc"
    (bar,) = with_class(root, "bar")
    assert child_text(bar, "title") == "label, s: 1"


# --- bar chart ---------------------------------------------------------------------------------------


def cash_flow() -> tuple[list[str], list[tuple[str, list[Decimal]]]]:
    principal = [Decimal("812.40") + Decimal(i) * Decimal("3.17") for i in range(12)]
    interest = [Decimal("95.60") - Decimal(i) * Decimal("3.17") for i in range(12)]
    return MONTHS, [("principal", principal), ("interest", interest)]


@pytest.mark.parametrize("stacked", [True, False])
def test_one_bar_per_label_and_series_with_its_exact_amount(stacked: bool) -> None:
    labels, series = cash_flow()
    root = parse(bar_chart("cf", "Expected cash flow", labels, series, stacked=stacked, unit="EUR"))
    bars = with_class(root, "bar")
    assert len(bars) == len(labels) * len(series)
    assert all(bar.tag == f"{SVG}rect" for bar in bars)
    expected = [(label, name, values[i]) for i, label in enumerate(labels) for name, values in series]
    for bar, (label, name, amount) in zip(bars, expected, strict=True):
        assert child_text(bar, "title") == f"{label}, {name}: {amount:,f} EUR"
        assert Decimal(attr(bar, "data-value")) == amount


def test_stacked_bars_are_proportional_and_stack() -> None:
    labels, series = cash_flow()
    root = parse(bar_chart("cf", "Expected cash flow", labels, series, unit="EUR"))
    axis = Axis(root)
    totals = [sum((values[i] for _, values in series), Decimal(0)) for i in range(len(labels))]
    assert_nice_ticks(axis, min(totals), max(totals))
    bars = with_class(root, "bar")
    for i in range(len(labels)):
        principal, interest = bars[2 * i], bars[2 * i + 1]
        assert f(principal, "x") == f(interest, "x") and f(principal, "width") == f(interest, "width")
        # principal sits on the zero line, interest on principal
        assert f(principal, "y") + f(principal, "height") == pytest.approx(axis.zero_y, abs=0.02)
        assert f(interest, "y") + f(interest, "height") == pytest.approx(f(principal, "y"), abs=0.02)
        for bar, (_, values) in zip((principal, interest), series, strict=True):
            assert f(bar, "height") == pytest.approx(float(values[i]) * axis.scale, abs=0.02)
    # the bars left to right, each in its own slot
    xs = [f(bar, "x") for bar in bars[::2]]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert f(bars[0], "x") + f(bars[0], "width") <= f(bars[2], "x")


def test_grouped_bars_stand_side_by_side_on_the_zero_line() -> None:
    labels, series = cash_flow()
    root = parse(bar_chart("cf", "Expected cash flow", labels, series, stacked=False))
    axis = Axis(root)
    assert_nice_ticks(axis, Decimal(0), max(v for _, values in series for v in values))
    bars = with_class(root, "bar")
    for i in range(len(labels)):
        left, right = bars[2 * i], bars[2 * i + 1]
        assert f(left, "x") + f(left, "width") == pytest.approx(f(right, "x"), abs=0.02)
        for bar, (_, values) in zip((left, right), series, strict=True):
            assert f(bar, "y") + f(bar, "height") == pytest.approx(axis.zero_y, abs=0.02)
            assert f(bar, "height") == pytest.approx(float(values[i]) * axis.scale, abs=0.02)


def test_series_differ_in_pattern_and_are_named_in_a_legend() -> None:
    names = ["principal", "interest", "fees", "penalties"]
    series = [(name, [Decimal(j + 1)] * 3) for j, name in enumerate(names)]
    root = parse(bar_chart("cf", "Flows", ["a", "b", "c"], series))
    bars = with_class(root, "bar")
    fills = [attr(bars[j], "fill") for j in range(len(names))]
    assert len(set(fills)) == len(names)
    assert sum(1 for fill in fills if fill.startswith("url(#")) >= len(names) - 1
    pattern_ids = {p.get("id") for p in root.iter(f"{SVG}pattern")}
    for fill in fills:
        if fill.startswith("url(#"):
            assert fill[5:-1] in pattern_ids
    (legend,) = with_class(root, "legend")
    items = with_class(legend, "legend-item")
    assert ["".join(item.itertext()) for item in items] == names
    assert [one(item, "rect").get("fill") for item in items] == fills


@pytest.mark.parametrize("stacked", [True, False])
def test_negative_amounts_go_below_the_zero_line(stacked: bool) -> None:
    labels = ["Jan", "Feb", "Mar"]
    series = [("paid in", [Decimal("500"), Decimal("-250.50"), Decimal("0")]), ("fees", [Decimal("-20")] * 3)]
    root = parse(bar_chart("n", "Net", labels, series, stacked=stacked))
    axis = Axis(root)
    assert axis.top < axis.zero_y < axis.bottom
    lows = (
        [sum((v[i] for _, v in series if v[i] < 0), Decimal(0)) for i in range(3)] if stacked else [Decimal("-250.50")]
    )
    assert_nice_ticks(axis, min(lows), Decimal(500))
    bars = with_class(root, "bar")
    expected_negative_offset = [Decimal(0)] * 3  # how far below zero each stack's next bar starts
    for index, bar in enumerate(bars):
        i = index // 2
        amount = Decimal(attr(bar, "data-value"))
        assert f(bar, "height") >= 0
        assert f(bar, "height") == pytest.approx(abs(float(amount)) * axis.scale, abs=0.02)
        assert axis.top - 0.02 <= f(bar, "y") and f(bar, "y") + f(bar, "height") <= axis.bottom + 0.02
        if amount < 0:
            top = axis.zero_y + (float(expected_negative_offset[i]) * axis.scale if stacked else 0)
            assert f(bar, "y") == pytest.approx(top, abs=0.03)
            expected_negative_offset[i] -= amount
        elif amount > 0:
            assert f(bar, "y") + f(bar, "height") == pytest.approx(axis.zero_y, abs=0.02)


def test_tick_labels_are_nice_numbers_with_thousands_separators() -> None:
    root = parse(bar_chart("t", "Big", ["a", "b"], [("s", [Decimal("12345.67"), Decimal("980")])], unit="EUR"))
    axis = Axis(root)
    assert_nice_ticks(axis, Decimal(0), Decimal("12345.67"))
    assert axis.labels == ["0", "2,500", "5,000", "7,500", "10,000", "12,500"]
    assert "EUR" in [t.text for t in with_class(root, "unit")]


@pytest.mark.parametrize(
    ("values", "lo", "hi"),
    [
        (["0.01", "0.02"], "0", "0.02"),
        (["0.3"], "0", "0.3"),
        (["1000000", "999999.99"], "0", "1000000"),
        (["-1", "100"], "-1", "100"),
        (["-7.5", "-2"], "-7.5", "0"),
        (["123456789012.34"], "0", "123456789012.34"),
    ],
)
def test_ticks_cover_the_figures(values: list[str], lo: str, hi: str) -> None:
    amounts = [Decimal(v) for v in values]
    root = parse(bar_chart("t", "T", [str(i) for i in range(len(amounts))], [("s", amounts)]))
    assert_nice_ticks(Axis(root), Decimal(lo), Decimal(hi))


def test_the_description_gives_the_range() -> None:
    labels, series = cash_flow()
    root = parse(bar_chart("cf", "Expected cash flow", labels, series, unit="EUR"))
    desc = svg_desc(root)
    assert desc == (
        "Stacked bar chart of principal and interest across 12 categories (2025-01 to 2025-12); "
        "totals range from 908.00 EUR to 908.00 EUR."
    )
    root = parse(bar_chart("n", "Net", ["a", "b"], [("net", [Decimal("-3.50"), Decimal("1234.5")])]))
    assert svg_desc(root) == ("Bar chart of net across 2 categories (a to b); amounts range from -3.50 to 1,234.5.")


@pytest.mark.parametrize(
    ("labels", "series"),
    [([], []), (["a", "b"], []), ([], [("s", [])]), ([], [("s", []), ("t", [])])],
)
def test_no_data(labels: list[str], series: list[tuple[str, list[Decimal]]]) -> None:
    root = parse(bar_chart("e", "Expected cash flow", labels, series))
    assert "no data" in all_text(root)
    assert svg_desc(root) == "Expected cash flow: no data."
    assert not with_class(root, "bar")


def test_all_zeros() -> None:
    series = [("principal", [Decimal("0.00")] * 3), ("interest", [Decimal("-0.00")] * 3)]
    root = parse(bar_chart("z", "Zeros", ["a", "b", "c"], series, unit="EUR"))
    bars = with_class(root, "bar")
    assert len(bars) == 6 and all(f(bar, "height") == 0 for bar in bars)
    axis = Axis(root)
    assert_nice_ticks(axis, Decimal(0), Decimal(0))
    assert axis.zero_y == axis.bottom
    assert child_text(bars[1], "title") == "a, interest: 0.00 EUR"  # no "-0.00"


def test_one_label() -> None:
    root = parse(bar_chart("o", "One", ["Installment 1"], [("principal", [Decimal("100")])]))
    (bar,) = with_class(root, "bar")
    axis = Axis(root)
    assert f(bar, "height") == pytest.approx(100 * axis.scale, abs=0.02)
    width, _ = view_box(root)
    assert 0 < f(bar, "x") and f(bar, "x") + f(bar, "width") < width
    assert [t.text for t in with_class(root, "x-label")] == ["Installment 1"]


def test_many_labels_are_thinned_out_so_they_do_not_overlap() -> None:
    labels = [f"Installment {i}" for i in range(1, 361)]
    root = parse(bar_chart("m", "Amortization", labels, [("principal", [Decimal("277.78")] * 360)]))
    assert len(with_class(root, "bar")) == 360
    shown = with_class(root, "x-label")
    assert 2 <= len(shown) < 30
    assert shown[0].text == "Installment 1"
    width, _ = view_box(root)
    positions = [(f(t, "x"), len(t.text or "") * 12 * 0.55) for t in shown]  # centre, a text's width
    for (x1, w1), (x2, w2) in zip(positions, positions[1:], strict=False):
        assert x2 - x1 >= (w1 + w2) / 2
    assert all(x - w / 2 >= 0 and x + w / 2 <= width for x, w in positions)


def test_long_labels_are_cut_short_on_the_axis_and_whole_in_the_tooltip() -> None:
    label = "The first installment of a rather long loan named after its borrower's pet project"
    root = parse(bar_chart("l", "Long", [label, "b"], [("principal", [Decimal(1), Decimal(2)])]))
    shown = with_class(root, "x-label")[0].text
    assert shown is not None and len(shown) <= 16 and shown.endswith("\u2026")
    assert child_text(with_class(root, "bar")[0], "title") == f"{label}, principal: 1"
    width, _ = view_box(root)
    assert f(with_class(root, "x-label")[0], "x") - 16 * 12 * 0.31 >= 0


def test_a_long_title_and_many_long_series_names_fit() -> None:
    names = [f"a series with a rather long name number {i}" for i in range(8)]
    root = parse(bar_chart("s", "T" * 300, ["a"], [(n, [Decimal(1)]) for n in names]))
    width, height = view_box(root)
    (visible_title,) = with_class(root, "chart-title")
    assert len(visible_title.text or "") * 16 * 0.55 < width
    assert svg_title(root) == "T" * 300
    legend_ys = [f(r, "y") for r in with_class(root, "legend")[0].iter(f"{SVG}rect")]
    assert len(set(legend_ys)) > 1  # wrapped into rows
    assert max(legend_ys) < Axis(root).top


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 amounts for 3 labels"):
        bar_chart("b", "B", ["a", "b", "c"], [("s", [Decimal(1), Decimal(2)])])
    with pytest.raises(ValueError, match="not an amount"):
        bar_chart("b", "B", ["a"], [("s", [Decimal("NaN")])])
    with pytest.raises(ValueError, match="not an amount"):
        line_chart("b", "B", ["a"], [Decimal("-Infinity")])
    with pytest.raises(TypeError, match="Decimal"):
        bar_chart("b", "B", ["a"], [("s", [1.5])])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="1 amounts for 0 labels"):
        line_chart("b", "B", [], [Decimal(1)])


AMOUNT = st.one_of(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2),
    st.decimals(min_value=Decimal("-1e30"), max_value=Decimal("1e30"), allow_nan=False, allow_infinity=False),
    st.builds(lambda i, e: Decimal(i).scaleb(e), st.integers(-(10**20), 10**20), st.integers(-30, 30)),
    st.sampled_from([Decimal(0), Decimal("-0.00"), Decimal("0.01"), Decimal("-0.01")]),
)


@st.composite
def bar_data(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, list[Decimal]]], bool]:
    count = draw(st.integers(0, 40))
    labels = draw(st.lists(st.text(max_size=30), min_size=count, max_size=count))
    names = draw(st.lists(st.text(max_size=20), max_size=5))
    series = [(name, draw(st.lists(AMOUNT, min_size=count, max_size=count))) for name in names]
    return labels, series, draw(st.booleans())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_data(), st.text(max_size=40), st.text(max_size=10))
def test_any_bar_chart_parses_with_sane_geometry(
    data: tuple[list[str], list[tuple[str, list[Decimal]]], bool], chart_id: str, unit: str
) -> None:
    labels, series, stacked = data
    root = parse(bar_chart(chart_id, "Random", labels, series, stacked=stacked, unit=unit))
    assert ID.match(attr(root, "id"))
    assert_geometry_finite(root)
    bars = with_class(root, "bar")
    if not labels or not series:
        assert not bars and "no data" in all_text(root)
        return
    assert len(bars) == len(labels) * len(series)
    axis = Axis(root)
    amounts = [v for _, values in series for v in values]
    if stacked:
        lows = [sum((v[i] for _, v in series if v[i] < 0), Decimal(0)) for i in range(len(labels))]
        highs = [sum((v[i] for _, v in series if v[i] > 0), Decimal(0)) for i in range(len(labels))]
        assert_nice_ticks(axis, min(lows), max(highs))
    else:
        assert_nice_ticks(axis, min(amounts), max(amounts))
    width, height = view_box(root)
    for bar, amount in zip(bars, (values[i] for i in range(len(labels)) for _, values in series), strict=True):
        assert f(bar, "height") >= 0 and f(bar, "width") > 0
        assert axis.top - 0.02 <= f(bar, "y") and f(bar, "y") + f(bar, "height") <= axis.bottom + 0.02
        assert 0 <= f(bar, "x") and f(bar, "x") + f(bar, "width") <= width
        assert f"{abs(amount) if amount.is_zero() else amount:,f}" in child_text(bar, "title")


# --- line chart --------------------------------------------------------------------------------------


def test_line_chart_has_a_point_per_value_on_a_line() -> None:
    balances = [Decimal("10000.00") - Decimal("833.33") * i for i in range(12)] + [Decimal("0.00")]
    labels = [f"#{i}" for i in range(13)]
    root = parse(line_chart("bal", "Outstanding balance", labels, balances, unit="EUR"))
    axis = Axis(root)
    assert_nice_ticks(axis, Decimal(0), Decimal(10000))
    points = with_class(root, "point")
    assert len(points) == 13
    (line,) = with_class(root, "line")
    pairs = [tuple(float(n) for n in p.split(",")) for p in attr(line, "points").split()]
    assert pairs == [(f(p, "cx"), f(p, "cy")) for p in points]
    for point, label, amount in zip(points, labels, balances, strict=True):
        assert child_text(point, "title") == f"{label}: {amount:,f} EUR"
        assert axis.zero_y - f(point, "cy") == pytest.approx(float(amount) * axis.scale, abs=0.02)
    xs = [f(p, "cx") for p in points]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    desc = svg_desc(root)
    assert desc == (
        "Line chart of Outstanding balance over 13 points (#0 to #12): from 10,000.00 EUR to 0.00 EUR, "
        "lowest 0.00 EUR, highest 10,000.00 EUR."
    )


def test_line_chart_one_point_negative_and_empty() -> None:
    root = parse(line_chart("one", "One", ["only"], [Decimal("42.10")]))
    (point,) = with_class(root, "point")
    assert child_text(point, "title") == "only: 42.10"
    assert len(attr(with_class(root, "line")[0], "points").split()) == 1

    root = parse(line_chart("neg", "Net", ["a", "b", "c"], [Decimal("5"), Decimal("-12.5"), Decimal("0")]))
    axis = Axis(root)
    assert_nice_ticks(axis, Decimal("-12.5"), Decimal(5))
    ys = [f(p, "cy") for p in with_class(root, "point")]
    assert ys[0] < axis.zero_y < ys[1] and ys[2] == pytest.approx(axis.zero_y, abs=0.01)

    root = parse(line_chart("zero", "Zero", ["a", "b"], [Decimal(0), Decimal(0)]))
    assert_nice_ticks(Axis(root), Decimal(0), Decimal(0))

    root = parse(line_chart("empty", "Balance", [], []))
    assert "no data" in all_text(root) and not with_class(root, "point")


# --- lifecycle ---------------------------------------------------------------------------------------

TRANSITIONS = {(s.value, t.value) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}


def boxes(root: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for state in with_class(root, "state"):
        rect = state.find(f"{SVG}rect")
        assert rect is not None
        out[attr(state, "data-status")] = (f(rect, "x"), f(rect, "y"), f(rect, "width"), f(rect, "height"))
    return out


def assert_boxes_apart_and_inside(root: ET.Element) -> None:
    width, height = view_box(root)
    placed = list(boxes(root).values())
    for x, y, w, h in placed:
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    for i, (x1, y1, w1, h1) in enumerate(placed):
        for x2, y2, w2, h2 in placed[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_lifecycle_has_a_box_per_status_and_an_arrow_per_transition() -> None:
    root = parse(lifecycle_diagram("life", "funding"))
    states = with_class(root, "state")
    assert all(s.tag == f"{SVG}g" for s in states)
    assert sorted(attr(s, "data-status") for s in states) == sorted(s.value for s in LoanStatus)
    arrows = with_class(root, "transition")
    assert len(arrows) == sum(len(targets) for targets in ALLOWED_TRANSITIONS.values())
    assert {(a.get("data-from"), a.get("data-to")) for a in arrows} == TRANSITIONS
    marker_ids = {m.get("id") for m in root.iter(f"{SVG}marker")}
    for arrow in arrows:
        (path,) = arrow.iter(f"{SVG}path")
        assert attr(path, "marker-end")[5:-1] in marker_ids
    (loop,) = with_class(root, "self-loop")
    assert (loop.get("data-from"), loop.get("data-to")) == ("scoring", "scoring")
    assert "review" in all_text(loop)
    assert_boxes_apart_and_inside(root)


def test_lifecycle_layout_follows_the_main_path() -> None:
    placed = boxes(parse(lifecycle_diagram("life", None)))
    main = ["pending", "scoring", "approved", "funding", "funded", "active", "repaid"]
    assert len({placed[s][1] for s in main}) == 1
    xs = [placed[s][0] for s in main]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert placed["rejected"][1] > placed["pending"][1]
    assert placed["defaulted"][1] > placed["active"][1] and placed["defaulted"][0] == placed["active"][0]


@pytest.mark.parametrize("current", list(LoanStatus))
def test_lifecycle_highlights_exactly_the_current_status(current: LoanStatus) -> None:
    root = parse(lifecycle_diagram("life", current))
    (highlighted,) = with_class(root, "current")
    assert highlighted.get("data-status") == current.value
    assert highlighted.get("class") == "state current" and highlighted.get("aria-current") == "step"
    assert "current" in child_text(highlighted, "title")
    assert f"current state: {current.value}" in svg_desc(root)
    rect = one(highlighted, "rect")
    others = [one(s, "rect") for s in with_class(root, "state") if s is not highlighted]
    assert all(f(rect, "stroke-width") > f(o, "stroke-width") for o in others)
    assert rect.get("fill") not in {o.get("fill") for o in others}


def test_lifecycle_marks_the_visited_statuses() -> None:
    visited = {LoanStatus.pending, LoanStatus.scoring, LoanStatus.approved, LoanStatus.funding}
    root = parse(lifecycle_diagram("life", "funding", visited))
    classes = {s.get("data-status"): s.get("class") for s in with_class(root, "state")}
    assert classes.pop("funding") == "state current"
    for status in ("pending", "scoring", "approved"):
        assert classes.pop(status) == "state visited"
    assert set(classes.values()) == {"state"}
    styles: dict[str, set[tuple[str | None, str | None]]] = {}
    for state in with_class(root, "state"):
        rect = one(state, "rect")
        styles.setdefault(attr(state, "class"), set()).add((rect.get("fill"), rect.get("stroke-dasharray")))
    assert all(len(s) == 1 for s in styles.values()) and len({next(iter(s)) for s in styles.values()}) == 3
    # not reached is dashed (not told by colour alone); the legend names all three
    assert styles["state"] == {("#ffffff", "5 3")}
    legend = "".join(with_class(root, "legend")[0].itertext())
    assert "current state" in legend and "visited" in legend and "not reached" in legend
    assert svg_desc(root).endswith("current state: funding; visited: pending, scoring and approved.")


def test_lifecycle_without_a_current_status_and_with_unknown_ones() -> None:
    root = parse(lifecycle_diagram("life", None))
    assert not with_class(root, "current") and not with_class(root, "visited")
    assert "current state: none" in svg_desc(root)
    with pytest.raises(ValueError, match="not a loan status: paused"):
        lifecycle_diagram("life", "paused")
    with pytest.raises(ValueError, match="not a loan status: <x>"):
        lifecycle_diagram("life", "active", {"pending", "<x>"})


def assert_arrows_pass_no_box(root: ET.Element) -> None:
    placed = boxes(root)
    for arrow in with_class(root, "transition"):
        if "self-loop" in (arrow.get("class") or ""):
            continue
        (path,) = arrow.iter(f"{SVG}path")
        x1, y1, x2, y2 = (float(n) for n in NUMBER.findall(attr(path, "d")))
        ends = {attr(arrow, "data-from"), attr(arrow, "data-to")}
        for status, (x, y, w, h) in placed.items():
            inside = [x < x1 + (x2 - x1) * k / 100 < x + w and y < y1 + (y2 - y1) * k / 100 < y + h for k in range(101)]
            assert not any(inside), (ends, status)


def test_arrows_go_from_box_to_box_around_the_others() -> None:
    root = parse(lifecycle_diagram("life", None))
    assert_arrows_pass_no_box(root)
    placed = boxes(root)
    for arrow in with_class(root, "transition"):
        if "self-loop" in (arrow.get("class") or ""):
            continue
        (path,) = arrow.iter(f"{SVG}path")
        x1, y1, x2, y2 = (float(n) for n in NUMBER.findall(attr(path, "d")))
        for (x, y), status in (((x1, y1), attr(arrow, "data-from")), ((x2, y2), attr(arrow, "data-to"))):
            bx, by, bw, bh = placed[status]
            assert bx - 3 <= x <= bx + bw + 3 and by - 3 <= y <= by + bh + 3  # on the box's border
            assert not (bx < x < bx + bw and by < y < by + bh)


def test_a_status_added_to_the_transitions_appears_without_layout_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    extended: dict[object, frozenset[object]] = {k: frozenset(v) for k, v in ALLOWED_TRANSITIONS.items()}
    extended[LoanStatus.active] = ALLOWED_TRANSITIONS[LoanStatus.active] | {"paused"}
    extended[LoanStatus.defaulted] = frozenset({"written-off <&>"})
    extended["paused"] = frozenset({LoanStatus.active})
    monkeypatch.setattr(charts, "ALLOWED_TRANSITIONS", extended)
    root = parse(lifecycle_diagram("life", "paused", {"active"}))
    placed = boxes(root)
    assert set(placed) == {s.value for s in LoanStatus} | {"paused", "written-off <&>"}
    arrows = with_class(root, "transition")
    assert len(arrows) == len(TRANSITIONS) + 3
    (current,) = with_class(root, "current")
    assert current.get("data-status") == "paused"
    assert placed["paused"][1] < placed["active"][1]  # above the main path, next to active
    assert placed["written-off <&>"][1] > placed["defaulted"][1]  # below defaulted
    assert placed["written-off <&>"][0] == placed["defaulted"][0]
    assert child_text(with_class(root, "state")[-1], "title") == "written-off <&>: not reached"
    # paused -> active and active -> paused side by side, not on top of each other
    both = [a for a in arrows if {a.get("data-from"), a.get("data-to")} == {"paused", "active"}]
    paths = {next(a.iter(f"{SVG}path")).get("d") for a in both}
    assert len(both) == 2 and len(paths) == 2
    assert_boxes_apart_and_inside(root)
    assert_arrows_pass_no_box(root)


def test_statuses_with_no_known_neighbour_still_get_a_free_place(monkeypatch: pytest.MonkeyPatch) -> None:
    extended: dict[object, frozenset[object]] = {k: frozenset(v) for k, v in ALLOWED_TRANSITIONS.items()}
    for i in range(10):
        extended[f"extra-{i}"] = frozenset({f"extra-{i + 1}"})
    extended[LoanStatus.scoring] = ALLOWED_TRANSITIONS[LoanStatus.scoring] | {"on-hold"}
    extended["on-hold"] = frozenset({"on-hold"})
    monkeypatch.setattr(charts, "ALLOWED_TRANSITIONS", extended)
    root = parse(lifecycle_diagram("life", None))
    assert len(boxes(root)) == len(LoanStatus) + 12
    assert_boxes_apart_and_inside(root)
    assert len(with_class(root, "self-loop")) == 2
