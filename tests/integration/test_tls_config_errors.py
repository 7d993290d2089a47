"""Bad TLS configuration stops start-up with a clear error naming what is wrong (issue 3):
a missing certificate file, a key that does not match its certificate, an unknown group, an
unknown provider, an unreadable key. Each one is refused by the daemon itself, exit 78,
with the file or setting named in the log.
"""

import os
import shutil
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import RingmailTestCase, StartError
from tls_support import Certs

CERTS: Certs


def setUpModule():
    global CERTS
    CERTS = Certs(Path(tempfile.mkdtemp(prefix="ringmail-tls-certs-")))


def tearDownModule():
    shutil.rmtree(CERTS.dir, ignore_errors=True)


class ConfigErrors(RingmailTestCase):

    def refused(self, tls: dict, *expected: str) -> str:
        """Starts a daemon with this `tls` section; it must exit 78 at start-up with every
        `expected` text in its log. Returns the log."""
        d = self.new_daemon(start=False, tls=tls)
        with self.assertRaises(StartError) as cm:
            d.start()
        self.assertIn("exited with 78", str(cm.exception))
        log = d.log(since_start=True)
        for text in expected:
            self.assertIn(text, log)
        return log

    def pair(self, kind: str = "ECDSA-P256") -> dict:
        return CERTS.pairs(kind)[0]

    def test_missing_certificate_file(self):
        missing = str(CERTS.dir / "nowhere.pem")
        self.refused({"certificates": [{**self.pair(), "cert": missing}]}, missing)

    def test_key_not_matching_certificate(self):
        ecdsa, other = self.pair("ECDSA-P256"), CERTS.pairs("ECDSA-P384")[0]
        log = self.refused({"certificates": [{"cert": ecdsa["cert"], "key": other["key"]}]},
                           ecdsa["cert"], other["key"])
        self.assertRegex(log, r"(?i)does not match|mismatch")

    def test_unknown_group(self):
        log = self.refused({"certificates": [self.pair()], "groups": ["X25519", "P-999"]},
                           "P-999")
        # the error lists what the providers do offer
        self.assertIn("X25519", log.split("P-999", 1)[1])
        self.assertIn("P-384", log.split("P-999", 1)[1])

    def test_unknown_provider(self):
        self.refused({"certificates": [self.pair()], "providers": ["no-such-provider"]},
                     "no-such-provider")

    def test_unreadable_key(self):
        key = Path(self.tmp) / "unreadable.key"
        if os.geteuid() == 0:
            key.mkdir()  # root reads any file; a directory is unreadable as a key to anyone
        else:
            shutil.copy(self.pair()["key"], key)
            key.chmod(0)
        self.refused({"certificates": [{**self.pair(), "key": str(key)}]}, str(key))


if __name__ == "__main__":
    unittest.main()
