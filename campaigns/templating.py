"""Campaign message templates: Liquid merge fields plus spintax.

Pure: no Django or app imports. A template is compiled once into a small tree of literal
text, merge-field tags and spin groups, then rendered many times. Only Liquid output tags
(``{{ field | filter }}``) with a few text filters are accepted; ``{% %}`` tags are refused.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from liquid import BoundTemplate, Environment, StrictDefaultUndefined
from liquid.exceptions import LiquidError, UndefinedError

UNSUBSCRIBE_FIELD = "unsubscribe_url"
ALLOWED_FILTERS = ("default", "capitalize", "upcase", "downcase", "strip")
MAX_VARIANTS = 1_000_000


class TemplateProblem(ValueError):
    """A syntax error in a template; ``problems`` lists every one found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class MissingField(ValueError):
    """A merge field without a default has no value for this lead."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is empty for this lead and has no default.")
        self.field = field


def _environment() -> Environment:
    env = Environment(undefined=StrictDefaultUndefined)
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    return env


_ENV = _environment()


@dataclass(frozen=True, slots=True)
class _Field:
    """One ``{{ ... }}`` tag.

    Simple tags (a field name, an optional leading ``default`` with a quoted text, then
    case filters) are rendered directly in ``plain``/``default``/``ops``; anything else
    goes through Liquid in ``template``.
    """

    template: BoundTemplate | None
    plain: str | None
    default: str | None
    ops: tuple[Callable[[str], str], ...]
    used: frozenset[str]
    required: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Spin:
    alternatives: tuple[tuple[_Node, ...], ...]


_Node = str | _Field | _Spin


def _render_nodes(
    nodes: tuple[_Node, ...], data: dict[str, str], rng: random.Random, out: list[str]
) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Field):
            for name in node.required:
                if name not in data:
                    raise MissingField(name)
            if node.plain is not None:
                value = data.get(node.plain)
                if value is None:
                    value = node.default if node.default is not None else ""
                for op in node.ops:
                    value = op(value)
                out.append(value)
                continue
            assert node.template is not None
            try:
                out.append(node.template.render(**data))
            except UndefinedError as exc:
                name = str(exc.message).split("'")[1] if "'" in str(exc.message) else ""
                raise MissingField(name) from exc
        else:
            alternatives = node.alternatives
            choice = alternatives[int(rng.random() * len(alternatives))]
            _render_nodes(choice, data, rng, out)


def _count_variants(nodes: tuple[_Node, ...]) -> int:
    total = 1
    for node in nodes:
        if isinstance(node, _Spin):
            total *= sum(_count_variants(alt) for alt in node.alternatives)
            total = min(total, MAX_VARIANTS)
    return total


def _collect_fields(nodes: tuple[_Node, ...], into: list[_Field]) -> None:
    for node in nodes:
        if isinstance(node, _Field):
            into.append(node)
        elif isinstance(node, _Spin):
            for alt in node.alternatives:
                _collect_fields(alt, into)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A parsed template, ready to render for many leads."""

    nodes: tuple[_Node, ...]
    fields_used: frozenset[str]
    fields_required: frozenset[str]
    spintax_variants: int

    def render(self, fields: Mapping[str, str], *, seed: int) -> str:
        """Return the text for these field values; spin choices follow ``seed``."""
        data = {key: value for key, value in fields.items() if value}
        out: list[str] = []
        _render_nodes(self.nodes, data, random.Random(seed), out)
        return "".join(out)


def _compile_field(source: str, position: int, problems: list[str]) -> _Field | None:
    inner = source[2:-2]
    if "{{" in inner or "{%" in inner:
        problems.append(f"Merge field at character {position} is never closed.")
        return None
    try:
        template = _ENV.from_string(source)
        analysis = template.analyze()
    except LiquidError as exc:
        problems.append(f"Merge field at character {position}: {exc.message}.")
        return None
    unknown = sorted(name for name in analysis.filters if name not in ALLOWED_FILTERS)
    if unknown:
        allowed = ", ".join(ALLOWED_FILTERS)
        problems.append(
            f"Merge field at character {position}: unknown filter '{unknown[0]}'. "
            f"Use one of: {allowed}."
        )
        return None
    names: set[str] = set()
    for root, variables in analysis.variables.items():
        for variable in variables:
            if len(variable.segments) != 1:
                problems.append(
                    f"Merge field at character {position}: use a plain field name "
                    f"such as first_name, not '{variable}'."
                )
                return None
        names.add(root)
    used = frozenset(names)
    # A default only helps when it comes first: Liquid's other filters refuse a missing value.
    has_default = _DEFAULT_FIRST.match(inner) is not None
    required = frozenset() if has_default else used
    fast = _fast_path(inner) if len(used) == 1 else None
    if fast is None or fast[0] not in used:
        return _Field(
            template=template, plain=None, default=None, ops=(), used=used, required=required
        )
    name, default, ops = fast
    return _Field(template=None, plain=name, default=default, ops=ops, used=used, required=required)


