"""Open and click tracking end to end: tracked HTML built for dispatched campaign messages and
sent through the real SMTP receiver, the public endpoints with the Django client, tokens,
machine opens, unique opens, no open redirects, custom domains over the loopback DNS server."""

import re
import time
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage

import pytest
from django.core import signing
from django.utils import timezone

from campaigns.models import CampaignLead, CampaignSend, CampaignStatus
from campaigns.services.dispatch import campaigns_dispatch
from reputation.models import Event, EventKind
from sending.models import Message
from sending.services.outbound import messages_hand_over
from tests.campaigns import builders
from tracking.models import Click, Open, TrackedLink, TrackingDomain
from tracking.selectors import tracking_stats
from tracking.services.domains import (
    tracking_domain_check,
    tracking_domain_remove,
    tracking_domain_set,
)
from tracking.services.render import messages_track
from tracking.services.switches import campaign_tracking_set
from tracking.services.tokens import OPEN_SALT, click_token, open_token

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SITE = "https://app.trustgate.test"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"
BODY = (
    "Hi {{ first_name }},\n\nOur prices: https://example.com/pricing?a=1&b=2 (and the docs at "
    "https://example.com/docs).\nSee https://example.com/pricing?a=1&b=2 again.\n\n"
    "Not for you? {{ unsubscribe_url }}\n"
)


@pytest.fixture
def relay(settings, smtp_server):
    settings.OUTBOUND_TRANSPORT = "smtp_relay"
    settings.SMTP_RELAY_HOST, settings.SMTP_RELAY_PORT = smtp_server.host, smtp_server.port
    settings.SMTP_RELAY_IS_KUMOMTA = False
    settings.SITE_URL = SITE
    smtp_server.messages.clear()
    return smtp_server


def running_campaign(workspace, emails, name="Outreach", domain_name="acme-sales.com"):
    builders.paid(workspace, credits=1000)
    domain = builders.sending_domain(workspace, domain_name)
    leads = builders.lead_list(workspace, emails, name=f"{name} list")
    campaign = builders.campaign(
        workspace,
        name=name,
        steps=((0, (("Hello", BODY),)),),
        senders=builders.mailboxes(domain, 1),
        lists=[leads],
        status=CampaignStatus.RUNNING,
    )
    CampaignLead.objects.bulk_create(
        CampaignLead(campaign=campaign, lead=lead, next_at=NOW) for lead in leads.leads.all()
    )
    return campaign


def dispatch_tracked(campaign) -> list[Message]:
    """What the dispatcher does once wired: reserve, then the tracked HTML, then hand over."""
    assert campaigns_dispatch(now=NOW).sent
    messages = list(Message.objects.filter(campaign_send__campaign=campaign).order_by("id"))
    messages_track(messages=messages)
    messages_hand_over(now=NOW)
    return list(Message.objects.filter(campaign_send__campaign=campaign).order_by("id"))


def html_part(mail: EmailMessage) -> str:
    for part in mail.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()
    return ""


def tracked_hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


@pytest.fixture
def sent(owner, relay):
    campaign = running_campaign(owner.workspace, ["ann@prospect-one.com", "bob@prospect-one.com"])
    messages = dispatch_tracked(campaign)
    return campaign, messages


def path_of(url: str) -> str:
    assert url.startswith(SITE)
    return url[len(SITE) :]


# --- the message --------------------------------------------------------------------------


def test_a_sent_campaign_message_has_tracked_links_a_pixel_and_an_untouched_unsubscribe_link(
    sent, relay
):
    _, (message, _) = sent
    mail = relay.wait_for("ann@prospect-one.com")
    html = html_part(mail)
    text = relay.body(mail)
    assert "https://example.com/pricing?a=1&b=2" in text  # the text part is as rendered
    hrefs = tracked_hrefs(html)
    unsubscribe = re.search(r"<(https://[^>]+)>", mail["List-Unsubscribe"]).group(1)
    assert hrefs[-1] == unsubscribe  # RFC 8058: the one-click link is not rewritten
    assert all(h.startswith(f"{SITE}/t/c/") for h in hrefs[:-1])
    assert hrefs[0] == hrefs[2]  # the same URL twice is one tracked link
    assert len(set(hrefs[:-1])) == 2
    assert "&amp;b=2</a>" in html and "docs</a>)." in html  # escaped, punctuation left out
    assert re.search(rf'<img src="{SITE}/t/o/[^"]+\.gif" width="1" height="1"', html)
    assert list(
        TrackedLink.objects.filter(message=message)
        .order_by("position")
        .values_list("url", flat=True)
    ) == ["https://example.com/pricing?a=1&b=2", "https://example.com/docs"]


