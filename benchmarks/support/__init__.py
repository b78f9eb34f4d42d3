"""What the benchmark scripts share (a package: `make bench` runs only benchmarks/*.py)."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


def fresh_database(name: str, *, redis_prefix: str = "bench:kumo:") -> None:
    """Point this process at a new, migrated database `name` on DATABASE_URL's server (dropped
    and created again by each run), then set Django up."""
    import psycopg

    base = urlsplit(os.environ["DATABASE_URL"])
    os.environ["DATABASE_URL"] = base._replace(path=f"/{name}").geturl()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["KUMO_REDIS_PREFIX"] = redis_prefix
    admin = base._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
