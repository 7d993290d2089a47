"""--check-config: a valid file prints the effective configuration (itself a valid file)
and exits 0; a bad one exits non-zero naming FILE:LINE:COL and the key."""

import os
import re
import subprocess
import unittest

from ringmail_harness import RingmailTestCase, ringmaild_path

EX_CONFIG = 78


class CheckConfig(RingmailTestCase):

    def check(self, path, timeout=30):
        return subprocess.run([ringmaild_path(), "--check-config", "--config", str(path)],
                              capture_output=True, text=True, timeout=timeout)

    def test_valid_file(self):
        d = self.daemon(start=False, relay_domains=["relay.test"],
                        limits={"message_size": "10M", "recipients": 77},
                        timeouts={"rcpt": "90s", "misc": "500ms"})
        out = self.check(d.config_path)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout
        self.assertRegex(text, r"(?m)^hostname: \"?mx\.test\"?$")
        self.assertIn(str(d.port), text)
        self.assertIn("relay.test", text)
        self.assertRegex(text, r"(?m)^\s+recipients: 77$")
        self.assertIn(d.config["spool"], text)
        # keys not in the file appear with their defaults
        for key in ("workers", "relay_from", "limits", "timeouts", "command_line", "datablock"):
            self.assertRegex(text, rf"(?m)^\s*{key}:", f"effective config lacks {key}")
        # the printed configuration is itself a valid file that prints the same
        again = d.workdir / "printed.yaml"
        again.write_text(text)
        out2 = self.check(again)
        self.assertEqual(out2.returncode, 0, out2.stderr)
        self.assertEqual(out2.stdout.replace(str(again), "X"), text.replace(str(d.config_path), "X"))

    def bad(self, body: str, key: str, line: int):
        d = self.daemon(start=False, timeouts=None, limits=None)  # the bodies add their own
        good = d.config_path.read_text()
        d.write_config(text=good + body)
        line += len(good.splitlines())
        out = self.check(d.config_path)
        self.assertNotEqual(out.returncode, 0, f"accepted a bad file:\n{body}")
        self.assertEqual(out.returncode, EX_CONFIG, out.stderr)
        self.assertRegex(out.stderr, rf"{re.escape(str(d.config_path))}:{line}:\d+:",
                         "the error must name FILE:LINE:COL")
        self.assertIn(key, out.stderr)
        return d, out

    def test_unknown_top_level_key(self):
        self.bad("bogus_key: 1\n", "bogus_key", 1)

    def test_unknown_nested_key(self):
        self.bad("limits:\n  recipients: 10\n  frobs: 3\n", "frobs", 3)

    def test_wrong_type(self):
        self.bad("limits:\n  recipients: many\n", "recipients", 2)

    def test_bad_duration(self):
        self.bad("relay_domains: [a.test]\ntimeouts:\n  datablock: 5 parsecs\n", "datablock", 3)

    def test_bad_size(self):
        self.bad("limits:\n  message_size: 10Q\n", "message_size", 2)

    def test_bad_network(self):
        self.bad('relay_from: ["10.0.0.0/99"]\n', "relay_from", 1)

    def test_daemon_refuses_bad_file(self):
        d, checked = self.bad("bogus_key: 1\n", "bogus_key", 1)
        run = subprocess.run([ringmaild_path(), "--config", str(d.config_path), "--foreground"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(run.returncode, EX_CONFIG, run.stderr)
        self.assertIn(f"{d.config_path}:", run.stderr)
        self.assertIn("bogus_key", run.stderr)

    def test_missing_run_as_user(self):
        """A start as root would exit 71 for want of the user: the check says so first."""
        d = self.daemon(start=False, run_as="no-such-user-ringmail")
        out = self.check(d.config_path)
        self.assertIn("run_as user 'no-such-user-ringmail' does not exist", out.stderr)
        if os.geteuid() == 0:
            self.assertEqual(out.returncode, EX_CONFIG, out.stderr)
        else:  # it would run as its own user: a warning only
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("warning:", out.stderr)

    def test_auth_required_listener_refused(self):
        """M=a without auth_required would be an open submission port: refused with file and
        line."""
        d = self.daemon(start=False)
        d.config["listen"].append({"name": "MSA", "address": "127.0.0.1", "port": 1587,
                                   "modifiers": "Ea"})
        d.write_config()
        out = self.check(d.config_path)
        self.assertEqual(out.returncode, EX_CONFIG, out.stderr)
        self.assertRegex(out.stderr, rf"{re.escape(str(d.config_path))}:\d+:\d+: key "
                                     r"'listen\[1\]\.modifiers': 'Ea': 'a' \(SMTP AUTH required\) "
                                     r"is said with auth_required: true")

    def test_missing_file(self):
        out = self.check(self.tmp / "does-not-exist.yaml")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("does-not-exist.yaml", out.stderr)

    def test_yaml_syntax_error(self):
        d = self.daemon(start=False)
        d.write_config(text="hostname: mx.test\nlocal_domains: [a, b\nworkers: 2\n")
        out = self.check(d.config_path)
        self.assertEqual(out.returncode, EX_CONFIG, out.stderr)
        self.assertRegex(out.stderr, rf"{re.escape(str(d.config_path))}:\d+:")


if __name__ == "__main__":
    unittest.main()
