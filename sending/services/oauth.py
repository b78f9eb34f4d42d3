"""OAuth mailboxes: "Connect with Google / Microsoft", the grant's tokens, and what a revoked
grant does (docs/domains-and-mailboxes.md, "Google and Microsoft mailboxes").

The consent is an authorization-code flow with PKCE: its `state` and code verifier stay in the
customer's session, so a callback that was not started in that session changes nothing. The
refresh token is encrypted at rest; an access token is refreshed ahead of its expiry with the
grant row locked, so workers needing one at the same moment make a single refresh request."""

import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.crypto import secret_decrypt, secret_encrypt
from accounts.models import User, Workspace
from accounts.services import audit_log_record, workspace_owners_email
from config.errors import ApplicationError
from sending.models import (
    ConnectionType,
    DomainStatus,
    GrantStatus,
    Mailbox,
    MailboxGrant,
    MailboxStatus,
    SendingDomain,
)
from sending.oauth import (
    GRANT_GONE,
    AnswerError,
    ProviderConfig,
    access_expiry,
    authorize_params,
    id_token_claims,
    needs_refresh,
    provider_config,
    refresh_expiry,
    signed_in_address,
    testing_mode,
)
from sending.services.mailboxes import (
    mailbox_create,
    mailbox_pause,
    mailbox_reconnected,
    mailbox_use_oauth,
)
from sending.services.permissions import require_role

SESSION_KEY = "mailbox_oauth"
# Consents a session may have under way at once (an agency opening a few tabs).
MAX_PENDING = 5


def oauth_provider(name: str) -> ProviderConfig:
    """A provider set up in the settings; refuses one that is unknown or not configured."""
    raw = settings.OAUTH_PROVIDERS.get(name)
    config = provider_config(name, raw) if raw else None
    if config is None or not config.configured:
        raise ApplicationError(
            "This way of connecting a mailbox is not set up on this server.",
            code="oauth_not_configured",
        )
    return config


def oauth_providers_offered() -> list[ProviderConfig]:
    """The providers whose client id and secret are set, for the add-mailbox page."""
    configs = [provider_config(name, raw) for name, raw in settings.OAUTH_PROVIDERS.items()]
    return [config for config in configs if config.configured]


def _session(config: ProviderConfig) -> OAuth2Session:
    return OAuth2Session(
        client_id=config.client_id,
        client_secret=config.client_secret,
        token_endpoint_auth_method="client_secret_post",
        scope=" ".join(config.scopes),
        redirect_uri=settings.OAUTH_REDIRECT_URL,
        code_challenge_method="S256",
        default_timeout=settings.OAUTH_HTTP_TIMEOUT_SECONDS,
    )


def grant_testing_mode(grant: MailboxGrant) -> bool:
    """The grant ends 7 days after consent (Google's app is in Testing mode)."""
    return testing_mode(
        grant.provider, connected_at=grant.connected_at, refresh_expires_at=grant.refresh_expires_at
    )


# --- The consent ---------------------------------------------------------------------------------


def oauth_consent_start(
    *,
    session: MutableMapping[str, Any],
    workspace: Workspace,
    actor: User,
    provider: str,
    mailbox: Mailbox | None = None,
) -> str:
    """Remember a new consent in the customer's session; return the provider's page to send
    them to. With `mailbox`, the consent reconnects that mailbox (same address only)."""
    require_role(workspace=workspace, user=actor)
    config = oauth_provider(provider)
    if mailbox is not None and mailbox.domain.workspace_id != workspace.pk:
        raise ApplicationError("No such mailbox.", status=404)
    state = generate_token(32)
    verifier = generate_token(64)
    now = time.time()
    pending = {
        key: value
        for key, value in dict(session.get(SESSION_KEY) or {}).items()
        if now - value["at"] < settings.OAUTH_CONSENT_MAX_AGE_SECONDS
    }
    oldest_first = sorted(pending, key=lambda k: pending[k]["at"])
    for key in oldest_first[: max(0, len(pending) + 1 - MAX_PENDING)]:
        del pending[key]
    pending[state] = {
        "provider": config.name,
        "verifier": verifier,
        "workspace": workspace.pk,
        "mailbox": mailbox.pk if mailbox else None,
        "user": actor.pk,
        "at": now,
    }
    session[SESSION_KEY] = pending
    url, _ = _session(config).create_authorization_url(
        config.authorize_url,
        state=state,
        code_verifier=verifier,
        **authorize_params(config.name, login_hint=mailbox.address if mailbox else ""),
    )
    return str(url)


