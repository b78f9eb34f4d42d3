"""Warm-up message content: spintax, the template library, the warm-up code (pure)."""

import itertools
import pickle
import random
import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warming.content import (
    CODE_ALPHABET,
    CONTINUATIONS,
    MAX_DEPTH,
    MAX_QUOTED_LINES,
    NAME,
    OPENERS_NAMED,
    OPENERS_NEUTRAL,
    REPLIES,
    REPLY_OPENERS_NAMED,
    REPLY_SIGNOFFS_NAMED,
    REPLY_SIGNOFFS_NEUTRAL,
    SELF,
    SIGNOFFS_NAMED,
    SIGNOFFS_NEUTRAL,
    TOPICS,
    WARMUP_HEADER,
    Draft,
    SpintaxError,
    code_normalise,
    compile_spintax,
    compose,
    compose_reply,
    find_code,
    find_codes,
    first_name,
    reply_subject,
    spin,
    spintax_check,
    warmup_code,
    warmup_headers,
)

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


# --- Spintax: a reference model ------------------------------------------------------------

# A generated template is a sequence of parts: ("text", str) or ("choice", [sequence, ...]).
_TEXT = st.text(alphabet="ab {}|\\\n", max_size=3)


def _sequences(depth: int) -> st.SearchStrategy:
    part = st.tuples(st.just("text"), _TEXT)
    if depth > 0:
        options = st.lists(_sequences(depth - 1), min_size=1, max_size=3)
        # `{}` (a single empty option) is refused; `{|}` is fine.
        options = options.filter(lambda found: len(found) > 1 or _render(found[0]) != "")
        choice = st.tuples(st.just("choice"), options)
        part = st.one_of(part, choice)
    return st.lists(part, max_size=3)


def _render(sequence) -> str:
    out = []
    for kind, value in sequence:
        if kind == "text":
            out.append(re.sub(r"([{}|\\])", r"\\\1", value))
        else:
            out.append("{" + "|".join(_render(option) for option in value) + "}")
    return "".join(out)


def _enumerate(sequence) -> list[str]:
    """Every expansion, one per way of choosing, independently of the module."""
    results = [""]
    for kind, value in sequence:
        if kind == "text":
            ends = [value]
        else:
            ends = [text for option in value for text in _enumerate(option)]
        results = [start + end for start, end in itertools.product(results, ends)]
    return results


@settings(max_examples=150, deadline=None)
@given(sequence=_sequences(3), seed=st.integers())
def test_spin_only_ever_produces_one_of_the_options(sequence, seed):
    text = _render(sequence)
    expected = _enumerate(sequence)
    compiled = compile_spintax(text)
    assert sorted(compiled.variants()) == sorted(expected)
    assert compiled.count == len(expected)
    rng = random.Random(seed)
    for _ in range(5):
        assert spin(text, rng) in expected


@settings(max_examples=50, deadline=None)
@given(sequence=_sequences(2))
def test_every_option_is_reachable(sequence):
    text = _render(sequence)
    expected = set(_enumerate(sequence))
    if len(expected) > 12:
        return
    rng = random.Random(0)
    seen = {spin(text, rng) for _ in range(600)}
    assert seen == expected


def test_nesting():
    text = "{Hi {there|all}|Hello}"
    assert sorted(compile_spintax(text).variants()) == ["Hello", "Hi all", "Hi there"]
    rng = random.Random(1)
    counts = Counter(spin(text, rng) for _ in range(3000))
    assert set(counts) == {"Hi there", "Hi all", "Hello"}
    # Options are equally likely at each level: "Hello" half the time.
    assert 1300 < counts["Hello"] < 1700


