"""SPF record analysis (pure: no Django). DNS is reached through the `txt_lookup` argument.

RFC 7208 caps the mechanisms that cost a DNS lookup (include, a, mx, ptr, exists, redirect)
at 10 per evaluation, across nested includes; past that receivers return permerror and the
record authorises nobody.
"""

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

LOOKUP_LIMIT = 10
LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
MODIFIER_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
# A domain-spec may hold macros (%{d}); without one it must look like a host name.
DOMAIN_SPEC = re.compile(r"^[a-z0-9_%{}.+=/-]+$")
HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{1,63}\.?$"
)
DUAL_CIDR = re.compile(r"^(?P<spec>[^/]*)(/(?P<v4>\d{1,3}))?(//(?P<v6>\d{1,3}))?$")


class SpfLookupError(Exception):
    """A DNS lookup during the analysis failed (timeout, server failure)."""


@dataclass
class SpfAnalysis:
    lookups: int = 0
    authorises: bool = False  # the platform's include is reachable from the record
    problems: list[str] = field(default_factory=list)
    permissive_all: bool = False
    # The qualifier of the `all` that ends the evaluation ("-", "~", "?" or "+"), following
    # redirect= when the record has none; "" when there is no `all` at all.
    final_all: str = ""
    # Mechanisms other than `all` (or a redirect=) in the record: without any, it authorises
    # no server at all.
    authorising_terms: int = 0


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

    def walk(current: str, depth: int, decides: bool) -> None:
        # `decides`: this record's `all` ends the evaluation (the record itself, or the target
        # of its redirect=); an include's `all` only ends the include.
        terms = _terms(current)
        has_all = any(t.lstrip("+-~?").lower() == "all" for t in terms)
        for term in terms:
            qualifier = term[0] if term[0] in "+-~?" else ""
            body = term[len(qualifier) :].lower()
            name, _, argument = body.partition(":")
            if "=" in name and not argument:
                name, _, argument = body.partition("=")
            if name == "all" and qualifier in ("", "+") and depth == 0:
                analysis.permissive_all = True
            if name == "all" and decides and not analysis.final_all:
                analysis.final_all = qualifier or "+"
            if depth == 0 and name in (*MECHANISMS, "redirect") and name != "all":
                analysis.authorising_terms += 1
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
                # A redirect= counts only where the record has no `all` (RFC 7208 section 6.1).
                walk(nested[0], depth + 1, decides and name == "redirect" and not has_all)

    walk(record, 0, True)
    return analysis


def _cidr_problem(term: str, value: str | None, limit: int) -> str:
    if value is None or int(value) <= limit:
        return ""
    return f"“{term}” has a prefix length above {limit}."


def _domain_spec_problem(term: str, spec: str) -> str:
    if not spec:
        return f"“{term}” needs a domain name after the colon."
    if not DOMAIN_SPEC.match(spec):
        return f"“{term}”: “{spec}” is not a domain name."
    if "%" not in spec and not HOST_NAME.match(spec):
        return f"“{term}”: “{spec}” is not a domain name."
    return ""


def _is_modifier(term: str) -> bool:
    return term[0] not in "+-~?" and "=" in re.split(r"[:/]", term, maxsplit=1)[0]


def _term_problem(term: str) -> str:
    """What is wrong with one term of an SPF record (RFC 7208 section 12), or ""."""
    qualifier = term[0] if term[0] in "+-~?" else ""
    body = term[len(qualifier) :].lower()
    if _is_modifier(term):
        modifier, _, value = body.partition("=")
        if not MODIFIER_NAME.match(modifier):
            return f"“{term}” is not a valid SPF modifier."
        if modifier == "redirect":
            return _domain_spec_problem(term, value)
        return ""
    name, colon, argument = body.partition(":")
    name, slash, _cidr = name.partition("/")
    if name not in MECHANISMS:
        return (
            f"“{term}” is not an SPF mechanism (use all, include, a, mx, ptr, ip4, ip6, exists "
            "or a modifier such as redirect=)."
        )
    if name == "all":
        return f"“{term}” takes no argument." if colon or slash else ""
    if name in ("include", "exists"):
        return _domain_spec_problem(term, argument)
    if name in ("ip4", "ip6"):
        if not colon:
            return f"“{term}” needs an address after the colon ({name}:…)."
        try:
            network = ipaddress.ip_network(argument, strict=False)
        except ValueError:
            return f"“{term}”: “{argument}” is not an IPv{name[-1]} address or network."
        if network.version != int(name[-1]):
            return f"“{term}”: “{argument}” is not an IPv{name[-1]} address."
        return ""
    # a, mx, ptr: an optional :domain, then (a and mx) an optional /v4 and //v6 prefix length.
    rest = body[len(name) :]
    with_domain = rest.startswith(":")
    match = DUAL_CIDR.match(rest[1:] if with_domain else rest)
    if match is None or (match.group("spec") and not with_domain):
        return f"“{term}” is not a valid {name} mechanism."
    if name == "ptr" and (match.group("v4") or match.group("v6")):
        return f"“{term}” takes no prefix length."
    if with_domain and (problem := _domain_spec_problem(term, match.group("spec"))):
        return problem
    return _cidr_problem(term, match.group("v4"), 32) or _cidr_problem(term, match.group("v6"), 128)


def spf_syntax_problems(record: str) -> list[str]:
    """Plain-words problems with one SPF record's syntax: any of them makes receivers return
    permerror. Terms after `all` are reported too (they are never read)."""
    words = record.split()
    if not words or words[0].lower() != "v=spf1":
        return ["The record does not start with v=spf1."]
    problems = [p for p in (_term_problem(t) for t in words[1:]) if p]
    modifiers = [t.split("=", 1)[0].lower() for t in words[1:] if _is_modifier(t)]
    for modifier in ("redirect", "exp"):
        if modifiers.count(modifier) > 1:
            problems.append(f"{modifier}= appears more than once.")
    mechanisms = [t for t in words[1:] if not _is_modifier(t)]
    names = [t.lstrip("+-~?").split(":", 1)[0].split("/", 1)[0].lower() for t in mechanisms]
    if "all" in names and names.index("all") < len(names) - 1:
        ignored = " ".join(mechanisms[names.index("all") + 1 :])
        problems.append(
            f"Receivers stop reading at {mechanisms[names.index('all')]}, so “{ignored}” is "
            "never used: move it before the all."
        )
    return problems
