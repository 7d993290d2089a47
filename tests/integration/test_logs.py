"""The log the ecosystem reads (docs/logs.md): Debian's logwatch reads ringmail's text log,
and log.format: json writes the same events as one JSON object per line.

One session of every kind of event a sendmail log analyser knows (log_session.py: messages
relayed, deferred and bounced by a next hop, refusals at connect, MAIL and RCPT, STARTTLS, a
failed AUTH, a timeout, lost input, too many errors, clients that never send MAIL, a mail
filter's changes and refusal) is run
once against a daemon logging text as sm-mta and once against one logging JSON.

logwatch: the text log, in the shape syslog writes to /var/log/mail.log, goes through
Debian's logwatch 7 and its sendmail service with ringmail's etc/logwatch/sendmail.conf
installed, all in a private configuration directory (logwatch 7.7 has no --confdir: a copy
of /usr/sbin/logwatch whose ConfigDir names the test's own; nothing of the host's is read
or written). The report must leave no line of ringmail's unmatched but its warnings, and
its figures must be what the session did.

json: every line parses with Python's json; every object's fields join back into its msg
as sendmail's "qid: key=value, ..." line; and the events (the lines with ids, numbers and
paths taken out) are those of the text log.

The logwatch part is skipped without logwatch (scripts/deps.sh installs Debian's).
"""

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

from log_session import (AUTHBAD, BLOCKED, DROPPER, ERRANT, MAILREJ, QUITTER, RCPT_REPLIES,
                         RELAYER, SLEEPER, log_daemon, provoke)
from ringmail_harness import RingmailTestCase
from sink import Sink

LOGWATCH = Path("/usr/sbin/logwatch")
SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "logwatch" / "sendmail.conf"
SYSLOG_HOST = "mx"
TEXT_LINE = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)\[(\d+)\]: (.*)$")


def mail_log(log: str, path: Path) -> list[str]:
    """The daemon's stderr lines as syslog writes them to /var/log/mail.log (the host name
    after the stamp); returns the lines' text after "ident[pid]: "."""
    out, texts = [], []
    for line in log.splitlines():
        m = TEXT_LINE.match(line)
        if m:
            out.append(f"{m[1]} {SYSLOG_HOST} {m[2]}[{m[3]}]: {m[4]}")
            texts.append(m[4])
    path.write_text("\n".join(out) + "\n")
    return texts


def event(text: str) -> str:
    """A line with what differs between two runs of one session taken out. The test
    certificate's line is a warning only once it is less than 30 days from its end, which
    a second or two of this test may cross: it is left out."""
    text = re.sub(r"^tls: certificate .*", "", text)
    text = re.sub(r"\b[0-9A-Za-z]{16}\b", "Q", text)
    text = re.sub(r"/tmp/\S*", "P", text)
    return re.sub(r"\d+", "N", text)


