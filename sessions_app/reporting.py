"""Rendering of empty-session reports as JSON, CSV and text tables, shared by the command and the admin.

Every renderer takes an ``analytics.EmptySessionReport`` (with the abandoned-agent tally's figures
for the abandoned columns) and shows the same numbers; none queries.

Tables print every name whole (the key column is as wide as the longest key: a model name can be
pasted back into ``--model``), counts with thousands separators and rates with one decimal, the
same everywhere; a period cut by the range or still filling is marked ``(partial)``. A figure that
was not measured prints as "not tracked". JSON and CSV carry full-precision values.
"""

import csv
import json
import unicodedata
from collections.abc import Iterator
from dataclasses import replace

from sessions_app.analytics import CAUSES, CauseBreakdown, EmptySessionReport, RateRow
from sessions_app.scope import parse_date_bound  # noqa: F401 - its old home, kept for callers

SORTS = ("rate", "sessions", "key")
# Spreadsheets run a cell starting with one of these as a formula (CSV injection): the ASCII
# operators, their full-width forms (U+FF1D and so on: East Asian input methods type them, and
# spreadsheets read them as the ASCII ones), and tab/CR. Leading blanks (space, no-break space,
# ideographic space, zero-width characters) do not stop a formula, so ``_is_formula_like`` looks
# through them.
_FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\t", "\r")
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_GAP = "  "
_MIN_KEY_WIDTH = 8


def _is_formula_like(cell: str) -> bool:
    """Whether a spreadsheet could run ``cell`` as a formula, leading blanks or not."""
    return cell.startswith(_FORMULA_STARTS) or cell.lstrip().lstrip(_INVISIBLE).lstrip().startswith(_FORMULA_STARTS)


def neutralised(cell: str) -> str:
    """``cell`` with a leading single quote when it is formula-like (OWASP's CSV-injection remedy)."""
    return "'" + cell if _is_formula_like(cell) else cell


def sort_rows(rows, sort: str = "rate") -> list[RateRow]:
    """``rate``: highest rate first (then most sessions, then key); ``sessions``: most first; ``key``: ascending."""
    if sort == "rate":
        return sorted(rows, key=lambda row: (-row.rate, -row.sessions, row.key))
    if sort == "sessions":
        return sorted(rows, key=lambda row: (-row.sessions, -row.rate, row.key))
    if sort == "key":
        return sorted(rows, key=lambda row: row.key)
    raise ValueError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}.")


def sorted_report(report: EmptySessionReport, sort: str) -> EmptySessionReport:
    """The same report with its rows in ``sort`` order."""
    return replace(report, rows=sort_rows(report.rows, sort))


def report_json(report: EmptySessionReport, *, indent: int | None = None) -> str:
    """The report as one JSON document, in the shape of ARCHITECTURE.md."""
    return json.dumps(report.as_dict(), indent=indent, ensure_ascii=False)


def csv_rows(report: EmptySessionReport, *, neutralise_formulas: bool = True) -> Iterator[list]:
    """Header ``[by, sessions, empty, rate, rate_low, rate_high]``, one row per group, then the
    ``TOTAL`` row.

    ``rate`` is the full-precision fraction, ``rate_low``/``rate_high`` its 95% Wilson interval.
    With ``neutralise_formulas``, a key that a spreadsheet would run as a formula gets a leading
    single quote (OWASP's CSV-injection remedy).
    """
    yield [report.by, "sessions", "empty", "rate", "rate_low", "rate_high"]
    for row in [*report.rows, report.total]:
        key = neutralised(row.key) if neutralise_formulas else row.key
        yield [key, row.sessions, row.empty, repr(row.rate), repr(row.rate_low), repr(row.rate_high)]


def write_csv(report: EmptySessionReport, file, *, neutralise_formulas: bool = True) -> None:
    """Write the report to a text file as RFC 4180 CSV (CRLF line ends, minimal quoting)."""
    writer = csv.writer(file, lineterminator="\r\n")
    writer.writerows(csv_rows(report, neutralise_formulas=neutralise_formulas))


NOT_TRACKED = "not tracked"
PARTIAL = " (partial)"


def format_percent(rate: float | None) -> str:
    return NOT_TRACKED if rate is None else f"{rate * 100:.1f}%"


