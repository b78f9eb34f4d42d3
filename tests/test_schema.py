"""The API answers what its OpenAPI schema promises: schemathesis generates requests for every
operation (a few examples each) against the app in-process, with a token for a seeded
workspace. No request may cause a server error, and every answer (errors included) must match
its documented status, content type and body."""

import orjson
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Role
from accounts.services import api_token_create
from config.wsgi import application
from leaderboard.services.board import board_rebuild
from sending.models import DomainStatus
from sending.services.domains import domain_create
from sending.services.mailboxes import mailbox_create
from tests.factories import MembershipFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def _keep_the_test_connection():
    """As Django's test client does: a request must not close the connection that holds the
    test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(db, zone, _keep_the_test_connection) -> str:
    """A workspace with a verified domain, a mailbox and an unverified domain; its token. DNS
    checks ask the loopback server (`zone`)."""
    owner = MembershipFactory(role=Role.OWNER, user__email="owner@acme.test")
    verified = domain_create(workspace=owner.workspace, actor=owner.user, name="acme-mail.com")
    verified.status = DomainStatus.VERIFIED
    verified.save(update_fields=["status"])
    mailbox_create(
        domain=verified,
        actor=owner.user,
        data={"local_part": "sales", "connection": "platform", "display_name": "Sales"},
    )
    domain_create(workspace=owner.workspace, actor=owner.user, name="acme-new.com")
    board_rebuild()  # the leaderboard as the periodic rebuild leaves it (else a documented 503)
    issued = api_token_create(user=owner.user, workspace=owner.workspace, name="fuzz")
    return issued.secret


def _load_schema() -> schemathesis.schemas.BaseSchema:
    """The schema /api/schema/ serves, generated here (no request, no database needed)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(orjson.loads(OpenApiJsonRenderer().render(generated)))
    loaded.app = application
    return loaded


schema = _load_schema()


def test_the_dns_records_are_documented_as_the_plain_list_they_are():
    operation = schema.raw_schema["paths"]["/api/v1/domains/{id}/dns-records/"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert not any(p["name"] in ("page", "page_size") for p in operation.get("parameters", []))


def test_a_platform_mailboxs_blank_security_is_a_documented_value():
    mailbox = schema.raw_schema["components"]["schemas"]["Mailbox"]["properties"]
    for field in ("smtp_security", "imap_security"):
        refs = [option.get("$ref", "") for option in mailbox[field]["oneOf"]]
        assert "#/components/schemas/BlankEnum" in refs, field


def test_every_operation_documents_the_error_shape():
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            for status in ("401", "403", "404", "429"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, method)


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
