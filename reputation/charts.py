"""Server-side SVG geometry for the score gauge and the 30-day history chart (pure: no Django)."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reputation.scoring import EXTERNAL_THRESHOLD


@dataclass(frozen=True)
class Gauge:
    arc: str  # SVG path of the filled part
    track: str  # SVG path of the whole half circle


def _point(cx: float, cy: float, r: float, fraction: float) -> tuple[float, float]:
    angle = math.pi * (1 - fraction)  # 0 -> left end, 1 -> right end of the half circle
    return cx + r * math.cos(angle), cy - r * math.sin(angle)


def gauge(score: float | None, *, cx: float = 60, cy: float = 60, r: float = 50) -> Gauge:
    fraction = 0.0 if score is None else max(0.0, min(1.0, score / 100))
    x0, y0 = _point(cx, cy, r, 0)
    x1, y1 = _point(cx, cy, r, fraction)
    x2, y2 = _point(cx, cy, r, 1)
    return Gauge(
        arc=f"M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {x1:.1f} {y1:.1f}" if fraction else "",
        track=f"M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {x2:.1f} {y2:.1f}",
    )


# --- The score history chart -------------------------------------------------------------------
#
# The plot is drawn in a 1000 x 100 box (x: per-mille of the time axis, y: 100 - score) that the
# page stretches to any width; labels are positioned in percent outside the SVG, so they stay
# readable on a phone instead of being squeezed with the drawing.

PLOT_WIDTH = 1000
PLOT_HEIGHT = 100
THRESHOLD = EXTERNAL_THRESHOLD  # the score that unlocks external sending
MIN_SPAN = timedelta(hours=1)
MAX_TIME_TICKS = 6
# Tick steps to try, smallest first: hours within a day, then whole days.
HOUR_STEPS = (1, 2, 3, 4, 6, 12)
DAY_STEPS = (1, 2, 3, 5, 7, 14)
MIN_DOT_GAP = 20.0  # plot units: points closer than this to a neighbour are shown by the line alone
EDGE = 0.065  # ticks closer than this to either end would have their label cut off (phones)


@dataclass(frozen=True)
class Tick:
    percent: float  # position along its axis, 0-100
    label: str


@dataclass(frozen=True)
class HistoryChart:
    start: datetime  # the time at the left edge
    end: datetime  # the time at the right edge
    lines: list[str]  # `x,y` polyline points, one per run of scored points
    dots: list[tuple[float, float]]  # points with room for a dot, and always the latest one
    time_ticks: list[Tick]
    score_ticks: list[Tick]
    threshold_y: float
    latest: float | None


def score_y(score: float) -> float:
    """Vertical position in the plot box: 0 at the top (score 100), 100 at the bottom (0)."""
    return PLOT_HEIGHT * (1 - max(0.0, min(100.0, score)) / 100)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def history_chart(
    points: list[tuple[datetime, float | None]],
    *,
    start: datetime,
    end: datetime,
) -> HistoryChart:
    """The history as a step line at each point's real time (a score holds until the next one).

    The time axis runs from the first point (or `start`, whichever is later) to `end`, so a young
    domain's history fills the chart instead of a sliver at its right edge. Ticks and labels use
    `end`'s time zone. `points` must be aware datetimes; they are sorted here."""
    tz = end.tzinfo
    ordered = sorted(points, key=lambda p: _utc(p[0]))
    # Only the last point before `start` matters: it is the score the window opens with.
    before = [p for p in ordered if _utc(p[0]) < _utc(start)]
    inside = [p for p in ordered if _utc(start) <= _utc(p[0]) <= _utc(end)]
    if before:
        inside = [(start, before[-1][1]), *inside]
    axis_start = _utc(inside[0][0]) if inside else _utc(start)
    axis_end = _utc(end)
    axis_start = min(axis_start, axis_end - MIN_SPAN)
    span = (axis_end - axis_start).total_seconds()

    def x_of(at: datetime) -> float:
        fraction = (_utc(at) - axis_start).total_seconds() / span
        return PLOT_WIDTH * max(0.0, min(1.0, fraction))

    lines: list[str] = []
    run: list[tuple[float, float]] = []
    for index, (at, score) in enumerate(inside):
        if score is None:
            if run:
                run.append((x_of(at), run[-1][1]))
                lines.append(_polyline(run))
                run = []
            continue
        x, y = x_of(at), score_y(score)
        if run:
            run.append((x, run[-1][1]))  # the previous score held until now
        run.append((x, y))
        if index == len(inside) - 1:
            run.append((PLOT_WIDTH, y))  # and the last one holds until the end
    if run:
        lines.append(_polyline(run))
    scored = [(x_of(at), score_y(s)) for at, s in inside if s is not None]
    dots = [
        (round(x, 1), round(y, 1))
        for i, (x, y) in enumerate(scored)
        if i == len(scored) - 1  # the current score always gets its dot
        or ((i == 0 or x - scored[i - 1][0] >= MIN_DOT_GAP) and scored[i + 1][0] - x >= MIN_DOT_GAP)
    ]
    last = inside[-1][1] if inside else None
    return HistoryChart(
        start=axis_start.astimezone(tz),
        end=axis_end.astimezone(tz),
        lines=lines,
        dots=dots,
        time_ticks=time_ticks(axis_start.astimezone(tz), axis_end.astimezone(tz)),
        score_ticks=[Tick(round(score_y(s), 2), f"{s:g}") for s in (100, THRESHOLD, 50, 0)],
        threshold_y=round(score_y(THRESHOLD), 2),
        latest=last,
    )


def _polyline(run: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in run)


def _date_label(at: datetime) -> str:
    return f"{at.day} {at.strftime('%b')}"


def time_ticks(start: datetime, end: datetime, *, limit: int = MAX_TIME_TICKS) -> list[Tick]:
    """Round wall-clock times between `start` and `end` (aware, in the zone to label in): whole
    hours within a day, midnights beyond; a midnight is labelled with its date."""
    tz = end.tzinfo
    span = (_utc(end) - _utc(start)).total_seconds()
    if span <= 0:
        return []
    steps = [timedelta(hours=h) for h in HOUR_STEPS] + [timedelta(days=d) for d in DAY_STEPS]
    step = next((s for s in steps if span / s.total_seconds() <= limit), None)
    if step is None:  # longer than the biggest step allows: spread whole days evenly
        step = timedelta(days=math.ceil(span / 86400 / limit))
    local_start = start.astimezone(tz).replace(tzinfo=None)
    midnight = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    ticks: list[Tick] = []
    wall = midnight
    while True:
        wall += step
        at = wall.replace(tzinfo=tz)
        fraction = (_utc(at) - _utc(start)).total_seconds() / span
        if fraction > 1 - EDGE:
            break
        if fraction < EDGE:
            continue
        percent = round(100 * fraction, 2)
        if ticks and percent <= ticks[-1].percent:
            continue  # a wall-clock time that a daylight-saving change skipped or repeated
        is_midnight = wall.hour == 0 and wall.minute == 0
        label = _date_label(wall) if is_midnight else wall.strftime("%H:%M")
        ticks.append(Tick(percent, label))
    return ticks[:limit]
