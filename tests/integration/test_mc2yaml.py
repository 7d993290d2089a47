"""ringmail-mc2yaml, the built program: every golden .mc in tests/compat gives byte for
byte the expected YAML (stdout) and report (stderr), with the documented exit status;
-o, --strict and --future-keys behave; and ringmaild --check-config accepts every
translated file whose keys today's daemon knows (a file naming a key the daemon's schema
does not have yet, like the TLS keys while that issue is open, or a certificate that is
only on the machine the .mc came from, is listed as skipped). And the shipped example:
etc/ringmail.yaml is the translation of etc/sendmail.mc, and ringmaild runs it."""

import getpass
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

from ringmail_harness import (Daemon, SMTPConn, free_port, ipv6_loopback_available,
                              ringmaild_path)
from tls_support import Certs

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "compat"
REPO = GOLDEN.parent.parent
# where etc/sendmail.mc keeps its certificates on the box it came from
CERT_DIR = "/etc/mail/certs/"
EX_DATAERR = 65
EXIT_PERSON = 1
EXIT_STRICT = 3


def mc2yaml_path():
    return os.path.join(os.path.dirname(ringmaild_path()), "ringmail-mc2yaml")


def translate(mc, *extra):
    return subprocess.run([mc2yaml_path(), mc, "--root", "root", "-I", "inc", *extra],
                          cwd=GOLDEN, capture_output=True, text=True, timeout=60)


def expected_status(report: str) -> int:
    if re.search(r"(?m)^summary: .* [1-9]\d* errors$", report):
        return EX_DATAERR
    if re.search(r"(?m)^summary: .* [1-9]\d* need a person", report):
        return EXIT_PERSON
    return 0


class Mc2Yaml(unittest.TestCase):

    def setUp(self):
        if not os.access(mc2yaml_path(), os.X_OK):
            self.skipTest(f"{mc2yaml_path()} not built")
        self.mcs = sorted(p.name for p in GOLDEN.glob("*.mc"))
        self.assertGreaterEqual(len(self.mcs), 8)

    def test_golden_files(self):
        for mc in self.mcs:
            with self.subTest(mc=mc):
                out = translate(mc)
                stem = mc[:-3]
                want_report = (GOLDEN / f"{stem}.report").read_text()
                self.assertEqual(out.stderr, want_report)
                self.assertEqual(out.stdout, (GOLDEN / f"{stem}.yaml").read_text())
                self.assertEqual(out.returncode, expected_status(want_report), out.stderr)
                if mc.startswith("bad_"):
                    self.assertEqual(out.returncode, EX_DATAERR)
                    self.assertEqual(out.stdout, "", "malformed input must not yield YAML")
                    self.assertRegex(out.stderr, rf"(?m)^{re.escape(mc)}:\d+: error: ")

    def test_strict_and_output_file(self):
        person = [mc for mc in self.mcs
                  if expected_status((GOLDEN / f"{mc[:-3]}.report").read_text()) == EXIT_PERSON]
        self.assertTrue(person, "a golden file must need a person")
        with tempfile.TemporaryDirectory() as tmp:
            target = pathlib.Path(tmp) / "out.yaml"
            out = translate(person[0], "--strict", "-o", str(target))
            self.assertEqual(out.returncode, EXIT_STRICT)
            self.assertFalse(target.exists(), "--strict writes no YAML when a person is needed")
            out = translate("cf_quirks.mc", "--strict", "-o", str(target))
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(target.read_text(), (GOLDEN / "cf_quirks.yaml").read_text())

    def test_future_keys_are_live(self):
        out = translate("relay.mc", "--future-keys")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("Not yet enforced", out.stdout)
        self.assertRegex(out.stdout, r"(?m)^maps:\n(  .*\n)*  access: /etc/mail/access$")

    def test_usage(self):
        out = subprocess.run([mc2yaml_path()], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 64)
        self.assertIn("usage:", out.stderr)

    def test_daemon_loads_translations(self):
        checked = skipped = 0
        with tempfile.TemporaryDirectory() as tmp:
            for mc in self.mcs:
                if mc.startswith("bad_"):
                    continue
                target = pathlib.Path(tmp) / f"{mc[:-3]}.yaml"
                # the maps the translation names live under the test box's root
                text = (GOLDEN / f"{mc[:-3]}.yaml").read_text()
                target.write_text(text.replace("/etc/mail/", f"{GOLDEN}/root/etc/mail/"))
                out = subprocess.run([ringmaild_path(), "--check-config", "--config",
                                      str(target)], capture_output=True, text=True, timeout=30)
                unknown = re.search(r"unknown key '([^']+)'", out.stderr)
                if out.returncode != 0 and unknown and unknown.group(1).startswith("tls"):
                    print(f"{mc}: skipped, the daemon does not know '{unknown.group(1)}' yet")
                    skipped += 1
                    continue
                # the .mc names certificates of the machine it came from
                missing = re.search(r"(/\S+): cannot open: No such file", out.stderr)
                if out.returncode != 0 and missing and not os.path.exists(missing.group(1)):
                    print(f"{mc}: skipped, {missing.group(1)} is not on this machine")
                    skipped += 1
                    continue
                self.assertEqual(out.returncode, 0, f"{mc}: {out.stderr}")
                checked += 1
        self.assertGreaterEqual(checked, 2, f"only {checked} checked, {skipped} skipped")


