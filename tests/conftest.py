"""Shared fixtures: personas, real SMTP receiver, API clients. Run through `make test`."""

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from accounts.models import Membership, Role, User
from accounts.services import api_token_create
from sending.models import DomainStatus, Mailbox, SendingDomain, SendsThrough
from sending.services.dns import domain_records
from sending.services.domains import domain_create
from sending.services.mailboxes import mailbox_create
from sending.services.verification import domain_verify
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.servers.oauth import CLIENT_ID, CLIENT_SECRET, IdentityProvider

pytest_plugins = [
    "tests.servers.dns",
    "tests.servers.oauth",
    "tests.servers.mail",
    "tests.servers.mailstore",
    "tests.servers.broken_imap",
    "tests.servers.stripe",
]


# A loaded 2-core CI machine makes timing checks flaky; the properties themselves are what count.
hypothesis_settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
hypothesis_settings.load_profile("suite")

SERVICES = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
DB_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of pure modules run anywhere; the rest need the real PostgreSQL and Redis."""
    if SERVICES:
        return
    needing = [
        item
        for item in items
        if item.get_closest_marker("django_db")
        or DB_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if needing:
        pytest.exit(
            f"{len(needing)} of the selected tests need PostgreSQL and Redis (e.g. "
            f"{needing[0].nodeid}): run them with `make test`, which sets DATABASE_URL and "
            "REDIS_URL. Tests of pure modules run without them.",
            returncode=2,
        )


@pytest.fixture(autouse=True)
def _fresh_redis() -> Iterator[None]:
    """Each test starts with an empty cache (throttles, TOTP replay marks)."""
    cache.clear()
    yield


# Workspaces in tests that are not about billing get the plan an installation that sells none
# gives (as servers started in subprocesses do); billing tests set "evaluation" themselves.
os.environ.setdefault("BILLING_UNPAID_PLAN", "pro")


@pytest.fixture(autouse=True)
def _unpaid_plan(settings) -> None:
    settings.BILLING_UNPAID_PLAN = os.environ["BILLING_UNPAID_PLAN"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Password hashing cost is not under test; PBKDF2's 1M rounds would dominate the suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, recipient: str, timeout: float = 10.0) -> Message:
        """The newest message to `recipient`, waiting for it to arrive."""

        def find() -> Message | None:
            for msg in reversed(self.messages):
                if recipient.lower() in msg["To"].lower():
                    return msg
            return None

        with self.arrived:
            found = self.arrived.wait_for(find, timeout=timeout)
        assert found, f"no mail to {recipient} arrived"
        return found

    @staticmethod
    def body(msg: Message) -> str:
        if msg.is_multipart():
            for part in msg.walk():
                if part.get_content_type() == "text/plain":
                    return part.get_payload(decode=True).decode()
        return msg.get_payload(decode=True).decode()


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.original_content or envelope.content)
        with self.server.arrived:
            self.server.messages.append(msg)
            self.server.arrived.notify_all()
        return "250 OK"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP receiver on loopback (aiosmtpd)."""
    server = SmtpServer(host="127.0.0.1", port=free_port())
    controller = Controller(_Handler(server), hostname=server.host, port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture
def smtp_mail(settings, smtp_server: SmtpServer) -> SmtpServer:
    """Send the product's mail through SMTP to the loopback receiver."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    smtp_server.messages.clear()
    return smtp_server


# --- Personas ------------------------------------------------------------------------------


@pytest.fixture
def owner(db):
    return MembershipFactory(role=Role.OWNER, user__email="owner@acme.test")


@pytest.fixture
def teammate(owner: Membership):
    return MembershipFactory(
        workspace=owner.workspace, role=Role.MEMBER, user__email="teammate@acme.test"
    )


@pytest.fixture
def stranger(db):
    return MembershipFactory(role=Role.OWNER, user__email="stranger@globex.test")


def logged_in(membership: Membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


@pytest.fixture
def staff_client(db) -> Client:
    """A signed-in operator (staff and superuser) of the operations console."""
    client = Client()
    client.staff = User.objects.create_user(email="ops@ops.test", is_staff=True, is_superuser=True)
    client.force_login(client.staff)
    return client


@pytest.fixture
def owner_client(owner: Membership) -> Client:
    return logged_in(owner)


@pytest.fixture
def teammate_client(teammate: Membership) -> Client:
    return logged_in(teammate)


@pytest.fixture
def stranger_client(stranger: Membership) -> Client:
    return logged_in(stranger)


def token_client(membership: Membership) -> APIClient:
    issued = api_token_create(user=membership.user, workspace=membership.workspace, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    client.token = issued
    return client


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user_factory():
    return UserFactory


# --- DNS -------------------------------------------------------------------------------------

PLATFORM_SPF = "v=spf1 ip4:203.0.113.0/24 -all"


@pytest.fixture
def zone(dns, settings):
    """The loopback DNS server as the product's resolver, with the platform's SPF include."""
    settings.DNS_NAMESERVERS = [dns.nameserver]
    settings.DNS_TIMEOUT_SECONDS = 0.5
    dns.set(settings.PLATFORM_SPF_INCLUDE, "TXT", [PLATFORM_SPF])
    return dns


def publish(zone, domain: SendingDomain, *, skip: tuple[str, ...] = ()) -> None:
    """Publish every record the product asks for (but the kinds in `skip`)."""
    for record in domain_records(domain):
        if record.kind in skip:
            continue
        if record.type == "MX":
            zone.add(record.host, "MX", record.value)
        else:
            zone.add(record.host, record.type, record.value)


@pytest.fixture
def domain(owner: Membership) -> SendingDomain:
    return domain_create(workspace=owner.workspace, actor=owner.user, name="acme-outreach.com")


@pytest.fixture
def verified_domain(zone, domain: SendingDomain) -> SendingDomain:
    publish(zone, domain)
    assert domain_verify(domain=domain).verified
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED
    return domain


# --- The MTA's log hook ----------------------------------------------------------------------

TOKEN = "test-kumo-token"


@pytest.fixture
def hook(settings) -> APIClient:
    """An HTTP client that authenticates like the MTA's log hook."""
    settings.KUMO_WEBHOOK_TOKEN = TOKEN
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    return client


@pytest.fixture
def post(hook, django_capture_on_commit_callbacks):
    """POST a body to the hook as the MTA would; after-commit work (processing) runs."""

    def send(body, **kw):
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        with django_capture_on_commit_callbacks(execute=True):
            return hook.post("/hooks/kumomta/", data, content_type="application/json", **kw)

    return send


@pytest.fixture
def sender(verified_domain: SendingDomain, owner):
    """A verified domain with one platform mailbox."""
    mailbox_create(
        domain=verified_domain,
        actor=owner.user,
        data={"connection": "platform", "local_part": "alex", "warmup_enabled": True},
    )
    return verified_domain


# --- Mailboxes on the test mail servers ------------------------------------------------------


@pytest.fixture
def mail_servers(settings, test_ca, dovecot, smtp_auth_server):
    """Dovecot and the SMTP AUTH server, reachable by Test connection (loopback, test CA)."""
    settings.MAILBOX_TLS_CA_FILE = str(test_ca.ca_file)
    settings.MAILBOX_ALLOW_PRIVATE_HOSTS = True  # the test servers live on loopback
    settings.MAILBOX_CONNECT_TIMEOUT_SECONDS = 2
    return dovecot, smtp_auth_server


def external_data(servers, account, **overrides) -> dict:
    """Settings of an external mailbox on the test servers, logging in as `account`."""
    dovecot, smtp = servers
    data = {
        "connection": "external",
        "local_part": account.address.split("@")[0],
        "display_name": "Alex",
        "daily_limit": 30,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_security": "starttls",
        "smtp_username": account.address,
        "smtp_password": account.password,
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "imap_security": "starttls",
        "imap_username": account.address,
        "imap_password": account.password,
    }
    data.update(overrides)
    return data


# Settings of an external mailbox whose servers nobody listens on (never connected).
UNTESTED_SERVERS = {
    "smtp_host": "smtp.example.net",
    "smtp_port": 587,
    "smtp_security": "starttls",
    "smtp_username": "alex@example.net",
    "smtp_password": "app-password-1",
    "imap_host": "imap.example.net",
    "imap_port": 993,
    "imap_security": "ssl",
    "imap_username": "alex@example.net",
    "imap_password": "app-password-1",
}


# --- Mailboxes connected with OAuth (Google, Microsoft) --------------------------------------


CALLBACK = "/oauth/mailbox/callback/"


def provider_entry(idp: IdentityProvider, servers, **overrides) -> dict:
    dovecot, smtp = servers
    entry = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "authorize_url": f"{idp.url}/authorize",
        "token_url": f"{idp.url}/token",
        "userinfo_url": f"{idp.url}/userinfo",
        "smtp": (smtp.host, smtp.port, "starttls"),
        "imap": (dovecot.host, dovecot.port, "starttls"),
    }
    entry.update(overrides)
    return entry