class Logs(RingmailTestCase):

    def run_session(self, fmt: str) -> tuple[str, dict]:
        sink = Sink("127.0.0.2", rcpt=RCPT_REPLIES).start()
        self.addCleanup(sink.stop)
        d = log_daemon(self, sink, fmt=fmt)
        did = provoke(self, d, sink)
        # the bounce's delivery is the last line the session causes
        self.assertTrue(d.wait_log(r"to=<alice@client\.test>, .*stat=Sent", timeout=10))
        self.assertEqual(d.stop(), 0)
        return d.log(), did

    def logwatch(self, logdir: Path) -> str:
        conf = self.tmp / "logwatch"
        (conf / "conf" / "services").mkdir(parents=True)
        (conf / "tmp").mkdir()
        (conf / "conf" / "logwatch.conf").write_text(
            f"TmpDir = {conf / 'tmp'}\nAppendVarLogToLogDirs = No\n"
            "AppendVarAdmToLogDirs = No\nArchives = No\n")
        shutil.copy(SHIPPED, conf / "conf" / "services" / "sendmail.conf")
        script = LOGWATCH.read_text()
        script, n = re.subn(r'^my \$ConfigDir = "/etc/logwatch";$',
                            f'my $ConfigDir = "{conf}";', script, flags=re.M)
        self.assertEqual(n, 1, "logwatch's ConfigDir line changed: update the test")
        (conf / "logwatch.pl").write_text(script)
        p = subprocess.run(["perl", str(conf / "logwatch.pl"), "--service", "sendmail",
                            "--logfile", "maillog", "--logdir", str(logdir), "--range", "All",
                            "--detail", "High", "--output", "stdout"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def check_report(self, report: str, texts: list[str], did: dict) -> None:
        def section(title: str) -> str:
            m = re.search(rf"^ *{re.escape(title)}.*?\n(.*?)(?:\n\s*\n|\Z)", report, re.M | re.S)
            self.assertIsNotNone(m, f"no section {title!r} in\n{report}")
            return m[1]

        with self.subTest("nothing of ringmail's unmatched but its warnings"):
            m = re.search(r"\*\*Unmatched Entries\*\*\n(.*?)\n *-+ sendmail End", report, re.S)
            lines = [l.strip() for l in (m[1] if m else "").splitlines() if l.strip()]
            self.assertEqual([l for l in lines if not l.startswith("warning: ")], [], report)
        with self.subTest("no Perl warning about the lines"):
            self.assertNotIn("uninitialized", report)

        sizes = [int(m[1]) for t in texts if (m := re.search(r"from=<[^>]*>, size=(\d+),", t))]
        figures = {k: int(v) for k, v in re.findall(
            r"^ *(Messages To Recipients|Addressed Recipients|Bytes Transferred):\s+(\d+)$",
            report, re.M)}
        self.assertEqual(figures, {"Messages To Recipients": did["msgs"],
                                   "Addressed Recipients": did["rcpts"],
                                   "Bytes Transferred": sum(sizes)}, report)
        self.assertEqual(len(sizes), did["msgs"])
        self.assertIn("Sendmail was started 1 time(s)", report)
        # delivered: bob, dave and the bounce to alice, by the relay mailer
        self.assertRegex(section("Message recipients per delivery agent"), r"relay\s+3\b")
        self.assertRegex(section("Mail Rejected"), r"User unknown:\s+<gone@remote\.test>\s+1 Time")
        self.assertRegex(section("Mail Deferred"), r"mailbox busy\s+To: <defer@remote\.test>")
        tls = section("For STARTTLS in server mode")
        self.assertRegex(tls, rf"No cert was presented\s+{did['tls']} Times")
        self.assertRegex(section("Relaying denied"),
                         rf"\[{re.escape(RELAYER)}\]\s+to <victim@elsewhere\.example>\s+1 Time")
        self.assertRegex(section("Rejected incoming mail"),
                         rf"\[{re.escape(MAILREJ)}\] <spammer@bad\.example>")
        self.assertRegex(section("Unknown local users"), r"<nosuchuser@mx\.test>\s+1 Time")
        if did["milter_reject"]:
            self.assertTrue(any(t.endswith("Milter: from=<reject@client.test>, reject=550 5.7.1 "
                                           "Sender refused by the filter") for t in texts))
        self.assertRegex(section("Mail attempts from known spammers"),
                         rf"\[{re.escape(BLOCKED)}\]\s+1 Time")
        self.assertRegex(section("Lost input channel"), rf"\[{re.escape(DROPPER)}\]\s+1 Time")
        self.assertRegex(section("Timeouts"), rf"from \[{re.escape(SLEEPER)}\]\s+1 Time")
        quit_early = section("Client quit before communicating")
        for addr in (QUITTER, SLEEPER, ERRANT) + ((AUTHBAD,) if did["auth_failed"] else ()):
            self.assertRegex(quit_early, rf"\[{re.escape(addr)}\]\s+1 Time")
        if did["auth_failed"]:
            self.assertRegex(section("Failed AUTH requests"),
                             rf"\[{re.escape(AUTHBAD)}\][^\n]*\n\s+authentication failure\s+1 Time")

    def check_json(self, log: str, texts: list[str]) -> None:
        objs = []
        for line in log.splitlines():
            with self.subTest(line=line[:120]):
                objs.append(json.loads(line))
        text_levels = {}
        for t in texts:
            lvl = re.match(r"^(warning|error|debug): ", t)
            text_levels[event(t[lvl.end():] if lvl else t)] = lvl[1] if lvl else "info"
        text_levels.pop("", None)
        json_levels = {}
        for o in objs:
            self.assertEqual((o["ident"], type(o["pid"])), ("sm-mta", int), o)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
            self.assertNotIn("truncated", o)
            fields = {k: v for k, v in o.items()
                      if k not in ("time", "host", "ident", "pid", "level", "qid", "msg")}
            if fields:
                joined = ", ".join(f"{k}={v}" for k, v in fields.items())
                self.assertEqual(f"{o['qid']}: {joined}" if "qid" in o else joined, o["msg"])
            elif "qid" in o:
                self.assertTrue(o["msg"].startswith(o["qid"] + ": "), o)
            json_levels[event(o["msg"])] = o["level"]
        json_levels.pop("", None)
        self.assertEqual(json_levels, text_levels)
        kinds = {o.get("ruleset") for o in objs} | {o.get("STARTTLS") for o in objs}
        self.assertTrue({"check_mail", "check_rcpt", "check_relay", "server"} <= kinds, kinds)
        stats = [o["stat"] for o in objs if "to" in o]
        self.assertIn("Sent (Ok: queued as 1)", stats)
        self.assertIn("Deferred: 451 4.2.1 mailbox busy", stats)

    def test_logwatch_and_json(self):
        log, did = self.run_session("text")
        logdir = self.tmp / "log"
        logdir.mkdir()
        # Debian's logwatch reads mail.log (dist.conf/logfiles/maillog.conf)
        texts = mail_log(log, logdir / "mail.log")
        json_log, _ = self.run_session("json")
        self.check_json(json_log, texts)
        if not LOGWATCH.exists():
            self.skipTest("logwatch is not installed (Debian: logwatch)")
        self.check_report(self.logwatch(logdir), texts, did)


    def test_reload_switches_the_format(self):
        """From the reload's own "configuration reloaded" line on, both ways."""
        d = self.daemon(log={"ident": "sm-mta", "format": "text"})
        for fmt, generation in (("json", 2), ("text", 3)):
            d.config["log"]["format"] = fmt
            d.write_config()
            d.signal(signal.SIGHUP)
            reloaded = rf"configuration reloaded from .* \(generation {generation}\)"
            self.assertTrue(d.wait_log(reloaded, since_start=True), fmt)
            quiet = len(re.findall("did not issue", d.log()))
            c = self.session(d)
            self.assertReply(c.cmd("QUIT"), 221)
            self.assertTrue(d.wait_log(r"did not issue(?:[\s\S]*did not issue){%d}" % quiet))
            lines = [l for l in d.log().splitlines()
                     if re.search(reloaded, l) or "did not issue" in l][-2:]
            for line in lines:
                if fmt == "json":
                    self.assertEqual(json.loads(line)["ident"], "sm-mta")
                else:
                    self.assertRegex(line, TEXT_LINE)