def test_tracking_off_for_the_campaign_leaves_the_message_plain(owner, relay):
    campaign = running_campaign(owner.workspace, ["cat@prospect-two.com"])
    campaign_tracking_set(campaign=campaign, opens=False, clicks=False, actor=owner.user)
    (message,) = dispatch_tracked(campaign)
    mail = relay.wait_for("cat@prospect-two.com")
    assert message.html_body == ""
    assert not mail.is_multipart() and html_part(mail) == ""
    assert not TrackedLink.objects.filter(message=message).exists()


def test_opens_only_keeps_links_as_written(owner, relay):
    campaign = running_campaign(owner.workspace, ["dan@prospect-two.com"])
    campaign_tracking_set(campaign=campaign, opens=True, clicks=False, actor=owner.user)
    (message,) = dispatch_tracked(campaign)
    hrefs = tracked_hrefs(message.html_body)
    assert hrefs[0] == "https://example.com/pricing?a=1&amp;b=2"
    assert "/t/o/" in message.html_body and "/t/c/" not in message.html_body


# --- opens ---------------------------------------------------------------------------------


def pixel(client, message, agent=IPHONE, ip="203.0.113.7"):
    return client.get(f"/t/o/{open_token(message.pk)}.gif", HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)


def test_a_human_open_is_counted_once_per_message_and_reaches_the_score(sent, client, settings):
    _, (message, other) = sent
    later = timezone.now()
    Message.objects.filter(pk=message.pk).update(handed_over_at=later - timedelta(minutes=10))
    for _ in range(3):
        response = pixel(client, message)
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
        assert "no-store" in response["Cache-Control"]
    assert Open.objects.filter(message=message, machine=False).count() == 3
    events = Event.objects.filter(kind=EventKind.OPENED, outbound=message)
    assert events.count() == 1
    assert Event.objects.filter(kind=EventKind.OPENED, outbound=other).count() == 0
    assert tracking_stats(campaign=message.campaign_send.campaign).totals.opens == 1


def test_an_open_within_two_seconds_from_a_proxy_is_a_machine_and_not_scored(sent, client):
    _, (message, _) = sent
    Message.objects.filter(pk=message.pk).update(handed_over_at=timezone.now())
    pixel(client, message, agent="Mozilla/5.0 (via ggpht.com GoogleImageProxy)")
    hit = Open.objects.get(message=message)
    assert hit.machine and hit.machine_reason == "Google image proxy"
    assert hit.ip_hash and "203.0.113.7" not in hit.ip_hash
    assert not Event.objects.filter(kind=EventKind.OPENED, outbound=message).exists()
    stats = tracking_stats(campaign=message.campaign_send.campaign)
    assert (stats.totals.opens, stats.totals.machine_opens) == (0, 1)


def test_an_instant_open_by_a_normal_agent_is_a_machine(sent, client):
    _, (message, _) = sent
    Message.objects.filter(pk=message.pk).update(handed_over_at=timezone.now())
    pixel(client, message)
    assert Open.objects.get(message=message).machine_reason == "opened within seconds of delivery"


def test_forged_altered_and_expired_open_tokens_get_the_image_and_record_nothing(sent, client):
    _, (message, _) = sent
    good = open_token(message.pk)
    value = signing.b62_encode(message.pk)
    old = signing.b62_encode(int(time.time()) - 181 * 86400)
    expired = signing.Signer(salt=OPEN_SALT).sign(f"{value}:{old}")
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    other_message = good.replace(value, signing.b62_encode(message.pk + 1), 1)
    click_as_open = click_token(message.pk, 0)
    for token in (expired, forged, other_message, click_as_open, "nonsense"):
        response = client.get(f"/t/o/{token}.gif", HTTP_USER_AGENT=IPHONE)
        assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    assert not Open.objects.exists()


# --- clicks --------------------------------------------------------------------------------


