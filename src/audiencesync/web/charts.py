"""Charts: the data of an export's charts (drawn by the vendored Chart.js,
``static/chartjs``) and a small inline SVG sparkline for segment sizes.

The sparkline's colors are SVG presentation attributes (not ``style``), so the pages'
Content Security Policy can forbid inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from html import escape
from typing import Any

from markupsafe import Markup

from audiencesync.control.zones import zone_label
from audiencesync.sync.audience import ReadingView
from audiencesync.sync.runs import RunView

SIZE_COLOR = "#2b6cb0"


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


def export_chart(
    runs: Sequence[RunView], readings: Sequence[ReadingView], zone: tzinfo | None = None
) -> dict[str, Any]:
    """The data of an export's two charts (drawn by Chart.js in the browser).

    ``audience``: per reading, oldest first (labelled to the second in ``zone``, with its
    short name; None: in UTC without one), the identifiers
    held, the matched users Snapchat reported and the match rate in percent (both null
    while it was still matching, so a stale figure is never drawn). ``runs``: per finished
    run that sent (dry runs send nothing), the identifiers added and removed; a clear or a
    replace that emptied the audience counts what it held then as removed, and
    ``emptied`` is 1 for it (else 0).
    """
    sent = [
        r for r in sorted(runs, key=lambda r: r.id)
        if not r.dry_run and r.finished_at is not None and r.status not in ("queued", "running")
    ]  # fmt: skip
    return {
        "audience": {
            "labels": [_second(r.read_at, zone) for r in readings],
            "reading_ids": [r.id for r in readings],
            "held": [r.identifiers_held for r in readings],
            "matched": [r.approximate_number_users if r.complete else None for r in readings],
            "match_rate": [
                round(r.match_rate * 100, 2) if r.match_rate is not None else None for r in readings
            ],
        },
        "runs": {
            "labels": [f"run {r.id}" for r in sent],
            "run_ids": [r.id for r in sent],
            "added": [_total(r.counts.get("added")) for r in sent],
            "removed": [_total(r.counts.get("removed")) + _emptied(r) for r in sent],
            "emptied": [1 if r.counts.get("emptied") else 0 for r in sent],
        },
    }


def _second(moment: datetime, zone: tzinfo | None) -> str:
    if zone is None:
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {zone_label(local)}"


def _emptied(run: RunView) -> int:
    """What a clear or replace removed by emptying the audience (what was held then)."""
    held = run.counts.get("emptied_held") if run.counts.get("emptied") else None
    return held if isinstance(held, int) else 0


def run_readings(
    runs: Sequence[RunView], readings: Sequence[ReadingView]
) -> dict[int, ReadingView]:
    """Per run, the reading that tells what its upload matched: the first completed
    reading taken after it and before the next run started (else the last one of that
    span, pending or failed). Daily readings long after are the audience's, not the run's.
    """
    sent = sorted((r for r in runs if not r.dry_run), key=lambda r: r.id)
    result: dict[int, ReadingView] = {}
    for index, run in enumerate(sent):
        later = next((r.started_at for r in sent[index + 1 :] if r.started_at), None)
        own = [
            r for r in readings
            if r.run_id == run.id and (later is None or r.read_at < later)
        ]  # fmt: skip
        if own:
            result[run.id] = next((r for r in own if r.complete), own[-1])
    return result