_DEFAULT_FIRST = re.compile(r"-?\s*[A-Za-z_][\w-]*\s*\|\s*default\b")
_SIMPLE_TAG = re.compile(
    r"""-?\s*([A-Za-z_][\w-]*)\s*((?:\|\s*(?:default\s*:\s*(?:"[^"\\]*"|'[^'\\]*')"""
    r"""|capitalize|upcase|downcase|strip)\s*)*)-?"""
)
_SIMPLE_FILTER = re.compile(r"""\|\s*(?:default\s*:\s*(?:"([^"]*)"|'([^']*)')|(\w+))""")
_CASE_FILTERS: dict[str, Callable[[str], str]] = {
    "capitalize": str.capitalize,
    "upcase": str.upper,
    "downcase": str.lower,
    "strip": str.strip,
}


def _fast_path(
    inner: str,
) -> tuple[str, str | None, tuple[Callable[[str], str], ...]] | None:
    """Split a simple tag into field name, leading default and case filters, else None."""
    match = _SIMPLE_TAG.fullmatch(inner)
    if match is None:
        return None
    default: str | None = None
    ops: list[Callable[[str], str]] = []
    for index, found in enumerate(_SIMPLE_FILTER.finditer(match.group(2))):
        double, single, name = found.groups()
        if name is None:
            if index != 0:
                return None
            default = double if double is not None else single
        else:
            ops.append(_CASE_FILTERS[name])
    return match.group(1), default, tuple(ops)


def _parse(text: str) -> tuple[tuple[_Node, ...], list[str]]:
    problems: list[str] = []
    # Stack of open spin groups: (position, finished alternatives, parent node list).
    stack: list[tuple[int, list[tuple[_Node, ...]], list[_Node]]] = []
    top: list[_Node] = []
    current = top
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            current.append("".join(buffer))
            buffer.clear()

    i, length = 0, len(text)
    while i < length:
        char = text[i]
        position = i + 1
        if char == "\\" and i + 1 < length and text[i + 1] in "{}|":
            buffer.append(text[i + 1])
            i += 2
        elif text.startswith("{{", i) and not text.startswith("{{{", i):
            end = text.find("}}", i + 2)
            if end < 0:
                problems.append(
                    f"Merge field: '{{{{' at character {position} is never closed. "
                    "(To start a spin group with another group, write '{ {'.)"
                )
                break
            flush()
            field = _compile_field(text[i : end + 2], position, problems)
            if field is not None:
                current.append(field)
            i = end + 2
        elif text.startswith("{%", i):
            problems.append(
                f"Merge field: '{{%' tags at character {position} are not supported; "
                "only {{ field }} merge fields are allowed."
            )
            end = text.find("%}", i + 2)
            i = length if end < 0 else end + 2
        elif char == "{":
            flush()
            stack.append((position, [], current))
            current = []
            i += 1
        elif char == "|" and stack:
            flush()
            stack[-1][1].append(tuple(current))
            current = []
            i += 1
        elif char == "}" and stack:
            flush()
            _, alternatives, parent = stack.pop()
            alternatives.append(tuple(current))
            parent.append(_Spin(alternatives=tuple(alternatives)))
            current = parent
            i += 1
        elif char == "}":
            problems.append(f"Spintax: '}}' at character {position} has no matching '{{'.")
            i += 1
        else:
            buffer.append(char)
            i += 1
    flush()
    for position, _, _ in reversed(stack):
        problems.append(f"Spintax: '{{' at character {position} is never closed.")
    return tuple(top), problems


def template_problems(text: str) -> list[str]:
    """Return every syntax problem in ``text``; an empty list means it is fine."""
    return _parse(text)[1]


def compile_template(text: str) -> CompiledTemplate:
    """Parse ``text`` once; raise TemplateProblem on the first syntax error."""
    nodes, problems = _parse(text)
    if problems:
        raise TemplateProblem(problems[0], problems)
    fields: list[_Field] = []
    _collect_fields(nodes, fields)
    used = frozenset(name for field in fields for name in field.used)
    required = frozenset(name for field in fields for name in field.required)
    return CompiledTemplate(
        nodes=nodes,
        fields_used=used,
        fields_required=required,
        spintax_variants=_count_variants(nodes),
    )
