import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from liquid import Environment, StrictDefaultUndefined

from campaigns.templating import (
    UNSUBSCRIBE_FIELD,
    MissingField,
    TemplateProblem,
    compile_template,
    template_problems,
)

FIELD_NAMES = ["first_name", "company", "title", "city"]
words = st.text(alphabet="abcdefgh ,.!", min_size=0, max_size=8)


@st.composite
def safe_template(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(
            st.sampled_from(
                ["text", "field", "default", "spin"] if depth < 2 else ["text", "field"]
            )
        )
        if kind == "text":
            parts.append(draw(words))
        elif kind == "field":
            parts.append("{{ " + draw(st.sampled_from(FIELD_NAMES)) + " }}")
        elif kind == "default":
            parts.append("{{" + draw(st.sampled_from(FIELD_NAMES)) + '|default:"there"}}')
        else:
            alternatives = draw(st.lists(safe_template(depth + 1), min_size=1, max_size=3))
            # "{{" always opens a merge field, so a nested group never starts a group.
            parts.append("{" + "|".join("a" + alternative for alternative in alternatives) + "}")
    return "".join(parts)


field_values = st.fixed_dictionaries(
    {name: st.text(alphabet="xyz{}|", min_size=1, max_size=5) for name in FIELD_NAMES}
)


@given(safe_template(), field_values, st.integers())
def test_it_renders_any_safe_template_when_all_fields_are_given(text, fields, seed):
    compiled = compile_template(text)
    assert template_problems(text) == []
    assert compiled.fields_required <= compiled.fields_used <= set(FIELD_NAMES)
    assert compiled.render(fields, seed=seed) == compiled.render(fields, seed=seed)


@given(
    st.lists(st.text(alphabet="abcdef ", min_size=1, max_size=6), min_size=1, max_size=5),
    st.integers(),
)
def test_it_only_picks_listed_alternatives(alternatives, seed):
    compiled = compile_template("<{" + "|".join(alternatives) + "}>")
    assert compiled.spintax_variants == len(alternatives)
    assert compiled.render({}, seed=seed)[1:-1] in alternatives


def test_it_reads_double_braces_as_a_merge_field_and_triple_as_spin_around_one():
    assert compile_template("{{{ company }}|x}").render({"company": "Acme"}, seed=0) in {
        "Acme",
        "x",
    }
    assert template_problems("{{a|b}|c}")[0].startswith("Merge field: '{{' at character 1 is never")
    assert compile_template("{ {a|b}|c}").spintax_variants == 3


def test_it_gives_variety_across_seeds_and_handles_nesting():
    compiled = compile_template("{Hi|Hello {there|friend}|Hey}")
    texts = {compiled.render({}, seed=seed) for seed in range(200)}
    assert texts == {"Hi", "Hello there", "Hello friend", "Hey"}
    assert compiled.spintax_variants == 4


def test_it_fills_fields_and_defaults_and_treats_empty_as_missing():
    compiled = compile_template('Hi {{first_name|default:"there"}} at {{ company | upcase }}')
    assert compiled.fields_used == {"first_name", "company"}
    assert compiled.fields_required == {"company"}
    assert compiled.render({"first_name": "", "company": "acme"}, seed=1) == "Hi there at ACME"
    assert compiled.render({"first_name": "Ann", "company": "acme"}, seed=1) == "Hi Ann at ACME"
    with pytest.raises(MissingField) as error:
        compiled.render({"first_name": "Ann", "company": ""}, seed=1)
    assert error.value.field == "company"


def test_it_keeps_escaped_braces_and_pipes_literal():
    compiled = compile_template(r"a \{b\} c | d {x\|y|z}")
    assert compiled.spintax_variants == 2
    assert {compiled.render({}, seed=s) for s in range(50)} == {"a {b} c | d x|y", "a {b} c | d z"}


def test_it_reports_syntax_errors_with_positions():
    assert template_problems("Hello {Hi|Hey there") == [
        "Spintax: '{' at character 7 is never closed."
    ]
    assert template_problems("Hi} there") == ["Spintax: '}' at character 3 has no matching '{'."]
    problems = template_problems("{{ first_name | shout }} and {{ oops")
    assert problems[0].startswith("Merge field at character 1: unknown filter 'shout'")
    assert problems[1].startswith("Merge field: '{{' at character 30 is never closed.")
    with pytest.raises(TemplateProblem) as error:
        compile_template("{a|b")
    assert "character 1" in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        "{{ self.__class__ }}",
        "{{ first_name.__class__.__mro__ }}",
        "{% include 'secrets' %}",
        "{% raw %}{{ x }}{% endraw %}",
        "{{ first_name | map: '__globals__' }}",
    ],
)
def test_it_refuses_liquid_injection(text):
    assert template_problems(text)
    with pytest.raises(TemplateProblem):
        compile_template(text)


def test_it_renders_an_unsubscribe_link_field():
    compiled = compile_template("Bye: {{ unsubscribe_url }}")
    assert compiled.fields_required == {UNSUBSCRIBE_FIELD}
    assert compiled.render({UNSUBSCRIBE_FIELD: "https://u/1"}, seed=0) == "Bye: https://u/1"
    assert re.fullmatch(r"Bye: \S+", compiled.render({UNSUBSCRIBE_FIELD: "x"}, seed=0))


case_filters = st.lists(st.sampled_from(["capitalize", "upcase", "downcase", "strip"]), max_size=3)


@given(
    st.booleans(),
    case_filters,
    st.sampled_from(["", "ann LEE ", " x", "Émile"]),
    st.sampled_from(["{{%s}}", "{{ %s }}", "{{- %s -}}"]),
)
def test_it_renders_simple_tags_exactly_as_liquid_does(with_default, filters, value, shape):
    chain = (['default: "there friend"'] if with_default else []) + filters
    tag = shape % " | ".join(["first_name", *chain])
    fields = {"first_name": value} if value else {}
    liquid = Environment(undefined=StrictDefaultUndefined).from_string(tag)
    if not value and not with_default:
        with pytest.raises(MissingField):
            compile_template(tag).render(fields, seed=0)
    else:
        assert compile_template(tag).render(fields, seed=0) == liquid.render(**fields)


def test_it_falls_back_to_liquid_for_other_filter_orders():
    compiled = compile_template('{{ first_name | upcase | default: "there" }}')
    assert compiled.fields_required == {"first_name"}
    assert compiled.render({"first_name": "ann"}, seed=0) == "ANN"
    with pytest.raises(MissingField) as error:
        compiled.render({}, seed=0)
    assert error.value.field == "first_name"
    later = compile_template("{{ first_name | default: company | upcase }}")
    assert later.fields_required == set()
    assert later.render({"company": "acme"}, seed=0) == "ACME"
    with pytest.raises(MissingField) as error:
        later.render({}, seed=0)
    assert error.value.field == "company"
