"""STARTTLS in the daemon (issue 3): RFC 3207's rules over real sockets, swaks --tls end to
end, client certificates and verify=, a failed handshake that explains itself, the
handshake timeout, SIGHUP with a replaced or broken certificate, --tls-info.
"""

import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import (HOSTNAME, IO_TIMEOUT, RingmailTestCase, make_message,
                              ringmaild_path)
from tls_support import (Certs, SClient, client_context, fingerprint, starttls, tls_config,
                         wrap_tls)

CERTS: Certs


def setUpModule():
    global CERTS
    CERTS = Certs(Path(tempfile.mkdtemp(prefix="ringmail-tls-certs-")))


class Rules(RingmailTestCase):

    def test_starttls_rules(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256", "RSA-2048"))
        c = self.session(d)
        self.assertIn("STARTTLS", c.ehlo_reply.keywords())
        # plaintext pipelined after STARTTLS is discarded, never executed (CVE-2011-0411)
        c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
        self.assertReply(c.reply(), 220, "2.0.0", r"Ready to start TLS")
        c.buf = b""  # the daemon sent nothing after the 220: wrap_tls checks the socket
        wrap_tls(c, client_context(verify=True, cafile=CERTS.ca))
        # a new EHLO is required: the plaintext session is forgotten
        self.assertReply(c.cmd("MAIL FROM:<a@b.example>"), 503)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertNotIn("STARTTLS", r.keywords())
        self.assertReply(c.cmd("RCPT TO:<user@mx.test>"), 503)  # the evil MAIL was not kept
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
        self.assertReply(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], make_message()), 250)
        self.assertIsNotNone(d.wait_log(r"STARTTLS=server, relay=\[127\.0\.0\.1\], "
                                        r"version=TLSv1\.3, verify=NO, cipher=\S+, bits=\d+/\d+, "
                                        r"group=\S+, cert=ECDSA-P256"))
        self.assertIsNotNone(d.wait_log(r"proto=ESMTPS, daemon=MTA"))

    def test_pipelined_rset_not_answered(self):
        # The injection probe: an RSET riding in the STARTTLS packet must not be
        # answered after the handshake (it would be, if it were kept and run over TLS).
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        c = self.session(d)
        c.send("STARTTLS\r\nRSET\r\n")
        self.assertReply(c.reply(), 220, "2.0.0", r"Ready to start TLS")
        c.buf = b""
        wrap_tls(c, client_context(verify=True, cafile=CERTS.ca))
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0", r"2\.0\.0 OK$")
        self.assertReply(c.cmd("QUIT"), 221)

    def test_listener_without_starttls(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        d.config["listen"][0]["starttls"] = False
        d.write_config()
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"configuration reloaded"))
        c = self.session(d)
        self.assertNotIn("STARTTLS", c.ehlo_reply.keywords())
        self.assertReply(c.cmd("STARTTLS"), 454, "4.7.0")

    def test_no_certificates_no_starttls(self):
        d = self.daemon()
        c = self.session(d)
        self.assertNotIn("STARTTLS", c.ehlo_reply.keywords())
        self.assertReply(c.cmd("STARTTLS"), 454, "4.7.0")
        self.assertIsNotNone(d.wait_log(r"STARTTLS not offered"))

    def test_swaks_tls_end_to_end(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks not installed")
        d = self.daemon(**tls_config(CERTS, "ECDSA-P384", "RSA-2048"))
        run = subprocess.run(["swaks", "--server", f"127.0.0.1:{d.port}", "--tls",
                              "--from", "a@b.example", "--to", f"user@{HOSTNAME}",
                              "--helo", "client.example", "--timeout", "20"],
                             capture_output=True, timeout=60)
        out = run.stdout.decode(errors="replace")
        self.assertEqual(run.returncode, 0, out)
        qid = re.search(r"<~\s+250 2\.0\.0 (\S+) Message accepted", out).group(1)
        received, _ = d.spool.split_df(qid)
        self.assertRegex(received.decode(), r"with ESMTPS id " + qid +
                         r"\r\n\t\(version=TLSv1\.3 cipher=\S+ bits=\d+ verify=NO\)")
        self.assertEqual(d.spool.envelope(qid)["proto"], "ESMTPS")
        self.assertIsNotNone(d.wait_log(qid + r": from=<a@b\.example>.*proto=ESMTPS"))

    def test_client_certificates(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256", ca_file=str(CERTS.ca)))
        for name, (key, cert), verify in (("signed", CERTS.client, "OK"),
                                          ("foreign", CERTS.foreign, "FAIL")):
            with self.subTest(client=name):
                n = len(re.findall("STARTTLS=server", d.log()))
                sc = SClient(d.port, "-cert", str(cert), "-key", str(key))
                self.assertTrue(sc.ok, sc)
                m = d.wait_log(rf"(?s)(?:.*?STARTTLS=server){{{n}}}.*?STARTTLS=server, "
                               rf"relay=\S+, version=\S+, verify=(\w+)")
                self.assertEqual(m.group(1), verify, d.log_tail())
        sc = SClient(d.port)
        self.assertIsNotNone(d.wait_log(r"verify=NO,"))

    def test_failed_handshake_explains_itself(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P521", groups=["P-521"]))
        sc = SClient(d.port, "-groups", "X25519")
        self.assertFalse(sc.ok, sc)
        self.assertIsNotNone(d.wait_log(r"STARTTLS=server, relay=\[127\.0\.0\.1\], error: "
                                        r"reason=[^,]+, offered_groups=X25519, "
                                        r"offered_sigalgs=\S+"))

    def test_handshake_timeout(self):
        d = self.daemon(timeouts={"shutdown_grace": "5s", "starttls": "500ms"},
                        **tls_config(CERTS, "ECDSA-P256"))
        c = self.session(d)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.wait_closed(timeout=10)  # no ClientHello: closed after timeouts.starttls
        self.assertIsNotNone(d.wait_log(r"STARTTLS=server, relay=\S+, error: timeout"))


class Reload(RingmailTestCase):

    def test_sighup_replaced_and_broken_certificate(self):
        live = self.tmp / "live"
        live.mkdir()
        key, cert = live / "server.key", live / "server.pem"
        shutil.copy(CERTS.server["ECDSA-P256"][0], key)
        shutil.copy(CERTS.server["ECDSA-P256"][1], cert)
        d = self.daemon(tls={"certificates": [{"cert": str(cert), "key": str(key)}]})
        old = fingerprint(SClient(d.port).cert)
        self.assertEqual(old, fingerprint(cert.read_bytes()))

        # an established TLS session keeps working across the reload
        c = self.session(d)
        self.assertReply(starttls(c), 220)
        self.assertReply(c.ehlo(), 250)

        shutil.copy(CERTS.server["ECDSA-P384"][0], key)
        shutil.copy(CERTS.server["ECDSA-P384"][1], cert)
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"configuration reloaded .*generation 2"))
        new = fingerprint(SClient(d.port).cert)
        self.assertNotEqual(new, old)
        self.assertEqual(new, fingerprint(cert.read_bytes()))
        self.assertReply(c.cmd("NOOP"), 250)

        cert.write_text("not a certificate\n")
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"reload failed, keeping the running configuration: "
                                        r".*server\.pem"))
        self.assertEqual(fingerprint(SClient(d.port).cert), new)
        self.assertReply(c.send_mail("a@b.example", [f"user@{HOSTNAME}"], make_message()), 250)