def format_count(count: int | None) -> str:
    return NOT_TRACKED if count is None else f"{count:,}"


def format_interval(low: float, high: float) -> str:
    """A 95% interval as ``"25.4\u201374.6%"`` (an en dash; one token, no space)."""
    return f"{low * 100:.1f}\u2013{high * 100:.1f}%"


def _partial(rows, partial) -> frozenset:
    """The keys of ``partial`` that are rows of this table (a period without sessions has no row)."""
    return frozenset(partial) & {row.key for row in rows}


def _key(row, partial) -> str:
    return row.key + PARTIAL if row.key in partial else row.key


def _footnote(partial) -> str:
    return f"\n{PARTIAL.strip()}: the range cuts this period, or it is still filling." if partial else ""


def format_table(report: EmptySessionReport, *, sort: str = "rate", partial=frozenset()) -> str:
    """Aligned columns ``<by>  sessions  empty  rate  95% interval``, rows in ``sort`` order, then a
    TOTAL line; keys whole, ``partial`` period keys marked. A report without sessions says so in
    words."""
    rows = sort_rows(report.rows, sort)
    if not report.total.sessions:
        return f"No sessions{_describe_filters(report.filters)}."
    partial = _partial(rows, partial)
    header = [report.by, "sessions", "empty", "rate", "95% interval"]
    cells = [
        [
            _key(row, partial),
            format_count(row.sessions),
            format_count(row.empty),
            format_percent(row.rate),
            format_interval(row.rate_low, row.rate_high),
        ]
        for row in [*rows, report.total]
    ]
    return _aligned(header, cells) + _footnote(partial)


ABANDONED_TABLE_HEADER = ("sessions", "empty", "rate", "abandoned", "abandoned rate")


def format_abandoned_table(report, *, sort: str = "rate", partial=frozenset()) -> str:
    """The empty-session table with two more columns: agents that ended without a message (the
    abandoned-agent tally) and their rate, abandoned / (abandoned + sessions), "not tracked" for a
    period before the tally's first day. ``sort="rate"`` orders by that abandoned rate."""
    if sort == "rate":
        rows = sorted(report.rows, key=lambda row: (-(row.abandoned_rate or 0.0), -row.sessions, row.key))
    else:
        rows = sort_rows(report.rows, sort)
    if not report.total.agents:
        return f"No sessions and no abandoned agents{_describe_filters(report.filters)}."
    partial = _partial(rows, partial)
    header = [report.by, *ABANDONED_TABLE_HEADER]
    cells = [
        [
            _key(row, partial),
            format_count(row.sessions),
            format_count(row.empty),
            format_percent(row.rate),
            format_count(row.abandoned),
            format_percent(row.abandoned_rate),
        ]
        for row in [*rows, report.total]
    ]
    return _aligned(header, cells) + _footnote(partial)


def abandoned_csv_rows(report, *, neutralise_formulas: bool = True) -> Iterator[list]:
    """Header, one row per group, then ``TOTAL``; rates are full-precision fractions (empty cells
    where not measured) and ``reasons`` lists the end reasons of the abandoned agents as ``reason=count; ...``."""
    yield [
        report.by,
        "sessions",
        "empty",
        "empty_rate",
        "abandoned",
        "abandoned_rate",
        "silent_rate",
        "reasons",
        "abandoned_rate_low",
        "abandoned_rate_high",
    ]
    for row in [*report.rows, report.total]:
        key = row.key
        reasons = "; ".join(f"{reason}={count}" for reason, count in sorted(row.reasons.items()))
        if neutralise_formulas:
            key, reasons = neutralised(key), neutralised(reasons)
        interval = row.abandoned_interval or (None, None)
        yield [
            key,
            row.sessions,
            row.empty,
            repr(row.rate),
            _csv(row.abandoned),
            _csv(row.abandoned_rate),
            _csv(row.silent_rate),
            reasons,
            _csv(interval[0]),
            _csv(interval[1]),
        ]


