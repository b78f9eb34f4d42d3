from django.core.management.base import BaseCommand

from accounts.services import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (mailbox passwords, OAuth tokens, DKIM keys, webhook "
        "secrets, two-factor secrets) under the first key of SECRET_ENCRYPTION_KEYS. Run it "
        "after putting a new key first and before dropping the old one."
    )

    def handle(self, *args, **options) -> None:
        for label, count in secrets_reencrypt().items():
            self.stdout.write(f"{label}: {count} re-encrypted")