@dataclass(frozen=True)
class PendingConsent:
    provider: ProviderConfig
    verifier: str
    workspace: Workspace
    mailbox_id: int | None


def oauth_consent_claim(
    *, session: MutableMapping[str, Any], actor: User, state: str
) -> PendingConsent:
    """Take the consent a callback's `state` names out of the session (once: a replayed
    callback finds nothing). Refuses a state this session did not start, or a stale one."""
    pending = dict(session.get(SESSION_KEY) or {})
    started = pending.pop(state, None) if state else None
    session[SESSION_KEY] = pending
    fresh = started is not None and (
        time.time() - started["at"] < settings.OAUTH_CONSENT_MAX_AGE_SECONDS
    )
    workspace = (
        Workspace.objects.filter(pk=started["workspace"]).first() if started and fresh else None
    )
    if started is None or not fresh or started["user"] != actor.pk or workspace is None:
        raise ApplicationError(
            "This sign-in was not started from this browser session, or it took too long. "
            "Start again with the Connect button.",
            code="oauth_state_mismatch",
            status=400,
        )
    return PendingConsent(
        provider=oauth_provider(started["provider"]),
        verifier=started["verifier"],
        workspace=workspace,
        mailbox_id=started["mailbox"],
    )


@dataclass(frozen=True)
class Connected:
    mailbox: Mailbox
    created: bool
    testing_mode: bool


def _token_for_code(config: ProviderConfig, code: str, verifier: str) -> dict[str, Any]:
    try:
        token = _session(config).fetch_token(
            config.token_url,
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
        )
    except OAuthError as error:
        raise ApplicationError(
            f"{config.label} did not accept the sign-in ({error.error}). Start again with "
            f"Connect with {config.label}.",
            code="oauth_code_refused",
        ) from error
    except requests.RequestException as error:
        raise ApplicationError(
            f"{config.label} could not be reached to finish the sign-in. Try again in a minute.",
            code="oauth_unreachable",
        ) from error
    if not token.get("access_token"):
        raise ApplicationError(
            f"{config.label} answered the sign-in without an access token. Start again with "
            f"Connect with {config.label}.",
            code="oauth_code_refused",
        )
    return dict(token)


