"""ringmail-mc2yaml, the built program: every golden .mc in tests/compat gives byte for
byte the expected YAML (stdout) and report (stderr), with the documented exit status;
-o, --strict and --future-keys behave; and ringmaild --check-config accepts every
translated file whose keys today's daemon knows (a file naming a key the daemon's schema
does not have yet, like the TLS keys while that issue is open, or a certificate that is
only on the machine the .mc came from, is listed as skipped)."""

import os
import pathlib
import re
import subprocess
import tempfile
import unittest

from ringmail_harness import ringmaild_path

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "compat"
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
                target.write_text((GOLDEN / f"{mc[:-3]}.yaml").read_text())
                out = subprocess.run([ringmaild_path(), "--check-config", "--config",
                                      str(target)], capture_output=True, text=True, timeout=30)
                unknown = re.search(r"unknown key '([^']+)'", out.stderr)
                if out.returncode != 0 and unknown and unknown.group(1).startswith("tls"):
                    print(f"{mc}: skipped, the daemon does not know '{unknown.group(1)}' yet")
                    skipped += 1
                    continue
                # the .mc names certificates of the machine it came from
                missing = re.search(r"cannot read (/\S+): No such file", out.stderr)
                if out.returncode != 0 and missing and not os.path.exists(missing.group(1)):
                    print(f"{mc}: skipped, {missing.group(1)} is not on this machine")
                    skipped += 1
                    continue
                self.assertEqual(out.returncode, 0, f"{mc}: {out.stderr}")
                checked += 1
        self.assertGreaterEqual(checked, 2, f"only {checked} checked, {skipped} skipped")


if __name__ == "__main__":
    unittest.main()
