"""Shared by the local delivery tests: users of this machine made for a test and removed
after it, and a daemon whose local delivery stays inside the test's directory."""

import os
import pwd
import subprocess
import unittest
from pathlib import Path


def require_root(test: unittest.TestCase) -> None:
    if os.geteuid() != 0:
        test.skipTest("local delivery changes identity: run as root")


class TestUsers:
    """Users made with useradd (homes under `base`), removed with userdel at cleanup."""

    def __init__(self, test: unittest.TestCase, base: Path):
        self.base = base
        self.names: list[str] = []
        test.addCleanup(self.remove)

    def add(self, name: str, shell: str = "/bin/sh") -> pwd.struct_passwd:
        home = self.base / name
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", shell,
                        "--user-group", name], check=True, capture_output=True)
        self.names.append(name)
        pw = pwd.getpwnam(name)
        home.mkdir(mode=0o755)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        return pw

    def remove(self) -> None:
        for name in self.names:
            subprocess.run(["userdel", name], capture_output=True)
        self.names = []


def open_dirs(*paths: Path) -> None:
    """The agents run as the users: the test's directories must let them through."""
    for p in paths:
        p.chmod(0o755)


def mail_dir(workdir: Path) -> Path:
    """/var/mail's shape: world-writable and sticky, so each user makes their own mbox."""
    d = workdir / "mail"
    d.mkdir(exist_ok=True)
    d.chmod(0o1777)
    return d
