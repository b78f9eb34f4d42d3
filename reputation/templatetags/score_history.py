"""`{% score_history_chart rep.history %}`: the domain page's score chart, with axes."""

from datetime import timedelta

from django import template
from django.utils import timezone

from reputation.charts import PLOT_HEIGHT, PLOT_WIDTH, THRESHOLD, history_chart

register = template.Library()


@register.inclusion_tag("reputation/partials/score_history_chart.html")
def score_history_chart(history: list[dict], days: int = 30) -> dict:
    """Lay out `history` (dicts with `at` and `score`, as the reputation selector gives them)
    over the last `days` days, labelled in the current time zone."""
    end = timezone.localtime(timezone.now())
    chart = history_chart(
        [(point["at"], point["score"]) for point in history],
        start=end - timedelta(days=days),
        end=end,
    )
    return {
        "chart": chart,
        "has_scores": bool(chart.lines),
        "days": days,
        "width": PLOT_WIDTH,
        "height": PLOT_HEIGHT,
        "threshold": THRESHOLD,
    }