def test_empty_options_and_plain_text():
    assert sorted(compile_spintax("I {|really }liked it").variants()) == [
        "I liked it",
        "I really liked it",
    ]
    assert sorted(compile_spintax("{|}x").variants()) == ["x", "x"]
    assert spin("no choices here", random.Random(0)) == "no choices here"
    assert spin("", random.Random(0)) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\{a\|b\}", ["{a|b}"]),
        (r"a \\ b", ["a \\ b"]),
        (r"{\||\}}", ["|", "}"]),
        (r"{\{x|y}", ["y", "{x"]),
        (r"C:\Users\new", [r"C:\Users\new"]),  # a backslash before anything else stays
        ("trailing\\", ["trailing\\"]),
        (r"\\{a|b}", ["\\a", "\\b"]),  # an escaped backslash, then a real choice
        ("{line\none|two}", ["line\none", "two"]),
    ],
)
def test_escapes(text, expected):
    assert sorted(compile_spintax(text).variants()) == sorted(expected)
    assert spin(text, random.Random(3)) in expected


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("Hi,\nThanks again {for|on Friday", 2, 14, "a `{` is never closed"),
        ("{Hi|Hello", 1, 1, "never closed"),
        ("{a|{b|c}", 1, 1, "never closed"),
        ("{a|{b|c}\n{d|{e", 2, 4, "never closed"),
        ("{a\\}", 1, 1, "never closed"),
        ("Hi} there", 1, 3, "`}` has no matching `{`"),
        ("{a}}", 1, 4, "no matching"),
        ("one\ntwo\nthree|four", 3, 6, "`|` is outside any"),
        ("a|b", 1, 2, "outside"),
        ("ok\n\n  {}", 3, 3, "`{}` is empty"),
        ("{" * (MAX_DEPTH + 1) + "x" + "}" * (MAX_DEPTH + 1), 1, MAX_DEPTH + 1, "nested"),
    ],
)
def test_errors_name_the_line_and_column(text, line, column, words):
    with pytest.raises(SpintaxError) as raised:
        spintax_check(text)
    error = raised.value
    assert (error.line, error.column) == (line, column)
    assert words in error.reason
    assert str(error) == f"line {line}, column {column}: {error.reason}"
    assert text.split("\n")[line - 1][column - 1] in "{}|"
    with pytest.raises(SpintaxError):
        spin(text, random.Random(0))


def test_errors_pickle():
    try:
        spintax_check("ok\n{a|b")
    except SpintaxError as error:
        copy = pickle.loads(pickle.dumps(error))
        assert str(copy) == str(error) == "line 2, column 1: " + error.reason
        assert (copy.line, copy.column, copy.position) == (2, 1, 3)


def test_the_example_error_reads_well():
    with pytest.raises(SpintaxError, match=r"^line 2, column 14: a `\{` is never closed"):
        spintax_check("Hi,\nThanks again {for|on Friday")


def test_deep_but_allowed_nesting_is_fine():
    text = "{" * MAX_DEPTH + "x" + "}" * MAX_DEPTH
    assert spintax_check(text) is None
    assert spin(text, random.Random(0)) == "x"


@given(seed=st.integers())
def test_spin_is_deterministic_for_a_seeded_generator(seed):
    template = TOPICS[0].bodies[0]
    assert spin(template, random.Random(seed)) == spin(template, random.Random(seed))


# --- The template library ------------------------------------------------------------------


def _all_templates() -> list[str]:
    topic_texts = [text for topic in TOPICS for text in (*topic.subjects, *topic.bodies)]
    return [
        *topic_texts,
        *OPENERS_NAMED,
        *OPENERS_NEUTRAL,
        *SIGNOFFS_NAMED,
        *SIGNOFFS_NEUTRAL,
        *REPLIES,
        *CONTINUATIONS,
        *REPLY_OPENERS_NAMED,
        *REPLY_SIGNOFFS_NAMED,
        *REPLY_SIGNOFFS_NEUTRAL,
    ]


def test_the_library_is_large_and_valid():
    subjects = [text for topic in TOPICS for text in topic.subjects]
    bodies = [text for topic in TOPICS for text in topic.bodies]
    assert len(subjects) >= 40 and len(bodies) >= 40
    assert len(REPLIES) >= 25 and len(CONTINUATIONS) >= 15
    for template in _all_templates():
        spintax_check(template)
    assert all(NAME in text for text in (*OPENERS_NAMED, *REPLY_OPENERS_NAMED))
    assert all(SELF in text for text in (*SIGNOFFS_NAMED, *REPLY_SIGNOFFS_NAMED))
    neutral = (*OPENERS_NEUTRAL, *SIGNOFFS_NEUTRAL, *REPLY_SIGNOFFS_NEUTRAL, *bodies, *REPLIES)
    assert not any("@" in text for text in neutral)
    ways = sum(compile_spintax(text).count for text in bodies)
    assert ways > 50_000


