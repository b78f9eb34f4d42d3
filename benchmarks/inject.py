"""Outbound benchmark: messages per second reserved (rows committed with their Message-IDs),
rendered and handed to the HTTP injection stand-in, batched (bulk reserve, one claim, one
request per 500 recipients, one booking per batch) against the naive path (one transaction to
reserve, one claim, one request and one booking per message), in the same run. Run with
`make bench`."""

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import free_port, fresh_database  # noqa: E402

FAST_MESSAGES = int(os.environ.get("BENCH_MESSAGES", 20_000))
NAIVE_MESSAGES = FAST_MESSAGES // 20
MAILBOXES = 20


def main() -> None:
    fresh_database("trustgate_bench_inject")
    import logging

    from django.conf import settings

    from accounts.models import User
    from accounts.services import workspace_create
    from sending.models import Mailbox, Message, MessageState, SendingDomain
    from sending.services.outbound import MessageDraft, messages_hand_over, messages_reserve

    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The node runs in a process of its own, as a real MTA would.
    port = free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "config.embedded_mta", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    atexit.register(node.terminate)  # also when the run fails
    settings.KUMO_INJECT_URL = node.stdout.readline().strip()
    settings.OUTBOUND_TRANSPORT = "kumo_http"

    owner = User.objects.create_user(email="bench@bench.test")
    workspace = workspace_create(owner=owner, name="Bench")
    domain = SendingDomain.objects.create(
        workspace=workspace, name="bench-sender.com", status="verified", tier="standard"
    )
    mailboxes = [
        Mailbox.objects.create(domain=domain, local_part=f"rep{i}", connection="platform")
        for i in range(MAILBOXES)
    ]

    def drafts(count: int, prefix: str) -> list[MessageDraft]:
        return [
            MessageDraft(
                mailbox=mailboxes[i % MAILBOXES],
                kind="campaign",
                recipient=f"{prefix}{i}@prospect{i % 50}.test",
                subject=f"Quick question {i}",
                text_body=f"Hi there {i},\n\nA short note about your team.\n\nBest,\nRep\n",
                campaign_ref="cmp_bench",
            )
            for i in range(count)
        ]

    # Warm-up: connections, code paths.
    messages_reserve(drafts=drafts(200, "warm"), enqueue=False)
    messages_hand_over()

    started = time.perf_counter()
    batch = drafts(FAST_MESSAGES, "fast")
    for start in range(0, FAST_MESSAGES, 1000):
        messages_reserve(drafts=batch[start : start + 1000], enqueue=False)
    reserved = time.perf_counter() - started
    sent = 0
    while True:
        summary = messages_hand_over(limit=2000)
        if not summary.claimed:
            break
        sent += summary.sent
    fast = time.perf_counter() - started
    assert sent == FAST_MESSAGES, sent
    fast_rate = FAST_MESSAGES / fast
    print(
        f"batched: {FAST_MESSAGES:,} messages reserved, rendered and injected in {fast:.2f} s "
        f"= {fast_rate:,.0f} messages/s (reserving {reserved:.2f} s, handing over "
        f"{fast - reserved:.2f} s)"
    )

    settings.KUMO_INJECT_BATCH_SIZE = 1
    started = time.perf_counter()
    for one in drafts(NAIVE_MESSAGES, "naive"):
        (message,) = messages_reserve(drafts=[one], enqueue=False)
        messages_hand_over(message_ids=[message.pk])
    naive = time.perf_counter() - started
    naive_rate = NAIVE_MESSAGES / naive
    print(
        f"naive: one transaction and one request per message: {NAIVE_MESSAGES:,} in "
        f"{naive:.2f} s = {naive_rate:,.0f} messages/s"
    )
    handed = Message.objects.filter(state=MessageState.HANDED_OVER).count()
    assert handed == FAST_MESSAGES + NAIVE_MESSAGES + 200, handed
    ratio = fast_rate / naive_rate
    print(f"ratio: {ratio:.1f}x faster")
    met = fast_rate >= 2000 and ratio >= 10
    print(f"target (>= 2,000 messages/s and >= 10x): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
