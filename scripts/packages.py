"""Debian packages the project drives, installed with apt-get when missing and apt is usable.

`python scripts/packages.py run` (from `make run`): what the embedded profile starts (Dovecot,
the store of platform mailboxes). When they cannot be installed it says so in one line and
exits 0: the platform starts without them. `scripts/testrun.py` uses the same code for what the
tests drive, and stops when it cannot install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

# Binary (or module) -> the Debian package that provides it.
# The store of platform mailboxes (config/mailstore.py, MAILSTORE_PACKAGES: keep both alike).
MAILSTORE = {
    "/usr/sbin/dovecot": "dovecot-imapd",
    "/usr/lib/dovecot/lmtp": "dovecot-lmtpd",
    "/usr/lib/dovecot/modules/lib90_sieve_plugin.so": "dovecot-sieve",
}
RUN = dict(MAILSTORE)
TEST = {
    "/usr/bin/chromium": "chromium",
    "/usr/bin/luac5.4": "lua5.4",
    **MAILSTORE,
}


class InstallError(Exception):
    """Packages are missing and could not be installed; the message says why."""


def missing(packages: dict[str, str]) -> list[str]:
    """The packages whose file is absent, each once, in the order given."""
    return list(dict.fromkeys(pkg for path, pkg in packages.items() if not os.path.exists(path)))


_apt_updated = False


def apt_install(*packages: str, say: Callable[[str], None] = print) -> None:
    """apt-get install the packages (once after an apt-get update); raises InstallError."""
    global _apt_updated
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise InstallError(
            f"{' '.join(packages)} missing and apt-get is not usable here (it needs root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing {' '.join(packages)} with apt-get")
    if not _apt_updated:
        subprocess.run(
            ["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL
        )
        _apt_updated = True
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise InstallError(
            f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-300:]}"
        )


def ensure(packages: dict[str, str], say: Callable[[str], None] = print) -> None:
    """Install whichever of `packages` is missing; raises InstallError."""
    needed = missing(packages)
    if needed:
        apt_install(*needed, say=say)


def main(argv: list[str]) -> int:
    if argv != ["run"]:
        print("usage: python scripts/packages.py run", file=sys.stderr)
        return 2

    def say(message: str) -> None:
        print(f"[make run] {message}", flush=True)

    try:
        ensure(RUN, say)
    except InstallError as error:
        say(
            f"{error}: platform mailboxes get no inbox (their mail goes to var/outbox/, the "
            "engagement agent skips them); starting anyway."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
