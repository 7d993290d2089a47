"""test_sendmail_cli.py: ringmail-sendmail as programs run it (issue 10).

A real ringmaild relays to a sink (routing.smart_host); ringmail-sendmail finds its config
through $RINGMAIL_CONFIG (as the real clients do, which pass no -C) and submits over the
daemon's submission socket. What reaches the sink is what the message's recipients get:
the envelope (sender, recipients, DSN parameters) and the header the daemon completed.

SendmailCase is shared with test_sendmail_clients.py.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from delivery_support import FAST_QUEUE, DeliveryTestCase
from ringmail_harness import HOSTNAME, ringmaild_path

NOBODY = 65534
RUN_TIMEOUT = 60


def bin_dir() -> Path:
    return Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent)


def sendmail_path() -> Path:
    return bin_dir() / "ringmail-sendmail"


def as_user(uid: int, gid: int):
    """A preexec_fn that drops to uid/gid (the test runs as root)."""
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


class SendmailCase(DeliveryTestCase):
    """A daemon relaying to a sink, and ways to run ringmail-sendmail against it."""

    def setUp(self):
        super().setUp()
        if not os.access(sendmail_path(), os.X_OK):
            self.skipTest(f"{sendmail_path()} is not built")
        # the command runs as other users too: everything on the way must be readable
        os.chmod(self.tmp, 0o755)
        self.home = Path(tempfile.mkdtemp(dir=self.tmp, prefix="home-"))
        os.chmod(self.home, 0o755)

    def start(self, files: dict[str, str] | None = None, **overrides):
        """A sink and a daemon whose smart host it is; `files` go to its workdir (maps)."""
        self.sinkd = self.sink()
        routing = dict(overrides.pop("routing", {}), smart_host=self.sinkd.hostport)
        self.d = self.daemon(start=False, routing=routing, queue=FAST_QUEUE, **overrides)
        for name, text in (files or {}).items():
            (self.d.workdir / name).write_text(text)
        os.chmod(self.d.workdir, 0o755)
        self.d.start()
        os.chmod(self.d.config_path, 0o644)
        return self.d

    def env(self, **extra) -> dict:
        env = dict(os.environ, RINGMAIL_CONFIG=str(self.d.config_path), HOME=str(self.home),
                   LC_ALL="C.UTF-8")
        env.pop("MAILRC", None)
        env.update(extra)
        return env

    def run_cmd(self, argv: list[str], input: bytes = b"", uid: int | None = None,
                env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
        kw = {}
        if uid is not None:
            kw["preexec_fn"] = as_user(uid, uid)
        return subprocess.run(argv, input=input, capture_output=True, timeout=RUN_TIMEOUT,
                              env=env or self.env(), cwd=cwd or "/", **kw)

    def sendmail(self, *args: str, input: bytes | str = b"", uid: int | None = None,
                 prog: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        if isinstance(input, str):
            input = input.encode()
        return self.run_cmd([str(prog or sendmail_path()), *args], input=input, uid=uid)

    def assertExit(self, r: subprocess.CompletedProcess, code: int):
        self.assertEqual(r.returncode, code,
                         f"exit {r.returncode}, expected {code}\nstdout: {r.stdout!r}\n"
                         f"stderr: {r.stderr!r}")

    def received(self, n: int = 1, timeout: float = 30.0):
        """The first n messages the sink accepted, with the parsed header of each."""
        msgs = self.sinkd.wait_messages(n, timeout)
        return [(m, email.message_from_bytes(m.data, policy=email.policy.compat32))
                for m in msgs]


class SendmailCli(SendmailCase):

    def setUp(self):
        super().setUp()
        self.start()

    def test_t_reads_to_cc_bcc_and_removes_bcc(self):
        r = self.sendmail("-t", "-i", input=(
            "To: To One <to@remote.test>\nCc: cc@remote.test\nBcc: hidden@remote.test\n"
            "Subject: header recipients\n\nbody\n"))
        self.assertExit(r, 0)
        self.assertEqual(r.stderr, b"")
        [(m, msg)] = self.received()
        self.assertEqual(sorted(m.rcpt_tos),
                         ["cc@remote.test", "hidden@remote.test", "to@remote.test"])
        self.assertEqual(m.mail_from, f"root@{HOSTNAME}")
        self.assertIsNone(msg["Bcc"], m.data)
        self.assertNotIn(b"hidden@remote.test", m.data)
        self.assertEqual(msg["Subject"], "header recipients")
        # what sendmail's MSP adds when missing
        for name in ("Received", "Date", "Message-ID", "From"):
            self.assertIsNotNone(msg[name], f"no {name}: in {m.data!r}")

    def test_t_leaves_out_command_line_recipients(self):
        r = self.sendmail("-t", "-oi", "cc@remote.test",
                          input="To: to@remote.test\nCc: cc@remote.test\n\nbody\n")
        self.assertExit(r, 0)
        [(m, _)] = self.received()
        self.assertEqual(m.rcpt_tos, ["to@remote.test"])

    def test_lone_dot_ends_message_without_i(self):
        r = self.sendmail("bob@remote.test", input="Subject: dot\n\nline one\n.\nline two\n")
        self.assertExit(r, 0)
        [(m, _)] = self.received()
        self.assertIn(b"line one\r\n", m.data)
        self.assertNotIn(b"line two", m.data)

    def test_i_keeps_a_lone_dot(self):
        r = self.sendmail("-i", "bob@remote.test", input="Subject: dot\n\nline one\n.\nline two\n")
        self.assertExit(r, 0)
        [(m, _)] = self.received()
        self.assertIn(b"line one\r\n.\r\nline two\r\n", m.data)

    def test_large_message_goes_in_chunks(self):
        lines = "".join(f"line {i:06d} " + "x" * 60 + "\n" for i in range(5000))  # ~360 KB
        r = self.sendmail("-v", "bob@remote.test", input="Subject: large\n\n" + lines)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.decode(), r">>> BDAT 65536\n")
        self.assertRegex(r.stdout.decode(), r">>> BDAT \d+ LAST\n")
        [(m, _)] = self.received()
        self.assertTrue(m.data.endswith(("\r\n\r\n" + lines.replace("\n", "\r\n")).encode()))

    def test_8bit_body_is_declared(self):
        r = self.sendmail("bob@remote.test", input="Subject: caf\xe9\n\nd\xe9j\xe0 vu\n".encode("utf-8"))
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertIn("BODY=8BITMIME", m.mail_options)
        self.assertIn("déjà vu".encode(), m.data)

    def test_f_by_root_gets_no_warning(self):
        r = self.sendmail("-f", "list-bounces@remote.test", "bob@remote.test",
                          input="Subject: f\n\nbody\n")
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "list-bounces@remote.test")
        self.assertIsNone(msg["X-Authentication-Warning"])

    def test_f_by_unprivileged_user_is_marked(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run the command as another user")
        r = self.sendmail("-f", "ceo@remote.test", "bob@remote.test",
                          input="Subject: forged\n\nbody\n", uid=NOBODY)
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "ceo@remote.test")
        warning = msg["X-Authentication-Warning"]
        self.assertIsNotNone(warning, m.data)
        self.assertRegex(warning, r"set sender to ceo@remote\.test using -f")

    def test_unprivileged_default_sender(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run the command as another user")
        r = self.sendmail("bob@remote.test", input="Subject: plain\n\nbody\n", uid=NOBODY)
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, f"nobody@{HOSTNAME}")
        self.assertIsNone(msg["X-Authentication-Warning"])

    def test_unqualified_addresses_get_the_hostname(self):
        r = self.sendmail("-f", "alice", "-t", input="To: bob@remote.test\n\nbody\n")
        self.assertExit(r, 0)
        [(m, _)] = self.received()
        self.assertEqual(m.mail_from, f"alice@{HOSTNAME}")

    def test_F_sets_the_from_name(self):
        r = self.sendmail("-F", "Jane Q. Doe", "bob@remote.test", input="Subject: F\n\nbody\n")
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertIn("Jane Q. Doe", msg["From"])
        self.assertIn(f"root@{HOSTNAME}", msg["From"])

    def test_dsn_options_reach_the_envelope(self):
        r = self.sendmail("-N", "success,failure", "-R", "hdrs", "-V", "env+2Bid+3D1",
                          "bob@remote.test", input="Subject: dsn\n\nbody\n")
        self.assertExit(r, 0)
        [(m, _)] = self.received()
        self.assertIn("RET=HDRS", [o.upper() for o in m.mail_options])
        self.assertIn("ENVID=env+2Bid+3D1", m.mail_options)
        self.assertIn("NOTIFY=SUCCESS,FAILURE", [o.upper() for o in m.rcpt_options[0]])

    def test_unknown_flag_is_a_usage_error(self):
        r = self.sendmail("-y", "bob@remote.test")
        self.assertExit(r, 64)
        self.assertRegex(r.stderr.decode(), r"(illegal|invalid) option")

    def test_no_recipients_is_a_usage_error(self):
        r = self.sendmail(input="Subject: none\n\nbody\n")
        self.assertExit(r, 64)
        self.assertIn(b"Recipient names must be specified", r.stderr)
        r = self.sendmail("-t", input="Subject: none\n\nbody\n")
        self.assertExit(r, 64)
        self.assertIn(b"No recipient addresses found in header", r.stderr)
        self.assertEqual(self.sinkd.messages, [])

    def test_legacy_flag_warns_and_sends(self):
        r = self.sendmail("-om", "bob@remote.test", input="Subject: legacy\n\nbody\n")
        self.assertExit(r, 0)
        self.assertIn(b"warning", r.stderr)
        self.received()

    def test_bs_with_swaks_over_a_pipe(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed")
        r = self.run_cmd(["swaks", "--pipe", f"{sendmail_path()} -bs", "--from",
                          "alice@remote.test", "--to", "bob@remote.test", "--header",
                          "Subject: over -bs", "--body", "hello from swaks"])
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "alice@remote.test")
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        self.assertEqual(msg["Subject"], "over -bs")
        # the daemon knew the caller (root, trusted): a local Received line
        self.assertRegex(msg["Received"], r"from root@localhost")

    def test_bv_says_where_each_address_goes(self):
        r = self.sendmail("-bv", "bob@remote.test", "root")
        self.assertExit(r, 0)
        out = r.stdout.decode()
        self.assertIn(f"bob@remote.test... deliverable: mailer relay, host "
                      f"{self.sinkd.hostport}, user bob@remote.test\n", out)
        self.assertIn("root... deliverable: mailer local, user root\n", out)

    def test_bv_unknown_local_user(self):
        r = self.sendmail("-bv", f"no-such-user-xyz@{HOSTNAME}")
        self.assertExit(r, 67)
        self.assertIn(f"no-such-user-xyz@{HOSTNAME}... User unknown", r.stdout.decode())

    def test_bt_subset(self):
        r = self.sendmail("-bt", input="3,0 bob@remote.test\n/parse root\n/map mailertable x\n"
                                       "/quit\n")
        self.assertExit(r, 0)
        out = r.stdout.decode()
        self.assertIn("ADDRESS TEST MODE", out)
        self.assertIn(f"$# relay $@ {self.sinkd.hostport} $: bob@remote.test", out)
        self.assertIn("mailer local, user root", out)
        self.assertIn("map_lookup: mailertable (x) no match", out)

    def test_verbose_shows_the_exchange(self):
        r = self.sendmail("-v", "bob@remote.test", input="Subject: v\n\nbody\n")
        self.assertExit(r, 0)
        out = r.stdout.decode()
        self.assertRegex(out, r">>> MAIL FROM:<root@mx\.test>")
        self.assertRegex(out, r"<<< 250 2\.0\.0 \S+ Message accepted")
        self.assertRegex(out, r"(?m)^bob@remote\.test\.\.\. Sent \(\S+ Message accepted")
        self.received()

    def test_X_appends_the_exchange_with_the_pid(self):
        log = self.home / "x.log"
        r = self.sendmail("-X", str(log), "bob@remote.test", input="Subject: X\n\nbody\n")
        self.assertExit(r, 0)
        text = log.read_text()
        self.assertRegex(text, r"(?m)^\d+ >>> EHLO ")
        self.assertRegex(text, r"(?m)^\d+ <<< 250")

    def test_names_by_argv0(self):
        links = Path(tempfile.mkdtemp(dir=self.tmp))
        for name in ("mailq", "newaliases", "sendmail"):
            (links / name).symlink_to(sendmail_path())
        r = self.sendmail(prog=links / "mailq")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.decode(), r"is empty|Total requests: 0")
        for name in ("hoststat", "purgestat"):
            (links / name).symlink_to(sendmail_path())
            self.assertExit(self.sendmail(prog=links / name), 0)
        self.assertExit(self.sendmail("-q"), 0)  # a queue run: the daemon's FLUSH
        r = self.sendmail(prog=links / "sendmail", input="Subject: link\n\nbody\n")
        self.assertExit(r, 64)  # no recipients: sendmail's mode, not mailq's
        self.assertIn(b"Recipient names must be specified", r.stderr)


class SendmailAliases(SendmailCase):
    """-bv and -bt with aliases and a mailertable; newaliases by its name."""

    ALIASES = ("postmaster: root\n"
               "team: alice@remote.test, \"|/usr/bin/logger -t team\", /var/log/team.mbox\n"
               "root: root, no-such-user-xyz\n"
               "gone: error:5.1.6:550 moved away\n")
    MAILERTABLE = "partner.test esmtp:[mx.partner.test]:2526\n.sub.test smtp:relay.sub.test\n"

    def setUp(self):
        super().setUp()
        self.start(files={"aliases": self.ALIASES, "mailertable": self.MAILERTABLE},
                   maps={"aliases": ["aliases"], "mailertable": "mailertable"})

    def test_bv_expands_aliases(self):
        r = self.sendmail("-bv", "postmaster", "team", "gone")
        self.assertExit(r, 67)  # no-such-user-xyz and gone's 5.1.6
        self.assertEqual(r.stdout.decode().splitlines(), [
            "root... deliverable: mailer local, user root",
            "no-such-user-xyz... User unknown",
            "alice@remote.test... deliverable: mailer relay, host "
            f"{self.sinkd.hostport}, user alice@remote.test",
            '"|/usr/bin/logger -t team"... deliverable: mailer prog, user '
            '"|/usr/bin/logger -t team"',
            "/var/log/team.mbox... deliverable: mailer *file*, user /var/log/team.mbox",
            "gone... moved away",
        ])

    def test_bv_mailertable(self):
        r = self.sendmail("-bv", "u@partner.test", "v@a.sub.test")
        self.assertExit(r, 0)
        self.assertEqual(r.stdout.decode().splitlines(), [
            "u@partner.test... deliverable: mailer esmtp, host [mx.partner.test]:2526, "
            "user u@partner.test",
            "v@a.sub.test... deliverable: mailer smtp, host relay.sub.test., user v@a.sub.test",
        ])

    def test_bt_map_lookups(self):
        r = self.sendmail("-bt", input="/map mailertable partner.test\n/map aliases postmaster\n"
                                       "/map nosuchmap x\n/bogus\n9 x\n")
        self.assertExit(r, 0)
        out = r.stdout.decode()
        self.assertIn("map_lookup: mailertable (partner.test) returns "
                      "esmtp:[mx.partner.test]:2526 (0)", out)
        self.assertIn("map_lookup: aliases (postmaster) returns root (0)", out)
        self.assertIn('Map named "nosuchmap" not found', out)
        self.assertIn('Unknown "/" command /bogus', out)
        self.assertIn("Undefined ruleset 9", out)

    def test_newaliases_by_its_name(self):
        links = self.home / "bin"
        links.mkdir()
        (links / "newaliases").symlink_to(sendmail_path())
        r = self.sendmail(prog=links / "newaliases")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.decode(), r"aliases: 4 aliases, longest \d+ bytes, \d+ bytes total")


class SendmailRefusals(SendmailCase):
    """The daemon refuses some recipients: sendmail's reports and exit codes."""

    ACCESS = ("To:bad@remote.test ERROR:\"550 5.1.1 User unknown\"\n"
              "To:busy@remote.test ERROR:\"451 4.3.0 Try again later\"\n")

    def setUp(self):
        super().setUp()
        self.start(files={"access": self.ACCESS}, maps={"access": "access"},
                   features={"blocklist_recipients": True}, limits={"message_size": 4096})

    def test_some_refused_others_get_it(self):
        r = self.sendmail("good@remote.test", "bad@remote.test", input="Subject: s\n\nbody\n")
        self.assertExit(r, 67)  # EX_NOUSER
        self.assertIn(b"bad@remote.test", r.stderr)
        self.assertIn(b"User unknown", r.stderr)
        [(m, _)] = self.received()
        self.assertEqual(m.rcpt_tos, ["good@remote.test"])

    def test_all_refused_nothing_sent(self):
        r = self.sendmail("bad@remote.test", input="Subject: s\n\nbody\n")
        self.assertExit(r, 67)
        time.sleep(1)
        self.assertEqual(self.d.spool.qids(), set())

    def test_temporary_refusal_waits_in_the_maildrop(self):
        """Every recipient refused for now (4xx): the message is kept in the maildrop, as
        sendmail's MSP keeps it in its client queue, and the command succeeds."""
        r = self.sendmail("busy@remote.test", input="Subject: s\n\nbody\n")
        self.assertExit(r, 0)
        maildrop = self.d.workdir / "maildrop"
        files = [p for p in maildrop.iterdir() if not p.name.startswith(".")]
        self.assertEqual(len(files), 1, list(maildrop.iterdir()))
        self.assertIn(b"\nRbusy@remote.test\n", files[0].read_bytes())

    def test_oeq_is_quiet(self):
        r = self.sendmail("-oeq", "bad@remote.test", input="Subject: s\n\nbody\n")
        self.assertExit(r, 67)
        self.assertEqual(r.stderr, b"")

    def test_oem_mails_the_error_back(self):
        r = self.sendmail("-oem", "-f", "alice@remote.test", "bad@remote.test",
                          input="Subject: original\n\nbody\n")
        self.assertExit(r, 0)
        self.assertEqual(r.stderr, b"")
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "")
        self.assertEqual(m.rcpt_tos, ["alice@remote.test"])
        self.assertIn("Returned mail", msg["Subject"])
        self.assertIn(b"bad@remote.test", m.data)
        self.assertIn(b"Subject: original", m.data)

    def test_too_large_is_a_data_error(self):
        r = self.sendmail("bob@remote.test", input="Subject: big\n\n" + "x" * 70 + "\n" * 100)
        self.assertExit(r, 0)
        r = self.sendmail("bob@remote.test", input="Subject: big\n\n" + ("x" * 70 + "\n") * 100)
        self.assertExit(r, 65)  # EX_DATAERR
        self.assertIn(b"too large", r.stderr)

    def test_nul_octet_is_refused(self):
        r = self.sendmail("bob@remote.test", input=b"Subject: nul\n\nbad \0 octet\n")
        self.assertExit(r, 65)
        self.assertIn(b"NUL", r.stderr)
        time.sleep(1)
        self.assertEqual(self.d.spool.qids(), set())


