"""ringmail-mc2yaml, the built program: every golden .mc in tests/compat gives byte for
byte the expected YAML (stdout) and report (stderr), with the documented exit status;
-o, --strict and --future-keys behave; and ringmaild --check-config accepts every
translated file whose keys today's daemon knows (a file naming a key the daemon's schema
does not have yet, like the TLS keys while that issue is open, or a certificate that is
only on the machine the .mc came from, is listed as skipped). And the shipped example:
etc/ringmail.yaml is the translation of etc/sendmail.mc, and ringmaild runs it."""

import getpass
import json
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
from test_mc_oracle import get, read_yaml
from tls_support import Certs

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "compat"
REPO = GOLDEN.parent.parent
# where etc/sendmail.mc keeps its certificates on the box it came from
CERT_DIR = "/etc/mail/certs/"
EX_DATAERR = 65
EXIT_PERSON = 1
EXIT_STRICT = 3
# Keys the translator keeps for later that the daemon cannot take as kept keys yet: not in
# its schema, or read without the start-up warning of a key not enforced. Each is for
# core/config_keys.c (a KEPT entry) and docs/config.md; its line here goes when that lands.
DAEMON_GAPS: dict[str, str] = {}
# M= letters the translator never writes as a live listener (a listener with them is
# commented out and needs a person).
UNMET_MODIFIERS = set("as")


def mc2yaml_path():
    return os.path.join(os.path.dirname(ringmaild_path()), "ringmail-mc2yaml")


def translate(mc, *extra):
    return subprocess.run([mc2yaml_path(), mc, "--root", "root", "-I", "inc", *extra],
                          cwd=GOLDEN, capture_output=True, text=True, timeout=60)


def yaml_text(value, indent=0) -> str:
    """A YAML block for a value of read_yaml's tree (str, list, dict)."""
    pad = " " * indent
    if isinstance(value, dict):
        return "".join(f"{pad}{k}:" + (f" {yaml_scalar(v)}\n" if isinstance(v, str)
                                       else "\n" + yaml_text(v, indent + 2))
                       for k, v in value.items())
    if isinstance(value, list):
        return "".join(f"{pad}- {yaml_scalar(v)}\n" if isinstance(v, str)
                       else f"{pad}-\n" + yaml_text(v, indent + 2) for v in value)
    return f"{pad}{yaml_scalar(value)}\n"


def yaml_scalar(text: str) -> str:
    return text if re.fullmatch(r"[\w./+@-]+", text) else json.dumps(text)


