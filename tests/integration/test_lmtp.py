"""The lmtp mailer end to end: a mailertable entry `example.com lmtp:unix:/path` sends the
domain's mail over LMTP (RFC 2033) to a unix socket.

- an aiosmtpd LMTP server (aiosmtpd.lmtp.LMTP) on a unix socket answers the data of three
  recipients one reply each, 452 for one of them: that one is deferred and delivered on the
  retry, the other two are delivered once (never again on the retry); a second message
  reuses the idle connection (one LHLO for both); a socket nobody listens on defers; the
  same server over TCP (lmtp:[127.0.0.2]:port).
- Debian's dovecot-lmtpd (/usr/sbin/dovecot, run in the foreground as root with a private
  base_dir and configuration under the test's directory, users from a passwd-file) stores
  the messages in the users' Maildirs, read back with Python's mailbox module; an unknown
  user is refused at RCPT (550 5.1.1) and bounced. Skipped without dovecot or root.
"""

from __future__ import annotations

import mailbox
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest
from pathlib import Path

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP

from delivery_support import FAST_QUEUE, DeliveryTestCase
from local_support import TestUsers, require_root
from ringmail_harness import HOSTNAME

DOVECOT = "/usr/sbin/dovecot"


class LmtpHandler:
    """Records what arrives; answers the data one reply per recipient (RFC 2033 4.2), 452
    the first time for each address in `full_once`."""

    def __init__(self, full_once: set[str] | None = None):
        self.full_once = set(full_once or ())
        self.lock = threading.Lock()
        self.lhlo = 0
        self.delivered: list[tuple[str, bytes]] = []  # (recipient, message)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.lhlo += 1  # LMTP.smtp_LHLO goes through EHLO's hook
        session.host_name = hostname  # aiosmtpd leaves it to a hook that takes `responses`
        return responses

    async def handle_DATA(self, server, session, envelope):
        replies = []
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                if rcpt in self.full_once:
                    self.full_once.discard(rcpt)
                    replies.append(f"452 4.2.2 <{rcpt}> Mailbox full")
                else:
                    self.delivered.append((rcpt, envelope.content))
                    replies.append(f"250 2.0.0 <{rcpt}> Saved")
        return "\r\n".join(replies)

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if pred():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"LMTP server: {what}; delivered "
                                     f"{[r for r, _ in self.delivered]}")
            time.sleep(0.05)


