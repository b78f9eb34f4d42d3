"""DKIM of a domain that sends through its own servers, confirmed from what arrived.

The platform does not sign such a domain's mail (Google Workspace, Microsoft 365 or any other
provider does), so there is no key of ours to look for in DNS. Instead the warm-up agent hands
over the raw bytes of a warm-up message it fetched from the recipient's mailbox; its
DKIM-Signature is verified with dkimpy against DNS (through the product's resolver), and the
receiving server's Authentication-Results are kept beside the verdict.

Which signatures count: DMARC's relaxed alignment (RFC 7489 section 3.1.1), the rule receivers
apply by default: the signature's d= has the same organisational domain as the sending domain
(d=example.com counts for mail.example.com and the other way round). A signature by the
provider's own domain (d=...gappssmtp.com, d=...onmicrosoft.com) does not.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import dkim  # type: ignore[import-untyped]
from django.db import transaction
from django.utils import timezone
from dkim.util import InvalidTagValueList, parse_tag_value  # type: ignore[import-untyped]

from accounts.services import audit_log_record
from sending.dkim import dkim_tags
from sending.dns_checks import DnsLookup, DnsLookupError
from sending.domain_names import organizational_domain
from sending.models import SendingDomain
from sending.services.dns import dns_lookup

AUTH_RESULTS_KEPT = 3  # the receiving server's own lines; older ones come from earlier hops
AUTH_RESULTS_CHARS = 1000
NO_SIGNING_HINT = {
    "google": "Turn on DKIM in Google Admin (Apps > Google Workspace > Gmail > Authenticate "
    "email): generate the key, publish the TXT record it shows, then press Start "
    "authentication.",
    "microsoft": "Turn on DKIM for the domain in Microsoft Defender (Email & collaboration > "
    "Policies > Email authentication settings > DKIM) and publish the two CNAME records it "
    "shows.",
}
GENERIC_HINT = "Ask your mail provider to turn on DKIM signing for {domain} and publish its key."


@dataclass(frozen=True)
class DkimObservation:
    """What one warm-up message said about the domain's DKIM (and where the domain stands)."""

    ok: bool
    code: str  # pass | already_confirmed | not_needed | no_signature | not_aligned | ...
    reason: str
    observed_at: datetime
    selector: str = ""
    signing_domain: str = ""
    authentication_results: list[str] = field(default_factory=list)
    confirmed: bool = False  # the domain's DKIM is confirmed (by this message or an earlier one)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.observed_at.isoformat()
        del data["observed_at"], data["confirmed"]
        return data


@dataclass(frozen=True)
class _Verdict:
    ok: bool
    code: str
    reason: str
    selector: str = ""
    signing_domain: str = ""


def _hint(domain: str, provider: str) -> str:
    return NO_SIGNING_HINT.get(provider, GENERIC_HINT.format(domain=domain))


def _text(value: bytes) -> str:
    return " ".join(value.decode("utf-8", "replace").split())


