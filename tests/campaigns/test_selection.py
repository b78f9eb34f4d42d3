"""Mailbox selection for campaign sends (pure: no database). Each pick is checked against a
model of the caps kept here, independent of the module's own bookkeeping."""

from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.selection import BOUNCE_BAND_WIDTH, Caps, Rotation, Sender

PROVIDERS = ("google", "microsoft", "other", "unknown")
BOUNCE_RATES = (0.0, 0.1, 0.4, 0.5, 0.9, 1.0, 2.5, 7.0)
UNKNOWN_ID = 10_000


@st.composite
def senders_st(draw, max_size=8):
    ids = draw(st.lists(st.integers(1, 50), min_size=1, max_size=max_size, unique=True))
    return [
        Sender(
            id=sender_id,
            domain_id=draw(st.integers(1, 3)),
            provider=draw(st.sampled_from(PROVIDERS)),
            active=draw(st.booleans()),
            daily_limit=draw(st.integers(0, 6)),
            sent_today=draw(st.integers(0, 4)),
            bounce_rate=draw(st.sampled_from(BOUNCE_RATES)),
        )
        for sender_id in ids
    ]


@st.composite
def caps_st(draw):
    return Caps(
        mailbox_ceiling=draw(st.integers(0, 6)),
        domain_daily=draw(st.integers(0, 12)),
        provider_daily=draw(
            st.dictionaries(st.sampled_from(PROVIDERS), st.integers(0, 12), max_size=3)
        ),
        domain_sent=draw(st.dictionaries(st.integers(1, 3), st.integers(0, 6), max_size=3)),
        provider_sent=draw(st.dictionaries(st.sampled_from(PROVIDERS), st.integers(0, 6))),
    )


@st.composite
def requests_st(draw, senders):
    sticky_choices = st.one_of(
        st.none(), st.sampled_from([s.id for s in senders]), st.just(UNKNOWN_ID)
    )
    return draw(
        st.lists(st.tuples(sticky_choices, st.sampled_from(PROVIDERS), st.booleans()), max_size=40)
    )


class Model:
    """What the caps allow, tracked from the picks alone."""

    def __init__(self, senders, caps):
        self.senders = {s.id: s for s in senders}
        self.caps = caps
        self.sent = {s.id: s.sent_today for s in senders}
        self.domain_sent = Counter(caps.domain_sent)
        self.provider_sent = Counter(caps.provider_sent)

    def limit(self, sender):
        return min(sender.daily_limit, self.caps.mailbox_ceiling)

    def may_send(self, sender_id):
        s = self.senders[sender_id]
        provider_cap = self.caps.provider_daily.get(s.provider)
        return (
            s.active
            and self.sent[s.id] < self.limit(s)
            and self.domain_sent[s.domain_id] < self.caps.domain_daily
            and (provider_cap is None or self.provider_sent[s.provider] < provider_cap)
        )

    def eligible(self):
        return [i for i in self.senders if self.may_send(i)]

    def key(self, sender_id):
        s = self.senders[sender_id]
        band = int(s.bounce_rate // BOUNCE_BAND_WIDTH)
        return (band, Fraction(self.sent[s.id], self.limit(s)), s.id)

    def best(self, candidates, recipient_provider, provider_matching):
        if provider_matching:
            matching = [i for i in candidates if self.senders[i].provider == recipient_provider]
            if matching:
                candidates = matching
        return min(candidates, key=self.key, default=None)

    def count(self, sender_id):
        s = self.senders[sender_id]
        self.sent[s.id] += 1
        self.domain_sent[s.domain_id] += 1
        self.provider_sent[s.provider] += 1


def run(senders, caps, requests):
    rotation = Rotation(senders, caps)
    return [
        rotation.pick(sticky=sticky, recipient_provider=provider, provider_matching=matching)
        for sticky, provider, matching in requests
    ]


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_it_follows_every_rule_on_every_pick(data):
    senders = data.draw(senders_st())
    caps = data.draw(caps_st())
    requests = data.draw(requests_st(senders))
    rotation = Rotation(senders, caps)
    model = Model(senders, caps)
    for sticky, provider, matching in requests:
        eligible = model.eligible()
        picked = rotation.pick(
            sticky=sticky, recipient_provider=provider, provider_matching=matching
        )
        if picked is not None:
            # Never over a mailbox, domain or provider cap, never an inactive mailbox.
            assert picked in eligible
        if sticky is None:
            assert (picked is None) == (not eligible)
            assert picked == model.best(eligible, provider, matching)
        elif sticky == UNKNOWN_ID:
            assert picked is None
        elif model.senders[sticky].active:
            # Kept whenever it can send; a full sticky mailbox waits for tomorrow.
            assert picked == (sticky if sticky in eligible else None)
        else:
            domain = model.senders[sticky].domain_id
            same_domain = [i for i in eligible if model.senders[i].domain_id == domain]
            assert picked == model.best(same_domain, provider, matching)
        if picked is not None:
            model.count(picked)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_it_never_exceeds_a_cap_across_a_run(data):
    senders = data.draw(senders_st())
    caps = data.draw(caps_st())
    picks = [p for p in run(senders, caps, data.draw(requests_st(senders))) if p is not None]
    by_id = {s.id: s for s in senders}
    counts = Counter(picks)
    domains = Counter(by_id[p].domain_id for p in picks)
    providers = Counter(by_id[p].provider for p in picks)
    for s in senders:
        if counts[s.id]:
            assert s.active
            assert s.sent_today + counts[s.id] <= min(s.daily_limit, caps.mailbox_ceiling)
    for domain, n in domains.items():
        assert caps.domain_sent.get(domain, 0) + n <= caps.domain_daily
    for provider, n in providers.items():
        if provider in caps.provider_daily:
            assert caps.provider_sent.get(provider, 0) + n <= caps.provider_daily[provider]


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 30),
    limit=st.integers(1, 20),
    rate=st.sampled_from(BOUNCE_RATES),
    picks=st.integers(0, 200),
)
def test_it_rotates_evenly_between_equal_mailboxes(size, limit, rate, picks):
    senders = [
        Sender(
            id=i,
            domain_id=i % 4,
            provider=PROVIDERS[i % 4],
            active=True,
            daily_limit=limit,
            sent_today=0,
            bounce_rate=rate,
        )
        for i in range(size)
    ]
    result = run(
        senders, Caps(domain_daily=10_000, provider_daily={}), [(None, "other", False)] * picks
    )
    sent = [p for p in result if p is not None]
    assert len(sent) == min(picks, size * limit)
    counts = Counter(sent)
    assert max(counts[i] for i in range(size)) - min(counts[i] for i in range(size)) <= 1