class LmtpController(UnixSocketController):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class LmtpTcpController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class LmtpAiosmtpd(DeliveryTestCase):

    def lmtp_server(self, handler: LmtpHandler) -> str:
        return self.lmtp_server_at(handler, str(self.tmp / "lmtp"))

    def lmtp_server_at(self, handler: LmtpHandler, path: str) -> str:
        ctl = LmtpController(handler, unix_socket=path)
        ctl.start()
        self.addCleanup(ctl.stop)
        return path

    def lmtp_daemon(self, path: str, **overrides):
        mt = self.tmp / "mailertable"
        mt.write_text(f"example.com lmtp:unix:{path}\n")
        return self.daemon(maps={"mailertable": str(mt)}, **overrides)

    def test_one_reply_per_recipient(self):
        handler = LmtpHandler(full_once={"b@example.com"})
        path = self.lmtp_server(handler)
        d = self.lmtp_daemon(path, queue=FAST_QUEUE)
        rcpts = ["a@example.com", "b@example.com", "c@example.com"]
        qid = self.send(d, "alice@client.test", rcpts, subject="lmtp three")
        relay = rf"relay=localhost\. \[{re.escape(path)}\]"
        for r in ("a@example.com", "c@example.com"):
            self.wait_log(d, rf"{qid}: to=<{re.escape(r)}>, .*mailer=lmtp, .*{relay}, "
                             rf"dsn=2\.0\.0, stat=Sent \(<{re.escape(r)}> Saved\)$")
        self.wait_log(d, rf"{qid}: to=<b@example\.com>, .*mailer=lmtp, .*dsn=4\.2\.2, "
                         rf"stat=Deferred: 452 4\.2\.2 <b@example\.com> Mailbox full$")
        # the retry delivers b alone: a and c had their 250 and are never sent again
        self.wait_log(d, rf"{qid}: to=<b@example\.com>, .*stat=Sent", timeout=30)
        self.wait_spool_empty(d)
        got = sorted(r for r, _ in handler.delivered)
        self.assertEqual(got, rcpts)
        self.assertIn(b"Subject: lmtp three", handler.delivered[0][1])

    def test_connection_reused(self):
        """Two messages one after the other: one LMTP session (one LHLO) carries both."""
        handler = LmtpHandler()
        path = self.lmtp_server(handler)
        d = self.lmtp_daemon(path, workers=1)
        q1 = self.send(d, "alice@client.test", ["a@example.com"], subject="first")
        self.wait_log(d, rf"{q1}: to=<a@example\.com>, .*stat=Sent")
        q2 = self.send(d, "alice@client.test", ["b@example.com"], subject="second")
        self.wait_log(d, rf"{q2}: to=<b@example\.com>, .*stat=Sent")
        self.assertEqual(handler.lhlo, 1, "the second message took a new connection")
        self.assertEqual([r for r, _ in handler.delivered], ["a@example.com", "b@example.com"])

    def test_tcp(self):
        """lmtp:[host]:port: the same over TCP, to that address without an MX lookup."""
        handler = LmtpHandler(full_once={"b@example.com"})
        with socket.socket() as probe:  # aiosmtpd's start() connects: it needs the port
            probe.bind(("127.0.0.2", 0))
            port = probe.getsockname()[1]
        ctl = LmtpTcpController(handler, hostname="127.0.0.2", port=port)
        ctl.start()
        self.addCleanup(ctl.stop)
        mt = self.tmp / "mailertable"
        mt.write_text(f"example.com lmtp:[127.0.0.2]:{port}\n")
        d = self.daemon(maps={"mailertable": str(mt)})
        qid = self.send(d, "alice@client.test", ["a@example.com", "b@example.com"])
        self.wait_log(d, rf"{qid}: to=<a@example\.com>, .*mailer=lmtp, "
                         rf"pri=\d+, relay=127\.0\.0\.2\. \[127\.0\.0\.2\], dsn=2\.0\.0, stat=Sent")
        self.wait_log(d, rf"{qid}: to=<b@example\.com>, .*dsn=4\.2\.2, stat=Deferred: 452")
        self.assertEqual([r for r, _ in handler.delivered], ["a@example.com"])

    def test_no_server(self):
        """Nobody on the socket: deferred with the reason, as a refused connection is."""
        path = str(self.tmp / "nobody-here")
        d = self.lmtp_daemon(path)
        qid = self.send(d, "alice@client.test", ["a@example.com"])
        self.wait_log(d, rf"{qid}: to=<a@example\.com>, .*mailer=lmtp, .*dsn=4\.4\.1, "
                         rf"stat=Deferred: No such file or directory with {re.escape(path)}\.$")
        self.assertIn(qid, d.spool.qids())

    def test_listen_queue_full(self):
        """The server's listen queue is full (connect() on its socket fails with EAGAIN,
        as with a busy Dovecot): tried again within seconds, not deferred as a host that is
        down (no 4.4.1, no cached host status holding it back for the retry interval)."""
        path = str(self.tmp / "busy")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(0)
        fillers = []  # connections nobody accepts, until the queue is full
        while True:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break
            fillers.append(c)
            self.assertLess(len(fillers), 64, "the listen queue never filled")
        d = self.lmtp_daemon(path)  # the default schedule: a deferral waits 5 minutes
        qid = self.send(d, "alice@client.test", ["a@example.com"])
        time.sleep(2.5)  # a few tries against the full queue
        for c in fillers + [srv]:
            c.close()
        os.unlink(path)
        handler = LmtpHandler()
        self.lmtp_server_at(handler, path)
        self.wait_log(d, rf"{qid}: to=<a@example\.com>, .*mailer=lmtp, .*stat=Sent", timeout=10)
        self.assertEqual([r for r, _ in handler.delivered], ["a@example.com"])
        self.assertIsNone(d.wait_log(rf"{qid}: to=<a@example\.com>, .*stat=Deferred", timeout=0),
                          "a full listen queue deferred the recipient")