def test_every_body_variant_has_two_to_six_sentences():
    rng = random.Random(5)
    for topic in TOPICS:
        for template in topic.bodies:
            for _ in range(20):
                text = spin(template, rng)
                sentences = re.findall(r"[.!?](?:\s|$)", text)
                assert 2 <= len(sentences) <= 6, text


def _paragraphs(text: str) -> list[str]:
    return [part for part in text.split("\n\n") if part]


def _assert_clean(text: str) -> None:
    assert not set(text) & set("{}|\\"), text
    assert "@name" not in text and "@self" not in text
    assert "  " not in text and " ," not in text and " ." not in text and ".." not in text
    assert not re.search(r"[.!?] [a-z]", text), text
    lowered = text.lower()
    for word in ("http", "www", "attach", "unsubscribe", "click", "offer", "none"):
        assert word not in lowered, (word, text)


def _render_many(count: int, **names: str) -> list[tuple[str, Draft, Draft, Draft]]:
    out = []
    for seed in range(count):
        rng = random.Random(seed)
        code = warmup_code(rng)
        first = compose(rng, code=code, **names)
        reply_names = {
            "sender_name": names["recipient_name"],
            "recipient_name": names["sender_name"],
        }
        reply = compose_reply(
            rng,
            original_subject=first.subject,
            code=warmup_code(rng),
            depth=0,
            quote=first.text_body if seed % 2 else "",
            **reply_names,
        )
        again = compose_reply(
            rng, original_subject=reply.subject, code=warmup_code(rng), depth=1 + seed % 3, **names
        )
        out.append((code, first, reply, again))
    return out


@pytest.mark.parametrize(
    "names",
    [
        {"sender_name": "Ben Ortiz", "recipient_name": "Anna Kowalski"},
        {"sender_name": "", "recipient_name": ""},
        {"sender_name": "Sales Team", "recipient_name": "{weird|name}"},
    ],
)
def test_rendered_messages_are_clean_and_carry_their_code(names):
    for code, first, reply, again in _render_many(400, **names):
        for draft in (first, reply, again):
            own = draft.text_body.split("wrote:\n")[0]
            _assert_clean(own)
            assert draft.subject and "\n" not in draft.subject and "\r" not in draft.subject
            assert draft.subject == draft.subject.strip()
            assert not re.search(r"(?i)re:\s*re:", draft.subject)
            assert draft.text_body.endswith("\n") and len(draft.text_body) < 2000
            for paragraph in _paragraphs(own):
                assert not paragraph[0].islower(), paragraph
        assert find_code(first.text_body) == code
        assert first.text_body.rstrip("\n").split("\n")[-1].endswith(code)
        assert reply.subject.startswith("Re: ") and again.subject == reply.subject
        for draft in (reply, again):
            own_code = find_code(draft.text_body)
            assert own_code and find_codes(draft.text_body) == [own_code]


def test_variety():
    bodies, subjects, replies, continuations = set(), set(), set(), set()
    for code, first, reply, again in _render_many(2000, sender_name="Ben", recipient_name="Anna"):
        bodies.add(first.text_body.replace(code, ""))
        subjects.add(first.subject)
        replies.add(reply.text_body.split("\n\n")[0])
        continuations.add(again.text_body.split("\n\n")[0])
    assert len(bodies) >= 1500
    assert len(subjects) >= 300
    assert len(replies) >= 300
    assert len(continuations) >= 50


def test_names_are_used_when_given():
    for seed in range(200):
        rng = random.Random(seed)
        draft = compose(
            rng, sender_name="Ben Ortiz", recipient_name="Dr. anna kowalski", code=warmup_code(rng)
        )
        paragraphs = _paragraphs(draft.text_body)
        assert "Anna" in paragraphs[0]  # the greeting
        assert "Ben" in paragraphs[-2]  # the sign-off, before the code line
        assert "Kowalski" not in draft.text_body and "Ortiz" not in draft.text_body
        assert "anna" not in draft.text_body


