"""Create or update the plans' Products, Prices, portal configuration and webhook in Stripe."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services.catalog import catalog_sync
from config.errors import ApplicationError


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-webhook",
            action="store_true",
            help="Do not create the webhook endpoint (e.g. SITE_URL is not reachable by Stripe).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = catalog_sync(webhook=not options["no_webhook"])
        except ApplicationError as error:
            raise CommandError(error.message) from None
        for line in report.lines():
            self.stdout.write(line)
