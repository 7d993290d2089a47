"""ringmail's own TLS client (tls_ctx_new_client + tls_session, tests/tools/tls_client.c)
against ringmaild: verify=OK against the test CA with the right name (sent as SNI and
checked against the certificate), FAIL with a reason against a wrong CA or a wrong name,
and the negotiated group reported on both sides.
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, RingmailTestCase
from tls_support import Certs, tls_config


def tool() -> str | None:
    d = os.environ.get("RINGMAIL_TOOLS")
    path = Path(d) / "tls_client" if d else None
    return str(path) if path and os.access(path, os.X_OK) else None


class Client(RingmailTestCase):

    def run_client(self, d, cafile, name):
        run = subprocess.run([tool(), str(d.port), str(cafile), name], capture_output=True,
                             timeout=30)
        out = run.stdout.decode().strip()
        self.assertEqual(run.returncode, 0, f"{out} {run.stderr.decode()}")
        fields, reason = out.split(" reason=", 1)
        return dict(kv.split("=", 1) for kv in fields.split(" ")) | {"reason": reason}

    def test_client_side(self):
        if not tool():
            self.skipTest("RINGMAIL_TOOLS/tls_client not built")
        certs = Certs(Path(tempfile.mkdtemp(dir=self.tmp)))
        d = self.daemon(**tls_config(certs, "ECDSA-P384", groups=["X25519", "P-384"]))
        r = self.run_client(d, certs.ca, HOSTNAME)
        self.assertEqual((r["state"], r["verify"], r["sni"], r["ehlo"]),
                         ("OPEN", "OK", HOSTNAME, "250"))
        self.assertIn(r["group"], ("X25519", "P-384"))
        self.assertIsNotNone(d.wait_log(rf"STARTTLS=server, .*group={r['group']}, "
                                        rf"cert=ECDSA-P384"))
        wrong = self.run_client(d, certs.foreign[1], HOSTNAME)  # a CA that did not sign it
        self.assertEqual(wrong["verify"], "FAIL")
        self.assertNotEqual(wrong["reason"], "-")
        misnamed = self.run_client(d, certs.ca, "other.example")
        self.assertEqual(misnamed["verify"], "FAIL")


if __name__ == "__main__":
    unittest.main()