class SendmailQueueRunForeground(SendmailCase):
    """sendmail -qf: the run in the foreground, its delivery shown with -v."""

    def test_qf_waits_for_the_attempts_and_shows_them(self):
        from sink import first_n
        self.sinkd = self.sink(rcpt=first_n(1, "451 4.3.0 busy", "250 ok"))
        self.d = self.daemon(start=False, routing={"smart_host": self.sinkd.hostport},
                             queue={"minimal_backoff": "1h", "interval": "1h"})
        os.chmod(self.d.workdir, 0o755)
        self.d.start()
        os.chmod(self.d.config_path, 0o644)
        self.assertExit(self.sendmail("bob@remote.test", input="Subject: qf\n\nbody\n"), 0)
        self.assertIsNotNone(self.d.wait_log(r"to=<bob@remote\.test>.*stat=Deferred", timeout=30))
        r = self.sendmail("-qf", "-v", "-qRbob")
        self.assertExit(r, 0)
        # the command came back after the attempt, and showed it
        self.assertRegex(r.stdout.decode(), r"to=<bob@remote\.test>, .*stat=Sent")
        self.assertEqual(len(self.sinkd.messages), 1)


class SendmailStartsTheDaemon(SendmailCase):

    def test_bD_runs_ringmaild_in_the_foreground(self):
        self.sinkd = self.sink()
        self.d = self.daemon(start=False, routing={"smart_host": self.sinkd.hostport},
                             queue=FAST_QUEUE)
        os.chmod(self.d.workdir, 0o755)
        os.chmod(self.d.config_path, 0o644)
        # as the harness starts ringmaild, but through sendmail -bD (exec: the same process)
        with open(self.d.log_path, "ab") as log:
            self.d.proc = subprocess.Popen([str(sendmail_path()), "-bD", "-q30m"], env=self.env(),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                           start_new_session=True)
        self.assertIsNotNone(self.d.wait_log(r"\bready\b", timeout=20), self.d.log_tail())
        self.assertNotRegex(self.d.log(), r"ignored|unrecognized")
        # the daemon took -q30m as its queue interval (ringmaild --queue-interval)
        check = subprocess.run([os.environ["RINGMAILD"], "--check-config", "--queue-interval",
                                "30m", "--config", str(self.d.config_path)],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertRegex(check.stdout, r"\n  interval: 30m\n")
        r = self.sendmail("bob@remote.test", input="Subject: via -bD\n\nbody\n")
        self.assertExit(r, 0)
        self.received()


class SendmailDaemonDown(SendmailCase):
    """No daemon: the message waits in the maildrop and goes when the daemon starts."""

    def test_bs_without_a_daemon_says_421(self):
        self.d = self.daemon(start=False)
        os.chmod(self.d.workdir, 0o755)
        os.chmod(self.d.config_path, 0o644)
        r = self.sendmail("-bs", input="EHLO client\r\nQUIT\r\n")
        self.assertExit(r, 75)  # EX_TEMPFAIL
        self.assertRegex(r.stdout.decode(), r"^421 4\.3\.2 ")

    def test_maildrop_then_pickup(self):
        self.sinkd = self.sink()
        self.d = self.daemon(routing={"smart_host": self.sinkd.hostport}, queue=FAST_QUEUE)
        os.chmod(self.d.workdir, 0o755)
        os.chmod(self.d.config_path, 0o644)
        self.d.stop()  # it made the maildrop; now it is down
        r = self.sendmail("-f", "alice@remote.test", "bob@remote.test",
                          input="Subject: while down\n\nbody\n")
        self.assertExit(r, 0)
        maildrop = self.d.workdir / "maildrop"
        files = [p for p in maildrop.iterdir() if not p.name.startswith(".")]
        self.assertEqual(len(files), 1, list(maildrop.iterdir()))
        self.d.start()
        [(m, msg)] = self.received(timeout=60)
        self.assertEqual(m.mail_from, "alice@remote.test")
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        self.assertEqual(msg["Subject"], "while down")
        deadline = time.monotonic() + 10
        while any(not p.name.startswith(".") for p in maildrop.iterdir()):
            self.assertLess(time.monotonic(), deadline, "the maildrop file was not removed")
            time.sleep(0.1)

    def test_maildrop_when_the_daemon_defers(self):
        """A daemon that answers 4xx (here: too little disk for its min_free_blocks) does
        not lose the message: it waits in the maildrop, as in sendmail's client queue."""
        self.d = self.daemon(limits={"min_free_blocks": 1 << 40})
        os.chmod(self.d.workdir, 0o755)
        os.chmod(self.d.config_path, 0o644)
        r = self.sendmail("-v", "bob@remote.test", input="Subject: deferred\n\nbody\n")
        self.assertExit(r, 0)
        self.assertIn(b"452 4.3.1", r.stdout)
        self.assertIn(b"bob@remote.test... Queued in the maildrop", r.stdout)
        maildrop = self.d.workdir / "maildrop"
        files = [p for p in maildrop.iterdir() if not p.name.startswith(".")]
        self.assertEqual(len(files), 1, list(maildrop.iterdir()))
        self.assertIn(b"Subject: deferred", files[0].read_bytes())
        self.assertEqual(self.d.spool.qids(), set())


if __name__ == "__main__":
    unittest.main()
