"""SMTP AUTH as a server (docs/auth.md) against a real Cyrus SASL set-up.

The test makes what an operator has: a Sendmail.conf (the application name sendmail uses)
in its own directory (auth.sasl_config_dir), a sasldb made with saslpasswd2 for the
mechanisms that need the secret (CRAM-MD5, SCRAM: auxprop), and a real saslauthd for
PLAIN and LOGIN (pwcheck_method: saslauthd). Debian's saslauthd cannot be pointed at
another sasldb than /etc/sasldb2, so it runs with `-a rimap` against a small IMAP server
of the test's own on loopback (saslauthd's real protocol and socket, the test's
passwords). Clients: swaks (PLAIN, LOGIN, CRAM-MD5, with -tls), the raw harness client,
and a SCRAM-SHA-256 client written here with hashlib/hmac. The daemon's log then goes
through fail2ban-regex with the stock sendmail-auth filter.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import socketserver
import subprocess
import threading
import time
import unittest
from pathlib import Path

from delivery_support import FAST_QUEUE
from ringmail_harness import (HOSTNAME, IO_TIMEOUT, TEST_NET, RingmailTestCase, free_port,
                              make_message)
from test_fail2ban import FAIL2BAN_REGEX, FILTERS, syslog_file
from tls_support import Certs, starttls, tls_config

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult
except ImportError:  # Debian's python3-aiosmtpd (scripts/deps.sh)
    Controller = None

SASLAUTHD = shutil.which("saslauthd") or "/usr/sbin/saslauthd"
SASLPASSWD = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
SWAKS = shutil.which("swaks")
USER, PASSWORD = "alice", "s3cret pass"
MECHS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
REMOTE = "u@remote.example"  # a domain nobody may relay to without AUTH


class FakeIMAP(socketserver.StreamRequestHandler):
    """Just enough IMAP for saslauthd's rimap: LOGIN and LOGOUT."""

    def handle(self):
        self.wfile.write(b"* OK test IMAP ready\r\n")
        for line in self.rfile:
            parts = line.decode().rstrip("\r\n").split(" ", 2)
            tag, cmd = parts[0], parts[1].upper() if len(parts) > 1 else ""
            if cmd == "LOGIN":
                args = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', parts[2])
                user, pw = [(a or b).replace('\\"', '"') for a, b in args][:2]
                ok = (user, pw) == (USER, PASSWORD)
                self.wfile.write(f"{tag} {'OK' if ok else 'NO'} LOGIN\r\n".encode())
            elif cmd == "LOGOUT":
                self.wfile.write(f"* BYE\r\n{tag} OK LOGOUT\r\n".encode())
                return
            else:
                self.wfile.write(f"{tag} BAD\r\n".encode())


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def scram_sha256(conn, user: str, password: str) -> "Reply":
    """RFC 5802/7677 client side over a raw connection; returns the final reply."""
    nonce = b64(os.urandom(18))
    first_bare = f"n={user},r={nonce}"
    r = conn.cmd(f"AUTH SCRAM-SHA-256 {b64('n,,' + first_bare)}")
    if r.code != 334:
        return r
    server_first = base64.b64decode(r.last[4:]).decode()
    fields = dict(f.split("=", 1) for f in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c={b64('n,,')},r={fields['r']}"
    auth_msg = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_msg, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    r = conn.cmd(b64(f"{without_proof},p={b64(proof)}"))
    if r.code == 334:  # the server's final message (its signature) comes as a challenge
        r = conn.cmd("")
    return r


class AuthParamHost:
    """A next hop that offers AUTH in plain text (aiosmtpd, auth_require_tls=False) and takes
    MAIL's AUTH= (aiosmtpd itself refuses it, 555); it records each message's MAIL arguments
    as sent, case and all."""

    def __init__(self):
        self.port, self.mails, self.lock = free_port(), [], threading.Lock()
        host = self

        class Server(SMTP):
            async def smtp_MAIL(self, arg):
                host.pending = arg
                return await super().smtp_MAIL(arg)

            def _getparams(self, params):
                p = super()._getparams(params)
                if p is not None:
                    p.pop("AUTH", None)
                return p

        class Control(Controller):
            def factory(self):
                return Server(self.handler, **self.SMTP_kwargs)

        self.controller = Control(self, hostname="127.0.0.3", port=self.port,
                                  authenticator=lambda *a: AuthResult(success=False),
                                  auth_require_tls=False)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.mails.append(self.pending)
        return "250 2.0.0 accepted"

    def wait_mails(self, n: int) -> list[str]:
        deadline = time.monotonic() + 30
        while len(self.mails) < n:
            assert time.monotonic() < deadline, f"{len(self.mails)} of {n} messages came"
            time.sleep(0.05)
        return self.mails


@unittest.skipUnless(SWAKS and os.path.exists(SASLAUTHD) and os.path.exists(SASLPASSWD),
                     "swaks, saslauthd or saslpasswd2 missing (Debian: swaks, sasl2-bin)")
class Auth(RingmailTestCase):

    def setUp(self):
        super().setUp()
        self.sasl = self.tmp / "sasl"
        self.sasl.mkdir()
        # the IMAP server saslauthd checks PLAIN and LOGIN passwords with
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.imap = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeIMAP)
        threading.Thread(target=self.imap.serve_forever, daemon=True).start()
        self.addCleanup(self.imap.server_close)
        self.addCleanup(self.imap.shutdown)
        mux = self.sasl / "mux"
        mux.mkdir()
        self.saslauthd = subprocess.Popen(
            [SASLAUTHD, "-a", "rimap", "-O", f"127.0.0.1/{self.imap.server_address[1]}",
             "-m", str(mux), "-n", "2", "-d"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(self._stop_saslauthd)
        deadline = time.monotonic() + 10
        while not (mux / "mux").exists():
            self.assertLess(time.monotonic(), deadline, "saslauthd did not start")
            time.sleep(0.05)
        # the secrets CRAM-MD5 and SCRAM need, in the test's sasldb (realm: our host name)
        db = self.sasl / "sasldb2"
        subprocess.run([SASLPASSWD, "-p", "-f", str(db), "-c", "-a", "Sendmail", "-u", HOSTNAME,
                        USER], input=PASSWORD.encode(), check=True, timeout=30)
        (self.sasl / "Sendmail.conf").write_text(
            "pwcheck_method: saslauthd\n"
            f"saslauthd_path: {mux / 'mux'}\n"
            f"mech_list: {' '.join(MECHS)}\n"
            "auxprop_plugin: sasldb\n"
            f"sasldb_path: {db}\n")
        self.certs = Certs(self.tmp / "certs")

    def _stop_saslauthd(self):
        # SIGTERM lets the master end; its worker children block SIGTERM and would outlive
        # it (orphans, one set per test), so the whole group gets SIGKILL after
        pgid = self.saslauthd.pid
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.saslauthd.wait(wait)
            except subprocess.TimeoutExpired:
                pass

    def auth_daemon(self, listen_extra=None, daemon=None, **auth):
        cfg = {"mechanisms": MECHS, "trust_mechanisms": ["PLAIN", "LOGIN", "SCRAM-SHA-256"],
               "sasl_config_dir": str(self.sasl), **auth}
        d = self.new_daemon(start=False, auth=cfg, **{"relay_from": [TEST_NET], **(daemon or {})},
                            log={"ident": "sm-mta"}, **tls_config(self.certs, "RSA-2048"))
        if listen_extra:
            d.config["listen"].append({"address": "127.0.0.1", "port": free_port(),
                                       **listen_extra})
            d.write_config()
        d.start()
        return d

    def swaks(self, d, mech, password=PASSWORD, tls=True, to=REMOTE, port=None):
        args = [SWAKS, "--server", f"127.0.0.1:{port or d.port}", "--helo", "client.example",
                "--from", "a@b.example", "--to", to, "--auth", mech, "--auth-user", USER,
                "--auth-password", password, "--timeout", str(int(IO_TIMEOUT))]
        if tls:
            args.append("-tls")
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    def tls_session(self, d, port=None):
        c = self.connect(d) if port is None else self.connect_port(port)
        c.ehlo("client.example")
        self.assertEqual(starttls(c).code, 220)
        c.ehlo_reply = c.ehlo("client.example")
        return c

    def connect_port(self, port):
        from ringmail_harness import SMTPConn
        c = SMTPConn(port)
        self._conns.append(c)
        return c

    # ------------------------------------------------------------------ tests

    def test_swaks_each_mechanism_after_starttls(self):
        d = self.auth_daemon()
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                p = self.swaks(d, mech, to=f"u@{HOSTNAME}")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("<~  235 2.0.0 OK Authenticated", p.stdout)
                self.assertRegex(p.stdout, r"<~  250 2\.0\.0 \S+ Message accepted")
                self.assertTrue(d.wait_log(
                    rf"AUTH=server, relay=\[127\.0\.0\.1\], authid={USER}, mech={mech}, bits=0"))
        # sendmail's Received: for an authenticated client in TLS, in every message
        received = [d.spool.split_df(q)[0].decode("latin-1") for q in d.spool.qids()]
        self.assertEqual(len(received), 3)
        for r in received:
            self.assertRegex(r, r"Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n"
                                r"\t\(authenticated bits=0\)\r\n\tby mx\.test \(ringmail/\S+\) "
                                r"with ESMTPSA id ")

    def test_scram_sha256(self):
        d = self.auth_daemon()
        c = self.tls_session(d)
        self.assertIn("SCRAM-SHA-256", c.ehlo_reply.keywords()["AUTH"].split())
        r = scram_sha256(c, USER, PASSWORD)
        self.assertReply(r, 235, "2.0.0")
        c2 = self.tls_session(d)
        self.assertReply(scram_sha256(c2, USER, "wrong"), 535, "5.7.0")

    def test_not_offered_before_starttls_by_default(self):
        d = self.auth_daemon()
        c = self.session(d)
        self.assertNotIn("AUTH", c.ehlo_reply.keywords())
        self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 503,
                         "5.3.3")
        p = self.swaks(d, "PLAIN", tls=False)
        self.assertNotEqual(p.returncode, 0)
        c = self.tls_session(d)
        self.assertEqual(c.ehlo_reply.keywords()["AUTH"].split(), MECHS)

    def test_option_p_keeps_plaintext_mechanisms_for_tls(self):
        d = self.auth_daemon(options=["p"])
        c = self.session(d)
        self.assertEqual(c.ehlo_reply.keywords()["AUTH"].split(), ["CRAM-MD5", "SCRAM-SHA-256"])
        self.assertReply(c.cmd("AUTH PLAIN"), 504, "5.3.3")
        p = self.swaks(d, "CRAM-MD5", tls=False, to=f"u@{HOSTNAME}")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(d.wait_log(r"mech=CRAM-MD5, bits=0"))
        # plaintext mechanisms with option p: only in TLS
        c = self.tls_session(d)
        self.assertEqual(c.ehlo_reply.keywords()["AUTH"].split(), MECHS)

    def test_wrong_password_cancel_and_garbage(self):
        d = self.auth_daemon()
        p = self.swaks(d, "LOGIN", password="wrong")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("<~* 535 5.7.0 authentication failed", p.stdout)
        c = self.tls_session(d)
        self.assertReply(c.cmd("AUTH LOGIN"), 334)
        self.assertReply(c.cmd("*"), 501, "5.0.0", r"AUTH aborted")
        self.assertReply(c.cmd("AUTH PLAIN not_base64!"), 501, "5.5.2")
        self.assertReply(c.cmd("AUTH GSSAPI"), 504, "5.3.3")
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        self.assertReply(c.cmd("AUTH PLAIN"), 503, "5.5.0")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 235)
        self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 503,
                         "5.5.0", "Already Authenticated")

    def test_failures_slowed_then_dropped(self):
        d = self.auth_daemon()
        c = self.tls_session(d)
        bad = f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + 'nope')}"
        took = []
        for _ in range(4):
            t = time.monotonic()
            self.assertReply(c.cmd(bad), 535, "5.7.0")
            took.append(time.monotonic() - t)
        self.assertLess(max(took[:2]), 0.9, took)
        self.assertGreaterEqual(min(took[2:]), 0.9, took)
        c.send(bad + "\r\n")
        self.assertReply(c.reply(), 535)
        self.assertReply(c.reply(), 421, "4.7.0", "Too many authentication failures")
        self.assertTrue(d.wait_log(r"\w+: \[127\.0\.0\.1\]: possible SMTP attack: command=AUTH, "
                                   r"count=5$"))

    def test_relaying_only_when_authenticated_with_a_trusted_mechanism(self):
        d = self.auth_daemon()
        c = self.tls_session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        r = c.cmd(f"RCPT TO:<{REMOTE}>")
        self.assertReply(r, 550, "5.7.1",
                         r"Relaying denied\. Proper authentication required\.$")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 235)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example> AUTH=a@b.example"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{REMOTE}>"), 250)
        # CRAM-MD5 is not in trust_mechanisms: authenticated, but no relaying
        p = self.swaks(d, "CRAM-MD5")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("<~  235 2.0.0 OK Authenticated", p.stdout)
        self.assertIn("Relaying denied", p.stdout)

    @unittest.skipIf(Controller is None, "python3-aiosmtpd is not installed")
    def test_auth_param_passed_on_to_a_next_hop_offering_auth(self):
        # RFC 4954 5 as sendmail: an authenticated client's identity (no AUTH= given), its
        # own AUTH= when that names it, "<>" for another mailbox; nothing for a client that
        # did not authenticate (its AUTH= is dropped), as sendmail sends none then
        host = AuthParamHost()
        host.controller.start()
        self.addCleanup(host.controller.stop)
        d = self.auth_daemon(daemon={"relay_from": ["127.0.0.1/32"], "queue": FAST_QUEUE,
                                     "routing": {"smart_host": f"[127.0.0.3]:{host.port}"}})
        p = self.swaks(d, "PLAIN")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertRegex(host.wait_mails(1)[0], r"^FROM:<a@b\.example>.* AUTH=alice$")
        # counted here: the relay may deliver before the test reads len(host.mails)
        for n, (given, passed) in enumerate((("alice", "AUTH=alice"),
                                             ("bob+2Bx@b.example", "AUTH=<>")), start=2):
            c = self.tls_session(d)
            self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 235)
            self.assertReply(c.send_mail("a@b.example", [REMOTE], make_message(),
                                         mail_params=f" AUTH={given}"), 250)
            self.assertRegex(host.wait_mails(n)[n - 1], rf" {re.escape(passed)}$")
        c = self.tls_session(d)  # AUTH offered (in TLS), not used
        self.assertReply(c.send_mail("a@b.example", [REMOTE], make_message(),
                                     mail_params=" AUTH=alice"), 250)
        self.assertNotIn("AUTH=", host.wait_mails(4)[3])

    def test_auth_required_listener(self):
        d = self.auth_daemon(listen_extra={"name": "MSA", "auth_required": True})
        port = d.config["listen"][1]["port"]
        c = self.tls_session(d, port=port)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 530, "5.7.0",
                         r"Authentication required$")
        self.assertReply(c.cmd(f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"), 235)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        # the MTA listener takes mail without AUTH
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 250)
        p = self.swaks(d, "PLAIN", port=port)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_no_auth_listener(self):
        d = self.auth_daemon(listen_extra={"name": "NOAUTH", "auth": False})
        self.assertIn("AUTH", self.tls_session(d).ehlo_reply.keywords())
        c = self.tls_session(d, port=d.config["listen"][1]["port"])
        self.assertNotIn("AUTH", c.ehlo_reply.keywords())
        self.assertReply(c.cmd("AUTH PLAIN"), 503, "5.3.3")

    @unittest.skipIf(FAIL2BAN_REGEX is None, "fail2ban-regex is not installed (Debian: fail2ban)")
    def test_fail2ban_sendmail_auth_finds_the_failures(self):
        d = self.auth_daemon()
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            self.swaks(d, mech, password="wrong")
        self.assertTrue(d.wait_log(r"AUTH failure \(CRAM-MD5\)"))
        # and a guesser dropped after its 5th failure: sendmail's "possible SMTP attack"
        c = self.tls_session(d)
        bad = f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + 'nope')}\r\n"
        c.send(bad * 5)
        self.assertTrue(d.wait_log(r"possible SMTP attack: command=AUTH", timeout=15))
        lines = syslog_file(d.log(), self.tmp / "mail.log")
        failures = [l for l in lines if "AUTH failure" in l or "SMTP attack" in l]
        self.assertEqual(len(failures), 9, "\n".join(lines[-20:]))
        p = subprocess.run([FAIL2BAN_REGEX, "--raw", "-o", "ip", str(self.tmp / "mail.log"),
                            str(FILTERS / "sendmail-auth.conf")],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertEqual(p.stdout.split(), ["127.0.0.1"] * 9, "\n".join(failures))


if __name__ == "__main__":
    unittest.main()
