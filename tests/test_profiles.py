"""The two profiles: production settings pass `check --deploy`; the embedded profile boots."""

import base64
import http.cookiejar
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="app.example.com",
        SECRET_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        KUMO_WEBHOOK_TOKEN=secrets.token_urlsafe(32),
        **extra,
    )
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def embedded_env(var_dir: Path) -> dict[str, str]:
    drop = ("DATABASE_URL", "REDIS_URL", "CELERY_", "EMBEDDED_", "DJANGO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["VAR_DIR"] = str(var_dir)
    return env


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the embedded server did not start")


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("embedded")
    env = embedded_env(var_dir)
    for args in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", var_dir
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/admin/login/"])
def test_the_embedded_profile_boots_on_sqlite_and_answers(embedded_server, path):
    base, var_dir = embedded_server
    with urllib.request.urlopen(base + path, timeout=10) as response:
        assert response.status == 200
    assert (var_dir / "db.sqlite3").exists()


def test_the_embedded_profile_runs_the_periodic_schedule_in_process(embedded_server):
    base, _ = embedded_server
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/accounts/login/", timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf,
            "login": "ops@demo.trustgate.test",
            "password": "demo-password-1",
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        base + "/accounts/login/", data=form, headers={"Referer": base + "/accounts/login/"}
    )
    admin_page = opener.open(request, timeout=10).read().decode()
    assert "Operations console" in admin_page
    assert "last heartbeat 20" in admin_page  # the heartbeat task ran in the web process
