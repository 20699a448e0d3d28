"""The chart of work per hour as an inline SVG, drawn here: no script, no CDN, the same in the
console and in the one-file report."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from markupsafe import Markup

from kuroko.ops.console.views import CHART_SERIES, Chart

COLOURS = {"taken_in": "#4a78c2", "completed": "#3a9a4a", "handed_over": "#e08a1e"}
WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 36, 10, 28, 28


def render_chart(chart: Chart, t: Callable[..., str]) -> Markup:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top = chart.maximum
    slot = plot_w / 24
    bar = (slot - 4) / len(CHART_SERIES)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(t("chart", day=chart.day))}">']
    steps = 4 if top >= 4 else top
    for i in range(steps + 1):
        value = round(top * i / steps)
        y = TOP + plot_h - plot_h * value / top
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#555">{value}</text>')
    for hour, row in enumerate(chart.hours):
        x0 = LEFT + hour * slot + 2
        for n, (_, key) in enumerate(CHART_SERIES):
            count = row[key]
            h = plot_h * count / top
            parts.append(f'<rect class="bar" data-series="{key}" data-hour="{hour}" data-count="{count}" '
                         f'x="{x0 + n * bar:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[key]}"><title>{hour:02d}:00 {escape(t(key))}: {count}</title></rect>')
        if hour % 3 == 0:
            parts.append(f'<text x="{x0 + slot / 2 - 2:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" '
                         f'text-anchor="middle" fill="#555">{hour}{escape(t("hour"))}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#888"/>')
    x = LEFT
    for _, key in CHART_SERIES:
        label = escape(t(key))
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{COLOURS[key]}"/>'
                     f'<text x="{x + 16}" y="18" font-size="12" fill="#333">{label}</text>')
        x += 30 + 13 * len(label)
    parts.append("</svg>")
    return Markup("".join(parts))
