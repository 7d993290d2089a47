"""fail2ban's stock sendmail filters (Debian's fail2ban package) read a real ringmail log.

One daemon logs as `sm-mta` (log.ident) and is refused, timed out and left by real
clients (smtplib, raw sockets), each kind from its own loopback address. Its log, in the
shape syslog writes to /var/log/mail.log, then goes through `fail2ban-regex` with
/etc/fail2ban/filter.d/sendmail-reject.conf in each of its modes and with sendmail-auth.conf;
the test asserts which addresses each finds, and that every line is sendmail 8.17's own,
word for word (docs/logs.md lists them).

What the stock filters find is what they would find on sendmail's own log of the same
clients: the per-client connection limit (FEATURE(conncontrol)) in every mode, clients
that never sent MAIL in the "extra" and "aggressive" modes. A relaying attempt is not
found: without AUTH sendmail says "Relaying denied", and the filter only knows
"Relaying denied. Proper authentication required.", which sendmail (and ringmail) say
only when AUTH is offered. sendmail-auth finds nothing: this daemon offers no AUTH
(test_auth.py runs the filter over AUTH failures).

Skipped only when fail2ban-regex is missing (scripts/deps.sh installs Debian's fail2ban).
"""

import re
import shutil
import smtplib
import socket
import subprocess
import time
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, IO_TIMEOUT, TEST_NET, RingmailTestCase

FAIL2BAN_REGEX = shutil.which("fail2ban-regex")
FILTERS = Path("/etc/fail2ban/filter.d")
SYSLOG_HOST = "mx"  # the host name syslog puts before the ident in /var/log/mail.log

# one loopback address per kind of client, so each match names its kind
RELAYER = "127.0.0.11"       # RCPT to a remote domain: check_rcpt, Relaying denied
BLOCKED_RCPT = "127.0.0.12"  # RCPT to To:blocked.test REJECT (blocklist_recipients): check_rcpt
BLOCKED = "127.0.0.13"       # Connect: REJECT: check_relay, 550 Access denied
GREEDY = "127.0.0.14"        # over limits.connections_per_client: check_relay, 421
QUITTER = "127.0.0.15"       # EHLO, QUIT: did not issue MAIL
LEAVER = "127.0.0.16"        # connects and closes: did not issue MAIL
SLEEPER = "127.0.0.17"       # says nothing: timeout, did not issue MAIL
DROPPER = "127.0.0.18"       # goes away after RCPT: lost input channel ... after rcpt
CUTTER = "127.0.0.19"        # goes away inside DATA: collect: unexpected close
STALLER = "127.0.0.20"       # silent after 354: collect: read timeout

ACCESS = f"Connect:{BLOCKED} REJECT\nTo:blocked.test REJECT\n"
GREEDY_REFUSED = 3           # connections refused while GREEDY holds its one slot


def smtp_from(port: int, source: str) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                     source_address=(source, 0), timeout=IO_TIMEOUT)
    code, _ = c.ehlo()
    assert code == 250, code
    return c


def raw_from(port: int, source: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT,
                                 source_address=(source, 0))
    return s


def read_reply(s: socket.socket) -> bytes:
    data = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", data):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def wait_closed(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def syslog_file(log: str, path: Path, ident: str | None = None) -> list[str]:
    """The daemon's stderr lines ("Mon DD HH:MM:SS ident[pid]: text") as syslog writes
    them to a file, with the host name after the time stamp; returns the lines."""
    out = []
    for line in log.splitlines():
        m = re.match(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)(\[\d+\]: .*)$", line)
        if m:
            out.append(f"{m[1]} {SYSLOG_HOST} {ident or m[2]}{m[3]}")
    path.write_text("\n".join(out) + "\n")
    return out


