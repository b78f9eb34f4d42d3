"""Writes for warming: settings and the daily plan (planning), the engagement agent (agent)."""

from warming.services.planning import (
    WarmupChoices,
    warming_day_plan,
    warming_day_save,
    warmup_settings_update,
)

__all__ = ["WarmupChoices", "warming_day_plan", "warming_day_save", "warmup_settings_update"]
