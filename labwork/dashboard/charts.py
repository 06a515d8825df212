"""Line charts of logged values as inline SVG, drawn on the server (no chart library, no script)."""
from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup, escape

COLORS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#0a7d8c")
MAX_POINTS = 600  # per series; longer series are thinned evenly (first and last kept)


def numeric_points(values: list[Any]) -> list[tuple[int, float]]:
    """(step, value) of the numbers in a flattened series; strings and non-finite values skipped."""
    out = []
    for step, v in enumerate(values):
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            out.append((step, float(v)))
    return out


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = (len(points) - 1) / (MAX_POINTS - 1)
    return [points[round(i * stride)] for i in range(MAX_POINTS)]


def _nice(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


def line_chart(series: list[dict[str, Any]], *, width: int = 460, height: int = 220) -> Markup:
    """`series`: [{"label": str, "points": [(step, value), ...]}]; one polyline per series."""
    series = [s for s in series if s.get("points")]
    if not series:
        return Markup("")
    left, right, top, bottom = 58, 12, 10, 28
    xs = [p[0] for s in series for p in s["points"]]
    ys = [p[1] for s in series for p in s["points"]]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):  # horizontal grid and y labels
        yv = y0 + (y1 - y0) * i / 4
        y = sy(yv)
        parts.append(f'<line class="gridline" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_nice(yv))}</text>')
    # x labels: steps are whole numbers, so are the ticks
    ticks = sorted({round(x0 + (x1 - x0) * i / 4) for i in range(5)})
    for xv in ticks:
        if x0 <= xv <= x1:
            parts.append(f'<text x="{sx(xv):.1f}" y="{height - 8}" text-anchor="middle">{xv}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}"/>')
    for i, s in enumerate(series):
        color = s.get("color") or COLORS[i % len(COLORS)]
        pts = _thin(s["points"])
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        label = escape(s.get("label") or "")
        parts.append(f'<polyline class="line" data-series="{label}" stroke="{color}" points="{coords}">'
                     f'<title>{label}</title></polyline>')
        if len(pts) <= 60:
            for x, y in pts:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}">'
                             f'<title>{label} step {x}: {escape(_nice(y))}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