@pytest.fixture
def oauth(settings, mail_servers, identity_provider):
    """Both providers played by the loopback identity provider, their mail servers by the test
    Dovecot and SMTP server."""
    idp = identity_provider
    settings.OAUTH_PROVIDERS = {
        "google": provider_entry(idp, mail_servers),
        "microsoft": provider_entry(idp, mail_servers, userinfo_url=""),
    }
    settings.OAUTH_REDIRECT_URL = f"http://testserver{CALLBACK}"
    yield idp
    idp.state.refresh_expires_in = None
    idp.state.refresh_gate = None
    idp.state.access_seconds = 3600


@pytest.fixture
def own_domain(owner) -> SendingDomain:
    """The workspace's domain the test mail accounts live on."""
    return SendingDomain.objects.create(
        workspace=owner.workspace,
        name="mailbox.test",
        status=DomainStatus.VERIFIED,
        sends_through=SendsThrough.OWN_SERVERS,
    )


def consent_url(client: Client, workspace: str, provider: str = "google", **form) -> str:
    response = client.post(f"/w/{workspace}/mailboxes/connect/{provider}/", form)
    assert response.status_code == 302, response.content
    return str(response["Location"])


def allow(url: str, **extra: str) -> str:
    """Press Allow on the provider's consent page; the path and query it sends the browser to."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    params.update(extra)
    back = httpx.post(url.split("?")[0], data=params)
    assert back.status_code == 302, back.text
    location = urlsplit(back.headers["location"])
    return f"{location.path}?{location.query}"


def connect(client: Client, workspace: str, provider: str = "google", **form):
    return client.get(allow(consent_url(client, workspace, provider, **form)), follow=True)


@pytest.fixture
def connected(oauth, own_domain, mail_account, owner, owner_client) -> Mailbox:
    oauth.sign_in_as(mail_account.address)
    connect(owner_client, owner.workspace.public_id)
    mailbox = Mailbox.objects.get()
    assert mailbox.connection_ok is True
    return mailbox
