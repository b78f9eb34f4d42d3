"""SPF record analysis (pure: no Django). DNS is reached through the `txt_lookup` argument.

RFC 7208 caps the mechanisms that cost a DNS lookup (include, a, mx, ptr, exists, redirect)
at 10 per evaluation, across nested includes; past that receivers return permerror and the
record authorises nobody.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

LOOKUP_LIMIT = 10
LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")


class SpfLookupError(Exception):
    """A DNS lookup during the analysis failed (timeout, server failure)."""


@dataclass
class SpfAnalysis:
    lookups: int = 0
    authorises: bool = False  # the platform's include is reachable from the record
    problems: list[str] = field(default_factory=list)
    permissive_all: bool = False


def spf_records(txt_values: list[str]) -> list[str]:
    return [v for v in txt_values if v.lower().split(" ", 1)[0] == "v=spf1"]


def _terms(record: str) -> list[str]:
    return [t for t in record.split()[1:] if t]


def spf_analyse(
    record: str,
    *,
    platform_include: str,
    txt_lookup: Callable[[str], list[str]],
) -> SpfAnalysis:
    """Count lookups through nested includes and find whether the platform is authorised."""
    analysis = SpfAnalysis()
    target = platform_include.lower().rstrip(".")
    seen: set[str] = set()

    def walk(current: str, depth: int) -> None:
        for term in _terms(current):
            qualifier = term[0] if term[0] in "+-~?" else ""
            body = term[len(qualifier) :].lower()
            name, _, argument = body.partition(":")
            if "=" in name and not argument:
                name, _, argument = body.partition("=")
            if name == "all" and qualifier in ("", "+") and depth == 0:
                analysis.permissive_all = True
            if name in LOOKUP_MECHANISMS or name == "redirect":
                analysis.lookups += 1
            if name in ("include", "redirect") and argument:
                domain = argument.rstrip(".")
                if domain == target:
                    analysis.authorises = True
                if domain in seen:
                    analysis.problems.append(f"{domain} is included twice (a loop).")
                    continue
                seen.add(domain)
                if depth >= LOOKUP_LIMIT:
                    continue
                nested = spf_records(txt_lookup(domain))
                if not nested:
                    analysis.problems.append(f"include:{domain} has no SPF record.")
                    continue
                if len(nested) > 1:
                    analysis.problems.append(f"{domain} publishes more than one SPF record.")
                walk(nested[0], depth + 1)

    walk(record, 0)
    return analysis
