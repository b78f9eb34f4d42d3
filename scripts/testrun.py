"""`make test` / `make bench`: make sure the real services exist, then run the checks.

PostgreSQL and Redis: use DATABASE_URL / REDIS_URL when set; otherwise the local servers on
their standard ports; otherwise throwaway servers started from the installed binaries in a temp
dir (installed with apt when missing and apt is usable). Debian packages the tests need
(Chromium, ...) are installed the same way. Then: ruff, lint-imports, mypy, makemigrations
--check, pytest. Arguments go to pytest and skip the static checks (a quick subset).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import packages

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/trustgate"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Binary the tests run -> the Debian package that provides it (scripts/packages.py).
APT_PACKAGES = packages.TEST


def say(message: str) -> None:
    print(f"[make test] {message}", flush=True)


def stop(message: str) -> NoReturn:
    print(f"make test: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def apt_install(*names: str) -> None:
    try:
        packages.apt_install(*names, say=say)
    except packages.InstallError as error:
        stop(f"{error}; install it first.")


def ensure_packages() -> None:
    try:
        packages.ensure(APT_PACKAGES, say=say)
    except packages.InstallError as error:
        stop(f"{error}; install it first.")


class Throwaway:
    """Servers started for this run only; stopped at the end."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="tg-services-"))
        self.procs: list[subprocess.Popen] = []
        self.pg_data: Path | None = None
        self.pg_ctl: str | None = None

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: drop to the Debian `postgres` user.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def postgres(self) -> str:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if not initdb:
            apt_install("postgresql")
            bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
            initdb = bins[-1] if bins else None
        if not initdb:
            stop("no PostgreSQL server binaries found (initdb).")
        assert initdb
        bindir = Path(initdb).parent
        self.pg_data = self.tmp / "pg"
        self.pg_data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(self.pg_data, "postgres")
        port = free_port()
        subprocess.run(
            self._as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.pg_data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.pg_ctl = str(bindir / "pg_ctl")
        subprocess.run(
            self._as_postgres(
                [
                    self.pg_ctl,
                    "-D",
                    str(self.pg_data),
                    "-w",
                    "-l",
                    str(self.pg_data / "log"),
                    "-o",
                    f"-p {port} -k {self.pg_data} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        say(f"started a throwaway PostgreSQL on port {port}")
        return f"postgres://postgres@127.0.0.1:{port}/trustgate"

    def redis(self) -> str:
        binary = shutil.which("redis-server")
        if not binary:
            apt_install("redis-server")
            binary = shutil.which("redis-server")
        if not binary:
            stop("redis-server is missing.")
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.tmp),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        for _ in range(100):
            if port_open("127.0.0.1", port):
                break
            time.sleep(0.05)
        say(f"started a throwaway Redis on port {port}")
        return f"redis://127.0.0.1:{port}/15"

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        if self.pg_ctl and self.pg_data:
            subprocess.run(
                self._as_postgres([self.pg_ctl, "-D", str(self.pg_data), "-m", "fast", "stop"]),
                stdout=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(self.tmp, ignore_errors=True)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 0)


def ensure_database(url: str) -> None:
    """Create the (empty) main database so Django does not fall back with a warning."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def service_url(variable: str, default: str, start: Callable[[], str]) -> str:
    """The URL from the environment (which must answer), else the local default, else a
    throwaway server (also with TESTRUN_THROWAWAY=1, to exercise that path)."""
    url = os.environ.get(variable)
    if url:
        if not reachable(url):
            stop(f"{variable} is set but {urlsplit(url).netloc} does not answer.")
        return url
    if os.environ.get("TESTRUN_THROWAWAY") == "1" or not reachable(default):
        return start()
    return default


def run(cmd: list[str], env: dict) -> int:
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def static_checks(env: dict) -> bool:
    """ruff, the import layers, types and migrations; False (after saying why) on a failure."""
    say("ruff")
    if run([str(VENV_BIN / "ruff"), "check", "--quiet", "."], env):
        return False
    if run([str(VENV_BIN / "ruff"), "format", "--check", "--quiet", "."], env):
        return False
    say("import layers (lint-imports)")
    if run([str(VENV_BIN / "lint-imports"), "--no-cache"], env):
        return False
    say("types (mypy)")
    if run([str(VENV_BIN / "mypy")], env):
        return False
    say("makemigrations --check")
    if run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run", "-v0"], env):
        stop("models changed without a migration.")
    return True


def main() -> int:
    bench = "--bench" in sys.argv
    args = [arg for arg in sys.argv[1:] if arg != "--bench"]
    ensure_packages()
    services = Throwaway()
    try:
        database_url = service_url("DATABASE_URL", DEFAULT_DATABASE_URL, services.postgres)
        redis_url = service_url("REDIS_URL", DEFAULT_REDIS_URL, services.redis)
        ensure_database(database_url)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "EMBEDDED_SCHEDULER": "false",
            "DATABASE_CONN_MAX_AGE": "0",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if bench:
            status = 0
            for script in sorted((ROOT / "benchmarks").glob("*.py")):
                say(f"benchmark {script.name}")
                status |= run([sys.executable, str(script)], env)
            return status
        # A subset (`make test ARGS="tests/reputation -k scoring"`) runs only those tests.
        if not args and not static_checks(env):
            return 1
        say(
            f"pytest on PostgreSQL ({urlsplit(database_url).netloc}) and Redis "
            f"({urlsplit(redis_url).netloc})"
        )
        return run([sys.executable, "-m", "pytest", *args], env)
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