class EtcExample(unittest.TestCase):
    """etc/sendmail.mc and its translation etc/ringmail.yaml (the command is in the .mc)."""

    def setUp(self):
        if not os.access(mc2yaml_path(), os.X_OK):
            self.skipTest(f"{mc2yaml_path()} not built")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = pathlib.Path(tmp.name)

    def translation(self) -> str:
        return (REPO / "etc" / "ringmail.yaml").read_text()

    def test_translation_is_current(self):
        out = subprocess.run([mc2yaml_path(), "etc/sendmail.mc", "--root", "."], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, self.translation(),
                         "etc/ringmail.yaml is not the translation of etc/sendmail.mc: run "
                         "the command in etc/sendmail.mc")
        self.assertRegex(out.stderr, r"summary: .* 0 need a person, 0 errors")

    def local_copy(self, text: str) -> str:
        """The translation with the certificates of the .mc's box made here."""
        certs = Certs(self.tmp / "made")
        here = self.tmp / "certs"
        here.mkdir()
        server_key, server_cert = certs.server["ECDSA-P256"]
        client_key, client_cert = certs.client
        for src, name in ((certs.ca, "ca.pem"), (server_cert, "mail.example.org.pem"),
                          (server_key, "mail.example.org.key"),
                          (client_cert, "relay-client.pem"), (client_key, "relay-client.key")):
            shutil.copy(src, here / name)
        self.assertEqual(sorted(re.findall(rf"{CERT_DIR}(\S+)", text)),
                         sorted(p.name for p in here.iterdir()))
        text = text.replace(CERT_DIR, f"{here}/").replace("/etc/mail/certs\n", f"{here}\n")
        # the maps (access, local-host-names, relay-domains) are the example box's, in etc/mail
        return text.replace("/etc/mail/", f"{REPO}/etc/mail/")

    def test_check_config(self):
        target = self.tmp / "ringmail.yaml"
        target.write_text(self.local_copy(self.translation()))
        out = subprocess.run([ringmaild_path(), "--check-config", "--config", str(target)],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_runs(self):
        """A real start, on free loopback ports instead of port 25 on every address."""
        if not ipv6_loopback_available():
            self.skipTest("no IPv6 loopback for the MTA-v6 listener")
        ports = [free_port(), free_port(socket.AF_INET6, "::1")]
        text = self.local_copy(self.translation())
        text = text.replace("address: 0.0.0.0\n    port: 25",
                            f"address: 127.0.0.1\n    port: {ports[0]}")
        text = text.replace('address: "::"\n    port: 25', f'address: "::1"\n    port: {ports[1]}')
        # the box's own user and spool: this test's
        text += f"run_as: {getpass.getuser()}\nspool: {self.tmp / 'spool'}\n"
        listen = [{"address": "127.0.0.1", "port": ports[0]}, {"address": "::1", "port": ports[1]}]
        daemon = Daemon(self.tmp, {"listen": listen, "spool": str(self.tmp / "spool")})
        daemon.write_config(text=text)
        daemon.start()
        self.addCleanup(daemon.stop)
        for lst in listen:
            conn = SMTPConn(lst["port"], host=lst["address"])
            self.addCleanup(conn.close)
            self.assertRegex(conn.greeting.last, r"^220 mail\.example\.org ")
            keywords = conn.ehlo().keywords()
            self.assertIn("STARTTLS", keywords)
            self.assertEqual(keywords.get("SIZE"), str(10 * 1024 * 1024))


if __name__ == "__main__":
    unittest.main()
