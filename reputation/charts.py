"""Server-side SVG geometry for the score gauge and the 30-day history chart (pure)."""

import math
from dataclasses import dataclass
from datetime import datetime


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


def history_points(
    points: list[tuple[datetime, float | None]],
    *,
    start: datetime,
    end: datetime,
    width: int = 600,
    height: int = 160,
) -> str:
    """`x,y` pairs for an SVG polyline: time on x from start to end, score 0-100 on y."""
    span = max((end - start).total_seconds(), 1.0)
    pairs = []
    for at, score in points:
        if score is None:
            continue
        x = width * min(1.0, max(0.0, (at - start).total_seconds() / span))
        y = height * (1 - max(0.0, min(100.0, score)) / 100)
        pairs.append(f"{x:.1f},{y:.1f}")
    return " ".join(pairs)