def test_names_are_absent_gracefully():
    for seed in range(300):
        rng = random.Random(seed)
        draft = compose(rng, sender_name="", recipient_name="", code=warmup_code(rng))
        text = draft.text_body
        assert not re.search(r"\b(Hi|Hello|Hey|Dear|Morning|afternoon|morning) ,", text)
        assert not re.search(r"(?m)^[,\-]", text)
        assert "None" not in text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Anna Kowalski", "Anna"),
        ("Dr. Jane Smith", "Jane"),
        ("Smith, Jane", "Jane"),
        ("JANE SMITH", "Jane"),
        ("jean-luc picard", "Jean-Luc"),
        ("McKenzie Brown", "McKenzie"),
        ("José Álvarez", "José"),
        ("  Zoë  ", "Zoë"),
        ("", ""),
        ("anna@example.com", ""),
        ("Support Team", ""),
        ("Acme Ltd", ""),
        ("{Hi|there}", "Hithere"),
        ("123 456", ""),
        ("Mr.", ""),
    ],
)
def test_first_name(name, expected):
    assert first_name(name) == expected


# --- Replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Quick question", "Re: Quick question"),
        ("Re: Quick question", "Re: Quick question"),
        ("RE: re:Quick question", "Re: Quick question"),
        ("AW: Sv: Re[2]: Budget", "Re: Budget"),
        ("Fwd: Notes", "Re: Fwd: Notes"),
        ("Notes\r\n from Tuesday", "Re: Notes from Tuesday"),
        ("", "Re: (no subject)"),
        ("Re:", "Re: (no subject)"),
        ("Regarding the plan", "Re: Regarding the plan"),
    ],
)
def test_reply_subjects(original, expected):
    assert reply_subject(original) == expected


def _variants(templates) -> set[str]:
    return {text for template in templates for text in compile_spintax(template).variants()}


def test_depth_picks_reply_or_continuation_templates():
    replies, continuations = _variants(REPLIES), _variants(CONTINUATIONS)
    assert not replies & continuations
    for seed in range(300):
        rng = random.Random(seed)
        common = {"original_subject": "Plan", "sender_name": "", "recipient_name": ""}
        first = compose_reply(rng, code=warmup_code(rng), depth=0, **common)
        later = compose_reply(rng, code=warmup_code(rng), depth=1 + seed % 4, **common)
        assert _paragraphs(first.text_body)[0] in replies
        assert _paragraphs(later.text_body)[0] in continuations


def test_a_reply_quotes_only_the_previous_message_s_own_text():
    rng = random.Random(11)
    first_code = warmup_code(rng)
    first = compose(rng, sender_name="Ben Ortiz", recipient_name="Anna", code=first_code)
    reply_code = warmup_code(rng)
    reply = compose_reply(
        rng,
        original_subject=first.subject,
        sender_name="Anna",
        recipient_name="Ben Ortiz",
        code=reply_code,
        quote=first.text_body,
        quoted_on=datetime(2026, 11, 30, 9, 5, tzinfo=UTC),
    )
    own, quoted = reply.text_body.split("On Mon, 30 Nov 2026 at 09:05, Ben Ortiz wrote:\n")
    assert find_code(own) == reply_code and first_code not in reply.text_body
    assert all(line.startswith(">") for line in quoted.strip().split("\n"))
    answer_code = warmup_code(rng)
    answer = compose_reply(
        rng,
        original_subject=reply.subject,
        sender_name="Ben",
        recipient_name="",
        code=answer_code,
        depth=1,
        quote=reply.text_body,
    )
    assert "You wrote:\n" in answer.text_body
    assert answer.text_body.count("wrote:") == 1  # the older quote is not quoted again
    assert find_codes(answer.text_body) == [answer_code]
    long = compose_reply(
        rng,
        original_subject="x",
        sender_name="",
        recipient_name="",
        code=answer_code,
        quote="\n".join(f"line {n}" for n in range(40)),
    )
    assert long.text_body.count("\n> line") == MAX_QUOTED_LINES


