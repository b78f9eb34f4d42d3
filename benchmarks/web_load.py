"""Web load benchmark: 20 signed-in users on their dashboards at once, under uvicorn (ASGI).

The same load twice, against a scratch database, one uvicorn process each time:
- default: the settings as shipped (no persistent connections: DATABASE_CONN_MAX_AGE=0);
- naive baseline: persistent connections (DATABASE_CONN_MAX_AGE=60, the former default). Under
  ASGI every request runs in its own async context, so a kept connection is never reused: it
  stays open, idle, until the garbage collector finds it, and the server runs out of
  connections.
The database role the web process uses gets a connection limit (CONNECTION LIMIT, 40 here) that
stands in for the server's max_connections: the baseline then fails the way production did
("too many clients already"; here "too many connections for role") without exhausting a
PostgreSQL that others share. Printed: p50/p95 latency, errors, the most connections open at
once and those still open after the load. Run with `make bench` (it provides DATABASE_URL and
REDIS_URL).
"""

import math
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "trustgate_bench_web"
ROLE = "trustgate_bench_web"
ROLE_CONNECTION_LIMIT = 40
USERS = 20
REQUESTS_PER_USER = 30
PHASE_SECONDS = 90  # a phase stops early at this bound, whatever is left
PASSWORD = "bench-password-1"


# The server's maintenance database as the operator (DATABASE_URL is the scratch role's later).
ADMIN_URL = (
    urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    ._replace(path="/postgres")
    .geturl()
    .replace("postgres://", "postgresql://", 1)
)


def bench_env() -> dict[str, str]:
    base = urlsplit(os.environ["DATABASE_URL"])
    host = base.hostname or "127.0.0.1"
    netloc = f"{ROLE}@{host}:{base.port or 5432}"
    return {
        **os.environ,
        "DATABASE_URL": base._replace(netloc=netloc, path=f"/{DATABASE}").geturl(),
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "EMBEDDED_SCHEDULER": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "ERROR",
    }


def recreate_database(env: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [ROLE]).fetchone():
            conn.execute(f"CREATE ROLE {ROLE} LOGIN")
        # Not a superuser: the limit applies (superusers are exempt).
        conn.execute(f"ALTER ROLE {ROLE} NOSUPERUSER CONNECTION LIMIT {ROLE_CONNECTION_LIMIT}")
        conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def role_connections() -> int:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [ROLE]
        ).fetchone()
        return int(row[0]) if row else 0


def seed() -> list[str]:
    """USERS users, each owning a workspace with a few domains; their sign-in emails."""
    import django

    django.setup()
    from allauth.account.models import EmailAddress

    from accounts.models import User
    from accounts.services import workspace_create
    from sending.services.domains import domain_create

    emails = []
    for n in range(USERS):
        email = f"user{n}@bench.test"
        user = User.objects.create_user(email=email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        workspace = workspace_create(owner=user, name=f"Bench {n}")
        for d in range(3):
            domain_create(workspace=workspace, actor=user, name=f"bench{n}-{d}-sender.com")
        emails.append(email)
    from django.db import connection

    connection.close()
    return emails


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One signed-in user: a cookie jar and the dashboard it lands on."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.dashboard = ""

    def sign_in(self, email: str) -> None:
        self.opener.open(f"{self.base}/accounts/login/", timeout=30).read()
        csrf = next(c.value for c in self.jar if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": csrf, "login": email, "password": PASSWORD}
        ).encode()
        with self.opener.open(f"{self.base}/accounts/login/", data=form, timeout=30) as page:
            page.read()
            landed = urlsplit(page.geturl()).path
        if not landed.startswith("/w/"):
            raise SystemExit(f"{email} did not reach a dashboard after signing in ({landed})")
        self.dashboard = f"{self.base}{landed}"


def run_phase(label: str, conn_max_age: int, emails: list[str], env: dict[str, str]) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    phase_env = {
        **env,
        "DATABASE_CONN_MAX_AGE": str(conn_max_age),
        # Fresh rate-limit counters (allauth counts sign-ins per address in the cache).
        "CACHE_KEY_PREFIX": f"bench-web-{label}-{time.time_ns()}",
    }
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
            "critical",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=phase_env,
        stderr=subprocess.DEVNULL,
    )
    latencies: list[float] = []
    errors: list[str] = []
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, role_connections())
            stop.wait(0.2)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        browsers = [Browser(base) for _ in emails]
        for browser, email in zip(browsers, emails, strict=True):
            browser.sign_in(email)

        lock = threading.Lock()
        ends_at = time.monotonic() + PHASE_SECONDS
        start = threading.Barrier(len(browsers))

        def user(browser: Browser) -> None:
            start.wait()
            for _ in range(REQUESTS_PER_USER):
                if time.monotonic() > ends_at:
                    return
                began = time.perf_counter()
                try:
                    with browser.opener.open(browser.dashboard, timeout=30) as page:
                        page.read()
                        ok = page.status == 200
                        why = str(page.status)
                except urllib.error.HTTPError as error:
                    ok, why = False, str(error.code)
                except OSError as error:
                    ok, why = False, type(error).__name__
                elapsed = time.perf_counter() - began
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors.append(why)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        threads = [threading.Thread(target=user, args=(b,)) for b in browsers]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        time.sleep(2)  # the load is over: what is still open is held idle
        held = role_connections()
        stop.set()
        watcher.join()
    finally:
        server.terminate()
        server.wait(timeout=20)
    latencies.sort()  # of the pages served: an error page comes back fast and would flatter
    answered = len(latencies) + len(errors)
    result = {
        "label": label,
        "requests": answered,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50": statistics.median(latencies) * 1000 if latencies else math.nan,
        "p95": latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000 if latencies else math.nan,
        "rps": len(latencies) / wall,  # dashboards served per second
        "peak": peak,
        "held": held,
    }
    kinds = f" ({', '.join(result['error_kinds'])})" if errors else ""
    print(
        f"{label} (DATABASE_CONN_MAX_AGE={conn_max_age}): {result['requests']} requests, "
        f"{result['errors']} errors{kinds} ({100 * result['errors'] / result['requests']:.1f} %), "
        f"dashboards served: p50 {result['p50']:.0f} ms, p95 {result['p95']:.0f} ms, "
        f"{result['rps']:.0f}/s; "
        f"connections at most {peak} at once, {held} still open 2 s after the load"
    )
    return result


def main() -> None:
    env = bench_env()
    recreate_database(env)
    os.environ.update(env)
    emails = seed()
    print(
        f"{USERS} signed-in users, {REQUESTS_PER_USER} dashboard loads each, all at once; "
        f"one uvicorn process; database role limited to {ROLE_CONNECTION_LIMIT} connections"
    )
    naive = run_phase("naive baseline", 60, emails, env)
    default = run_phase("default", 0, emails, env)
    print(
        f"ratio default / naive: errors {default['errors']} vs {naive['errors']}; "
        f"p95 {default['p95'] / naive['p95']:.2f}x; "
        f"dashboards served per second {default['rps'] / naive['rps']:.2f}x; "
        f"connections held after the load {default['held']} vs {naive['held']}"
    )
    ok = default["errors"] == 0
    print(f"target (0 errors with {USERS} concurrent users): {'met' if ok else 'NOT met'}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