def authentication_results(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The top-most Authentication-Results: those added above the message's first
    DKIM-Signature (so by the receiving side, not by the sender), at most a few, shortened."""
    found = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"dkim-signature":
            break
        if lowered == b"authentication-results":
            found.append(_text(value)[:AUTH_RESULTS_CHARS])
            if len(found) == AUTH_RESULTS_KEPT:
                break
    return found


def _aligned(signer: str, domain: str) -> bool:
    return bool(signer) and organizational_domain(signer) == organizational_domain(domain)


def _key_func(lookup: DnsLookup, answers: dict[str, list[str]]) -> Callable[..., bytes | None]:
    """dkimpy's `dnsfunc`: the key record through the product's resolver, asked once."""

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        host = name.decode("ascii", "replace").rstrip(".").lower()
        if host not in answers:
            answers[host] = lookup.txt(host)
        keys = [v for v in answers[host] if "p=" in v.replace(" ", "")]
        return keys[0].encode() if keys else None

    return txt


def _verify_one(signer: Any, idx: int, tags: dict[bytes, bytes], lookup: DnsLookup) -> _Verdict:
    selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
    signing_domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower().rstrip(".")
    host = f"{selector}._domainkey.{signing_domain}"
    found = {"selector": selector, "signing_domain": signing_domain}
    key_func = _key_func(lookup, {})
    try:
        key = key_func(host.encode())
    except DnsLookupError as error:
        return _Verdict(
            False,
            "lookup_failed",
            f"We could not look up the key at {host}: {error}. The next warm-up message is "
            "checked again.",
            **found,
        )
    if key is None:
        return _Verdict(
            False,
            "key_missing",
            f"The signature names selector {selector}, but there is no DKIM key at {host}. "
            "Publish the key your provider shows for that selector.",
            **found,
        )
    if not dkim_tags(key.decode()).get("p"):
        return _Verdict(
            False,
            "key_revoked",
            f"The DKIM key at {host} is empty (revoked). Publish your provider's current key.",
            **found,
        )
    try:
        verified = signer.verify(idx=idx, dnsfunc=key_func)
    except DnsLookupError as error:  # dkimpy asked again and the resolver failed this time
        return _Verdict(
            False, "lookup_failed", f"We could not look up the key at {host}: {error}.", **found
        )
    except dkim.ValidationError as error:
        if "body hash mismatch" in str(error):
            return _Verdict(
                False,
                "body_hash_mismatch",
                "The signature did not verify: body hash mismatch. The message body changed "
                "after it was signed (a footer, disclaimer or link rewriting added later): have "
                "your provider sign after such changes, or turn them off for this mailbox.",
                **found,
            )
        return _Verdict(
            False,
            "signature_invalid",
            f"The signature did not verify: {error}.",
            **found,
        )
    except dkim.DKIMException as error:
        return _Verdict(
            False,
            "key_invalid",
            f"The signature could not be checked against the key at {host}: {error}. Publish "
            "the key your provider shows again (a 2048-bit RSA key).",
            **found,
        )
    if verified:
        return _Verdict(True, "pass", f"The DKIM signature of {signing_domain} verified.", **found)
    return _Verdict(
        False,
        "signature_invalid",
        f"The signature did not verify: the signed headers do not match the key at {host}. The "
        "key in DNS may be old or cut short: publish the one your provider shows.",
        **found,
    )


def dkim_message_check(
    raw_message: bytes, *, domain: str, provider: str, lookup: DnsLookup
) -> tuple[_Verdict, list[str]]:
    """Verify the message's aligned DKIM signatures (the first that passes wins), and read the
    receiving server's Authentication-Results."""
    try:
        signer = dkim.DKIM(raw_message)
    except dkim.DKIMException as error:
        return _Verdict(False, "unreadable", f"The message could not be read: {error}."), []
    headers = list(signer.headers)
    results = authentication_results(headers)
    signatures = [value for name, value in headers if name.lower() == b"dkim-signature"]
    if not signatures:
        reason = f"No DKIM-Signature: your provider is not signing {domain}'s mail. "
        return _Verdict(False, "no_signature", reason + _hint(domain, provider)), results
    failures: list[_Verdict] = []
    others: list[str] = []
    for idx, value in enumerate(signatures):
        try:
            tags = parse_tag_value(value)
        except InvalidTagValueList as error:
            failures.append(
                _Verdict(False, "signature_malformed", f"A DKIM-Signature is malformed: {error}.")
            )
            continue
        signing_domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
        if not _aligned(signing_domain.rstrip("."), domain):
            others.append(signing_domain or "(no d=)")
            continue
        verdict = _verify_one(signer, idx, tags, lookup)
        if verdict.ok:
            return verdict, results
        failures.append(verdict)
    if failures:
        return failures[0], results
    signers = ", ".join(sorted(set(others)))
    reason = (
        f"The message was signed by {signers}, not by {domain}: receivers do not count that "
        f"signature for your domain (DMARC alignment). {_hint(domain, provider)}"
    )
    return _Verdict(False, "not_aligned", reason, signing_domain=others[0]), results


def _confirmed(domain: SendingDomain, now: datetime, code: str) -> DkimObservation:
    return DkimObservation(
        ok=True,
        code=code,
        reason=f"DKIM confirmed on {domain.dkim_confirmed_at:%d %b %Y}.",
        observed_at=now,
        selector=domain.dkim_confirmed_selector,
        authentication_results=[
            line for line in domain.dkim_confirmed_auth_results.split("\n") if line
        ],
        confirmed=True,
    )


def domain_dkim_observe(
    *, domain: SendingDomain, raw_message: bytes, now: datetime | None = None
) -> DkimObservation:
    """Check the DKIM of a warm-up message sent by a mailbox of `domain` (raw bytes, as the
    recipient's server stored them). The first pass confirms the domain's DKIM for good; a
    failure is kept as the latest observation, with what to fix. Once confirmed (or for a
    domain the platform signs for), nothing is looked up."""
    now = now or timezone.now()
    current = (
        SendingDomain.objects.filter(pk=domain.pk)
        .only(
            "pk",
            "name",
            "provider",
            "sends_through",
            "dkim_confirmed_at",
            "dkim_confirmed_selector",
            "dkim_confirmed_auth_results",
        )
        .get()
    )
    if current.dkim_confirmed_at is not None:
        return _confirmed(current, now, "already_confirmed")
    if not current.own_servers:
        return DkimObservation(
            ok=True,
            code="not_needed",
            reason="The platform signs this domain's mail; its key is checked in DNS.",
            observed_at=now,
        )
    # DNS is asked outside any transaction; the verdict is applied under a row lock.
    verdict, results = dkim_message_check(
        raw_message, domain=current.name, provider=current.provider, lookup=dns_lookup()
    )
    observation = DkimObservation(
        ok=verdict.ok,
        code=verdict.code,
        reason=verdict.reason,
        observed_at=now,
        selector=verdict.selector,
        signing_domain=verdict.signing_domain,
        authentication_results=results,
    )
    return _observation_apply(domain=current, observation=observation, now=now)


@transaction.atomic
def _observation_apply(
    *, domain: SendingDomain, observation: DkimObservation, now: datetime
) -> DkimObservation:
    locked = SendingDomain.objects.select_for_update().select_related("workspace").get(pk=domain.pk)
    if locked.dkim_confirmed_at is not None or not locked.own_servers:
        # Confirmed meanwhile by another message (first pass wins and stays), or the domain
        # moved to the platform: only a failure is noted, as the latest observation.
        if not observation.ok and locked.own_servers:
            locked.dkim_last_observation = observation.as_dict()
            locked.save(update_fields=["dkim_last_observation"])
        confirmed = locked.dkim_confirmed_at is not None
        return DkimObservation(**{**asdict(observation), "confirmed": confirmed})
    locked.dkim_last_observation = observation.as_dict()
    fields = ["dkim_last_observation"]
    if observation.ok:
        locked.dkim_confirmed_at = now
        locked.dkim_confirmed_selector = observation.selector[:63]
        locked.dkim_confirmed_auth_results = "\n".join(observation.authentication_results)
        fields += ["dkim_confirmed_at", "dkim_confirmed_selector", "dkim_confirmed_auth_results"]
        audit_log_record(
            action="domain.dkim_confirm",
            obj=locked,
            workspace=locked.workspace,
            reason=observation.reason,
            after={"selector": observation.selector, "signing_domain": observation.signing_domain},
        )
    locked.save(update_fields=fields)
    return DkimObservation(**{**asdict(observation), "confirmed": observation.ok})
