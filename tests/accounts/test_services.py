import re
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from accounts.crypto import secret_decrypt, secret_encrypt, secret_rotate
from accounts.models import AuditLog, Invitation, Membership, Role, User, Workspace
from accounts.services import (
    audit_log_record,
    invitation_accept,
    invitation_create,
    invitations_expire,
    leaderboard_handle_new,
    user_set_active,
    workspace_create,
)
from config.errors import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db


def test_workspace_ids_and_handles_are_random_not_derived(owner):
    a = workspace_create(owner=owner.user, name="Same Name")
    b = workspace_create(owner=owner.user, name="Same Name")
    assert a.public_id != b.public_id
    assert a.leaderboard_handle != b.leaderboard_handle
    for ws in (a, b):
        assert re.fullmatch(r"ws_[a-z0-9]{16}", ws.public_id)
        assert re.fullmatch(r"Sender_\d{4,6}", ws.leaderboard_handle)
        assert "same" not in ws.public_id


def test_a_taken_handle_is_never_reused(owner, monkeypatch):
    taken = owner.workspace.leaderboard_handle = "Sender_1111"
    owner.workspace.save()
    picks = iter([4, *"1111", 4, *"2222"])  # the first draw collides with the taken handle
    monkeypatch.setattr("accounts.services.secrets.choice", lambda seq: next(picks))
    assert leaderboard_handle_new() == "Sender_2222" != taken


@pytest.mark.parametrize("name", ["", "   ", "x" * 121])
def test_a_bad_workspace_name_is_refused_and_writes_nothing(owner, name):
    before = Workspace.objects.count()
    with pytest.raises(ApplicationError):
        workspace_create(owner=owner.user, name=name)
    assert Workspace.objects.count() == before


def test_an_invitation_to_an_existing_member_or_twice_is_refused(owner, teammate):
    with pytest.raises(ApplicationError, match="already a member"):
        invitation_create(workspace=owner.workspace, inviter=owner.user, email=teammate.user.email)
    invitation_create(workspace=owner.workspace, inviter=owner.user, email="new@acme.test")
    with pytest.raises(ApplicationError, match="open invitation"):
        invitation_create(workspace=owner.workspace, inviter=owner.user, email="NEW@acme.test")
    assert Invitation.objects.count() == 1


def test_a_member_cannot_invite(owner, teammate):
    with pytest.raises(PermissionDenied):
        invitation_create(workspace=owner.workspace, inviter=teammate.user, email="x@acme.test")
    assert not Invitation.objects.exists()


def test_expired_invitations_cannot_be_accepted_and_are_closed_by_the_tick(owner, user_factory):
    issued = invitation_create(
        workspace=owner.workspace, inviter=owner.user, email="late@acme.test"
    )
    invitation = issued.obj
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    invitation.refresh_from_db()
    late = user_factory(email="late@acme.test")
    with pytest.raises(ApplicationError, match="no longer valid"):
        invitation_accept(invitation=invitation, user=late)
    assert not Membership.objects.filter(user=late).exists()
    assert invitations_expire() == 1
    assert invitations_expire() == 0


def test_the_audit_log_records_system_actions_with_before_and_after(owner):
    log = audit_log_record(
        action="domain.cooldown",
        obj=owner.workspace,
        workspace=owner.workspace,
        reason="spam block from the MTA",
        before={"status": "verified"},
        after={"status": "cooldown"},
    )
    assert log.actor_label == "system"
    assert log.object_type == "accounts.Workspace"
    assert log.object_id == str(owner.workspace.pk)


def test_deactivating_a_user_is_audit_logged_with_the_staff_member(owner, teammate):
    staff = User.objects.create_user(email="staff@ops.test", is_staff=True)
    user_set_active(user=teammate.user, actor=staff, active=False, reason="abuse report")
    teammate.user.refresh_from_db()
    assert not teammate.user.is_active
    log = AuditLog.objects.get(action="user.deactivate")
    assert (log.actor, log.reason, log.after) == (staff, "abuse report", {"is_active": False})