def _signed_in(config: ProviderConfig, token: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The signed-in address and the claims naming it: the ID token's, else userinfo's."""
    try:
        claims = id_token_claims(str(token["id_token"])) if token.get("id_token") else {}
        address = signed_in_address(claims, client_id=config.client_id) if claims else ""
        if not address and config.userinfo_url:
            answer = requests.get(
                config.userinfo_url,
                headers={"Authorization": f"Bearer {token['access_token']}"},
                timeout=settings.OAUTH_HTTP_TIMEOUT_SECONDS,
            )
            if answer.ok:
                claims = {k: v for k, v in answer.json().items() if k != "aud"}
                address = signed_in_address(claims, client_id=config.client_id)
    except (AnswerError, requests.RequestException, ValueError) as error:
        raise ApplicationError(
            f"{config.label} did not say which mailbox you signed in as ({error}).",
            code="oauth_no_address",
        ) from error
    if not address:
        raise ApplicationError(
            f"{config.label} did not say which mailbox you signed in as. Start again and allow "
            "access to your email address.",
            code="oauth_no_address",
        )
    return address, claims


def _workspace_domain(workspace: Workspace, address: str) -> SendingDomain:
    name = address.rsplit("@", 1)[1]
    domains = workspace.sending_domains.exclude(status=DomainStatus.RETIRED)
    domain = domains.filter(name=name).first()
    if domain is None:
        names = ", ".join(domains.values_list("name", flat=True)) or "none yet"
        raise ApplicationError(
            f"You signed in as {address}, which is not on a domain of this workspace (yours: "
            f"{names}). Sign in with a mailbox on one of them, or add {name} on the Domains "
            "page first.",
            code="oauth_address_foreign",
        )
    return domain


def oauth_consent_finish(
    *, consent: PendingConsent, actor: User, params: Mapping[str, str]
) -> Connected:
    """Turn the provider's answer into a connected mailbox: a new one, or the same address
    reconnected (a password mailbox switches to OAuth). Its connection test comes next."""
    config = consent.provider
    workspace = consent.workspace
    require_role(workspace=workspace, user=actor)
    if params.get("error"):
        # The provider's error code, shortened: the callback's query is anyone's to write.
        detail = "you cancelled" if params["error"] == "access_denied" else params["error"][:60]
        raise ApplicationError(
            f"{config.label} did not grant access ({detail}). Nothing was connected.",
            code="oauth_denied",
        )
    token = _token_for_code(config, params.get("code", ""), consent.verifier)
    address, claims = _signed_in(config, token)
    domain = _workspace_domain(workspace, address)
    local_part = address.rsplit("@", 1)[0]
    if not token.get("refresh_token"):
        raise ApplicationError(
            f"{config.label} gave no refresh token, so the connection would end within the "
            "hour. Remove this app's access in your account's security settings, then connect "
            "again.",
            code="oauth_no_refresh_token",
        )
    now = timezone.now()
    with transaction.atomic():
        mailbox = (
            Mailbox.objects.select_for_update()
            .select_related("domain__workspace")
            .filter(domain=domain, local_part=local_part)
            .first()
        )
        if consent.mailbox_id is not None and (mailbox is None or mailbox.pk != consent.mailbox_id):
            expected = Mailbox.objects.filter(pk=consent.mailbox_id).first()
            raise ApplicationError(
                f"You signed in as {address}, but this reconnects "
                f"{expected.address if expected else 'another mailbox'}. Start again and sign "
                "in as that mailbox.",
                code="oauth_address_mismatch",
            )
        if mailbox is not None and mailbox.connection == ConnectionType.PLATFORM:
            raise ApplicationError(
                f"{address} is a platform mailbox here: it sends through the platform, not "
                f"through {config.label}. Delete it first to connect it with {config.label}.",
                code="oauth_platform_mailbox",
            )
        created = mailbox is None
        if mailbox is None:
            mailbox = mailbox_create(
                domain=domain,
                actor=actor,
                data={
                    "connection": ConnectionType.EXTERNAL,
                    "local_part": local_part,
                    "display_name": str(claims.get("name") or "")[:120],
                },
                oauth=config,
            )
        else:
            mailbox_use_oauth(mailbox=mailbox, oauth=config)
        previous = None if created else mailbox.oauth_grant
        # Paused because its sign-in stopped working: the new grant is the way back.
        revoked = previous is not None and previous.status == GrantStatus.REVOKED
        grant = _grant_store(mailbox, config, token, claims, now)
        audit_log_record(
            action="mailbox.oauth_connect",
            actor=actor,
            obj=mailbox,
            workspace=workspace,
            after={"address": mailbox.address, "provider": config.name, "created": created},
        )
        if revoked and mailbox.status == MailboxStatus.PAUSED:
            mailbox_reconnected(
                mailbox=mailbox, actor=actor, reason=f"Reconnected with {config.label}."
            )
    return Connected(
        mailbox=mailbox,
        created=created,
        testing_mode=testing_mode(
            config.name, connected_at=now, refresh_expires_at=grant.refresh_expires_at
        ),
    )


def _grant_store(
    mailbox: Mailbox,
    config: ProviderConfig,
    token: Mapping[str, Any],
    claims: Mapping[str, Any],
    now: datetime,
) -> MailboxGrant:
    values = {
        "provider": config.name,
        "subject": str(claims.get("sub") or claims.get("oid") or "")[:255],
        "scopes": str(token.get("scope") or " ".join(config.scopes)),
        "refresh_token_encrypted": secret_encrypt(str(token["refresh_token"])),
        "access_token_encrypted": secret_encrypt(str(token["access_token"])),
        "access_expires_at": access_expiry(token, now=now),
        "refresh_expires_at": refresh_expiry(token, now=now),
        "status": GrantStatus.ACTIVE,
        "problem": "",
        "connected_at": now,
        "refreshed_at": None,
    }
    grant, _ = MailboxGrant.objects.update_or_create(mailbox=mailbox, defaults=values)
    return grant


# --- Access tokens -------------------------------------------------------------------------------


class GrantUnusable(Exception):
    """No access token can be had: `gone` means only the customer signing in again helps;
    otherwise the provider could not be reached and a later try may work."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.message = message
        self.gone = gone


def mailbox_access_token(*, mailbox_id: int, refused: str = "", now: datetime | None = None) -> str:
    """A usable access token for the mailbox's grant.

    The stored one while it has more than OAUTH_REFRESH_AHEAD_SECONDS left; otherwise (or when
    a server just `refused` it) a refreshed one. The refresh happens with the grant row locked:
    a worker that waited on the lock finds the new token and makes no request of its own.
    Raises GrantUnusable."""
    now = now or timezone.now()
    grant = MailboxGrant.objects.filter(mailbox_id=mailbox_id).first()
    if grant is None:
        raise GrantUnusable("This mailbox is not connected with OAuth.", gone=True)
    if grant.status == GrantStatus.REVOKED:
        raise GrantUnusable(grant.problem, gone=True)
    current = _usable(grant, refused, now)
    if current:
        return current
    gone: GrantUnusable | None = None
    with transaction.atomic():
        grant = (
            MailboxGrant.objects.select_for_update()
            .select_related("mailbox__domain__workspace")
            .get(pk=grant.pk)
        )
        if grant.status == GrantStatus.REVOKED:
            raise GrantUnusable(grant.problem, gone=True)
        stored = _usable(grant, refused, now)
        if stored:
            return stored  # another worker refreshed it while this one waited
        try:
            return _refresh(grant, now)
        except GrantUnusable as error:
            if not error.gone:
                raise
            gone = error
            _grant_gone(grant, now)
    raise GrantUnusable(grant.problem, gone=True) from gone


def _usable(grant: MailboxGrant, refused: str, now: datetime) -> str:
    """The stored access token if it is not the refused one and not about to expire, or ""."""
    if not grant.access_token_encrypted:
        return ""
    ahead = timedelta(seconds=settings.OAUTH_REFRESH_AHEAD_SECONDS)
    if needs_refresh(grant.access_expires_at, now=now, ahead=ahead):
        return ""
    token = secret_decrypt(grant.access_token_encrypted)
    return "" if token == refused else token


def _refresh(grant: MailboxGrant, now: datetime) -> str:
    config = oauth_provider(grant.provider)
    try:
        token = _session(config).refresh_token(
            config.token_url, refresh_token=secret_decrypt(grant.refresh_token_encrypted)
        )
    except OAuthError as error:
        gone = error.error in GRANT_GONE
        raise GrantUnusable(
            f"{config.label} refused to refresh the access token ({error.error}).", gone=gone
        ) from error
    except requests.RequestException as error:
        raise GrantUnusable(
            f"{config.label} could not be reached to refresh the access token; it is tried "
            "again shortly.",
            gone=False,
        ) from error
    access = str(token.get("access_token") or "")
    if not access:
        raise GrantUnusable(f"{config.label} answered a refresh without a token.", gone=False)
    grant.access_token_encrypted = secret_encrypt(access)
    grant.access_expires_at = access_expiry(token, now=now)
    if token.get("refresh_token"):  # Microsoft hands out a new refresh token on each refresh
        grant.refresh_token_encrypted = secret_encrypt(str(token["refresh_token"]))
    grant.refreshed_at = now
    grant.refresh_count += 1
    grant.problem = ""
    grant.save(
        update_fields=[
            "access_token_encrypted",
            "access_expires_at",
            "refresh_token_encrypted",
            "refreshed_at",
            "refresh_count",
            "problem",
        ]
    )
    return access


def _grant_gone(grant: MailboxGrant, now: datetime) -> None:
    """The grant no longer works: pause the mailbox with the way back, and tell the owners."""
    config = oauth_provider(grant.provider)
    mailbox = grant.mailbox
    reason = f"{config.label} access was revoked or has expired: reconnect with {config.label}."
    if testing_mode(
        grant.provider, connected_at=grant.connected_at, refresh_expires_at=grant.refresh_expires_at
    ):
        reason += (
            " The platform's Google app is in Testing mode, which ends access 7 days after "
            "each consent; the operator publishes the app to stop this."
        )
    grant.status = GrantStatus.REVOKED
    grant.problem = reason
    grant.access_token_encrypted = ""
    grant.access_expires_at = None
    grant.save(update_fields=["status", "problem", "access_token_encrypted", "access_expires_at"])
    workspace = mailbox.domain.workspace
    audit_log_record(
        action="mailbox.oauth_revoked",
        actor=None,
        obj=mailbox,
        workspace=workspace,
        reason=reason,
        after={"provider": grant.provider},
    )
    if mailbox.status != MailboxStatus.PAUSED:
        mailbox_pause(mailbox=mailbox, actor=None, reason=reason, by_system=False)
    link = settings.SITE_URL.rstrip("/") + reverse(
        "mailbox_detail", args=[workspace.public_id, mailbox.pk]
    )
    workspace_owners_email(
        workspace=workspace,
        subject=f"Reconnect {mailbox.address} with {config.label}",
        body=(
            f"{mailbox.address} can no longer log in: {reason}\n\n"
            f"It is paused: it sends no campaign or warm-up mail and its replies are not read "
            f"until someone reconnects it. Open {link} and press Reconnect with "
            f"{config.label}; it resumes by itself afterwards.\n"
        ),
    )
