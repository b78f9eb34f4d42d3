"""What a new customer meets first: the invitation form, invitation links, the getting-started
checklist, the activity list and the score chart on the domain page."""

import ast
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import AuditLog, Invitation
from accounts.services import workspace_create
from accounts.templatetags.activity import ACTIVITY_SENTENCES, activity_sentence
from reputation.models import ScoreHistory
from sending.models import Mailbox, SendingDomain
from sending.services.mailboxes import mailbox_create
from tests.conftest import external_data, publish

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def section(body: str, element_id: str) -> str:
    """The HTML of the element with `element_id` up to the end of its section or form."""
    start = body.index(f'id="{element_id}"')
    return body[start : body.index("</section>", start)]


# --- 1. The invitation form --------------------------------------------------------------------


def invite(client, workspace, email: str, **extra):
    return client.post(
        f"/w/{workspace.public_id}/settings/invitations/",
        {"email": email, "role": "member"},
        **extra,
    )


def invite_field(body: str) -> str:
    """The invitation form from its start to the end of the email input (what comes before the
    role field): the email field's label, errors and input."""
    form = body[body.index('/settings/invitations/"') :]
    return form[: form.index(">", form.index('name="email"')) + 1]


def test_an_address_the_browser_accepts_but_the_server_refuses_is_explained_beside_the_field(
    owner, owner_client
):
    # type=email lets "a@b" through (no dot needed); the server wants a real domain.
    response = invite(owner_client, owner.workspace, "a@b")
    assert response.status_code == 200
    field = invite_field(response.content.decode())
    assert "Enter a valid email address." in text_of(field)
    assert 'value="a@b"' in field
    assert 'aria-invalid="true"' in field
    assert not Invitation.objects.exists()


def test_a_refusal_from_the_invitation_service_is_shown_on_the_email_field(
    owner, teammate, owner_client
):
    response = invite(owner_client, owner.workspace, teammate.user.email)
    field = invite_field(response.content.decode())
    assert "Already a member." in text_of(field)
    assert f'value="{teammate.user.email}"' in field


# --- 2. Invitation links -----------------------------------------------------------------------


