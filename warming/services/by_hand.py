"""Warming tasks (docs/warming.md#warming-tasks): a demoted domain's owner works through the
rehabilitation warm-up messages addressed to their mailboxes by hand. Each one done opens the
message in the real mailbox (rescued from spam first if it landed there), answers it when asked,
files it away, counts toward the rehabilitation target and earns credits.

A task is a rehabilitation-cluster message to one of the workspace's mailboxes that is sent and
not yet handled; the agent leaves it alone for WARMUP_TASK_HOLD_HOURS after its send time."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from accounts.models import Role, User, Workspace
from billing.services.credits import credits_earn
from config.errors import ApplicationError
from reputation.core.scores import scores_recompute
from sending.services.permissions import require_role
from warming.imap import ImapFailure
from warming.models import Step, WarmupSend
from warming.selectors import warming_task_list
from warming.services.agent import LEASE, AgentRun, NoLogin, engage_one, mailbox_session

TASK_CREDITS = 1  # for opening (and rescuing) one message
REPLY_CREDITS = 1  # more for answering it


@dataclass(frozen=True)
class TaskDone:
    send: WarmupSend
    credits: int
    rescued: bool
    replied: bool


def warming_task_do(
    *, workspace: Workspace, actor: User, send_id: int, reply: bool, now: datetime | None = None
) -> TaskDone:
    """Handle one warming task now, in the recipient's real mailbox, and credit it."""
    require_role(workspace=workspace, user=actor, role=Role.MEMBER)
    now = now or timezone.now()
    send = (
        warming_task_list(workspace=workspace)
        .select_related("sender__domain", "recipient__domain", "recipient__warmup", "message")
        .filter(pk=send_id)
        .first()
    )
    if send is None:
        raise ApplicationError(
            "This warming task is done already, or it is not one of yours.", status=404
        )
    claimed = (
        WarmupSend.objects.filter(pk=send.pk, step=send.step, by_hand=False)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - LEASE))
        .update(claimed_at=now, by_hand=True, will_reply=reply)
    )
    if not claimed:
        raise ApplicationError("The warm-up agent is handling this message right now.", status=409)
    send.by_hand, send.will_reply = True, reply
    if send.step == Step.PLANNED:  # sent; the agent's pass has not noted it yet
        send.step = Step.FIND
    try:
        box = mailbox_session(send, now)
    except NoLogin as failure:
        _release(send)
        raise ApplicationError(
            f"We could not open {send.recipient.address if send.recipient else 'the mailbox'}: "
            f"{failure.reason}"
        ) from failure
    run = AgentRun()
    try:
        engage_one(box, send, now, run, dwell=False)
    except ImapFailure as failure:
        _release(send)
        raise ApplicationError(f"The mailbox stopped answering: {failure}. Try again.") from failure
    finally:
        box.close()
    if send.step != Step.DONE:
        _release(send)
        raise ApplicationError(
            "The message has not arrived in the mailbox yet; try again in a few minutes."
        )
    replied = send.replied_at is not None
    credits = TASK_CREDITS + (REPLY_CREDITS if replied else 0)
    credits_earn(
        workspace=workspace,
        amount=credits,
        reference=f"warmup-task:{send.pk}",
        reason="Warming task done by hand" + (" (answered)" if replied else ""),
    )
    if run.domains:
        scores_recompute(domain_ids=sorted(run.domains))
    return TaskDone(send=send, credits=credits, rescued=send.rescued, replied=replied)


def _release(send: WarmupSend) -> None:
    WarmupSend.objects.filter(pk=send.pk).exclude(step=Step.DONE).update(
        claimed_at=None, by_hand=False
    )
