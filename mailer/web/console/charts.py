"""Server-rendered SVG charts whose text stays readable at any width.

The charts have no ``viewBox``: horizontal positions are percentages of the chart's width and
vertical ones are pixels of a fixed height, so the browser stretches the bars to the page while
the labels keep the page's font size (a scaled viewBox drew 30 px axis labels on a wide screen
and 6 px ones on a phone). Each chart is ``role="img"`` with a title and a description that
says what it shows in words; the figures themselves are in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import hashlib

from markupsafe import Markup, escape

HEIGHT = 220
TOP, BOTTOM = 22, 190  # the plot's pixel rows; labels go below BOTTOM
LEFT, RIGHT = 0.5, 99.5  # the plot's width in percent
LABEL_GAP = 14  # px between the labels of two reference lines


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (SES's review line, Gmail's spam line)."""

    value: float
    label: str
    css: str = "limit"


@dataclass(frozen=True)
class Bar:
    label: str  # under the bar (may be hidden on narrow screens)
    value: float
    tooltip: str
    css: str = "bar"
    minor: bool = False  # its label is dropped on a phone


def nice_ceiling(value: float) -> float:
    """The next "round" number at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def _y(value: float, top: float, bottom: float = 0.0) -> float:
    share = 0.0 if top == bottom else (value - bottom) / (top - bottom)
    return BOTTOM - max(0.0, min(1.0, share)) * (BOTTOM - TOP)


def _open(title: str, description: str, css: str = "chart") -> tuple[str, list[str]]:
    # from the title: stable between renders and distinct between a page's charts
    ident = "chart-" + hashlib.sha256(title.encode()).hexdigest()[:10]
    head = [
        f'<svg class="{css}" width="100%" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    return ident, head


def _gridlines(top: float, fmt: Callable[[float], str], bottom: float = 0.0) -> list[str]:
    parts = []
    for value in (bottom, (bottom + top) / 2, top):
        y = _y(value, top, bottom)
        parts.append(f'<line class="grid" x1="0%" x2="100%" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="0" y="{y - 4:.1f}">{escape(fmt(value))}</text>')
    return parts


def _limit_lines(lines: Sequence[Line], top: float) -> list[str]:
    parts, label_y = [], float("inf")
    for line in sorted(lines, key=lambda line: line.value):
        if line.value > top:
            continue
        y = _y(line.value, top)
        # lines close together: lift each label clear of the one below it
        label_y = min(y - 4, label_y - LABEL_GAP)
        parts.append(f'<line class="{line.css}" x1="0%" x2="100%" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="{line.css}-label" x="100%" y="{label_y:.1f}" '
                     f'text-anchor="end">{escape(line.label)}</text>')
    return parts


def _slot(index: int, total: int) -> tuple[float, float]:
    width = (RIGHT - LEFT) / max(total, 1)
    return LEFT + index * width, width


def _x_label(text: str, x: float, minor: bool) -> str:
    css = "xlabel minor" if minor else "xlabel"
    anchor = "middle"
    if len(text) > 5 and x > 92:  # a long label at an edge would run off the chart
        anchor, x = "end", 100.0
    elif len(text) > 5 and x < 8:
        anchor, x = "start", 0.0
    return (f'<text class="{css}" x="{x:.2f}%" y="{HEIGHT - 12}" '
            f'text-anchor="{anchor}">{escape(text)}</text>')


def bar_chart(title: str, description: str, bars: Sequence[Bar], *,
              fmt: Callable[[float], str], lines: Sequence[Line] = (),
              counts: bool = False) -> Markup:
    """Vertical bars from zero; ``lines`` are drawn across and the scale always shows them.
    ``counts``: the values are whole numbers, and so are the ticks."""
    peak = max([b.value for b in bars] + [line.value for line in lines] + [0.0])
    top: float
    if counts:
        top = 2 * whole_step(max(peak * 1.05, 1) / 2)
    else:
        top = nice_ceiling(peak * 1.05) if peak else 1.0
    _, parts = _open(title, description)
    parts += _gridlines(top, fmt)
    for i, bar in enumerate(bars):
        x, width = _slot(i, len(bars))
        y = _y(bar.value, top)
        parts.append(f'<rect class="{bar.css}" x="{x + width * 0.15:.2f}%" y="{y:.1f}" '
                     f'width="{width * 0.7:.2f}%" height="{BOTTOM - y:.1f}">'
                     f'<title>{escape(bar.tooltip)}</title></rect>')
        parts.append(_x_label(bar.label, x + width / 2, bar.minor))
    parts += _limit_lines(lines, top)
    parts.append("</svg>")
    return Markup("".join(parts))


def whole_step(span: float) -> int:
    """A whole-number step of 1, 2 or 5 times a power of ten, at least ``span``."""
    step = 1
    while step < span:
        for factor in (2, 5 / 2, 2):
            step = int(step * factor)
            if step >= span:
                break
    return step


def line_chart(title: str, description: str, points: Sequence[Bar], *,
               fmt: Callable[[float], str]) -> Markup:
    """A line through ``points`` (counts) on a scale that starts near their lowest value, not
    at zero, so a list of 20,000 that grows by 50 shows the growth. Ticks are whole numbers."""
    values = [p.value for p in points] or [0.0]
    low, high = min(values), max(values)
    step = whole_step(max((high - low) / 2, 1))
    bottom = max(0, math.floor(low / step) * step)
    while bottom + 2 * step < high:
        step = whole_step(step + 1)
        bottom = max(0, math.floor(low / step) * step)
    top = bottom + 2 * step
    _, parts = _open(title, description)
    parts += _gridlines(top, fmt, bottom)
    previous = None
    for i, point in enumerate(points):
        x, width = _slot(i, len(points))
        centre, y = x + width / 2, _y(point.value, top, bottom)
        if previous:
            parts.append(f'<line class="trend" x1="{previous[0]:.2f}%" y1="{previous[1]:.1f}" '
                         f'x2="{centre:.2f}%" y2="{y:.1f}"/>')
        parts.append(f'<circle class="dot" cx="{centre:.2f}%" cy="{y:.1f}" r="3">'
                     f'<title>{escape(point.tooltip)}</title></circle>')
        parts.append(_x_label(point.label, centre, point.minor))
        previous = (centre, y)
    parts.append("</svg>")
    return Markup("".join(parts))


def diverging_chart(title: str, description: str, ups: Sequence[Bar], downs: Sequence[Bar], *,
                    fmt: Callable[[float], str]) -> Markup:
    """Gains above a middle line, losses below it, one slot per period."""
    peak = nice_ceiling(max([b.value for b in ups] + [b.value for b in downs] + [1.0]))
    middle = (TOP + BOTTOM) / 2
    half = (BOTTOM - TOP) / 2
    _, parts = _open(title, description)
    parts.append(f'<line class="grid" x1="0%" x2="100%" y1="{middle}" y2="{middle}"/>')
    parts.append(f'<text class="tick" x="0" y="{TOP - 6}">+{escape(fmt(peak))}</text>')
    parts.append(f'<text class="tick" x="0" y="{BOTTOM + 14}">−{escape(fmt(peak))}</text>')
    for i, (up, down) in enumerate(zip(ups, downs, strict=True)):
        x, width = _slot(i, len(ups))
        for bar, sign in ((up, -1), (down, 1)):
            size = bar.value / peak * half
            y = middle - size if sign < 0 else middle
            parts.append(f'<rect class="{bar.css}" x="{x + width * 0.15:.2f}%" y="{y:.1f}" '
                         f'width="{width * 0.7:.2f}%" height="{size:.1f}">'
                         f'<title>{escape(bar.tooltip)}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Stage:
    label: str
    value: int
    note: str  # "83.3 % of sent"
    css: str = "bar"


def funnel_chart(title: str, description: str, stages: Sequence[Stage],
                 fmt: Callable[[float], str]) -> Markup:
    """One horizontal bar per stage, its label and figure on the line above it."""
    whole = max([s.value for s in stages] + [1])
    row = 40
    ident, parts = _open(title, description, css="chart funnel")
    parts[0] = parts[0].replace(f'height="{HEIGHT}"', f'height="{row * len(stages) + 4}"')
    for i, stage in enumerate(stages):
        top = i * row
        width = stage.value / whole * (RIGHT - LEFT)
        text = f"{stage.label}: {fmt(stage.value)}" + (f" ({stage.note})" if stage.note else "")
        parts.append(f'<text class="stage" x="0" y="{top + 15}">{escape(text)}</text>')
        parts.append(f'<rect class="{stage.css}" x="0" y="{top + 20}" width="{width:.2f}%" '
                     f'height="14"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
