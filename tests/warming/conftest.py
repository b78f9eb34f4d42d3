"""Shared fixtures of the warming tests."""

import secrets

import pytest

from tests.warming.network import Network


@pytest.fixture
def agent_settings(settings, mail_servers):
    settings.WARMUP_DWELL_SECONDS = [0, 0]
    settings.WARMUP_ENGAGE_DELAY_MINUTES = [5, 5]
    settings.OUTBOUND_TRANSPORT = "kumo_http"
    return settings


@pytest.fixture
def network(agent_settings, mail_servers, test_ca):
    return Network(mail_servers, test_ca, suffix=secrets.token_hex(3))


@pytest.fixture
def junk_every_other(mail_servers):
    """A delivery rule: every second message delivered goes to Junk."""
    _, smtp = mail_servers
    seen = [0]

    def rule(recipient: str, data: bytes) -> bool:
        seen[0] += 1
        return seen[0] % 2 == 0

    smtp.junk_rule = rule
    yield rule
    smtp.junk_rule = None