def test_bad_arguments_are_refused():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="not a warm-up code"):
        compose(rng, sender_name="", recipient_name="", code="hello")
    with pytest.raises(ValueError, match="depth"):
        compose_reply(
            rng,
            original_subject="x",
            sender_name="",
            recipient_name="",
            code=warmup_code(rng),
            depth=-1,
        )


# --- The warm-up code ----------------------------------------------------------------------


def test_codes_are_short_unambiguous_and_valid():
    rng = random.Random(42)
    codes = [warmup_code(rng) for _ in range(5000)]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert CODE_SHAPE.match(code)
        assert not set(code) & set("ILOU")
        assert code_normalise(code) == code
    assert set("".join(codes).replace("-", "")) == set(CODE_ALPHABET)
    assert warmup_code(random.Random(7)) == warmup_code(random.Random(7))
    assert warmup_headers(codes[0]) == {WARMUP_HEADER: codes[0]}


def test_code_normalise_forgives_case_dashes_and_look_alikes():
    code = warmup_code(random.Random(3))
    assert code_normalise(code.lower()) == code
    assert code_normalise(code.replace("-", "")) == code
    assert code_normalise(code.replace("-", " - ")) == code
    sloppy = code.replace("0", "O").replace("1", "l")
    assert code_normalise(sloppy) == code
    # A wrong check character, a wrong length or a foreign character is refused.
    last = code[-1]
    other = CODE_ALPHABET[(CODE_ALPHABET.index(last) + 1) % len(CODE_ALPHABET)]
    assert code_normalise(code[:-1] + other) is None
    assert code_normalise(code[:-1]) is None
    assert code_normalise(code[:-1] + "U") is None
    assert code_normalise("") is None


CODE = warmup_code(random.Random(99))


@pytest.mark.parametrize(
    "body",
    [
        f"Thanks!\n\nRef: {CODE}\n",
        f"Thanks!\n\nRef. {CODE}",
        f"Reference: {CODE}",
        f"Our ref: {CODE}",
        f"> Thanks!\n>\n> Ref: {CODE}\n",
        f"> > Ref: {CODE}",
        f">>Ref:{CODE}",
        f"> Ref: {CODE[:5]}\n> {CODE[5:]}",
        f"Ref:\n{CODE}",
        f"ref: {CODE.lower()}",
        f"<p>Thanks!</p><p>Ref:&nbsp;<b>{CODE}</b></p>",
        f'<div dir="ltr">Hi<br>Ref: {CODE[:4]}-<wbr>{CODE[5:]}</div>',
        f"<blockquote><p>&gt; Ref: {CODE}</p></blockquote>",
        f"if a < b then\nRef: {CODE}\n\n> quoted > text",
        f"Anna <anna@example.com> wrote:\n> Ref: {CODE}",
        f"Ref: {CODE}\r\n",
    ],
)
def test_find_code_finds_it_back(body):
    assert find_code(body) == CODE


@pytest.mark.parametrize(
    "body",
    [
        "",
        "No code here at all.",
        f"I prefer {CODE} as a name.",  # no label
        f"Ref: {CODE[:-1]}",  # too short
        f"Ref: {CODE[:-1]}{'0' if CODE[-1] != '0' else '1'}",  # a wrong check character
        "Ref: ABOUT THE MEETING",
    ],
)
def test_find_code_ignores_what_is_not_a_code(body):
    assert find_code(body) is None


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(),
    before=st.text(alphabet="abc ,.\n<>", max_size=40),
    quote_depth=st.integers(0, 3),
    html=st.booleans(),
)
def test_find_code_survives_quoting_and_html(seed, before, quote_depth, html):
    rng = random.Random(seed)
    code = warmup_code(rng)
    draft = compose(rng, sender_name="Ben", recipient_name="Anna", code=code)
    body = before + "\n" + draft.text_body
    if quote_depth:
        body = "\n".join(("> " * quote_depth) + line for line in body.split("\n"))
    if html:
        body = "<html><body>" + body.replace("\n", "<br>\n") + "</body></html>"
    assert find_code(body) == code