def kept_doc(path: str, tree: dict, tmp: pathlib.Path):
    """A configuration that sets only the kept key `path` as the translation has it (files
    it names made empty under tmp), and the key the daemon's warning names; None when the
    translation has nothing to test it with."""
    def local_files(value):
        if isinstance(value, str) and value.startswith("/"):
            target = tmp / value.strip("/").replace("/", "_")
            target.touch()
            return str(target)
        if isinstance(value, list):
            return [local_files(v) for v in value]
        return value
    if path == "listen.modifiers":
        items = [i for i in get(tree, "listen") or []
                 if i.get("modifiers") and not set(i["modifiers"]) & UNMET_MODIFIERS]
        if not items:
            return None
        listener = {"name": "T", "address": "127.0.0.1", "port": "2525",
                    "modifiers": items[0]["modifiers"]}
        return yaml_text({"listen": [listener]}), "listen[0].modifiers"
    value = get(tree, path)
    if value is None:
        return None
    doc = local_files(value)
    for part in reversed(path.split(".")):
        doc = {part: doc}
    return yaml_text(doc), path


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
        self.assertEqual(out.returncode, expected_status(out.stderr), out.stderr)
        self.assertNotIn("Not yet enforced", out.stdout)
        self.assertRegex(out.stdout, r"(?m)^maps:\n(  .*\n)*  access: /etc/mail/access$")

    def good(self):
        return [mc for mc in self.mcs if not mc.startswith("bad_")]

    def test_summary_counts_kept_apart(self):
        """A key kept for later is not counted as translated: the summary says how many the
        daemon does not enforce, beside 'need a person' (the fallback MX is one of them; the
        smart host is enforced)."""
        for mc in self.good():
            with self.subTest(mc=mc):
                report = translate(mc).stderr
                kinds = re.findall(r"(?m)^(?:[^:\n]+:(?:\d+:)? )?([a-z ]+): ", report)
                summary = re.search(r"(?m)^summary: (\d+) translated, (\d+) kept for later "
                                    r"\(not enforced yet\), (\d+) ignored, (\d+) warnings, "
                                    r"(\d+) need a person, (\d+) errors$", report)
                self.assertIsNotNone(summary, report)
                counts = [int(n) for n in summary.groups()]
                self.assertEqual(counts, [kinds.count(k) for k in (
                    "translated", "kept for later", "ignored", "warning", "needs a person",
                    "error")], report)
                self.assertNotIn("(kept for later)", report)
        report = translate("smart_host.mc").stderr
        self.assertRegex(report, r"(?m): translated: define\(SMART_HOST\) -> "
                                 r"routing\.smart_host = \[relay\.example\.net\]$")
        report = translate("kept_keys.mc").stderr
        self.assertRegex(report, r"(?m): kept for later: define\(confFALLBACK_MX\) -> "
                                 r"routing\.fallback_mx = fallback\.example\.net$")
        self.assertRegex(report, r"summary: \d+ translated, [1-9]\d* kept for later")

    def test_kept_keys_are_kept_by_the_daemon(self):
        """Every key the report counts as kept for later is one ringmaild accepts and names in
        its start-up warning of keys not enforced yet (core/config_keys.c KEPT), so nothing
        carried over is silently idle; DAEMON_GAPS lists the ones the daemon lacks."""
        trees = {}
        for mc in self.good():
            out = translate(mc, "--future-keys")
            tree = read_yaml(out.stdout)
            for key in re.findall(r"(?m): kept for later: .*? -> ([\w.\[\]]+)", out.stderr):
                trees.setdefault(re.sub(r"\[\d*\]", "", key), []).append((mc, tree))
        self.assertIn("routing.fallback_mx", trees)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            for path, sources in sorted(trees.items()):
                with self.subTest(key=path):
                    found = [(mc, d) for mc, tree in sources
                             if (d := kept_doc(path, tree, tmp)) is not None]
                    self.assertTrue(found, f"{path}: no translation to test it with")
                    mc, (text, name) = found[0]
                    config = tmp / "kept.yaml"
                    config.write_text(text)
                    out = subprocess.run([ringmaild_path(), "--check-config", "--config",
                                          str(config)], capture_output=True, text=True,
                                         timeout=30)
                    kept = (out.returncode == 0 and
                            f"key '{name}' is accepted but not enforced yet" in out.stderr)
                    if path in DAEMON_GAPS:
                        self.assertFalse(kept, f"{path} is a kept key of the daemon now: "
                                               "remove it from DAEMON_GAPS")
                        continue
                    self.assertTrue(kept, f"{mc}: {path}:\n{text}{out.stderr}")

    def test_log_ident(self):
        """log.ident is the name the old box's sendmail logged as: sm-mta where the system
        starts it with -L sm-mta (Debian, the BSDs), sendmail elsewhere."""
        for mc, ident in (("debian.mc", "sm-mta"), ("settings_dir.mc", "sm-mta"),
                          ("relay.mc", "sendmail"), ("mistakes.mc", "sendmail")):
            with self.subTest(mc=mc):
                out = translate(mc)
                self.assertEqual(get(read_yaml(out.stdout), "log.ident"), ident)
                self.assertRegex(out.stderr, rf"(?m): translated: .* -> log\.ident = {ident}: ")

    def test_listeners_the_daemon_cannot_serve(self):
        """A listener that requires AUTH (M=a) is written live with auth_required when the
        .mc sets mechanisms (else it needs a person); one with TLS on connect (M=s) is never
        written live: commented out, needs a person, and the rest of the file still loads."""
        out = translate("auth_listener.mc")
        self.assertEqual(out.returncode, EXIT_PERSON, out.stderr)
        live = read_yaml(out.stdout)["listen"]
        self.assertEqual([(i["name"], i["port"]) for i in live], [("MTA", "25"), ("MSA", "587")])
        self.assertEqual(live[1]["auth_required"], "true")
        self.assertRegex(out.stderr, r"(?m): needs a person: listen\[\d\] \(SMTPS, "
                                     r"port 465\): M=s: ")
        self.assertRegex(out.stdout, r"(?m)^  # - name: SMTPS$")
        # without confAUTH_MECHANISMS nothing could authenticate: a person decides
        out = translate("debian.mc")
        self.assertRegex(out.stderr, r"(?m): needs a person: listen\[1\] \(MSP-v4, port 587\): "
                                     r"M=a requires AUTH, but the \.mc sets no confAUTH_MECHANISMS")
        self.assertRegex(out.stdout, r"(?m)^  # - name: MSP-v4$")

    def test_submit_mc_listens_nowhere(self):
        """A submit.mc (FEATURE(msp)) is sendmail's submission program: no listener, every
        message to the MTA it names, and a report line that says so."""
        for mc, hub in (("submit.mc", "[127.0.0.1]"), ("submit_msa.mc", "[hub.example.org]:587")):
            with self.subTest(mc=mc):
                out = translate(mc, "--future-keys")
                self.assertEqual(out.returncode, EXIT_PERSON, out.stderr)
                tree = read_yaml(out.stdout)
                self.assertIsNone(get(tree, "listen"))
                self.assertEqual(get(tree, "routing.smart_host"), hub)
                self.assertEqual(get(tree, "routing.mail_hub"), hub)
                self.assertRegex(out.stderr, r"(?m): needs a person: FEATURE\(msp\): this is a "
                                             r"submit\.mc")

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
                # the maps the translation names live under the test box's root, and its
                # users (smmsp, ...) are the old box's
                text = (GOLDEN / f"{mc[:-3]}.yaml").read_text()
                text = re.sub(r"(?m)^run_as: .*$", f"run_as: {getpass.getuser()}", text)
                text = re.sub(r"(?<![\w.-])/etc/mail/", f"{GOLDEN}/root/etc/mail/", text)
                # credentials must be private to root, which git cannot keep: a copy is
                authinfo = pathlib.Path(tmp) / "authinfo"
                authinfo.write_text('AuthInfo: "U:user" "P:password"\n')
                authinfo.chmod(0o600)
                target.write_text(re.sub(r"(?m)^(\s*authinfo: ).*$", rf"\g<1>{authinfo}", text))
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
                # what the daemon does not enforce is written commented out
                self.assertNotIn("not enforced", out.stderr, mc)
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
        # no name server off this machine: the clients' reverse lookups (::1 is not in every
        # /etc/hosts) fail at once where nothing listens
        text += 'dns:\n  servers: ["127.0.0.1:9"]\n'
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
