"""The reply rules against a corpus of real-looking messages, and properties on any input."""

import ast
import json
from datetime import date
from email import message_from_bytes, message_from_string, policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inbox.classify
from inbox.classify import (
    AUTO_REPLY,
    BOUNCE,
    HUMAN,
    KINDS,
    OUT_OF_OFFICE,
    UNSUBSCRIBE,
    classify,
    own_text,
    return_date,
)

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
ORIGINAL = "b3f1c2d4e5a6f7081920a1b2c3d4e5f6@acme-sales.com"


def load(name: str):
    return message_from_bytes((CORPUS / name).read_bytes())


def test_it_has_a_corpus_of_at_least_twenty_messages_each_with_an_expectation():
    files = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(files) >= 20
    assert set(files) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_classifies_the_corpus(name):
    expected = EXPECTED[name]
    result = classify(load(name))
    assert result.kind == expected["kind"], result.reason
    if "returns_on" in expected:
        wanted = expected["returns_on"]
        assert result.returns_on == (date.fromisoformat(wanted) if wanted else None)
    if expected["kind"] == BOUNCE:
        assert result.bounce is not None
        assert result.bounce.hard is expected["hard"]
        assert result.bounce.status == expected["status"]
        assert result.bounce.recipient == expected["recipient"]
        assert result.bounce.original_message_id == expected["original"]
    else:
        assert result.bounce is None
    if "token" in expected:
        assert result.unsubscribe_token == expected["token"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_reads_the_same_with_the_modern_email_policy(name):
    parsed = message_from_bytes((CORPUS / name).read_bytes(), policy=policy.default)
    assert classify(parsed).kind == EXPECTED[name]["kind"]


def test_it_lists_what_a_reply_answers_in_reply_to_first_then_references_newest_first():
    result = classify(load("21_human_not_interested.eml"))
    assert result.answers == (ORIGINAL, "a0000000000000000000000000000001@acme-sales.com")


def test_a_quoted_unsubscribe_link_does_not_make_a_reply_an_unsubscribe():
    assert classify(load("01_gmail_reply.eml")).kind == HUMAN
    assert classify(load("02_outlook_reply.eml")).kind == HUMAN


def test_own_text_stops_at_the_quoted_original():
    text = "Sounds good.\n\nOn Mon, Dec 14, 2026 at 4:02 PM Alex <a@b.test> wrote:\n> unsubscribe"
    assert own_text(text) == "Sounds good."


@pytest.mark.parametrize(
    ("text", "sent", "back"),
    [
        ("I will be back on 12 January.", date(2026, 12, 20), date(2027, 1, 12)),
        ("Je serai de retour le 3 mars.", date(2026, 2, 20), date(2026, 3, 3)),
        ("Ich bin zurück am 5. Februar.", date(2026, 1, 26), date(2026, 2, 5)),
        ("Estaré de vuelta el 5 de febrero.", date(2026, 1, 26), date(2026, 2, 5)),
        ("Out until 14 August, back in the office on 17 August", date(2026, 8, 1), None),
        ("I'm away until 2026-09-30.", date(2026, 9, 1), date(2026, 10, 1)),
        ("Bis 4.2. nicht erreichbar.", date(2026, 1, 26), date(2026, 2, 5)),
        ("Returning on 1er avril? no: de retour le 1er avril", date(2026, 3, 1), None),
        ("Limited access to email this week.", date(2026, 3, 1), None),
        ("Back on 31 February.", date(2026, 1, 10), None),
    ],
)
def test_it_reads_return_dates_in_several_languages(text, sent, back):
    found = return_date(text, sent_on=sent)
    if text.startswith("Out until"):
        assert found == date(2026, 8, 17)  # the stated return beats the last day away
    elif text.startswith("Returning"):
        assert found == date(2026, 4, 1)
    else:
        assert found == back


def test_a_return_date_years_away_is_not_believed():
    assert return_date("back on 12 January 2031", sent_on=date(2026, 12, 1)) is None


def test_a_person_writing_about_a_bounce_is_a_person():
    message = message_from_string(
        "From: Lee <lee@client.test>\nSubject: Undeliverable invoices\nIn-Reply-To: <x@y.test>\n"
        "\nOur invoices keep coming back, can you help?\n"
    )
    assert classify(message).kind == HUMAN


def test_a_long_reply_mentioning_unsubscribe_is_a_conversation():
    body = "We discussed this internally. " * 30 + "Nobody wants to unsubscribe, to be clear."
    message = message_from_string(f"From: a@b.test\nSubject: Re: Hi\n\n{body}\n")
    assert classify(message).kind == HUMAN


def test_auto_submitted_no_is_a_person():
    message = message_from_string(
        "From: a@b.test\nAuto-Submitted: no\nSubject: Re: Hi\n\nLet's talk on Friday.\n"
    )
    assert classify(message).kind == HUMAN


def test_precedence_bulk_reads_as_automatic():
    message = message_from_string("From: a@b.test\nPrecedence: bulk\nSubject: News\n\nHello\n")
    assert classify(message).kind == AUTO_REPLY


def test_an_out_of_office_subject_without_headers_is_out_of_office():
    message = message_from_string(
        "From: a@b.test\nDate: Mon, 2 Mar 2026 09:00:00 +0000\nSubject: Fuera de la oficina\n\n"
        "Regreso el 9 de marzo.\n"
    )
    result = classify(message)
    assert result.kind == OUT_OF_OFFICE
    assert result.returns_on == date(2026, 3, 9)


def test_a_token_subject_needs_the_signed_form():
    forged = message_from_string("From: a@b.test\nSubject: unsubscribe me\n\nthanks\n")
    result = classify(forged)
    assert result.kind == UNSUBSCRIBE
    assert result.unsubscribe_token == ""


def test_the_module_imports_no_django_and_no_app_code():
    tree = ast.parse(Path(inbox.classify.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "re", "collections", "dataclasses", "datetime", "email"}


_header_names = st.sampled_from(
    [
        "Subject",
        "From",
        "Date",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "Precedence",
        "X-Autoreply",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Message-ID",
        "X-Random",
    ]
)
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=80,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.lists(st.tuples(_header_names, _text), max_size=8), body=st.text(max_size=400))
def test_it_never_raises_on_arbitrary_headers_and_bodies(headers, body):
    raw = "".join(f"{name}: {value}\n" for name, value in headers) + "\n" + body
    for parsed in (
        message_from_string(raw),
        message_from_bytes(raw.encode("utf-8", "surrogateescape"), policy=policy.default),
    ):
        result = classify(parsed)
        assert result.kind in KINDS
        if result.kind != OUT_OF_OFFICE:
            assert result.returns_on is None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_it_never_raises_on_arbitrary_bytes(data):
    assert classify(message_from_bytes(data)).kind in KINDS


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=300),
    sent=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
)
def test_a_return_date_is_never_before_the_day_sent_nor_far_away(text, sent):
    found = return_date(text, sent_on=sent)
    if found is not None:
        assert (found - sent).days >= -1
        assert (found - sent).days <= 367


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.text(max_size=60), min_size=1, max_size=5))
def test_it_never_raises_on_odd_multipart_messages(parts):
    boundary = "b0undary"
    chunks = "".join(f"--{boundary}\nContent-Type: message/delivery-status\n\n{p}\n" for p in parts)
    raw = (
        "From: MAILER-DAEMON@x.test\nContent-Type: multipart/report; report-type=delivery-status;"
        f' boundary="{boundary}"\n\n{chunks}--{boundary}--\n'
    )
    assert classify(message_from_string(raw)).kind in KINDS
