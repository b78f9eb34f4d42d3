import orjson
import pytest
from rest_framework.test import APIClient

from sending.models import SendingDomain
from sending.services import mailbox_create

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
