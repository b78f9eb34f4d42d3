"""Post realistic KumoMTA log records for a domain through the real intake endpoint."""

import random

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import Client

from config.http import post_json
from reputation.core.scores import scores_recompute
from reputation.services.events import event_record
from reputation.simulator import PERSONAS, simulate_records
from sending.models import DomainStatus, SendingDomain

# Engagement the recipients show (opens and replies are observed by the product, not the MTA).
ENGAGEMENT = {
    "good": (0.60, 0.22),
    "average": (0.50, 0.15),
    "reckless": (0.20, 0.02),
    "spammer": (0.10, 0.0),
}
BATCH = 500


class Command(BaseCommand):
    help = "Simulate a domain's traffic as KumoMTA log records posted to /hooks/kumomta/."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--domain", required=True, help="Sending domain name")
        parser.add_argument("--persona", required=True, choices=sorted(PERSONAS))
        parser.add_argument("--messages", type=int, default=500)
        parser.add_argument("--url", help="Post over HTTP to this hook URL (default: in-process)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--no-engagement",
            action="store_true",
            help="Do not record opens and replies for delivered mail",
        )

    def handle(
        self,
        *args,
        domain: str,
        persona: str,
        messages: int,
        url: str | None,
        seed: int | None,
        no_engagement: bool,
        **options,
    ) -> None:
        target = (
            SendingDomain.objects.filter(name=domain.lower())
            .exclude(status=DomainStatus.RETIRED)
            .first()
        )
        if target is None:
            raise CommandError(f"No sending domain {domain}.")
        if not 1 <= messages <= 1_000_000:
            raise CommandError("--messages must be between 1 and 1,000,000.")
        mailboxes = [m.address for m in target.mailboxes.select_related("domain")]
        records = simulate_records(
            tenant=target.public_id,
            domain=target.name,
            persona=persona,
            messages=messages,
            seed=seed,
            mailboxes=mailboxes or None,
        )
        post = self._http(url) if url else self._in_process()
        for start in range(0, len(records), BATCH):
            post(orjson.dumps(records[start : start + BATCH]))
        if not url:
            from reputation.services.processing import records_process

            records_process()
        engaged = 0 if no_engagement else self._engage(target, records, persona, seed)
        target.refresh_from_db()
        self.stdout.write(
            f"{target.name}: posted {len(records)} records for {messages} messages "
            f"({engaged} opens/replies); score {target.trust_score}, tier {target.tier}"
        )

    def _in_process(self):
        host = next((h for h in settings.ALLOWED_HOSTS if h and not h.startswith(".")), "localhost")
        client = Client(HTTP_HOST=host.replace("*", "localhost"))
        auth = f"Bearer {settings.KUMO_WEBHOOK_TOKEN}"

        def post(body: bytes) -> None:
            response = client.post(
                "/hooks/kumomta/",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=auth,
                secure=not settings.DEBUG,
            )
            if response.status_code != 200:
                raise CommandError(
                    f"The hook answered {response.status_code}: {response.content!r}"
                )

        return post

    def _http(self, url: str):
        def post(body: bytes) -> None:
            headers = {"Authorization": f"Bearer {settings.KUMO_WEBHOOK_TOKEN}"}
            try:
                post_json(url, body, headers=headers, timeout=30)
            except (OSError, ValueError) as error:
                raise CommandError(f"Posting to {url} failed: {error}") from None

        return post

    def _engage(
        self, domain: SendingDomain, records: list[dict], persona: str, seed: int | None
    ) -> int:
        open_rate, reply_rate = ENGAGEMENT[persona]
        rng = random.Random(seed)
        recorded = 0
        for record in records:
            if record.get("type") != "Delivery":
                continue
            recipient = record.get("recipient")
            recipient = recipient[0] if isinstance(recipient, list) else recipient or ""
            message_id = record.get("id", "")
            for kind, rate in (("opened", open_rate), ("replied", reply_rate)):
                if rng.random() < rate and event_record(
                    domain=domain,
                    kind=kind,
                    source_key=f"sim:{message_id}:{kind}",
                    recipient=recipient,
                    message_id=message_id,
                    rescore=False,
                ):
                    recorded += 1
        scores_recompute(domain_ids=[domain.pk])
        return recorded
