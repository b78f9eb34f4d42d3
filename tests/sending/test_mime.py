"""The MIME writer: whatever the text, the email package reads back what was written."""

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sending.mime import MessageContentError, Outgoing, mime_build, outgoing_check

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Text a customer can type: any character but the line breaks a header cannot hold.
line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029"),
    max_size=200,
)
body = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000)


def outgoing(**overrides) -> Outgoing:
    values = dict(
        message_id="5f2b0c1d@acme-outreach.com",
        sender="alex@acme-outreach.com",
        recipient="lee@prospect.test",
        subject="Quick question",
        text_body="Hi Lee,\n\nworth a chat?\n",
        tenant="dom_abc",
        kind="campaign",
        campaign="cmp_1",
    )
    values.update(overrides)
    return Outgoing(**values)


def parsed(message: Outgoing, routing: bool = True):
    return message_from_bytes(
        mime_build(message, date=NOW, routing_headers=routing), policy=default
    )


@given(subject=line, sender_name=line, recipient_name=line, text=body, html=body)
def test_any_text_reads_back_unchanged(subject, sender_name, recipient_name, text, html):
    message = outgoing(
        subject=subject,
        sender_name=sender_name,
        recipient_name=recipient_name,
        text_body=text,
        html_body=html,
    )
    email = parsed(message)
    assert str(email["Subject"]) == subject.strip() or email["Subject"] == subject
    assert email["From"].addresses[0].addr_spec == "alex@acme-outreach.com"
    assert email["To"].addresses[0].display_name.strip() == recipient_name.strip()
    plain = email.get_body(("plain",)).get_content().replace("\r\n", "\n")
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    assert plain.rstrip("\n") == normalized.rstrip("\n")
    if html:
        html_part = email.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert html_part.rstrip("\n") == html.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    raw = mime_build(message, date=NOW, routing_headers=True)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()


def test_routing_headers_only_for_our_mta():
    assert parsed(outgoing())["X-Tenant"] == "dom_abc"
    assert parsed(outgoing())["X-Campaign"] == "cmp_1"
    others = parsed(outgoing(), routing=False)
    assert others["X-Tenant"] is None and others["X-Kind"] is None
    assert others["Message-ID"] == "<5f2b0c1d@acme-outreach.com>"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"subject": "Hi\r\nBcc: everyone@x.test"}, "line breaks"),
        ({"recipient": "a@b.test, c@d.test"}, "not a single email address"),
        ({"recipient": "no-at-sign"}, "not a single email address"),
        ({"headers": {"X-Tenant": "dom_other"}}, "cannot be set"),
        ({"headers": {"Bad Header": "x"}}, "cannot be set"),
        ({"headers": {"List-Unsubscribe": "<https://x>\nBcc: y"}}, "line breaks"),
        ({"tenant": "dom:evil@x"}, "not a valid id"),
        ({"message_id": "no brackets <inside>"}, "not a Message-ID"),
    ],
)
def test_it_refuses_what_would_make_a_broken_or_forged_message(overrides, problem):
    with pytest.raises(MessageContentError, match=problem):
        outgoing_check(outgoing(**overrides))
    with pytest.raises(MessageContentError):
        mime_build(outgoing(**overrides), date=NOW, routing_headers=True)


def test_an_international_domain_is_written_as_punycode():
    email = parsed(outgoing(recipient="joerg@bücher.example"))
    assert "xn--bcher-kva.example" in str(email["To"])
