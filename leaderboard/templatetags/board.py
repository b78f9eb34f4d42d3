"""Badge titles for the board's templates (codes in, words out)."""

from django import template

register = template.Library()

BADGE_TITLES = {
    "first_domain": ("✔", "First domain verified"),
    "streak_7": ("7", "7 days in an external tier"),
    "streak_30": ("30", "30 days in an external tier"),
    "streak_90": ("90", "90 days in an external tier"),
    "clean_30": ("☂", "30 days without a complaint"),
    "rehab_graduate": ("↑", "Completed a rehabilitation"),
}


@register.filter
def badge_title(code: str) -> str:
    return BADGE_TITLES.get(code, ("", code))[1]


@register.filter
def badge_mark(code: str) -> str:
    return BADGE_TITLES.get(code, ("•", code))[0]
