"""log_session.py: one session of every kind of event a sendmail log analyser reads, for
test_logwatch.py (Debian's logwatch reads the text log) and test_log_json.py (the same
session logged as JSON).

    d = log_daemon(self, sink, fmt="text")   # a started daemon, logging as sm-mta
    counts = provoke(self, d, sink)          # what the session did, for the asserts

Each kind of client comes from its own loopback address (relay_from lets only 127.0.0.1
relay), so the log names who did what. Every event is something a real client does: a
message relayed to a next hop (sink.py) that takes one recipient, defers one and refuses
one (a bounce follows), refusals at MAIL (access map) and RCPT (relaying, a local user
that does not exist), STARTTLS, a failed AUTH, a refused connection (access map), a
timeout, a client that never sends MAIL, one that goes away inside a transaction, one
that makes too many errors, and a mail filter (milter_filter.py) that changes every message
and refuses one sender.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from test_milter import HERE, PY, have_pymilter, wait_socket

from ringmail_harness import HOSTNAME, IO_TIMEOUT, SMTPConn, make_message
from tls_support import starttls
from sink import self_signed_cert

SASLPASSWD = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
USER, PASSWORD = "alice", "s3cret"

RELAYED = "127.0.0.1"    # may relay: the messages
MAILREJ = "127.0.0.21"   # MAIL refused by From: in the access map
RELAYER = "127.0.0.22"   # RCPT refused: relaying denied
BLOCKED = "127.0.0.23"   # Connect: REJECT
QUITTER = "127.0.0.24"   # EHLO, QUIT: did not issue MAIL
SLEEPER = "127.0.0.25"   # silent: timeout
DROPPER = "127.0.0.26"   # gone after RCPT: lost input channel
ERRANT = "127.0.0.27"    # too many errors
AUTHBAD = "127.0.0.28"   # AUTH with a wrong password (inside TLS)
FILTERED = "127.0.0.29"  # MAIL refused by the mail filter

ACCESS = f"Connect:{BLOCKED} REJECT\nFrom:spammer@bad.example REJECT\n"
ERRORS = 3               # limits.errors

# the next hop's answers per recipient
RCPT_REPLIES = {"defer@remote.test": "451 4.2.1 mailbox busy",
                "gone@remote.test": "550 5.1.1 no such user",
                "*": "250 2.1.5 Ok"}


def sasl_dir(tmp: Path) -> Path | None:
    """A Cyrus SASL set-up for PLAIN against a sasldb of the test's own (no saslauthd):
    None when saslpasswd2 is missing (the AUTH event is then left out)."""
    if not Path(SASLPASSWD).exists():
        return None
    d = tmp / "sasl"
    d.mkdir(exist_ok=True)
    db = d / "sasldb2"
    subprocess.run([SASLPASSWD, "-p", "-f", str(db), "-c", "-a", "Sendmail", "-u", HOSTNAME,
                    USER], input=PASSWORD.encode(), check=True, timeout=30)
    (d / "Sendmail.conf").write_text("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                                     f"sasldb_path: {db}\nmech_list: PLAIN\n")
    return d


def mail_filter(tc) -> str | None:
    """tests/integration/milter_filter.py on a unix socket (its milters[].socket), or None
    without python3-milter (the filter's events are then left out). It changes every
    message (Milter add/insert/change lines) and refuses MAIL from reject@..."""
    if not have_pymilter():
        return None
    sock = tc.tmp / f"filter{len(list(tc.tmp.glob('filter*.sock')))}.sock"
    proc = subprocess.Popen([PY, str(HERE / "milter_filter.py"), f"unix:{sock}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tc.addCleanup(lambda: (proc.kill(), proc.wait()))
    wait_socket(sock, proc)
    return f"unix:{sock}"


def log_daemon(tc, sink, fmt: str = "text", ident: str = "sm-mta"):
    """A started daemon that relays to `sink`, logging as `ident` in `fmt`."""
    cert, key = self_signed_cert(HOSTNAME)
    over = {"log": {"ident": ident, "format": fmt},
            "relay_from": [f"{RELAYED}/32"],
            "routing": {"smart_host": sink.hostport, "luser_relay": None},
            "maps": {"access": "access"},
            "limits": {"connections_per_client": 0, "errors": ERRORS},
            "timeouts": {"initial": "1s", "shutdown_grace": "5s"},
            "tls": {"certificates": [{"cert": cert, "key": key}]}}
    sasl = sasl_dir(tc.tmp)
    tc.auth = sasl is not None
    if sasl:
        over["auth"] = {"mechanisms": ["PLAIN"], "sasl_config_dir": str(sasl)}
    milter = mail_filter(tc)
    tc.milter = milter is not None
    if milter:
        over["milters"] = [{"name": "test", "socket": milter, "on_fail": "continue"}]
    d = tc.new_daemon(start=False, **over)
    (d.workdir / "access").write_text(ACCESS)
    d.start()
    return d


def conn(d, source: str) -> SMTPConn:
    return SMTPConn(d.port, source=source, timeout=IO_TIMEOUT)


def provoke(tc, d, sink) -> dict:
    """Runs the session; returns what a report must show: messages accepted, their
    recipients, refusals by kind, TLS sessions."""
    did = {"msgs": 0, "rcpts": 0, "tls": 0, "relay_denied": 0, "check_mail": 0,
           "unknown_user": 0, "check_relay": 0, "auth_failed": 0, "milter_reject": 0}

    sleeper = conn(d, SLEEPER)  # its timeout runs while the rest goes on

    # two messages relayed: one in plain text, one inside STARTTLS
    msg = make_message(subject="logs", body="hello\r\n")
    for tls, sender, rcpts in ((False, "alice@client.test",
                                ["bob@remote.test", "defer@remote.test", "gone@remote.test"]),
                               (True, "carol@client.test", ["dave@remote.test"])):
        c = conn(d, RELAYED)
        tc.assertReply(c.ehlo(), 250)
        if tls:
            tc.assertReply(starttls(c), 220)
            did["tls"] += 1
            tc.assertReply(c.ehlo(), 250)
        tc.assertReply(c.send_mail(sender, rcpts, msg), 250)
        did["msgs"] += 1
        did["rcpts"] += len(rcpts)
        tc.assertReply(c.cmd("QUIT"), 221)
        c.close()

    # MAIL refused by the access map and by the mail filter
    for source, sender, kind in ((MAILREJ, "spammer@bad.example", "check_mail"),
                                 (FILTERED, "reject@client.test", "milter_reject")):
        if kind == "milter_reject" and not tc.milter:
            continue
        c = conn(d, source)
        tc.assertReply(c.ehlo(), 250)
        tc.assertReply(c.cmd(f"MAIL FROM:<{sender}>"), 550)
        did[kind] += 1
        tc.assertReply(c.cmd("QUIT"), 221)
        c.close()

    # RCPT refused for relaying and for a user who does not exist
    c = conn(d, RELAYER)
    tc.assertReply(c.ehlo(), 250)
    tc.assertReply(c.cmd("MAIL FROM:<x@relay.example>"), 250)
    tc.assertReply(c.cmd("RCPT TO:<victim@elsewhere.example>"), 550)
    did["relay_denied"] += 1
    tc.assertReply(c.cmd(f"RCPT TO:<nosuchuser@{HOSTNAME}>"), 550)
    did["unknown_user"] += 1
    tc.assertReply(c.cmd("QUIT"), 221)
    c.close()

    # refused at connect
    c = conn(d, BLOCKED)
    tc.assertEqual(c.greeting.code, 550)
    c.wait_closed()
    c.close()
    did["check_relay"] += 1

    # never a MAIL
    c = conn(d, QUITTER)
    tc.assertReply(c.ehlo(), 250)
    tc.assertReply(c.cmd("QUIT"), 221)
    c.close()

    # gone inside a transaction
    c = conn(d, DROPPER)
    tc.assertReply(c.ehlo(), 250)
    tc.assertReply(c.cmd("MAIL FROM:<x@drop.example>"), 250)
    tc.assertReply(c.cmd(f"RCPT TO:<postmaster@{HOSTNAME}>"), 250)
    c.close()

    # too many errors
    c = conn(d, ERRANT)
    tc.assertReply(c.ehlo(), 250)
    for _ in range(ERRORS):
        r = c.cmd("BOGUS")
        if r.code == 421:
            break
    c.wait_closed()
    c.close()

    # a failed AUTH, inside TLS
    if tc.auth:
        c = conn(d, AUTHBAD)
        tc.assertReply(c.ehlo(), 250)
        tc.assertReply(starttls(c), 220)
        did["tls"] += 1
        tc.assertReply(c.ehlo(), 250)
        bad = base64.b64encode(f"\0{USER}\0wrong".encode()).decode()
        tc.assertReply(c.cmd(f"AUTH PLAIN {bad}"), 535)
        did["auth_failed"] += 1
        tc.assertReply(c.cmd("QUIT"), 221)
        c.close()

    # the sleeper's timeout, and the deliveries
    tc.assertRegex(sleeper.wait_closed(timeout=IO_TIMEOUT).decode(), r"^421 4\.4\.2 ")
    sleeper.close()
    sink.wait_messages(3, timeout=IO_TIMEOUT)  # bob, dave and the bounce to alice
    return did

