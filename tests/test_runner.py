"""Pure-module tests run without PostgreSQL or Redis; the rest say what they need."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_pytest(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_pure_tests_run_without_the_services_and_the_others_say_what_they_need():
    # Both start at once: most of the time is interpreter and Django start-up.
    pure = start_pytest("tests/reputation/test_thresholds.py", "tests/sending/test_domain_rules.py")
    needs_db = start_pytest("tests/sending/test_mailbox_fields.py")
    pure_out, _ = pure.communicate(timeout=120)
    db_out, _ = needs_db.communicate(timeout=120)
    assert pure.returncode == 0, pure_out[-2000:]
    assert " passed" in pure_out
    assert needs_db.returncode == 2, db_out[-2000:]
    assert "need PostgreSQL and Redis" in db_out and "make test" in db_out
