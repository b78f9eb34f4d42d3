"""Ingest benchmark: KumoMTA records per second from HTTP intake through to updated scores.

Three figures from one run, on the same records, into PostgreSQL:
- end to end: uvicorn serving /hooks/kumomta/ (batches of 500 posted by 4 client threads), a
  Celery worker processing from the Redis broker, until every record is processed and every
  domain's score is up to date;
- naive: one ORM save per record and per event, the score recomputed from scratch each time;
- raw COPY of the same rows into a bare table: the physical limit of the database.
Run with `make bench` (it provides DATABASE_URL and REDIS_URL). The run drops and recreates the
database `trustgate_bench` on that server (`BENCH_DATABASE` names another).
"""

import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAINS = 20
MESSAGES = 20_000  # about 2 records per message
NAIVE_RECORDS = 1_500
BATCH = 500
TOKEN = "bench-token"
# A throwaway database, dropped and created by each run; BENCH_DATABASE lets two runs on one
# server keep out of each other's way.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "trustgate_bench")


def bench_env() -> dict[str, str]:
    base = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DATABASE_URL": base._replace(path=f"/{BENCH_DATABASE}").geturl(),
        "KUMO_WEBHOOK_TOKEN": TOKEN,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMBEDDED_SCHEDULER": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
    }
    return env


def recreate_database(env: dict[str, str]) -> None:
    import psycopg

    admin = urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres").geturl()
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    env = bench_env()
    os.environ.update(env)
    recreate_database(env)

    import django

    django.setup()
    import orjson
    from django.db import connection

    from accounts.models import User
    from accounts.services import workspace_create
    from reputation.models import Event, PendingRecord
    from reputation.simulator import simulate_records
    from sending.models import DomainStatus, SendingDomain
    from sending.services.domains import domain_create

    owner = User.objects.create_user(email="bench@bench.test", password="x")
    workspace = workspace_create(owner=owner, name="Bench")
    domains = []
    for n in range(DOMAINS):
        domain = domain_create(workspace=workspace, actor=owner, name=f"bench{n}-sender.com")
        SendingDomain.objects.filter(pk=domain.pk).update(
            status=DomainStatus.VERIFIED, verified_at=domain.created_at
        )
        domains.append(domain)
    records = []
    per_domain = MESSAGES // DOMAINS
    for n, domain in enumerate(domains):
        persona = ("good", "average", "reckless", "spammer")[n % 4]
        records += simulate_records(
            tenant=domain.public_id,
            domain=domain.name,
            persona=persona,
            messages=per_domain,
            seed=n,
        )
    records.sort(key=lambda r: r["timestamp"])
    batches = [orjson.dumps(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]
    total = len(records)
    print(f"records: {total:,} ({MESSAGES:,} messages, {DOMAINS} domains), batches of {BATCH}")

    # --- end to end -------------------------------------------------------------------------
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency",
            "2",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING"),
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/hooks/kumomta/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        from config.celery import app

        app.control.purge()
        from django.core.cache import cache

        from reputation.services.intake import PROCESSING_SCHEDULED

        cache.delete(PROCESSING_SCHEDULED)  # a flag left by an earlier run would hold back runs

        def post(body: bytes) -> None:
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(post, batches))
        posted = time.perf_counter() - started
        while PendingRecord.objects.exists():
            if time.perf_counter() - started > 300:
                raise SystemExit("records were not processed within 5 minutes")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        worker.terminate()
        server.wait(timeout=20)
        worker.wait(timeout=20)
    scored = SendingDomain.objects.filter(
        pk__in=[d.pk for d in domains], score_updated_at__isnull=False
    ).count()
    events = Event.objects.count()
    assert scored == DOMAINS, f"only {scored} of {DOMAINS} domains were scored"
    end_to_end = total / elapsed
    print(
        f"end to end (HTTP -> stored -> events -> counters -> scores): {end_to_end:,.0f} "
        f"records/s ({elapsed:.2f} s; intake alone {total / posted:,.0f} records/s; "
        f"{events:,} events)"
    )

    # --- naive ------------------------------------------------------------------------------
    from datetime import UTC, datetime

    from django.db.models import Count, Q

    from reputation.mapping import map_record, record_key
    from reputation.scoring import WindowMetrics, trust_score

    sample = records[:NAIVE_RECORDS]
    by_tenant = {d.public_id: d for d in SendingDomain.objects.all()}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE naive_raw (id bigserial PRIMARY KEY, record_key text UNIQUE, "
            "payload jsonb)"
        )
    started = time.perf_counter()
    for n, record in enumerate(sample):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO naive_raw (record_key, payload) VALUES (%s, %s)",
                [record_key(record), orjson.dumps(record).decode()],
            )
        for i, mapped in enumerate(map_record(record)):
            domain = by_tenant.get(mapped.tenant)
            if domain is None:
                continue
            Event.objects.create(
                domain=domain,
                kind=mapped.kind.value,
                recipient=mapped.recipient,
                message_id=mapped.message_id,
                occurred_at=datetime.fromtimestamp(mapped.occurred_at, tz=UTC),
                source_key=f"naive:{n}:{i}",
            )
            counts = Event.objects.filter(domain=domain).aggregate(
                sent=Count("id", filter=Q(kind="sent")),
                hard=Count("id", filter=Q(kind="bounce_hard")),
                complaints=Count("id", filter=Q(kind="complaint")),
            )
            score = trust_score(
                WindowMetrics(
                    sent=counts["sent"],
                    hard_bounces=counts["hard"],
                    complaints=counts["complaints"],
                ),
                verified=True,
            )
            domain.trust_score = score.value
            domain.save(update_fields=["trust_score"])
    naive = len(sample) / (time.perf_counter() - started)
    print(
        f"naive (ORM save per record, score recomputed from scratch): {naive:,.0f} records/s "
        f"(on the first {len(sample):,} records)"
    )

    # --- raw COPY ---------------------------------------------------------------------------
    rows = [(record_key(r), orjson.dumps(r).decode()) for r in records]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE copy_raw (record_key text, payload jsonb)")
        raw = cursor.connection
        started = time.perf_counter()
        with raw.cursor() as pg, pg.copy("COPY copy_raw (record_key, payload) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        copy_rate = total / (time.perf_counter() - started)
    print(f"raw COPY of the same rows (physical limit): {copy_rate:,.0f} records/s")

    print(f"ratio end to end / naive: {end_to_end / naive:,.1f}x")
    print(
        f"ratio end to end / raw COPY: {end_to_end / copy_rate:.2f} "
        f"({100 * end_to_end / copy_rate:.0f} % of the physical limit)"
    )
    ok = end_to_end >= 10_000 and end_to_end / naive >= 10
    print(f"target (>= 10,000 records/s and >= 10x naive): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
