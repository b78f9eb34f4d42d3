"""Warming tasks: a demoted domain's owner handles rehabilitation warm-up messages by hand, in
the real mailbox, for credits and progress; the agent waits for them first."""

import secrets
from datetime import timedelta

import pytest
from django.urls import reverse

from billing.models import CreditEntry
from billing.selectors import credit_balance_get
from reputation.models import Event, EventKind
from reputation.selectors import domain_rehab
from sending.models import Message
from tests.warming.network import EVENING, TOMORROW, Network, plan_and_send
from warming.models import Step, WarmupSend
from warming.services.agent import warming_engage

pytestmark = pytest.mark.django_db


@pytest.fixture
def rehab_network(agent_settings, mail_servers, test_ca, owner):
    return Network(
        mail_servers, test_ca, suffix=secrets.token_hex(3), tier="rehab", owners=[owner.workspace]
    )


def _tasks_url(workspace) -> str:
    return reverse("warming_tasks", args=[workspace.public_id])


def _task_url(workspace, send) -> str:
    return reverse("warming_task", args=[workspace.public_id, send.pk])


def test_rehab_messages_wait_on_the_tasks_page_and_the_agent_leaves_them_alone(
    rehab_network, owner, owner_client
):
    sends = plan_and_send(rehab_network)
    assert {s.cluster for s in sends} == {"rehab"}
    north = rehab_network.mailboxes[0]
    mine = [s for s in sends if s.recipient_id == north.pk]
    assert mine
    # The hold: the agent's first look is hours after the send time.
    earliest = min(s.send_at for s in sends)
    run = warming_engage(now=earliest + timedelta(hours=1))
    assert run.promoted >= 1 and run.found == 0
    assert set(WarmupSend.objects.values_list("step", flat=True)) <= {Step.PLANNED, Step.FIND}

    page = owner_client.get(_tasks_url(owner.workspace))
    assert page.status_code == 200
    html = page.content.decode()
    assert page.context["tasks"].count() == len(mine)
    for send in mine:
        assert send.subject in html
    # Only this workspace's mailboxes' messages: the others' tasks are not listed.
    others = [s for s in sends if s.recipient_id != north.pk]
    for send in others:
        assert _task_url(owner.workspace, send) not in html
    for other in rehab_network.mailboxes[1:]:
        assert other.address not in html
    assert 'data-testid="task-domain"' in html  # the meter of the demoted domain