def test_the_invitation_link_uses_the_host_and_port_the_app_was_reached_at(
    owner, owner_client, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://configured.example"
    with django_capture_on_commit_callbacks(execute=True):
        response = invite(
            owner_client, owner.workspace, "new@acme.test", HTTP_HOST="testserver:8123"
        )
    assert response.status_code == 302
    (mail,) = mailoutbox
    assert re.search(r"http://testserver:8123/invitations/[\w-]{40,}/", mail.body), mail.body
    assert "configured.example" not in mail.body


def test_an_invitation_made_without_a_request_links_to_site_url(
    owner, mailoutbox, django_capture_on_commit_callbacks, settings
):
    from accounts.services import invitation_create

    settings.SITE_URL = "https://configured.example/"
    with django_capture_on_commit_callbacks(execute=True):
        issued = invitation_create(
            workspace=owner.workspace, inviter=owner.user, email="x@acme.test"
        )
    assert f"https://configured.example/invitations/{issued.secret}/" in mailoutbox[0].body


# --- 3. The getting-started checklist ----------------------------------------------------------


def checklist(client, workspace) -> tuple[dict[str, bool], str]:
    """Each step's ticked state, and the next step's link."""
    body = client.get(f"/w/{workspace.public_id}/").content.decode()
    card = section(body, "getting-started")
    steps = dict(re.findall(r'data-step="(\w+)" data-done="(true|false)"', card))
    next_link = re.search(r'data-testid="next-step".*?<a class="button" href="([^"]+)"', card, re.S)
    return {k: v == "true" for k, v in steps.items()}, next_link.group(1) if next_link else ""


def test_the_checklist_ticks_each_step_when_it_is_really_done(
    owner, owner_client, zone, mail_servers, mail_account
):
    ws = owner.workspace
    base = f"/w/{ws.public_id}"
    steps, next_url = checklist(owner_client, ws)
    assert list(steps) == ["domain", "verify", "mailbox", "connect", "warming", "team", "score"]
    assert not any(steps.values())
    assert next_url == f"{base}/domains/"

    owner_client.post(f"{base}/domains/", {"name": "acme-outreach.com"})
    domain = SendingDomain.objects.get()
    steps, next_url = checklist(owner_client, ws)
    assert steps["domain"] and not steps["verify"]
    assert next_url == f"{base}/domains/{domain.public_id}/"  # where its records are

    publish(zone, domain)
    owner_client.post(f"{base}/domains/{domain.public_id}/check/")
    steps, next_url = checklist(owner_client, ws)
    assert steps["verify"] and not steps["mailbox"]
    assert next_url == f"{base}/mailboxes/"

    domain.refresh_from_db()
    mailbox = mailbox_create(
        domain=domain, actor=owner.user, data=external_data(mail_servers, mail_account)
    )
    steps, next_url = checklist(owner_client, ws)
    assert steps["mailbox"] and not steps["connect"] and not steps["warming"]
    assert next_url == f"{base}/mailboxes/{mailbox.pk}/"  # where Test connection is

    owner_client.post(f"{base}/mailboxes/{mailbox.pk}/test/")
    steps, _ = checklist(owner_client, ws)
    assert steps["connect"] and steps["warming"]  # warm-up is on for new mailboxes
    assert not steps["team"]

    invite(owner_client, ws, "colleague@acme.test")
    steps, next_url = checklist(owner_client, ws)
    assert steps["team"] and not steps["score"]
    assert next_url == f"{base}/domains/{domain.public_id}/"

    # The score pipeline's own output (tested in tests/reputation), as it stores it.
    SendingDomain.objects.filter(pk=domain.pk).update(trust_score=72.5, tier="standard")
    steps, next_url = checklist(owner_client, ws)
    assert all(steps.values()) and next_url == ""


def test_a_mailbox_with_warm_up_off_leaves_the_warming_step_open(owner, owner_client, sender):
    Mailbox.objects.filter(domain=sender).update(warmup_enabled=False)
    steps, next_url = checklist(owner_client, owner.workspace)
    assert steps["connect"] and not steps["warming"]  # platform mailboxes need no test
    mailbox = Mailbox.objects.get()
    assert next_url == f"/w/{owner.workspace.public_id}/mailboxes/{mailbox.pk}/"


def test_the_dashboard_says_what_to_do_next_in_words(owner, owner_client):
    body = owner_client.get(f"/w/{owner.workspace.public_id}/").content.decode()
    card = text_of(section(body, "getting-started"))
    assert "0 of 7 done" in card
    assert "Next: add a sending domain." in card
    assert "Add a domain →" in card


def test_the_dashboard_stays_within_its_query_budget(
    owner, owner_client, sender, django_assert_max_num_queries
):
    for i in range(5):
        mailbox_create(
            domain=sender,
            actor=owner.user,
            data={"connection": "platform", "local_part": f"m{i}", "warmup_enabled": True},
        )
    with django_assert_max_num_queries(17):  # 16, and one for the leaderboard card
        assert owner_client.get(f"/w/{owner.workspace.public_id}/").status_code == 200


# --- 4. Activity in sentences ------------------------------------------------------------------


def activity(client, workspace) -> list[str]:
    body = client.get(f"/w/{workspace.public_id}/").content.decode()
    items = re.findall(r'<span class="activity-what">(.*?)</span>', section(body, "activity"))
    return [text_of(item) for item in items]


def test_the_activity_list_speaks_in_sentences(
    owner, teammate, owner_client, teammate_client, verified_domain
):
    owner.user.full_name = "Alice Martin"
    owner.user.save(update_fields=["full_name"])
    ws = owner.workspace
    base = f"/w/{ws.public_id}/settings"
    owner_client.post(f"{base}/rename/", {"name": "Acme Outreach"})
    owner_client.post(f"{base}/invitations/", {"email": "bob@acme.test", "role": "admin"})
    owner_client.post(f"{base}/tokens/", {"name": "CRM sync"})
    owner_client.post(f"{base}/members/{teammate.pk}/role/", {"role": "admin"})

    seen_by_teammate = activity(teammate_client, ws)
    assert seen_by_teammate == [
        "Alice Martin changed the role of teammate@acme.test to admin",
        "Alice Martin created the API token “CRM sync”",
        "Alice Martin invited bob@acme.test as admin",
        f"Alice Martin renamed the workspace from “{ws.name}” to “Acme Outreach”",
        "acme-outreach.com was verified",
        "Alice Martin added the domain acme-outreach.com",
    ]
    assert activity(owner_client, ws)[0] == "You changed the role of teammate@acme.test to admin"
    body = owner_client.get(f"/w/{ws.public_id}/").content.decode()
    assert not re.search(r"\b(workspace|invitation|api_token|domain|membership)\.\w+", body)


def test_creating_leaving_and_removing_read_as_sentences(owner, teammate, teammate_client):
    workspace = workspace_create(owner=owner.user, name="Second")
    (log,) = AuditLog.objects.filter(workspace=workspace)
    assert activity_sentence(log, owner.user) == "You created the workspace"
    teammate_client.post(f"/w/{owner.workspace.public_id}/settings/members/{teammate.pk}/remove/")
    left = AuditLog.objects.get(action="membership.remove")
    assert activity_sentence(left, owner.user) == f"{teammate.user.full_name} left the workspace"


def test_an_unknown_code_still_reads_plainly(owner):
    log = AuditLog(action="billing.plan_change", actor=owner.user, object_repr="Acme")
    name = owner.user.full_name
    assert activity_sentence(log, None) == f"Billing plan change by {name}: Acme"
    system = AuditLog(action="mailbox.pause", object_repr="alex@acme-outreach.com")
    assert activity_sentence(system, None) == "alex@acme-outreach.com was paused"


def audit_codes_in_the_code_base() -> set[str]:
    """Every action code passed to audit_log_record, read from the source: literal codes given
    as `action=` (or assigned to `action`), and `f"reputation.{finding.code}"` for every
    finding code the thresholds can raise."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    findings: set[str] = set()
    code = re.compile(r"^[a-z_]+\.[a-z_]+$")
    apps = [path for path in ROOT.iterdir() if (path / "apps.py").exists()]
    for path in (p for app in apps for p in app.rglob("*.py") if "migrations" not in p.parts):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            values = []
            if (isinstance(node, ast.keyword) and node.arg == "action") or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "action" for t in node.targets)
            ):
                values = [node.value]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Finding":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    findings.add(first.value)
            elif isinstance(node, ast.keyword) and node.arg == "over_limit":
                findings.add(node.value.value)
            for value in values:
                for part in ast.walk(value):
                    if isinstance(part, ast.Constant) and code.match(str(part.value)):
                        literal.add(part.value)
                    head = part.values[0] if isinstance(part, ast.JoinedStr) else None
                    if isinstance(head, ast.Constant) and re.match(r"^[a-z_]+\.$", str(head.value)):
                        prefixes.add(head.value)
    return literal | {prefix + finding for prefix in prefixes for finding in findings}


def test_every_audit_action_in_the_code_base_has_a_sentence():
    codes = audit_codes_in_the_code_base()
    assert {"workspace.create", "domain.verify", "reputation.spam_quarantine"} <= codes
    assert codes - ACTIVITY_SENTENCES.keys() == set()


# --- 5. The score chart on the domain page -----------------------------------------------------


def test_the_domain_page_plots_a_busy_day_over_the_whole_chart_with_axes(
    owner, owner_client, verified_domain
):
    now = timezone.now()
    ScoreHistory.objects.bulk_create(
        ScoreHistory(
            domain=verified_domain,
            at=now - timedelta(hours=12) + timedelta(minutes=15 * i),
            score=40 + i,
            tier="rehab",
            scoring_version=1,
        )
        for i in range(48)
    )
    body = owner_client.get(
        f"/w/{owner.workspace.public_id}/domains/{verified_domain.public_id}/"
    ).content.decode()
    chart = body[body.index('data-testid="score-history"') : body.index("</figure>")]
    points = re.findall(r'<polyline points="([^"]+)"', chart)
    xs = sorted({float(pair.split(",")[0]) for line in points for pair in line.split()})
    assert xs[0] == 0 and xs[-1] == 1000
    assert len(xs) >= 48  # one place per point, not one vertical line
    assert re.findall(r'class="y-tick[^"]*"[^>]*>(\d+)<', chart) == ["100", "70", "50", "0"]
    assert 'data-testid="threshold-line"' in chart and 'y1="30.0"' in chart
    labels = re.findall(r'class="x-tick"[^>]*>([^<]+)<', chart)
    assert len(labels) >= 3 and all(re.fullmatch(r"\d\d:\d\d|\d{1,2} \w{3}", x) for x in labels)
