"""Small inline SVG charts drawn on the server: no chart library, readable without JavaScript.

Colors and sizes are SVG presentation attributes (not ``style``), so the pages' Content
Security Policy can forbid inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from audiencesync.sync.runs import RunView

ADD_COLOR = "#2f855a"
REMOVE_COLOR = "#c53030"
SIZE_COLOR = "#2b6cb0"
SENT_COLOR = "#805ad5"


def sparkline(values: Sequence[int], *, width: int = 120, height: int = 24) -> Markup:
    """A line of ``values`` (oldest first); an empty string when there are fewer than two."""
    if len(values) < 2:
        return Markup("")
    low, high = min(values), max(values)
    span = (high - low) or 1
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
    )
    label = f"size over the last {len(values)} evaluations: from {values[0]:,} to {values[-1]:,}"
    return Markup(  # noqa: S704 (numbers and escaped text only)
        f'<svg class="sparkline" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(label)}"><title>{escape(label)}'
        f'</title><polyline points="{points}" fill="none" stroke="{SIZE_COLOR}" '
        'stroke-width="1.5"/></svg>'
    )


def _total(counts: object) -> int:
    if isinstance(counts, dict):
        return sum(int(v) for v in counts.values() if isinstance(v, int | float))
    return 0


@dataclass(frozen=True)
class RunPoint:
    """What the export chart shows of one run."""

    run_id: int
    label: str
    added: int
    removed: int
    audience_size: int | None
    sent_total: int


def run_points(runs: Sequence[RunView]) -> list[RunPoint]:
    """Finished, non-dry runs oldest first, with the running total of identifiers kept."""
    points: list[RunPoint] = []
    total = 0
    for run in sorted(runs, key=lambda r: r.id):
        if run.dry_run or run.finished_at is None or run.status in ("queued", "running"):
            continue
        added, removed = _total(run.counts.get("added")), _total(run.counts.get("removed"))
        total = max(0, total + added - removed)
        size = run.audience.get("approximate_number_users")
        points.append(
            RunPoint(
                run_id=run.id,
                label=f"run {run.id}, {run.finished_at:%Y-%m-%d %H:%M}",
                added=added,
                removed=removed,
                audience_size=int(size) if isinstance(size, int | float) else None,
                sent_total=total,
            )
        )
    return points


def run_chart(runs: Sequence[RunView], *, width: int = 640, height: int = 220) -> Markup:
    """Audience size and identifiers kept (lines) over adds and removes (bars) per run."""
    points = run_points(runs)
    if not points:
        return Markup('<p class="muted">No finished runs yet: the chart appears after one.</p>')
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    middle = top + plot_h * 0.62
    line_top = max([p.sent_total for p in points] + [p.audience_size or 0 for p in points] + [1])
    bar_top = max([max(p.added, p.removed) for p in points] + [1])
    slot = plot_w / len(points)
    bar_w = max(2.0, min(24.0, slot * 0.35))
    parts = [
        f'<svg class="chart" id="run-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="audience size and changes per run">',
        "<title>Audience size and identifiers added and removed, per run</title>",
        f'<line x1="{left}" y1="{middle:.1f}" x2="{width - right}" y2="{middle:.1f}" '
        'stroke="#999" stroke-width="1"/>',
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" font-size="10">{line_top:,}</text>',
        f'<text x="{left - 6}" y="{middle + 4:.1f}" text-anchor="end" font-size="10">0</text>',
    ]
    up_h, down_h = (middle - top) * 0.45, (top + plot_h - middle)

    def line_y(value: int) -> float:
        return middle - value / line_top * (middle - top)

    sizes: list[str] = []
    totals: list[str] = []
    for i, point in enumerate(points):
        x = left + slot * (i + 0.5)
        add_h = point.added / bar_top * up_h
        remove_h = point.removed / bar_top * down_h
        tip = (
            f"{point.label}: +{point.added:,} added, -{point.removed:,} removed, "
            f"{point.sent_total:,} kept"
            + (f", audience {point.audience_size:,}" if point.audience_size is not None else "")
        )
        parts.append(
            f'<g class="point" data-tip="{escape(tip)}"><title>{escape(tip)}</title>'
            f'<rect x="{x - bar_w / 2:.1f}" y="{middle - add_h:.1f}" width="{bar_w:.1f}" '
            f'height="{add_h:.1f}" fill="{ADD_COLOR}"/>'
            f'<rect x="{x - bar_w / 2:.1f}" y="{middle:.1f}" width="{bar_w:.1f}" '
            f'height="{remove_h:.1f}" fill="{REMOVE_COLOR}"/>'
            f'<rect x="{x - slot / 2:.1f}" y="{top}" width="{slot:.1f}" height="{plot_h}" '
            'fill="transparent"/></g>'
        )
        totals.append(f"{x:.1f},{line_y(point.sent_total):.1f}")
        if point.audience_size is not None:
            sizes.append(f"{x:.1f},{line_y(point.audience_size):.1f}")
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">'
            f"{point.run_id}</text>"
        )
    for coords, color, name in ((totals, SENT_COLOR, "kept"), (sizes, SIZE_COLOR, "size")):
        if coords:
            parts.append(
                f'<polyline class="line-{name}" points="{" ".join(coords)}" fill="none" '
                f'stroke="{color}" stroke-width="2"/>'
            )
            for coord in coords:
                cx, cy = coord.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
    parts.append("</svg>")
    legend = (
        '<p class="legend"><span class="key add">■</span> added '
        '<span class="key remove">■</span> removed '
        '<span class="key sent">●</span> identifiers kept in the audience '
        '<span class="key size">●</span> audience size Snapchat reports '
        '<span class="muted">(x: run number)</span></p>'
    )
    return Markup("".join(parts) + legend)  # noqa: S704 (numbers and escaped text only)