@unittest.skipIf(FAIL2BAN_REGEX is None, "fail2ban-regex is not installed (Debian: fail2ban)")
class StockFilters(RingmailTestCase):

    def fail2ban(self, logfile: Path, filt: str) -> list[str]:
        """The address of every line `filt` finds in `logfile`, in log order."""
        p = subprocess.run([FAIL2BAN_REGEX, "--raw", "-o", "ip", str(logfile), filt],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        return p.stdout.split()

    def expect_reply(self, got: bytes, want: str) -> None:
        """The code must be right; a wrong text is reported and the test goes on, so that
        the log is still read by fail2ban."""
        self.assertEqual(got[:4], want.encode()[:4], got)
        with self.subTest(reply=want):
            self.assertEqual(got.decode(), want + "\r\n")

    def provoke(self, d) -> None:
        port = d.port
        # a relaying attempt, and a recipient the access map refuses
        c = smtp_from(port, RELAYER)
        self.assertEqual(c.mail("a@b.example")[0], 250)
        self.assertEqual(c.rcpt("u@remote.example"),
                         (550, b"5.7.1 <u@remote.example>... Relaying denied"))
        c.quit()
        c = smtp_from(port, BLOCKED_RCPT)
        self.assertEqual(c.mail("a@b.example")[0], 250)
        self.assertEqual(c.rcpt("u@blocked.test"),
                         (550, b"5.2.1 <u@blocked.test>... Mailbox disabled for this recipient"))
        c.quit()
        # refused at connect by the access map
        s = raw_from(port, BLOCKED)
        self.expect_reply(read_reply(s), f"550 5.7.1 {HOSTNAME} Access denied")
        wait_closed(s)
        s.close()
        # one connection is GREEDY's share: the next ones are refused as sendmail's
        # conncontrol refuses them
        holder = smtp_from(port, GREEDY)
        self.assertEqual(holder.mail("a@b.example")[0], 250)
        for _ in range(GREEDY_REFUSED):
            s = raw_from(port, GREEDY)
            self.expect_reply(read_reply(s), "421 4.3.2 Too many open connections.")
            wait_closed(s)
            s.close()
        holder.quit()
        # clients that never send MAIL: QUIT, close, silence
        c = smtp_from(port, QUITTER)
        c.quit()
        s = raw_from(port, LEAVER)
        read_reply(s)
        s.close()
        sleeper = raw_from(port, SLEEPER)
        read_reply(sleeper)
        # a transaction left after RCPT, and one left inside DATA
        s = raw_from(port, DROPPER)
        read_reply(s)
        for line in ("EHLO client.example", "MAIL FROM:<a@b.example>",
                     f"RCPT TO:<u@{HOSTNAME}>"):
            s.sendall(line.encode() + b"\r\n")
            self.assertTrue(read_reply(s).startswith(b"250"))
        s.close()
        s = raw_from(port, CUTTER)
        read_reply(s)
        for line, code in (("EHLO client.example", b"250"), ("MAIL FROM:<c@b.example>", b"250"),
                           (f"RCPT TO:<u@{HOSTNAME}>", b"250"), ("DATA", b"354")):
            s.sendall(line.encode() + b"\r\n")
            self.assertTrue(read_reply(s).startswith(code), line)
        s.sendall(b"Subject: cut\r\n\r\nhalf a message")
        time.sleep(0.2)
        s.close()
        staller = raw_from(port, STALLER)
        read_reply(staller)
        for line, code in (("EHLO client.example", b"250"), ("MAIL FROM:<s@b.example>", b"250"),
                           (f"RCPT TO:<u@{HOSTNAME}>", b"250"), ("DATA", b"354")):
            staller.sendall(line.encode() + b"\r\n")
            self.assertTrue(read_reply(staller).startswith(code), line)
        # the two silent ones time out (timeouts.initial, timeouts.datainit)
        for s in (sleeper, staller):
            self.assertRegex(wait_closed(s).decode(), r"^421 4\.4\.2 ")
            s.close()

    def test_stock_filters_on_a_real_log(self):
        d = self.new_daemon(start=False, log={"ident": "sm-mta"}, relay_from=[TEST_NET],
                            maps={"access": "access"},
                            features={"blocklist_recipients": True},
                            limits={"connections_per_client": 1},
                            timeouts={"initial": "3s", "datainit": "3s", "shutdown_grace": "5s"})
        (d.workdir / "access").write_text(ACCESS)
        d.start()
        self.provoke(d)
        # the last client's line is out before the stop (the count of refused connections
        # comes at the latest at exit); whether it is right is asserted below
        d.wait_log(rf"\[{re.escape(CUTTER)}\], sender=<c@b\.example>", timeout=5)
        self.assertEqual(d.stop(), 0)
        log = d.log()
        mail_log = self.tmp / "mail.log"
        lines = syslog_file(log, mail_log)
        self.assertTrue(lines)

        with self.subTest("every line carries the ident log.ident sets, as sm-mta's do"):
            idents = {re.match(rf"^.{{15}} {SYSLOG_HOST} ([^\[]+)\[", l)[1] for l in lines}
            self.assertEqual(idents, {"sm-mta"}, "log.ident is not applied")

        with self.subTest("sendmail's lines, word for word"):
            self.assert_sendmail_lines(log)

        relay_limit = [GREEDY]  # one line: the others are counted (log_limited)
        null_connections = [QUITTER, LEAVER, SLEEPER]
        for mode, want in (("normal", relay_limit),
                           ("extra", relay_limit + null_connections),
                           ("aggressive", relay_limit + null_connections)):
            with self.subTest(filter="sendmail-reject", mode=mode):
                found = self.fail2ban(mail_log, f"{FILTERS}/sendmail-reject.conf[mode={mode}]")
                self.assertEqual(sorted(found), sorted(want), log)
        with self.subTest(filter="sendmail-auth"):
            self.assertEqual(self.fail2ban(mail_log, str(FILTERS / "sendmail-auth.conf")), [])
        with self.subTest("under the name ringmaild the stock filters find nothing"):
            other = self.tmp / "mail-ringmaild.log"
            syslog_file(log, other, ident="ringmaild")
            self.assertEqual(
                self.fail2ban(other, f"{FILTERS}/sendmail-reject.conf[mode=aggressive]"), [])

    def assert_sendmail_lines(self, log: str) -> None:
        e = re.escape
        qid = r"[0-9A-Za-z]{16}"
        pre = r"^\w{3} [ \d]\d \d\d:\d\d:\d\d sm-mta\[\d+\]: "
        want = [
            rf"{pre}{qid}: ruleset=check_rcpt, arg1=<u@remote\.example>, "
            rf"relay=\[{e(RELAYER)}\], reject=550 5\.7\.1 <u@remote\.example>\.\.\. Relaying denied$",
            rf"{pre}{qid}: ruleset=check_rcpt, arg1=<u@blocked\.test>, "
            rf"relay=\[{e(BLOCKED_RCPT)}\], reject=550 5\.2\.1 <u@blocked\.test>\.\.\. Mailbox "
            r"disabled for this recipient$",
            rf"{pre}ruleset=check_relay, arg1=\[{e(BLOCKED)}\], arg2={e(BLOCKED)}, "
            rf"relay=\[{e(BLOCKED)}\], reject=550 5\.7\.1 Access denied$",
            rf"{pre}ruleset=check_relay, arg1=\[{e(GREEDY)}\], arg2={e(GREEDY)}, "
            rf"relay=\[{e(GREEDY)}\], reject=421 4\.3\.2 Too many open connections\.$",
            rf"{pre}{GREEDY_REFUSED - 1} more like this were not logged in \d+ s: "
            rf"ruleset=check_relay, arg1=\[{e(GREEDY)}\],",
            rf"{pre}{qid}: \[{e(QUITTER)}\] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA$",
            rf"{pre}{qid}: \[{e(LEAVER)}\] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA$",
            rf"{pre}{qid}: timeout waiting for input from \[{e(SLEEPER)}\] during server cmd read$",
            rf"{pre}{qid}: \[{e(SLEEPER)}\] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA$",
            rf"{pre}{qid}: lost input channel from \[{e(DROPPER)}\] to MTA after rcpt$",
            rf"{pre}{qid}: collect: premature EOM: unexpected close$",
            rf"{pre}{qid}: collect: unexpected close on connection from \[{e(CUTTER)}\], "
            rf"sender=<c@b\.example>$",
            rf"{pre}{qid}: collect: read timeout on connection from \[{e(STALLER)}\], "
            rf"sender=<s@b\.example>$",
        ]
        for rx in want:
            self.assertRegex(log, re.compile(rx, re.M))
        # one check_relay line for GREEDY (the rest are counted), no "NOQUEUE" on it, and
        # no "did not issue" for a client that sent MAIL or was refused at connect
        self.assertEqual(len(re.findall(rf"\]: ruleset=check_relay, arg1=\[{e(GREEDY)}\]", log)), 1)
        self.assertNotIn("NOQUEUE", log)
        for addr in (RELAYER, BLOCKED_RCPT, BLOCKED, GREEDY, DROPPER, CUTTER, STALLER):
            self.assertNotRegex(log, rf"\[{re.escape(addr)}\] did not issue")
        # the same connection's timeout and "did not issue" share one id, as in sendmail
        timed_out = re.search(rf"({qid}): timeout waiting for input from \[{e(SLEEPER)}\]", log)
        null = re.search(rf"({qid}): \[{e(SLEEPER)}\] did not issue", log)
        self.assertEqual(timed_out[1], null[1])

if __name__ == "__main__":
    unittest.main()