def _csv(value):
    """A CSV cell: a float at full precision, a figure that was not measured empty."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value


def write_abandoned_csv(report, file, *, neutralise_formulas: bool = True) -> None:
    writer = csv.writer(file, lineterminator="\r\n")
    writer.writerows(abandoned_csv_rows(report, neutralise_formulas=neutralise_formulas))


def sorted_breakdown(breakdown: CauseBreakdown, sort: str) -> CauseBreakdown:
    """The same cause breakdown with its rows in ``sort`` order."""
    return replace(breakdown, report=sorted_report(breakdown.report, sort))


def breakdown_json(breakdown: CauseBreakdown, *, indent: int | None = None) -> str:
    """The report's JSON shape plus a ``causes`` object (``{cause: count}``) per row and in the total."""
    return json.dumps(breakdown.as_dict(), indent=indent, ensure_ascii=False)


def breakdown_csv_rows(breakdown: CauseBreakdown, *, neutralise_formulas: bool = True) -> Iterator[list]:
    """``csv_rows`` of the report with one more column per cause (``CAUSES`` order)."""
    causes = [breakdown.causes[row.key] for row in breakdown.rows] + [breakdown.total]
    rows = csv_rows(breakdown.report, neutralise_formulas=neutralise_formulas)
    yield [*next(rows), *CAUSES]
    for row, counts in zip(rows, causes, strict=True):
        yield [*row, *(counts[cause] for cause in CAUSES)]


def write_breakdown_csv(breakdown: CauseBreakdown, file, *, neutralise_formulas: bool = True) -> None:
    csv.writer(file, lineterminator="\r\n").writerows(
        breakdown_csv_rows(breakdown, neutralise_formulas=neutralise_formulas)
    )


def format_breakdown_table(breakdown: CauseBreakdown, *, sort: str = "rate", partial=frozenset()) -> str:
    """``format_table``'s columns and one count column per cause, rows in ``sort`` order."""
    report = breakdown.report
    if not report.total.sessions:
        return f"No sessions{_describe_filters(report.filters)}."
    rows = sort_rows(report.rows, sort)
    partial = _partial(rows, partial)
    header = [report.by, "sessions", "empty", "rate", *CAUSES]
    cells = [
        [
            _key(row, partial),
            format_count(row.sessions),
            format_count(row.empty),
            format_percent(row.rate),
            *(format_count(c[k]) for k in CAUSES),
        ]
        for row, c in [*((row, breakdown.causes[row.key]) for row in rows), (report.total, breakdown.total)]
    ]
    return _aligned(header, cells) + _footnote(partial)


def _aligned(header: list[str], cells: list[list[str]]) -> str:
    """``cells`` (the last one the total) under ``header``: the key column as wide as its longest
    key (names are never cut), numbers right-aligned, a rule under the header and above the total."""
    numbers = range(1, len(header))
    number_widths = [max(len(header[i]), *(len(line[i]) for line in cells)) for i in numbers]
    gaps = len(_GAP) * len(number_widths)
    longest = max(_display_width(line[0]) for line in cells)
    key_width = max(_MIN_KEY_WIDTH, len(header[0]), longest)

    def line(values: list[str]) -> str:
        key = _fit(values[0], key_width)
        figures = [value.rjust(w) for value, w in zip(values[1:], number_widths, strict=True)]
        return _GAP.join([key, *figures]).rstrip()

    rule = "-" * (key_width + sum(number_widths) + gaps)
    lines = [line(header), rule, *(line(values) for values in cells[:-1]), rule, line(cells[-1])]
    return "\n".join(lines)


def _describe_filters(filters: dict) -> str:
    parts = []
    for name in ("since", "until"):
        if filters.get(name) is not None:
            parts.append(f"{name} {filters[name].isoformat()}")
    for name in ("model", "source", "profile"):
        if filters.get(name) is not None:
            parts.append(f"{name} {filters[name]!r}")
    return f" match ({', '.join(parts)})" if parts else " recorded"


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _printable(text: str) -> str:
    """Control characters (from imported history) would move the cursor; show them as U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(char) == "Cc" else char for char in text)


def _display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (wide East Asian characters and emoji take two)."""
    return sum(_char_width(char) for char in _printable(text))


def _fit(text: str, width: int) -> str:
    """``text`` (control characters shown as U+FFFD) padded to ``width`` terminal columns."""
    text = _printable(text)
    return text + " " * max(0, width - _display_width(text))
