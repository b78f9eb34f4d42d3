import pytest

from accounts.models import Membership
from sending.models import DomainStatus, SendingDomain
from sending.services import domain_create, domain_records, domain_verify


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
