"""STARTTLS in the daemon (issue 3): RFC 3207's rules over real sockets, swaks --tls end to
end, client certificates and verify=, a failed handshake that explains itself, the
handshake timeout, SIGHUP with a replaced or broken certificate, --tls-info.
"""

import re
import shutil
import signal
import subprocess
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, RingmailTestCase, make_message, ringmaild_path
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


if __name__ == "__main__":
    unittest.main()