class TlsInfo(RingmailTestCase):

    def test_tls_info(self):
        d = self.daemon(start=False, **tls_config(CERTS, "ECDSA-P384", "RSA-2048",
                                                   groups=["X25519", "P-384"]))
        run = subprocess.run([ringmaild_path(), "--tls-info", "--config", str(d.config_path)],
                             capture_output=True, timeout=30)
        out = run.stdout.decode()
        self.assertEqual(run.returncode, 0, run.stderr)
        for want in ("X25519", "P-384", "ffdhe2048", "ECDSA-P384", "RSA-2048", "CN=mx.test"):
            self.assertIn(want, out)
        d.config["tls"]["groups"] = ["X25519", "P-999"]
        d.write_config()
        run = subprocess.run([ringmaild_path(), "--tls-info", "--config", str(d.config_path)],
                             capture_output=True, timeout=30)
        self.assertEqual(run.returncode, 78)
        self.assertIn("P-999", run.stderr.decode())


class Tickets(RingmailTestCase):
    """A TLS 1.3 server's session tickets are nothing its client waits for: they leave with
    the reply to the client's EHLO (RFC 3207: the client speaks first after the handshake)
    instead of in a send and a segment of their own. TLS 1.2's tickets are part of the
    handshake's last flight, which the client does wait for."""

    QUIET_S = 0.5  # without the hold the tickets arrive within a millisecond

    def handshake(self, d, ctx):
        """STARTTLS, then the handshake through memory BIOs over the raw socket, so that
        nothing but this test reads the socket: (conn, TLS object)."""
        c = self.session(d)
        self.assertReply(c.cmd("STARTTLS"), 220)
        self.assertEqual(c.buf, b"")
        into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        t = ctx.wrap_bio(into, out, server_hostname=HOSTNAME)
        while True:
            try:
                t.do_handshake()
                break
            except ssl.SSLWantReadError:
                c.sock.sendall(out.read())
                chunk = c.sock.recv(65536)
                self.assertTrue(chunk, "the server closed the connection in the handshake")
                into.write(chunk)
        c.sock.sendall(out.read())  # the client's Finished
        return c, t, into, out

    def silent(self, sock) -> bool:
        return not select.select([sock], [], [], self.QUIET_S)[0]

    def ehlo(self, c, t, into, out) -> bytes:
        """EHLO over the session; the whole 250 reply's plaintext."""
        t.write(b"EHLO client.example\r\n")
        c.sock.sendall(out.read())
        text = b""
        while not re.search(rb"(^|\r\n)250 [^\r\n]*\r\n$", text):
            chunk = c.sock.recv(65536)
            self.assertTrue(chunk, f"the server closed the connection; have {text!r}")
            into.write(chunk)
            try:
                text += t.read(65536)
            except ssl.SSLWantReadError:
                pass
        return text

    def test_tls13_tickets_ride_with_the_ehlo_reply(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        ctx = client_context(verify=True, cafile=CERTS.ca)
        c, t, into, out = self.handshake(d, ctx)
        self.assertEqual(t.version(), "TLSv1.3")
        self.assertTrue(self.silent(c.sock), "the server wrote before the client's EHLO")
        self.assertIn(b"250 ", self.ehlo(c, t, into, out))
        self.assertTrue(t.session.has_ticket, "no session ticket came with the EHLO reply")
        # the ticket resumes: a new connection offers it and the handshake is abbreviated
        r = self.session(d)
        self.assertReply(r.cmd("STARTTLS"), 220)
        r.sock.settimeout(IO_TIMEOUT)
        r.sock = ctx.wrap_socket(r.sock, server_hostname=HOSTNAME, session=t.session)
        self.assertReply(r.ehlo(), 250)
        self.assertTrue(r.sock.session_reused)
        self.assertReply(r.cmd("QUIT"), 221)

    def test_tls13_tickets_before_the_close(self):
        """A client that leaves without a command still gets them, with the close."""
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        c, t, into, out = self.handshake(d, client_context(verify=True, cafile=CERTS.ca))
        self.assertTrue(self.silent(c.sock))
        c.sock.shutdown(socket.SHUT_WR)
        while chunk := c.sock.recv(65536):
            into.write(chunk)
        with self.assertRaises((ssl.SSLZeroReturnError, ssl.SSLWantReadError, ssl.SSLEOFError)):
            t.read(1)
        self.assertTrue(t.session.has_ticket)

    def test_tls12_last_flight_not_held(self):
        d = self.daemon(**tls_config(CERTS, "ECDSA-P256"))
        ctx = client_context(verify=True, cafile=CERTS.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c, t, into, out = self.handshake(d, ctx)  # hangs if the server's Finished were held
        self.assertEqual(t.version(), "TLSv1.2")
        self.assertIn(b"250 ", self.ehlo(c, t, into, out))


if __name__ == "__main__":
    unittest.main()
