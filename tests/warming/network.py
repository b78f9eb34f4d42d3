"""A small warming network of external mailboxes on the test mail servers (Dovecot and the
SMTP server with AUTH), for the agent's and the warming tasks' tests."""

from datetime import UTC, datetime, time, timedelta

from django.utils import timezone
from imapclient import IMAPClient

from accounts.crypto import secret_encrypt
from accounts.services import workspace_create
from sending.models import DomainStatus, Mailbox, MessageState, SendingDomain
from sending.services.outbound import messages_hand_over
from tests.factories import UserFactory
from tests.servers.mail import MailAccount
from warming.content import WARMUP_HEADER
from warming.models import WarmupSend
from warming.services import warming_day_save


def _account(dovecot, smtp, address: str) -> MailAccount:
    account = MailAccount(address=address, password=f"pw-{address.split('@')[0]}")
    dovecot.add_user(account.address, account.password)
    smtp.add_user(account.address, account.password)
    return account


def _external(domain: SendingDomain, account: MailAccount, servers) -> Mailbox:
    dovecot, smtp = servers
    password = secret_encrypt(account.password)
    return Mailbox.objects.create(
        domain=domain,
        local_part=account.address.split("@")[0],
        display_name=account.address.split("@")[0].title(),
        connection="external",
        provider="other",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_security="starttls",
        smtp_username=account.address,
        smtp_password_encrypted=password,
        imap_host=dovecot.host,
        imap_port=dovecot.port,
        imap_security="starttls",
        imap_username=account.address,
        imap_password_encrypted=password,
        connection_ok=True,
        daily_limit=2,
    )


class Network:
    """Three workspaces of one external mailbox each, on the test mail servers."""

    def __init__(self, servers, test_ca, suffix: str, tier: str = "premium", owners=()) -> None:
        dovecot, smtp = servers
        self.servers = servers
        self.ca = test_ca
        self.mailboxes: list[Mailbox] = []
        self.accounts: dict[int, MailAccount] = {}
        # Three workspaces of one mailbox each, two warm-up messages a day: each writes to
        # both others (the planner never pairs a mailbox with its own workspace).
        for index, name in enumerate(("north", "south", "east")):
            workspace = (
                owners[index]
                if index < len(owners)
                else workspace_create(owner=UserFactory(), name=f"{name} co")
            )
            domain = SendingDomain.objects.create(
                workspace=workspace,
                name=f"{name}-{suffix}.test",
                status=DomainStatus.VERIFIED,
                tier=tier,
                score_provisional=False,
                trust_score=55.0 if tier == "rehab" else 90.0,
                rehab_started_at=timezone.now() - timedelta(days=1) if tier == "rehab" else None,
            )
            account = _account(dovecot, smtp, f"ann@{domain.name}")
            mailbox = _external(domain, account, servers)
            self.mailboxes.append(mailbox)
            self.accounts[mailbox.pk] = account

    def imap(self, mailbox: Mailbox) -> IMAPClient:
        dovecot, _ = self.servers
        account = self.accounts[mailbox.pk]
        client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=5)
        client.login(account.address, account.password)
        return client

    def folder_of(self, mailbox: Mailbox, code: str) -> tuple[str, set[bytes]] | None:
        """Where the message tagged `code` is in the mailbox, and its flags."""
        client = self.imap(mailbox)
        try:
            for _flags, _delim, folder in client.list_folders():
                client.select_folder(folder, readonly=True)
                uids = client.search(["HEADER", WARMUP_HEADER, code])
                if uids:
                    flags = client.get_flags(uids)[uids[0]]
                    return folder, set(flags)
            return None
        finally:
            client.logout()


TOMORROW = timezone.localdate() + timedelta(days=1)
MORNING = datetime.combine(TOMORROW, time(0, 5), tzinfo=UTC)
EVENING = datetime.combine(TOMORROW, time(23, 0), tzinfo=UTC)


def plan_and_send(network: Network) -> list[WarmupSend]:
    assert warming_day_save(day=TOMORROW, now=MORNING) is not None
    summary = messages_hand_over(now=EVENING)
    assert summary.claimed and not summary.failed, summary
    sends = list(WarmupSend.objects.filter(day=TOMORROW).select_related("message"))
    assert sends and all(s.message.state == MessageState.HANDED_OVER for s in sends)
    return sends