@settings(max_examples=100, deadline=None)
@given(
    low=st.sampled_from((0.0, 0.3, 0.49)),
    high=st.sampled_from((0.5, 1.2, 6.0)),
    limit=st.integers(1, 10),
)
def test_it_uses_a_lower_bounce_band_until_it_is_full(low, high, limit):
    senders = [
        Sender(1, 1, "google", True, limit, 0, high),
        Sender(2, 2, "google", True, limit, 0, low),
    ]
    result = run(senders, Caps(), [(None, "other", False)] * (2 * limit + 1))
    assert result == [2] * limit + [1] * limit + [None]


def test_it_treats_tiny_bounce_differences_as_equal():
    senders = [
        Sender(1, 1, "google", True, 10, 0, 0.1),
        Sender(2, 1, "google", True, 10, 0, 0.3),
    ]
    assert run(senders, Caps(), [(None, "other", False)] * 4) == [1, 2, 1, 2]


def test_it_prefers_the_recipients_provider_and_falls_back_to_any():
    senders = [
        Sender(1, 1, "google", True, 1, 0, 0.0),
        Sender(2, 2, "microsoft", True, 5, 0, 3.0),
    ]
    result = run(senders, Caps(), [(None, "microsoft", True), (None, "google", True)] * 2)
    assert result == [2, 1, 2, 2]


def test_it_moves_a_stopped_sticky_mailbox_to_its_own_domain_only():
    senders = [
        Sender(1, 1, "google", False, 5, 0, 0.0),
        Sender(2, 1, "google", True, 1, 0, 0.0),
        Sender(3, 2, "google", True, 5, 0, 0.0),
    ]
    assert run(senders, Caps(), [(1, "other", False)] * 3) == [2, None, None]


def test_it_keeps_a_full_sticky_mailbox_waiting_for_tomorrow():
    senders = [
        Sender(1, 1, "google", True, 2, 2, 0.0),
        Sender(2, 1, "google", True, 5, 0, 0.0),
    ]
    assert run(senders, Caps(), [(1, "other", False), (None, "other", False)]) == [None, 2]


def test_it_applies_the_default_caps():
    caps = Caps(domain_sent={1: 1599}, provider_sent={"microsoft": 3200})
    senders = [
        Sender(1, 1, "google", True, 400, 0, 0.0),
        Sender(2, 2, "microsoft", True, 400, 0, 0.0),
        Sender(3, 3, "other", True, 400, 249, 0.0),
    ]
    assert run(senders, caps, [(None, "other", False)] * 3) == [1, 3, None]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_it_is_deterministic_for_equal_input(data):
    senders = data.draw(senders_st())
    caps = data.draw(caps_st())
    requests = data.draw(requests_st(senders))
    assert run(senders, caps, requests) == run(list(senders), caps, requests)


def test_it_rejects_a_sender_listed_twice():
    sender = Sender(1, 1, "google", True, 5, 0, 0.0)
    with pytest.raises(ValueError):
        Rotation([sender, sender], Caps())
