"""Print a day's warm-up plan: one line per message (sender, recipient, cluster, send time)."""

import json
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from warming.services import warming_day_plan


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", help="The day to plan, YYYY-MM-DD (default: today).")
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")
        parser.add_argument("--seed", type=int, help="Randomness seed (default: from the date).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            day = date.fromisoformat(options["date"]) if options["date"] else timezone.localdate()
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, not {options['date']!r}.") from None
        plan, network = warming_day_plan(day=day, seed=options["seed"])
        address = network.addresses
        for row in plan.rows():
            send_at = row.send_at.isoformat() if row.send_at else None
            if options["json"]:
                line = {
                    "sender": address[row.sender],
                    "recipient": address[row.recipient],
                    "cluster": row.cluster,
                    "send_at": send_at,
                }
                self.stdout.write(json.dumps(line))
            else:
                self.stdout.write(
                    f"{send_at}  {row.cluster:<8} {address[row.sender]} -> {address[row.recipient]}"
                )
        for missing in plan.unplaced:
            self.stderr.write(
                f"unplaced: {address[missing.sender]}: {missing.count} ({missing.reason})"
            )
