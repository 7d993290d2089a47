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
        self.test = test
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
        # The daemons first (their own cleanup comes later): an idle local delivery agent
        # runs as its user until the daemon lets it go, and userdel refuses a user in use.
        for d in getattr(self.test, "_daemons", []):
            d.stop()
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


# --------------------------------------------------------------------------- test case
# (added for test_local_forward.py and test_local_faults.py)

import mailbox  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

from delivery_support import DeliveryTestCase  # noqa: E402


def unique_users(prefix: str) -> tuple[str, str, str]:
    """Three login names for one test process: the same test file may run in several build
    directories at once, and users are global to the machine."""
    tag = f"{prefix}{os.getpid() % 100000:05d}"
    return f"{tag}alice", f"{tag}bob", f"{tag}carol"


def read_mbox(path: Path) -> list:
    """The messages of an mbox file ([] when there is none), the file closed again."""
    if not path.exists():
        return []
    box = mailbox.mbox(str(path), create=False)
    try:
        return list(box)
    finally:
        box.close()


def write_script(path: Path, body: str) -> Path:
    """An executable /bin/sh script that anyone may run (the agents run as the users)."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class MailboxWaits:
    """The mbox of `user` under a daemon's test directory, read back and waited for."""

    def mbox_path(self, d, user: str) -> Path:
        return d.workdir / "mail" / user

    def mbox(self, d, user: str) -> list:
        return read_mbox(self.mbox_path(d, user))

    def wait_mbox(self, d, user: str, n: int = 1, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.mbox(d, user)
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                self.fail(f"{user}'s mbox has {len(msgs)} messages, not {n}:\n{d.log_tail()}")
            time.sleep(0.05)


class LocalCase(MailboxWaits, DeliveryTestCase):
    """A root daemon with the test users USERS (homes under self.tmp/home; a subclass names
    its own with unique_users), mboxes in its own mail directory, a 1777 directory self.files
    for what programs write, and a sink for remote.test (mailertable) when asked."""

    USERS = unique_users("rml")

    def setUp(self):
        super().setUp()
        require_root(self)
        open_dirs(self.tmp)
        (self.tmp / "home").mkdir(mode=0o755)
        self.users = TestUsers(self, self.tmp / "home")
        self.pw = {u: self.users.add(u) for u in self.USERS}
        self.files = self.tmp / "files"
        self.files.mkdir()
        self.files.chmod(0o1777)
        self.remote = None

    def remote_sink(self, **kw):
        """A sink at 127.0.0.2 that the mailertable sends remote.test to."""
        self.remote = self.sink("127.0.0.2", **kw)
        return self.remote

    def local_daemon(self, aliases: str | None = None, virtusers: str | None = None,
                     start: bool = True, **overrides):
        work = self.tmp / f"d{len(self._daemons)}"
        work.mkdir()
        open_dirs(work)
        mail_dir(work)
        cfg = {"routing": {"luser_relay": None}}
        maps = dict(overrides.pop("maps", {}))
        if aliases is not None:
            (work / "aliases").write_text(aliases)
            maps["aliases"] = [str(work / "aliases")]
        if virtusers is not None:
            (work / "virtusertable").write_text(virtusers)
            maps["virtusertable"] = str(work / "virtusertable")
        if self.remote is not None:
            (work / "mailertable").write_text(
                f"remote.test esmtp:[{self.remote.addr}]:{self.remote.port}\n")
            maps["mailertable"] = str(work / "mailertable")
        if maps:
            cfg["maps"] = maps
        for k, v in overrides.items():
            cfg[k] = dict(cfg.get(k, {}), **v) if isinstance(v, dict) else v
        return self.daemon(workdir=work, start=start, **cfg)

    def home(self, user: str) -> Path:
        return Path(self.pw[user].pw_dir)

    def user_file(self, user: str, name: str, text: str, mode: int = 0o644,
                  owner: str | None = None) -> Path:
        """A file in `user`'s home, owned by `owner` (default: the user) with `mode`."""
        p = self.home(user) / name
        p.write_text(text)
        pw = self.pw[owner or user]
        os.chown(p, pw.pw_uid, pw.pw_gid)
        p.chmod(mode)
        return p

    def wait_file(self, path: Path, pred=lambda data: bool(data), timeout: float = 20.0,
                  d=None) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            data = path.read_bytes() if path.exists() else b""
            if pred(data):
                return data
            if time.monotonic() > deadline:
                self.fail(f"{path}: {data[:300]!r}\n{d.log_tail() if d else ''}")
            time.sleep(0.05)

    @staticmethod
    def engine_pid(d) -> int:
        """The engine's pid from its start-up line: Daemon.engine_pid waits until the parent
        has one child, and a local delivery agent is a child of the parent too."""
        m = re.search(r"ringmaild\[(\d+)\]: engine running as", d.log(since_start=True))
        if not m:
            raise AssertionError(f"no engine start-up line:\n{d.log_tail()}")
        return int(m.group(1))

    def sent_line(self, d, qid: str, rcpt: str, timeout: float = 20.0):
        """sendmail's stat=Sent line for one recipient of `qid`; an aliases file's program
        or file is named as sendmail does ("|prog", /file)."""
        to = (f'"{re.escape(rcpt)}"' if rcpt.startswith("|") else
              re.escape(rcpt) if rcpt.startswith("/") else f"<{re.escape(rcpt)}>")
        return self.wait_log(d, rf"{qid}: to={to}, .*stat=Sent", timeout)