@unittest.skipUnless(os.access(DOVECOT, os.X_OK), "dovecot (dovecot-lmtpd) not installed")
@unittest.skipUnless(os.geteuid() == 0, "dovecot runs as root here")
class LmtpDovecot(DeliveryTestCase):
    """Dovecot's LMTP server with a configuration of its own (no system config): the users
    are nobody's uid in a passwd-file, their Maildirs under the test's directory."""

    USERS = ("alice", "bob")

    def start_dovecot(self) -> tuple[str, Path]:
        base = self.tmp / "dovecot"
        mail = base / "mail"
        for p in (base / "run", base / "state", mail):
            p.mkdir(parents=True)
        # the delivering user (nobody) must reach its home under the test's directory
        os.chmod(self.tmp, 0o755)
        nobody = pwd.getpwnam("nobody")
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        passwd = base / "passwd"
        passwd.write_text("".join(f"{u}::{nobody.pw_uid}:{nobody.pw_gid}::{mail / u}::\n"
                                  for u in self.USERS))
        conf = base / "dovecot.conf"
        conf.write_text(f"""\
base_dir = {base / 'run'}
state_dir = {base / 'state'}
log_path = {base / 'dovecot.log'}
protocols = lmtp
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
auth_username_format = %Ln
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
        with open(base / "dovecot.stderr", "wb") as err:
            proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)],
                                    stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(self.stop_dovecot, proc, base)
        sock = str(base / "run" / "lmtp")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(sock)
                    if s.recv(100).startswith(b"220"):
                        return sock, mail
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail(f"dovecot did not start: {self.dovecot_log(base)}")
            time.sleep(0.1)

    @staticmethod
    def dovecot_log(base: Path) -> str:
        return "".join(p.read_text(errors="replace") for p in
                       (base / "dovecot.stderr", base / "dovecot.log") if p.exists())

    def stop_dovecot(self, proc: subprocess.Popen, base: Path):
        if self._failed():
            print(f"\n----- dovecot log -----\n{self.dovecot_log(base)}\n-----")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)

    def test_maildirs(self):
        sock, mail = self.start_dovecot()
        mt = self.tmp / "mailertable"
        mt.write_text(f"example.com lmtp:unix:{sock}\n")
        d = self.daemon(maps={"mailertable": str(mt)})
        qid = self.send(d, "sender@client.test",
                        ["alice@example.com", "nosuch@example.com", "bob@example.com"],
                        subject="to dovecot")
        for u in self.USERS:
            self.wait_log(d, rf"{qid}: to=<{u}@example\.com>, .*mailer=lmtp, .*dsn=2\.0\.0, "
                             rf"stat=Sent \(<{u}@example\.com> .* Saved\)$")
        self.wait_log(d, rf"{qid}: to=<nosuch@example\.com>, .*mailer=lmtp, .*dsn=5\.1\.1, "
                         rf"stat=User unknown$")
        for u in self.USERS:
            box = mailbox.Maildir(mail / u / "Maildir", create=False)
            msgs = list(box)
            self.assertEqual(len(msgs), 1, f"{u}'s Maildir")
            m = msgs[0]
            self.assertEqual(m["Subject"], "to dovecot")
            self.assertEqual(m["Return-Path"], "<sender@client.test>")
            received = m.get_all("Received")
            self.assertRegex(received[0], r"^from mx\.test\s.*with LMTP")  # our LHLO name
            self.assertRegex(received[1], r"by mx\.test")  # ringmail's own went along
            self.assertEqual(m.get_subdir(), "new")
        self.assertFalse((mail / "nosuch").exists())


    def test_mailboxes_over_lmtp(self):
        """mailers.lmtp: local users' mailboxes go to Dovecot (the login as the recipient,
        as sendmail's cyrusv2 mailer sends $u), an alias's two users in one transaction;
        LMTP is the final delivery: no "relayed" notice for NOTIFY=SUCCESS."""
        require_root(self)
        users = TestUsers(self, self.tmp / "home")
        (self.tmp / "home").mkdir(mode=0o755)
        self.USERS = ("rmtdova", "rmtdovb")
        for u in self.USERS:
            users.add(u)
        sock, mail = self.start_dovecot()
        aliases = self.tmp / "aliases"
        aliases.write_text("team: rmtdova, rmtdovb\n")
        d = self.daemon(mailers={"lmtp": f"unix:{sock}"}, maps={"aliases": [str(aliases)]},
                        routing={"luser_relay": None})
        qid = self.send(d, "sender@client.test", [f"team@{HOSTNAME}"], subject="local",
                        rcpt_params={f"team@{HOSTNAME}": "NOTIFY=SUCCESS"})
        for u in self.USERS:
            self.wait_log(d, rf"{qid}: to=<{u}@{re.escape(HOSTNAME)}>, .*mailer=lmtp, .*stat=Sent")
            (m,) = list(mailbox.Maildir(mail / u / "Maildir", create=False))
            self.assertEqual(m["Subject"], "local")
        time.sleep(0.5)
        self.assertNotRegex(d.log(), rf"{qid}: \w+: DSN: ")

if __name__ == "__main__":
    unittest.main()