def test_secrets_are_encrypted_and_survive_key_rotation(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRET_ENCRYPTION_KEYS = [old_key]
    stored = secret_encrypt("mailbox-password")
    assert "mailbox-password" not in stored
    settings.SECRET_ENCRYPTION_KEYS = [new_key, old_key]  # new key first: encrypt new, read old
    assert secret_decrypt(stored) == "mailbox-password"
    rotated = secret_rotate(stored)
    settings.SECRET_ENCRYPTION_KEYS = [new_key]  # old key dropped
    assert secret_decrypt(rotated) == "mailbox-password"
    with pytest.raises(ApplicationError, match="could not be decrypted"):
        secret_decrypt(stored)


def test_secrets_reencrypt_moves_every_stored_secret_to_the_new_key(settings, owner, capsys):
    from allauth.mfa.models import Authenticator

    from sending.models import DkimKey, Mailbox, MailboxGrant
    from sending.services.domains import domain_create
    from sending.services.mailboxes import mailbox_create
    from tests.conftest import UNTESTED_SERVERS

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRET_ENCRYPTION_KEYS = [old_key]
    domain = domain_create(
        workspace=owner.workspace,
        actor=owner.user,
        name="rotate-keys.com",
        sends_through="own_servers",  # takes external mailboxes before its DNS checks out
    )
    mailbox = mailbox_create(
        domain=domain,
        actor=None,
        data={"connection": "external", "local_part": "alex", **UNTESTED_SERVERS},
    )
    MailboxGrant.objects.create(
        mailbox=mailbox,
        provider="google",
        refresh_token_encrypted=secret_encrypt("refresh-1"),
        access_token_encrypted=secret_encrypt("access-1"),
    )
    Authenticator.objects.create(
        user=owner.user, type="totp", data={"secret": secret_encrypt("TOTPSECRET")}
    )
    key = DkimKey.objects.get(domain=domain)
    pem = secret_decrypt(key.private_key_encrypted)

    settings.SECRET_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("secrets_reencrypt")
    settings.SECRET_ENCRYPTION_KEYS = [new_key]  # the old key is gone: everything still reads

    out = capsys.readouterr().out
    assert "sending.Mailbox: 2 re-encrypted" in out and "mfa.Authenticator: 1" in out
    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    assert secret_decrypt(mailbox.smtp_password_encrypted) == UNTESTED_SERVERS["smtp_password"]
    grant = MailboxGrant.objects.get(mailbox=mailbox)
    assert secret_decrypt(grant.refresh_token_encrypted) == "refresh-1"
    assert secret_decrypt(grant.access_token_encrypted) == "access-1"
    assert secret_decrypt(DkimKey.objects.get(pk=key.pk).private_key_encrypted) == pem
    assert secret_decrypt(Authenticator.objects.get().data["secret"]) == "TOTPSECRET"


def test_seed_demo_is_idempotent(capsys):
    def counts() -> tuple[int, ...]:
        from sending.models import DkimKey, Mailbox, SendingDomain

        models = (User, Workspace, Membership, SendingDomain, DkimKey, Mailbox)
        return tuple(m.objects.count() for m in models)

    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first
    assert first[:3] == (5, 2, 4)
    operator = User.objects.get(email="ops@demo.trustgate.test")
    assert operator.is_staff and operator.is_superuser
    assert Membership.objects.filter(role=Role.OWNER).count() == 2
    assert "demo-password-1" in capsys.readouterr().out
    from sending.models import Mailbox, SendingDomain

    assert SendingDomain.objects.count() == 4
    assert Mailbox.objects.count() == 7
    # Simulated traffic through the MTA hook puts the demo domains in every tier.
    tiers = set(SendingDomain.objects.values_list("tier", flat=True))
    assert tiers == {"premium", "standard", "rehab", "quarantine"}