def test_a_click_redirects_to_the_stored_url_and_the_first_human_click_is_an_event(sent, client):
    _, (message, _) = sent
    Message.objects.filter(pk=message.pk).update(handed_over_at=timezone.now() - timedelta(hours=1))
    for _ in range(2):
        response = client.get(f"/t/c/{click_token(message.pk, 1)}/", HTTP_USER_AGENT=IPHONE)
        assert response.status_code == 302
        assert response["Location"] == "https://example.com/docs"
    assert Click.objects.filter(message=message, machine=False).count() == 2
    assert Event.objects.filter(kind=EventKind.CLICKED, outbound=message).count() == 1
    stats = tracking_stats(campaign=message.campaign_send.campaign)
    assert (stats.totals.clicks, stats.totals.clickers) == (2, 1)
    assert stats.steps[0].variants[0].numbers.clickers == 1


def test_a_click_token_never_leads_anywhere_the_message_did_not(sent, client):
    _, (message, other) = sent
    TrackedLink.objects.filter(message=other).delete()
    refused = [
        click_token(message.pk, 7),  # a position the message never had
        click_token(other.pk, 0),  # a valid-looking token for a message without that link
        click_token(message.pk + 1000, 0),  # no such message
        open_token(message.pk),  # an open token is no click token
        click_token(message.pk, 0)[:-2] + "xx",  # altered
        "https:--evil.example",
    ]
    for token in refused:
        response = client.get(f"/t/c/{token}/")
        assert response.status_code == 404, token
        assert "Location" not in response
        assert b"not valid" in response.content
    assert not Click.objects.exists()


