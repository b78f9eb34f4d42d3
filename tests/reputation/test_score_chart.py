"""The score history chart's geometry (reputation/charts.py): examples and properties, no database.

Beside the domain page's template tag (reputation/templatetags/score_history.py) that draws it."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from reputation.charts import (
    EDGE,
    MAX_TIME_TICKS,
    MIN_SPAN,
    PLOT_HEIGHT,
    PLOT_WIDTH,
    history_chart,
    score_y,
    time_ticks,
)

NOW = datetime(2026, 3, 29, 9, 40, tzinfo=UTC)  # the night Europe moves its clocks forward
ZONES = [
    UTC,
    ZoneInfo("Europe/Paris"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Australia/Lord_Howe"),  # a half-hour daylight-saving shift
]


def vertices(line: str) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in line.split()]


# Examples


def test_it_spreads_a_single_days_points_over_the_whole_width() -> None:
    points = [
        (NOW - timedelta(hours=20) + timedelta(minutes=12 * i), 50 + i / 3) for i in range(90)
    ]
    chart = history_chart(points, start=NOW - timedelta(days=30), end=NOW)
    (line,) = chart.lines
    xs = [x for x, _ in vertices(line)]
    assert xs[0] == 0 and xs[-1] == PLOT_WIDTH
    assert len({round(x) for x in xs}) >= 90  # every point has its own place in time
    assert chart.start == NOW - timedelta(hours=20)
    assert [t.label for t in chart.time_ticks] == ["16:00", "20:00", "29 Mar", "04:00", "08:00"]


def test_it_labels_a_longer_history_with_dates() -> None:
    points = [(NOW - timedelta(days=d), 40.0 + d) for d in (3, 6, 9, 20)]
    chart = history_chart(points, start=NOW - timedelta(days=30), end=NOW)
    assert [t.label for t in chart.time_ticks] == ["14 Mar", "19 Mar", "24 Mar"]


def test_it_labels_ticks_in_the_time_zone_of_the_end() -> None:
    paris = NOW.astimezone(ZoneInfo("Europe/Paris"))  # 11:40 local, after the clocks moved
    chart = history_chart(
        [(NOW - timedelta(hours=5), 60.0)], start=paris - timedelta(days=30), end=paris
    )
    assert [t.label for t in chart.time_ticks] == ["07:00", "08:00", "09:00", "10:00", "11:00"]


def test_it_marks_70_and_labels_the_score_axis() -> None:
    chart = history_chart([(NOW, 80.0)], start=NOW - timedelta(days=30), end=NOW)
    assert chart.threshold_y == 30
    assert {t.label: t.percent for t in chart.score_ticks} == {
        "100": 0,
        "70": 30,
        "50": 50,
        "0": 100,
    }


def test_it_holds_each_score_until_the_next_and_the_last_until_now() -> None:
    points = [(NOW - timedelta(hours=4), 40.0), (NOW - timedelta(hours=2), 60.0)]
    chart = history_chart(points, start=NOW - timedelta(days=30), end=NOW)
    assert vertices(chart.lines[0]) == [(0, 60), (500, 60), (500, 40), (1000, 40)]
    assert chart.latest == 60.0


def test_it_breaks_the_line_where_there_was_no_score() -> None:
    points = [
        (NOW - timedelta(hours=4), 40.0),
        (NOW - timedelta(hours=3), None),
        (NOW - timedelta(hours=2), 60.0),
    ]
    chart = history_chart(points, start=NOW - timedelta(days=30), end=NOW)
    assert [vertices(line) for line in chart.lines] == [
        [(0, 60), (250, 60)],
        [(500, 40), (1000, 40)],
    ]


def test_it_opens_the_window_with_the_score_from_before_it() -> None:
    start = NOW - timedelta(days=30)
    chart = history_chart([(start - timedelta(days=2), 75.0)], start=start, end=NOW)
    assert vertices(chart.lines[0]) == [(0, 25), (1000, 25)]


def test_it_draws_no_line_without_scores_but_keeps_its_axes() -> None:
    chart = history_chart([], start=NOW - timedelta(days=30), end=NOW)
    assert chart.lines == [] and chart.dots == [] and chart.latest is None
    assert chart.time_ticks and chart.score_ticks


def test_it_leaves_dots_to_points_with_room_and_always_marks_the_latest() -> None:
    crowded = [(NOW - timedelta(minutes=m), 50.0) for m in range(0, 60)]
    sparse = [(NOW - timedelta(days=d), 50.0) for d in (10, 20)]
    chart = history_chart(crowded + sparse, start=NOW - timedelta(days=30), end=NOW)
    assert chart.dots == [(0.0, 50.0), (500.0, 50.0), (1000.0, 50.0)]


# Properties

times = st.datetimes(
    # Naive bounds, as hypothesis wants them; every value drawn carries one of ZONES.
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001
    max_value=datetime(2028, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(ZONES),
)
scores = st.one_of(st.none(), st.floats(min_value=-50, max_value=150, allow_nan=False))


@st.composite
def histories(draw: st.DrawFn):
    end = draw(times)
    days = draw(st.integers(1, 60))
    start = end - timedelta(days=days)
    offsets = st.floats(min_value=-5 * 86400, max_value=days * 86400, allow_nan=False)
    points = [
        (start + timedelta(seconds=draw(offsets)), draw(scores))
        for _ in range(draw(st.integers(0, 40)))
    ]
    return points, start, end


@given(histories())
def test_every_line_stays_in_the_plot_and_moves_forward_in_time(history) -> None:
    points, start, end = history
    chart = history_chart(points, start=start, end=end)
    for line in chart.lines:
        xs = [x for x, _ in vertices(line)]
        assert xs == sorted(xs)
        for x, y in vertices(line):
            assert 0 <= x <= PLOT_WIDTH and 0 <= y <= PLOT_HEIGHT
    for x, y in chart.dots:
        assert 0 <= x <= PLOT_WIDTH and 0 <= y <= PLOT_HEIGHT
    # Compared in UTC: `end` may be a wall-clock time that a daylight-saving change skipped.
    assert chart.end.astimezone(UTC) == end.astimezone(UTC)
    assert chart.end.astimezone(UTC) - chart.start.astimezone(UTC) >= MIN_SPAN


@given(histories())
def test_every_height_on_the_line_is_a_recorded_score(history) -> None:
    points, start, end = history
    chart = history_chart(points, start=start, end=end)
    heights = {round(score_y(s), 1) for _, s in points if s is not None}
    for line in chart.lines:
        assert {y for _, y in vertices(line)} <= heights


@given(histories())
def test_the_latest_score_reaches_the_right_edge(history) -> None:
    points, start, end = history
    chart = history_chart(points, start=start, end=end)
    in_utc = [(at.astimezone(UTC), score) for at, score in points]
    shown = sorted((p for p in in_utc if p[0] <= end.astimezone(UTC)), key=lambda p: p[0])
    if shown and shown[-1][1] is not None:
        latest_y = round(score_y(shown[-1][1]), 1)
        assert vertices(chart.lines[-1])[-1] == (PLOT_WIDTH, latest_y)
        assert chart.dots[-1][1] == latest_y and chart.latest == shown[-1][1]


@given(
    st.lists(st.floats(min_value=0, max_value=86_400, allow_nan=False), min_size=2, max_size=60),
    st.sampled_from(ZONES),
)
def test_points_within_one_day_use_the_whole_width_in_time_order(seconds, zone) -> None:
    end = NOW.astimezone(zone)
    first = NOW - timedelta(days=1)  # in UTC: a day of real time, whatever the clocks did
    points = [
        ((first + timedelta(seconds=s)).astimezone(zone), 55.0) for s in [0.0, *seconds, 86_400.0]
    ]
    chart = history_chart(points, start=end - timedelta(days=30), end=end)
    xs = [x for x, _ in vertices(chart.lines[0])]
    assert xs[0] == 0 and xs[-1] == PLOT_WIDTH
    for s in seconds:  # each point sits where its time is, to the rounding of the drawing
        assert any(abs(x - PLOT_WIDTH * s / 86_400) <= 0.06 for x in xs)


@given(times, st.floats(min_value=60, max_value=90 * 86400, allow_nan=False))
def test_time_ticks_are_few_ordered_inside_and_labelled(end, seconds) -> None:
    ticks = time_ticks(end - timedelta(seconds=seconds), end)
    assert len(ticks) <= MAX_TIME_TICKS
    percents = [t.percent for t in ticks]
    assert percents == sorted(set(percents))
    assert all(100 * EDGE - 0.01 <= p <= 100 * (1 - EDGE) + 0.01 for p in percents)
    assert all(t.label for t in ticks)
