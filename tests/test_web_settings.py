"""Database connection settings of the services profile, as a fresh process reads them."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Variables the test runner or a shell may set that would hide the defaults.
OVERRIDES = ("DATABASE_CONN_MAX_AGE", "DATABASE_CONNECT_TIMEOUT", "DJANGO_SETTINGS_MODULE")


def database_settings(**env: str) -> dict:
    """DATABASES["default"] of config.settings imported in a process with `env` on top of a
    services-profile environment."""
    base = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    base.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trustgate")
    base.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    code = (
        "import json, config.settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_it_keeps_no_persistent_connections_by_default_and_checks_their_health():
    database = database_settings()
    # Under ASGI a kept connection is never reused; each request opens and closes its own.
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is True
    # A database that accepts connections but never answers fails the request in seconds.
    assert database["OPTIONS"]["connect_timeout"] == 5


def test_the_environment_can_still_choose_persistent_connections_and_timeouts():
    database = database_settings(
        DATABASE_CONN_MAX_AGE="60",
        DATABASE_CONNECT_TIMEOUT="3",
        DATABASE_DISABLE_SERVER_SIDE_CURSORS="true",
    )
    assert database["CONN_MAX_AGE"] == 60
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["OPTIONS"]["connect_timeout"] == 3
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True  # behind PgBouncer's transaction mode
