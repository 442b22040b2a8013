"""The report as one self-contained HTML page: tables plus inline SVG charts, no assets."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from analytics.report import Report, Table, shown

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;border-bottom:1px solid #ddd}
th{text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:#333}.muted{color:#777}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = "".join(
            f'<td class="n">{escape(_fmt(v))}</td>'
            if isinstance(v, int | float)
            else f"<td>{escape(_fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return '<p class="muted">No data.</p>'
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _legend(names: Sequence[str], x: int, y: int) -> str:
    parts = []
    for i, name in enumerate(names):
        color = _COLORS[i % len(_COLORS)]
        parts.append(
            f'<rect x="{x + i * 110}" y="{y}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + i * 110 + 14}" y="{y + 9}">{escape(name)}</text>'
        )
    return "".join(parts)


def hbars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """Horizontal bars, one group per label, one bar per series."""
    if not labels:
        return ""
    width, left, bar = 900, 260, 14
    group = bar * len(series) + 8
    top = 22
    height = top + group * len(labels) + 10
    peak = max((v for _, values in series for v in values), default=0) or 1
    scale = (width - left - 60) / peak
    parts = [_legend([name for name, _ in series], left, 4)]
    for i, label in enumerate(labels):
        y = top + i * group
        parts.append(
            f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{escape(label[:40])}</text>'
        )
        for j, (_, values) in enumerate(series):
            v = values[i]
            w = max(v * scale, 0)
            color = _COLORS[j % len(_COLORS)]
            parts.append(
                f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 2}" '
                f'fill="{color}"/><text x="{left + w + 4:.1f}" y="{y + j * bar + bar - 4}">'
                f"{escape(_fmt(v))}</text>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img">{"".join(parts)}</svg>'
    )


def stacked_columns(xs: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """Vertical stacked columns, one per x, stacked by series."""
    if not xs:
        return ""
    width, height, left, bottom, top = 900, 260, 50, 60, 24
    plot_h = height - bottom - top
    step = (width - left - 10) / len(xs)
    totals = [sum(values[i] for _, values in series) for i in range(len(xs))]
    scale = plot_h / (max(totals) or 1)
    parts = [_legend([name for name, _ in series], left, 4)]
    parts.append(f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{max(totals):,.0f}</text>')
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#999"/>'
    )
    label_every = max(1, len(xs) // 24)
    for i, x in enumerate(xs):
        base = float(top + plot_h)
        for j, (_, values) in enumerate(series):
            h = values[i] * scale
            base -= h
            color = _COLORS[j % len(_COLORS)]
            parts.append(
                f'<rect x="{left + i * step + 1:.1f}" y="{base:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(x)} {escape(series[j][0])}: {values[i]:,.0f}</title>"
                "</rect>"
            )
        if i % label_every == 0:
            cx = left + i * step + step / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 12}" text-anchor="end" '
                f'transform="rotate(-45 {cx:.1f} {top + plot_h + 12})">'
                f"{escape(x[5:])}</text>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img">{"".join(parts)}</svg>'
    )


def _chart(table: Table) -> str:
    rows = table.rows
    if table.key == "hourly":
        hours = sorted({r[0] for r in rows})
        platforms = sorted({r[1] for r in rows})
        counts = {(r[0], r[1]): r[2] for r in rows}
        series = [(p, [counts.get((h, p), 0) for h in hours]) for p in platforms]
        return stacked_columns(hours, series)
    if table.key == "accounts":
        return hbars([f"{r[0]} {r[1]}" for r in rows[:15]], [("messages", [r[2] for r in rows])])
    if table.key == "time_to_read":
        shown = [r for r in rows if r[3] is not None]
        return hbars(
            [r[0] for r in shown],
            [("p50 s", [r[3] for r in shown]), ("p90 s", [r[4] for r in shown])],
        )
    if table.key == "conversations":
        return hbars([r[2] or r[0] for r in rows], [("messages", [r[3] for r in rows])])
    if table.key == "dead_letters":
        return hbars([f"{r[0]}: {r[1]}" for r in rows[:15]], [("records", [r[3] for r in rows])])
    return ""


def render(report: Report) -> str:
    """The whole page."""
    files = ", ".join(f"{kind} {n}" for kind, n in report.files.items())
    sections = [
        f"<h2>{escape(t.title)}</h2>{_chart(t)}{_table(shown(t))}" for t in report.tables.values()
    ]
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>hub analytics</title><style>{_CSS}</style></head><body>"
        f'<h1>hub analytics</h1><p class="muted">Generated {generated} from '
        f"{escape(str(report.root))} (files: {escape(files)}).</p>"
        f"{''.join(sections)}</body></html>\n"
    )