def test_a_task_done_by_hand_opens_answers_files_credits_and_counts(
    rehab_network, owner, owner_client
):
    sends = plan_and_send(rehab_network)
    north = rehab_network.mailboxes[0]
    task = next(s for s in sends if s.recipient_id == north.pk)
    before = credit_balance_get(workspace=owner.workspace)
    assert domain_rehab(north.domain, EVENING)["by_hand"] == 0

    response = owner_client.post(_task_url(owner.workspace, task), {"reply": "1"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("Done: " in m and "+2 credits" in m for m in shown), shown

    task.refresh_from_db()
    assert task.step == Step.DONE and task.by_hand and task.replied_at and task.filed_at
    folder, flags = rehab_network.folder_of(north, task.code)
    assert folder == "Archive" and b"\\Seen" in flags
    # The answer goes out from the owner's mailbox, in the thread.
    reply = WarmupSend.objects.get(parent=task)
    message = Message.objects.get(pk=reply.message_id)
    assert message.sender == north.address
    assert message.headers["In-Reply-To"] == f"<{task.message.message_id}>"
    # Events of the sender's domain; credits and progress for the owner's.
    kinds = set(
        Event.objects.filter(source_key__startswith=f"warmup:{task.pk}:").values_list(
            "kind", flat=True
        )
    )
    assert kinds == {EventKind.OPENED, EventKind.REPLIED}
    assert credit_balance_get(workspace=owner.workspace) == before + 2
    entry = CreditEntry.objects.get(workspace=owner.workspace, reference=f"warmup-task:{task.pk}")
    assert entry.amount == 2
    north.domain.refresh_from_db()
    rehab = domain_rehab(north.domain, EVENING)
    assert rehab["by_hand"] == 1 and rehab["done"] >= 1
    assert "1 warming task by hand" in rehab["summary"]

    # Done once: a second try changes nothing.
    again = owner_client.post(_task_url(owner.workspace, task), {"reply": "1"}, follow=True)
    assert "done already" in again.content.decode()
    assert credit_balance_get(workspace=owner.workspace) == before + 2
    assert WarmupSend.objects.filter(parent=task).count() == 1
    # And the agent does not handle it again.
    warming_engage(now=EVENING + timedelta(days=1))
    assert Event.objects.filter(source_key=f"warmup:{task.pk}:{EventKind.OPENED}").count() == 1


def test_another_workspace_cannot_do_someones_task(rehab_network, owner, stranger, stranger_client):
    sends = plan_and_send(rehab_network)
    north = rehab_network.mailboxes[0]
    task = next(s for s in sends if s.recipient_id == north.pk)
    response = stranger_client.post(_task_url(stranger.workspace, task), follow=True)
    assert "not one of yours" in response.content.decode()
    task.refresh_from_db()
    assert task.step == Step.PLANNED and not task.by_hand
    assert not CreditEntry.objects.filter(reference=f"warmup-task:{task.pk}").exists()
    # Nor through the owner's workspace address: it is not the stranger's workspace.
    response = stranger_client.post(_task_url(owner.workspace, task))
    assert response.status_code in (403, 404)
    task.refresh_from_db()
    assert task.step == Step.PLANNED


def test_no_rehab_domain_means_no_tasks_with_a_clear_word(owner, owner_client):
    page = owner_client.get(_tasks_url(owner.workspace))
    assert page.status_code == 200
    assert "No domain of yours is in rehabilitation" in page.content.decode()


def test_the_warming_page_never_names_another_workspaces_mailbox(
    rehab_network, owner, owner_client
):
    plan_and_send(rehab_network)
    warming_engage(now=EVENING.replace(hour=23, minute=59))
    html = owner_client.get(reverse("warming", args=[owner.workspace.public_id])).content.decode()
    assert rehab_network.mailboxes[0].address in html
    for other in rehab_network.mailboxes[1:]:
        assert other.address not in html and other.domain.name not in html
    assert "a network mailbox" in html


def test_the_dashboard_counts_the_last_days_warm_up_mail(rehab_network, owner, owner_client):
    from django.utils import timezone

    sends = plan_and_send(rehab_network)
    # The plan is for tomorrow: bring it into the last 24 hours, then let the agent work.
    shift = timezone.now() - max(s.send_at for s in sends) - timedelta(minutes=1)
    for send in WarmupSend.objects.all():
        WarmupSend.objects.filter(pk=send.pk).update(
            send_at=send.send_at + shift, engage_at=send.send_at + shift
        )
    warming_engage(now=timezone.now())
    mine = WarmupSend.objects.filter(sender=rehab_network.mailboxes[0])
    card = owner_client.get(reverse("dashboard", args=[owner.workspace.public_id]))
    html = card.content.decode()
    assert 'data-testid="warming-today"' in html
    warming = card.context["warming"]
    assert warming.sent == mine.count() and warming.read == mine.count()


def test_the_warming_page_says_how_many_the_plan_gave_when_fewer_than_the_ramp(
    rehab_network, owner
):
    from warming.selectors import warming_overview

    plan_and_send(rehab_network)
    north = rehab_network.mailboxes[0]
    (plan,) = warming_overview(workspace=owner.workspace, today=TOMORROW)
    given = WarmupSend.objects.filter(sender=north, day=TOMORROW).count()
    assert plan.planned_today == given
    (unplanned,) = warming_overview(workspace=owner.workspace, today=TOMORROW + timedelta(days=1))
    assert unplanned.planned_today is None  # that day is not planned yet
