"""Write the full tenant->pool map and pool definitions to the MTA's Redis, and say what."""

from django.core.management.base import BaseCommand

from reputation.core.pool_map import dkim_key_publish, pool_map_export, pool_map_read
from sending.models import DomainStatus, SendingDomain


class Command(BaseCommand):
    help = "Export the tenant->pool map to Redis for KumoMTA (atomic swap, versioned)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--with-dkim",
            action="store_true",
            help="Also (re)publish every verified domain's DKIM key",
        )

    def handle(self, *args, with_dkim: bool, **options) -> None:
        export = pool_map_export()
        self.stdout.write(
            f"map version {export.version}: {export.tenants} tenants in {export.duration_ms} ms"
        )
        for pool, entries in export.pools.items():
            listed = ", ".join(f"{e['name']}={e['weight']}" for e in entries) or "no sources"
            self.stdout.write(f"  pool {pool}: {listed}")
        if with_dkim:
            domains = SendingDomain.objects.filter(status=DomainStatus.VERIFIED)
            for domain in domains:
                dkim_key_publish(domain=domain)
            self.stdout.write(f"  DKIM keys published for {domains.count()} domains")
        seen = pool_map_read()
        self.stdout.write(
            f"Redis now holds version {seen['version']} with {seen['tenants']} tenants"
        )
