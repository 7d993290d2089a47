"""The seed matrix (issue 3): a server with an ECDSA certificate on P-256, P-384 or P-521,
alone and paired with RSA-2048, against `openssl s_client -starttls smtp` offering one
group each (X25519, P-256, P-384, P-521, ffdhe2048) over TLS 1.3 and TLS 1.2. Every
combination the client can do succeeds and the log names the group the client asked for.

What a client limited to one group cannot do is TLS 1.2 with an ECDSA certificate on
another curve: RFC 8422 5.1 lets a TLS 1.2 server use an ECDSA certificate only on a curve
the client lists in supported_groups, and ffdhe in TLS 1.2 means a DHE suite, which exists
for RSA only. Alone, such a server fails that handshake (with the reason and the offered
groups in the log); paired with RSA-2048 it succeeds with the RSA certificate — the point of
dual certificates. TLS 1.2 DHE uses OpenSSL's automatic parameters (RFC 3526, logged
group=modp_2048): TLS 1.2 has no ffdhe negotiation in OpenSSL 3.0.

With two certificates, the client's signature algorithms choose which one it gets. And the
sendmail bug itself: a P-384-only server and s_client with default options.

One daemon per certificate configuration, many handshakes against it.
"""

import re
import tempfile
import time
import unittest
from pathlib import Path

from ringmail_harness import RingmailTestCase
from tls_support import Certs, SClient, fingerprint, tls_config

GROUPS = ["X25519", "P-256", "P-384", "P-521", "ffdhe2048"]
VERSIONS = ["-tls1_3", "-tls1_2"]
CERTS: Certs


def setUpModule():
    global CERTS
    CERTS = Certs(Path(tempfile.mkdtemp(prefix="ringmail-tls-certs-")))


class Matrix(RingmailTestCase):

    def handshake(self, d, *args):
        """One s_client run and the server's STARTTLS=server line for it."""
        rx = re.compile(r"^.*STARTTLS=server.*$", re.M)
        before = len(rx.findall(d.log()))
        sc = SClient(d.port, *args)
        deadline = time.monotonic() + 10
        while len(lines := rx.findall(d.log())) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreater(len(lines), before, f"no STARTTLS=server line for {args}: {sc}")
        return sc, lines[before]

    def run_matrix(self, kinds):
        d = self.daemon(**tls_config(CERTS, *kinds))
        dual = "RSA-2048" in kinds
        results = {}
        for version in VERSIONS:
            for group in GROUPS:
                with self.subTest(certs=kinds, group=group, version=version):
                    sc, line = self.handshake(d, "-groups", group, version)
                    curve = "P-" + kinds[0][-3:]
                    ecdsa_ok = version == "-tls1_3" or group == curve
                    results[(group, version)] = sc.ok
                    if not ecdsa_ok and not dual:
                        self.assertFalse(sc.ok, sc)
                        # OpenSSL's client leaves ffdhe out of a TLS 1.2 hello: nothing offered
                        offered = "none" if group.startswith("ffdhe") else group
                        self.assertRegex(line, rf"error: reason=no shared cipher, "
                                               rf"offered_groups={offered}, offered_sigalgs=")
                        continue
                    self.assertTrue(sc.ok, f"{sc}\n{line}")
                    self.assertIn(f"version=TLSv1.{version[-1]}", line)
                    dhe12 = group.startswith("ffdhe") and version == "-tls1_2"
                    self.assertIn("group=modp_2048," if dhe12 else f"group={group},", line)
                    self.assertIn(f"cert={kinds[0] if ecdsa_ok else 'RSA-2048'}", line)
        return d, results

    def check_sigalgs(self, d, kinds):
        """RSA-only signature algorithms get the RSA certificate, ECDSA-only the ECDSA one."""
        ecdsa = kinds[0]
        curve = {"ECDSA-P256": "SHA256", "ECDSA-P384": "SHA384", "ECDSA-P521": "SHA512"}[ecdsa]
        for version in VERSIONS:
            rsa_algs = "RSA-PSS+SHA256:RSA+SHA256" if version == "-tls1_2" else "RSA-PSS+SHA256"
            with self.subTest(certs=kinds, sigalgs="RSA", version=version):
                sc, line = self.handshake(d, "-sigalgs", rsa_algs, version)
                self.assertTrue(sc.ok, sc)
                self.assertIn("cert=RSA-2048", line)
                self.assertEqual(fingerprint(sc.cert),
                                 fingerprint(CERTS.server["RSA-2048"][1].read_bytes()))
            with self.subTest(certs=kinds, sigalgs="ECDSA", version=version):
                sc, line = self.handshake(d, "-sigalgs", f"ECDSA+{curve}", version)
                self.assertTrue(sc.ok, sc)
                self.assertIn(f"cert={ecdsa}", line)
                self.assertEqual(fingerprint(sc.cert),
                                 fingerprint(CERTS.server[ecdsa][1].read_bytes()))

    def test_p256(self):
        self.run_matrix(["ECDSA-P256"])

    def test_p384(self):
        self.run_matrix(["ECDSA-P384"])

    def test_p521(self):
        self.run_matrix(["ECDSA-P521"])

    def test_p256_rsa(self):
        d, _ = self.run_matrix(["ECDSA-P256", "RSA-2048"])
        self.check_sigalgs(d, ["ECDSA-P256", "RSA-2048"])

    def test_p384_rsa(self):
        d, _ = self.run_matrix(["ECDSA-P384", "RSA-2048"])
        self.check_sigalgs(d, ["ECDSA-P384", "RSA-2048"])

    def test_p521_rsa(self):
        d, _ = self.run_matrix(["ECDSA-P521", "RSA-2048"])
        self.check_sigalgs(d, ["ECDSA-P521", "RSA-2048"])

    def test_sendmail_bug_reproduction(self):
        """Fedora 26's failure: a secp384r1-only server and s_client with default options."""
        d = self.daemon(**tls_config(CERTS, "ECDSA-P384"))
        sc = SClient(d.port)
        self.assertTrue(sc.ok, sc)
        self.assertIsNotNone(d.wait_log(r"STARTTLS=server, relay=\[127\.0\.0\.1\], "
                                        r"version=TLSv1\.3, verify=NO, cipher=\S+, "
                                        r"bits=\d+/\d+, group=\S+, cert=ECDSA-P384"))
        self.assertNotIn("no shared cipher", d.log())


if __name__ == "__main__":
    unittest.main()
