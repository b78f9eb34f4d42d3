"""Post realistic KumoMTA log records for a domain through the real intake endpoint, and the
recipients' opens and replies through the product-events hook."""

import time
import urllib.error
import urllib.parse
from collections.abc import Callable

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.urls import reverse

from config.http import post_json
from reputation.simulator import PERSONAS, simulate_engagement, simulate_records
from sending.models import DomainStatus, SendingDomain

BATCH = 500
EVENTS_BATCH = 1000  # the events hook's limit per request
RETRIES = 5  # answers of 429 (rate limited) waited out before giving up

Post = Callable[[str, bytes], bytes]


class Command(BaseCommand):
    help = (
        "Simulate a domain's traffic: KumoMTA log records posted to /hooks/kumomta/ and the "
        "recipients' opens and replies posted to /hooks/events/."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--domain", required=True, help="Sending domain name")
        parser.add_argument("--persona", required=True, choices=sorted(PERSONAS))
        parser.add_argument("--messages", type=int, default=500)
        parser.add_argument(
            "--url",
            help="Post over HTTP to this hook URL, e.g. http://127.0.0.1:8000/hooks/kumomta/; "
            "opens and replies go to /hooks/events/ on the same server (default: in-process)",
        )
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
        post = self._http() if url else self._in_process()
        hook = url or reverse("kumomta_hook")
        for start in range(0, len(records), BATCH):
            post(hook, orjson.dumps(records[start : start + BATCH]))
        if not url:
            from reputation.services.processing import records_process

            records_process()
        engaged = 0
        if not no_engagement:
            # Engagement goes to the server too: the score it moves is pushed to open pages by
            # the process that recomputes it, and only the server's pushes reach them.
            events_hook = urllib.parse.urljoin(url, reverse("events_hook")) if url else None
            events = [
                {"domain": target.public_id, **event}
                for event in simulate_engagement(records, persona=persona, seed=seed)
            ]
            for start in range(0, len(events), EVENTS_BATCH):
                answer = post(
                    events_hook or reverse("events_hook"),
                    orjson.dumps({"events": events[start : start + EVENTS_BATCH]}),
                )
                engaged += orjson.loads(answer)["recorded"]
        target.refresh_from_db()
        self.stdout.write(
            f"{target.name}: posted {len(records)} records for {messages} messages "
            f"({engaged} opens/replies); score {target.trust_score}, tier {target.tier}"
        )
        if not url and "InMemory" in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
            self.stderr.write(
                "Pages open in a running server hear of this run only with --url "
                "(e.g. --url http://127.0.0.1:8000/hooks/kumomta/)."
            )

    def _in_process(self) -> Post:
        host = next((h for h in settings.ALLOWED_HOSTS if h and not h.startswith(".")), "localhost")
        client = Client(HTTP_HOST=host.replace("*", "localhost"))
        auth = f"Bearer {settings.KUMO_WEBHOOK_TOKEN}"

        def post(path: str, body: bytes) -> bytes:
            attempt = 0
            while True:
                response = client.post(
                    path,
                    body,
                    content_type="application/json",
                    HTTP_AUTHORIZATION=auth,
                    secure=not settings.DEBUG,
                )
                if response.status_code == 200:
                    return response.content
                if response.status_code != 429 or attempt == RETRIES:
                    raise CommandError(
                        f"{path} answered {response.status_code}: {response.content!r}"
                    )
                attempt += 1
                time.sleep(_retry_after(response.headers.get("Retry-After")))

        return post

    def _http(self) -> Post:
        headers = {"Authorization": f"Bearer {settings.KUMO_WEBHOOK_TOKEN}"}

        def post(url: str, body: bytes) -> bytes:
            attempt = 0
            while True:
                try:
                    return post_json(url, body, headers=headers, timeout=30)
                except urllib.error.HTTPError as error:
                    if error.code != 429 or attempt == RETRIES:
                        detail = error.read()[:500]
                        raise CommandError(f"Posting to {url} failed: {error} {detail!r}") from None
                    attempt += 1
                    time.sleep(_retry_after(error.headers.get("Retry-After")))
                except (OSError, ValueError) as error:
                    raise CommandError(f"Posting to {url} failed: {error}") from None

        return post


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.1), 60.0)
    except ValueError:
        return 1.0
