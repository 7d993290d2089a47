"""SMTP AUTH as a client (issue 12, "AUTH (client)"): ringmaild relays to a smart host that
requires AUTH — aiosmtpd with an authenticator, STARTTLS from a test certificate and AUTH
only in TLS (auth_require_tls) — with the credentials of maps.authinfo (FEATURE(authinfo))
or the access map's AuthInfo: entries.

The smart host sees the right login with the mechanism M: asks for (PLAIN, LOGIN, or
CRAM-MD5 checked against the password); a wrong password defers the message (kept in the
queue, nothing bounced) with the server's 535 in the log; a smart host without STARTTLS
never sees the credentials; a credentials file others may read stops the start-up with an
error naming it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import ssl
import threading
import unittest

from delivery_support import FAST_QUEUE, DeliveryTestCase, rcpt_line
from ringmail_harness import StartError, free_port
from sink import self_signed_cert

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:  # Debian's python3-aiosmtpd (scripts/deps.sh)
    Controller = None

USER, PASSWORD = "relay@client.test", "s3cret pass"


class AuthHost:
    """An aiosmtpd smart host on `addr` that refuses mail without AUTH; it records every
    login attempt (mechanism, login, accepted) and every message (login, envelope)."""

    def __init__(self, addr: str = "127.0.0.3", starttls: bool = True):
        self.addr, self.port = addr, free_port()
        self.logins: list[tuple[str, str, bool]] = []
        self.messages: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        kw = {}
        if starttls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self_signed_cert())
            kw["tls_context"] = ctx
        self.controller = Controller(
            self, hostname=addr, port=self.port, server_hostname="smarthost.test",
            authenticator=self.authenticate, auth_required=True,
            # without STARTTLS AUTH is offered in plain text: ringmaild must still not use it
            auth_require_tls=starttls, **kw)

    def start(self) -> "AuthHost":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def hostport(self) -> str:
        return f"[{self.addr}]:{self.port}"

    def record(self, mechanism: str, login: str, ok: bool) -> AuthResult:
        with self.lock:
            self.logins.append((mechanism, login, ok))
        # handled=False: aiosmtpd then answers a failure with its 535 itself
        return AuthResult(success=ok, handled=False, auth_data=login)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return self.record(mechanism, login, login == USER and password == PASSWORD)

    async def auth_CRAM__MD5(self, server, args):  # aiosmtpd's name for CRAM-MD5
        challenge = b"<4711.1234@smarthost.test>"
        resp = await server.challenge_auth(challenge)
        login, _, digest = resp.decode().partition(" ")
        want = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
        return self.record("CRAM-MD5", login, login == USER and digest == want)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((session.auth_data, envelope))
        return "250 2.0.0 accepted"


@unittest.skipIf(Controller is None, "python3-aiosmtpd is not installed")
class AuthClient(DeliveryTestCase):

    def host(self, **kw) -> AuthHost:
        h = AuthHost(**kw).start()
        self.addCleanup(h.stop)
        return h

    def relay_with(self, host: AuthHost, authinfo: str | None = None, access: str | None = None,
                   mode: int = 0o600, start: bool = True, **overrides):
        """A daemon whose smart host is `host`, with an authinfo file and/or an access map."""
        maps = {}
        if authinfo is not None:
            maps["authinfo"] = "authinfo"
        if access is not None:
            maps["access"] = "access"
        d = self.daemon(start=False, routing={"smart_host": host.hostport}, maps=maps,
                        queue=FAST_QUEUE, **overrides)
        for name, text in (("authinfo", authinfo), ("access", access)):
            if text is not None:
                path = d.workdir / name
                path.write_text(text)
                os.chmod(path, mode if name == "authinfo" else 0o644)
        return d.start() if start else d

    def deliver(self, host: AuthHost, d) -> str:
        qid = self.send(d, "alice@client.test", ["bob@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*stat=Sent")
        self.assertEqual(len(host.messages), 1)
        return qid

    def test_plain_after_starttls(self):
        host = self.host()
        d = self.relay_with(host, authinfo=f'AuthInfo:127.0.0.3 "U:{USER}" "P:{PASSWORD}" '
                                           '"M:PLAIN"\n')
        qid = self.deliver(host, d)
        self.assertEqual(host.logins, [("PLAIN", USER, True)])
        self.assertEqual(host.messages[0][0], USER)
        log = d.log()
        self.assertRegex(log, rf"{qid}: STARTTLS=client, relay=127\.0\.0\.3, version=TLS")
        self.assertRegex(log, rf"{qid}: AUTH=client, relay=127\.0\.0\.3, mech=PLAIN, bits=0")

    def test_cached_connection_stays_logged_in(self):
        # the second message goes on the cached, authenticated connection: no second AUTH
        # (aiosmtpd would answer 503 Already authenticated), one connection; one worker,
        # since each worker keeps its own cache
        host = self.host()
        d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:{PASSWORD}" "M:PLAIN"\n',
                            workers=1)
        self.deliver(host, d)
        qid = self.send(d, "alice@client.test", ["carol@remote.test"])
        self.wait_log(d, rcpt_line(qid, "carol@remote.test") + r".*stat=Sent")
        self.assertEqual(len(host.messages), 2)
        self.assertEqual(host.logins, [("PLAIN", USER, True)])
        self.assertEqual(len(re.findall(r"AUTH=client, relay=", d.log())), 1)

    def test_login_and_cram_md5_base64_password(self):
        # the order of M: among what the server offers; P= is the password in base64
        import base64
        b64 = base64.b64encode(PASSWORD.encode()).decode()
        for mech in ("LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                host = self.host()
                d = self.relay_with(host, authinfo=f'AuthInfo:[127.0.0.3] "I:{USER}" '
                                                   f'"P={b64}" "M:DIGEST-MD5 {mech} PLAIN"\n')
                self.deliver(host, d)
                self.assertEqual(host.logins, [(mech, USER, True)])
                self.assertRegex(d.log(), rf"AUTH=client, relay=127\.0\.0\.3, mech={mech}, "
                                          r"bits=0")

    def test_access_map_authinfo(self):
        # no authinfo map: the access map's AuthInfo: entries, the default one here
        host = self.host()
        d = self.relay_with(host, access=f'AuthInfo: "U:{USER}" "P:{PASSWORD}"\n'
                                         'Connect:127.0.0.1 RELAY\n')
        self.deliver(host, d)
        self.assertEqual(len(host.logins), 1)
        self.assertEqual(host.logins[0][1:], (USER, True))

    def test_wrong_password_defers(self):
        host = self.host()
        d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:wrong" "M:PLAIN"\n')
        qid = self.send(d, "alice@client.test", ["bob@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") +
                      r".*stat=Deferred: 535 5\.7\.8 Authentication credentials invalid")
        self.wait_log(d, rf"{qid}: AUTH=client, relay=127\.0\.0\.3, mech=PLAIN, authentication "
                         r"failed: 535 5\.7\.8")
        self.assertEqual(host.logins[0], ("PLAIN", USER, False))
        # kept for the next attempt, nothing delivered, nothing bounced
        self.assertIn(qid, d.spool.qids())
        self.assertEqual(host.messages, [])
        self.assertNotRegex(d.log(), rf"{qid}: .*(DSN|return to sender|stat=Service unavailable)")
        # retried at the next run, and deferred again (never failed)
        self.wait_log(d, rf"(?s)stat=Deferred: 535.*{re.escape(qid)}: to=<bob@remote\.test>, "
                         r".*stat=Deferred: 535", timeout=30)

    def test_reload_fixes_the_password(self):
        # the operator's way out of a deferral: a file others may read is refused at the
        # reload (the running credentials stay), the fixed private file is taken, and the
        # queued message goes with the new password
        host = self.host()
        d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:wrong" "M:PLAIN"\n')
        qid = self.send(d, "alice@client.test", ["bob@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*stat=Deferred: 535")
        path = d.workdir / "authinfo"
        path.write_text(f'AuthInfo: "U:{USER}" "P:{PASSWORD}" "M:PLAIN"\n')
        os.chmod(path, 0o644)
        d.signal(signal.SIGHUP)
        self.wait_log(d, r"reload failed, keeping the running configuration: .*"
                         rf"{re.escape(str(path))}: holds credentials but others than its owner")
        os.chmod(path, 0o600)
        d.signal(signal.SIGHUP)
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") + r".*stat=Sent", timeout=30)
        self.assertEqual(host.logins[-1], ("PLAIN", USER, True))
        self.assertEqual(len(host.messages), 1)
        self.assertTrue(d.alive())

    def test_no_credentials_without_tls(self):
        host = self.host(starttls=False)  # offers AUTH in plain text
        d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:{PASSWORD}"\n')
        qid = self.send(d, "alice@client.test", ["bob@remote.test"])
        self.wait_log(d, rcpt_line(qid, "bob@remote.test") +
                      r".*stat=Deferred: AUTH credentials are not sent over a connection "
                      r"without TLS")
        self.assertRegex(d.log(), rf"{qid}: AUTH=client, relay=127\.0\.0\.3, temporary failure, "
                                  r"connection abort: 451 4\.7\.0 AUTH credentials are not sent")
        self.assertEqual(host.logins, [])
        self.assertEqual(host.messages, [])
        self.assertIn(qid, d.spool.qids())

    def test_plain_text_allowed_by_option(self):
        host = self.host(starttls=False)
        d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:{PASSWORD}"\n',
                            delivery={"auth_without_tls": True})
        self.deliver(host, d)
        # without M: the strongest mechanism offered first
        self.assertEqual(host.logins, [("CRAM-MD5", USER, True)])

    def test_credentials_file_modes(self):
        host = self.host()
        for mode in (0o640, 0o604):
            with self.subTest(mode=oct(mode)):
                d = self.relay_with(host, authinfo=f'AuthInfo: "U:{USER}" "P:{PASSWORD}"\n',
                                    mode=mode, start=False)
                with self.assertRaises(StartError):
                    d.start()
                log = d.log()
                self.assertRegex(log, rf"{re.escape(str(d.workdir / 'authinfo'))}: holds "
                                      r"credentials but others than its owner may read it")
                self.assertNotIn(PASSWORD, log)

    def test_errors_name_file_and_line(self):
        host = self.host()
        d = self.relay_with(host, authinfo=f'# comment\nAuthInfo: "U:{USER}" "P:{PASSWORD}"\n'
                                           f'AuthInfo:x.test "U:{USER}" "X:nope"\n', start=False)
        with self.assertRaises(StartError):
            d.start()
        self.assertRegex(d.log(), r"authinfo:3: AuthInfo:x\.test: unknown field")
        self.assertNotIn(PASSWORD, d.log())


if __name__ == "__main__":
    unittest.main()