def test_the_endpoints_are_rate_limited_per_address(sent, client, settings):
    _, (message, _) = sent
    settings.TRACKING_HITS_PER_MINUTE = 2
    Message.objects.filter(pk=message.pk).update(handed_over_at=timezone.now() - timedelta(hours=1))
    for _ in range(3):
        assert pixel(client, message, ip="198.51.100.4").status_code == 200
    assert Open.objects.count() == 2
    response = client.get(f"/t/c/{click_token(message.pk, 0)}/", REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 429
    assert pixel(client, message, ip="198.51.100.5").status_code == 200
    assert Open.objects.count() == 3


# --- custom tracking domain ----------------------------------------------------------------


def test_a_custom_domain_is_verified_by_its_cname_and_then_used_for_links(
    owner, relay, zone, settings
):
    row = tracking_domain_set(
        workspace=owner.workspace, hostname="Track.Acme-Sales.com", actor=owner.user
    )
    assert row.hostname == "track.acme-sales.com" and row.state == "pending"
    zone.set("track.acme-sales.com", "CNAME", "somewhere-else.example.net.")
    row = tracking_domain_check(tracking_domain=row)
    assert row.state == "failed" and "somewhere-else.example.net" in row.error
    zone.set("track.acme-sales.com", "CNAME", settings.PLATFORM_TRACKING_HOST + ".")
    row = tracking_domain_check(tracking_domain=row)
    assert row.state == "verified" and row.error == ""
    campaign = running_campaign(owner.workspace, ["eve@prospect-three.com"])
    (message,) = dispatch_tracked(campaign)
    assert "https://track.acme-sales.com/t/c/" in message.html_body
    assert '<img src="https://track.acme-sales.com/t/o/' in message.html_body
    zone.remove("track.acme-sales.com")
    row = tracking_domain_check(tracking_domain=row)
    assert row.state == "failed" and "No CNAME record" in row.error


def test_a_bad_hostname_is_refused_and_changes_nothing(owner, stranger):
    from config.errors import ApplicationError

    for bad in ("acme-sales.com", "not a host", "track.trustgate.email", "https://x.com/a"):
        with pytest.raises(ApplicationError) as error:
            tracking_domain_set(workspace=owner.workspace, hostname=bad, actor=owner.user)
        assert error.value.fields["hostname"]
    tracking_domain_set(workspace=stranger.workspace, hostname="t.globex-mail.com", actor=None)
    with pytest.raises(ApplicationError, match="already in use"):
        tracking_domain_set(workspace=owner.workspace, hostname="t.globex-mail.com", actor=None)
    assert not TrackingDomain.objects.filter(workspace=owner.workspace).exists()


# --- the page and isolation -----------------------------------------------------------------


def test_the_page_adds_checks_and_removes_a_domain(owner_client, owner, zone, settings):
    ws = owner.workspace.public_id
    page = owner_client.get(f"/w/{ws}/tracking/")
    assert page.status_code == 200 and b"Custom tracking domain" in page.content
    bad = owner_client.post(f"/w/{ws}/tracking/domain/", {"hostname": "acme-sales.com"})
    assert bad.status_code == 400 and b"Use a subdomain such as track.acme-sales.com" in bad.content
    zone.set("go.acme-sales.com", "CNAME", settings.PLATFORM_TRACKING_HOST + ".")
    done = owner_client.post(
        f"/w/{ws}/tracking/domain/", {"hostname": "go.acme-sales.com"}, follow=True
    )
    assert b"is verified" in done.content and b"go.acme-sales.com" in done.content
    assert TrackingDomain.objects.get(workspace=owner.workspace).state == "verified"
    owner_client.post(f"/w/{ws}/tracking/domain/remove/")
    assert not TrackingDomain.objects.filter(workspace=owner.workspace).exists()


def test_a_member_may_check_but_not_change_and_a_stranger_sees_nothing(
    owner, teammate_client, stranger_client, zone
):
    ws = owner.workspace.public_id
    row = tracking_domain_set(workspace=owner.workspace, hostname="t.acme-sales.com", actor=None)
    assert teammate_client.post(f"/w/{ws}/tracking/domain/remove/").status_code == 403
    assert (
        teammate_client.post(
            f"/w/{ws}/tracking/domain/", {"hostname": "x.acme-sales.com"}
        ).status_code
        == 403
    )
    assert teammate_client.post(f"/w/{ws}/tracking/domain/check/").status_code == 302
    for method, url in (
        ("get", f"/w/{ws}/tracking/"),
        ("post", f"/w/{ws}/tracking/domain/check/"),
        ("post", f"/w/{ws}/tracking/domain/remove/"),
    ):
        response = getattr(stranger_client, method)(url)
        assert response.status_code == 404
        assert b"t.acme-sales.com" not in response.content
    row.refresh_from_db()
    assert row.hostname == "t.acme-sales.com"


def test_stats_are_per_campaign_and_never_mix_workspaces(sent, stranger, client):
    campaign, (message, _) = sent
    Message.objects.filter(pk=message.pk).update(handed_over_at=timezone.now() - timedelta(hours=1))
    pixel(client, message)
    theirs = running_campaign(
        stranger.workspace, ["zed@prospect-nine.com"], domain_name="globex-mail.com"
    )
    assert tracking_stats(campaign=theirs).totals.opens == 0
    ours = tracking_stats(campaign=campaign)
    assert ours.totals.opens == 1 and ours.totals.sent == 2
    assert ours.as_dict()["open_rate"] == 50.0
    assert CampaignSend.objects.filter(campaign=theirs).count() == 0


def test_a_registered_tracking_hostname_is_served_on_the_tracking_paths_only(
    sent, client, owner, settings
):
    _, (message, _other) = sent
    settings.ALLOWED_HOSTS = ["app.trustgate.test"]
    host = "links.acme-sales.com"

    def get(path: str):
        return client.get(path, HTTP_HOST=host, HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="203.0.113.9")

    pixel_path = f"/t/o/{open_token(message.pk)}.gif"
    assert get(pixel_path).status_code == 400  # not a tracking hostname (yet)
    row = tracking_domain_set(workspace=owner.workspace, hostname=host, actor=owner.user)
    answer = get(pixel_path)
    assert answer.status_code == 200 and answer["Content-Type"] == "image/gif"
    link = TrackedLink.objects.filter(message=message).order_by("position").first()
    click = get(f"/t/c/{click_token(message.pk, link.position)}/")
    assert click.status_code == 302 and click["Location"] == link.url
    assert get("/").status_code == 400  # the app itself is not served there
    assert get("/admin/login/").status_code == 400
    assert client.get(pixel_path, HTTP_HOST="evil.example.net").status_code == 400
    tracking_domain_remove(tracking_domain=row, actor=owner.user)
    assert get(pixel_path).status_code == 400


def test_the_certificate_ask_says_yes_only_for_verified_hostnames(owner, client, zone, settings):
    row = tracking_domain_set(
        workspace=owner.workspace, hostname="go.acme-sales.com", actor=owner.user
    )

    def ask(name: str) -> int:
        return client.get("/t/tls-ask/", {"domain": name}).status_code

    assert ask("go.acme-sales.com") == 404  # pending
    zone.set("go.acme-sales.com", "CNAME", settings.PLATFORM_TRACKING_HOST + ".")
    tracking_domain_check(tracking_domain=row)
    assert ask("go.acme-sales.com") == 200
    assert ask("GO.acme-sales.com.") == 200
    assert ask("other.acme-sales.com") == 404
    assert ask("") == 404
