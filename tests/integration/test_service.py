"""The daemon as a service: what it tells systemd (sd_notify) and what it logs at start-up,
reload and shutdown (docs/operations.md, "The service" and "What the log says").

One daemon, started with NOTIFY_SOCKET naming a unix datagram socket this test binds, as
systemd does for Type=notify: READY=1 comes once the SMTP port answers, a SIGHUP gives
RELOADING=1 then READY=1 with the outcome in STATUS= (a broken file too: the old
configuration keeps serving), SIGTERM gives STOPPING=1. Its certificate expires in 10 days:
the start-up summary warns; an expired one is an error line (--check-config, no daemon).
The engine runs with no_new_privs, the parent without.
Also: which configuration ringmaild reads when none is named, and --builtin-config.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from ringmail_harness import (IO_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, RingmailTestCase,
                              base_config, free_port, make_message, ringmaild_path, to_yaml)
from tls_support import KEYS, openssl

NOTIFY_TIMEOUT = 20.0


class Notifications:
    """The socket systemd would listen on: every datagram, as a dict of its assignments."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = path
        self.got: list[dict] = []

    def next(self, timeout: float = NOTIFY_TIMEOUT, traffic: bool = False) -> dict:
        """The next datagram; the traffic counts' own STATUS updates, which come every few
        seconds whenever a count moved, are passed over unless `traffic`."""
        while True:
            self.sock.settimeout(timeout)
            data = self.sock.recv(4096).decode()
            msg = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
            self.got.append(msg)
            if traffic or not is_traffic(msg):
                return msg

    def pending(self) -> list[dict]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.next(timeout=0))
        except (BlockingIOError, socket.timeout):
            return out
        finally:
            self.sock.setblocking(True)

    def close(self):
        self.sock.close()


def is_traffic(msg: dict) -> bool:
    return msg.keys() == {"STATUS"} and "message(s) accepted" in msg["STATUS"]


def status_of(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"/proc/{pid}/status has no {field}")


class ServiceTest(RingmailTestCase):
    def make_cert(self, days: int, cn: str) -> dict:
        key, cert = self.tmp / f"{cn}.key", self.tmp / f"{cn}.pem"
        run = openssl("req", "-x509", *KEYS["ECDSA-P256"], "-nodes", "-keyout", str(key),
                      "-out", str(cert), "-days", str(days), "-subj", f"/CN={cn}")
        self.assertEqual(run.returncode, 0, run.stderr)
        return {"cert": str(cert), "key": str(key)}

    def test_notify_and_summaries(self):
        notify = Notifications(self.tmp / "notify")
        self.addCleanup(notify.close)
        soon = self.make_cert(10, "soon.test")
        os.environ["NOTIFY_SOCKET"] = str(notify.path)
        try:
            d = self.daemon(tls={"certificates": [soon]})
        finally:
            del os.environ["NOTIFY_SOCKET"]

        # READY=1 first, once the port answers: a client connecting now is greeted
        ready = notify.next()
        self.assertEqual(ready.get("READY"), "1", notify.got)
        self.assertRegex(ready["STATUS"], rf"^serving on MTA 127\.0\.0\.1:{d.port}; 2 workers")
        with socket.create_connection(("127.0.0.1", d.port), timeout=IO_TIMEOUT) as s:
            self.assertTrue(s.recv(512).startswith(b"220 "))
        # the spool's second pass ends while serving: a STATUS of its own, not READY again
        recovered = notify.next()
        self.assertNotIn("READY", recovered)
        self.assertIn("; 0 message(s) in the spool at start", recovered["STATUS"])

        # the traffic counts reach STATUS= within a few seconds of a message
        # (a recipient in a domain no server here knows: it waits in the queue)
        conn = self.connect(d)
        conn.ehlo()
        self.assertEqual(conn.send_mail("a@client.test", ["b@remote.test"],
                                        make_message()).code, 250)
        conn.cmd("QUIT")
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while True:
            msg = notify.next(timeout=max(0.1, deadline - time.monotonic()), traffic=True)
            self.assertTrue(is_traffic(msg), notify.got)
            if re.search(r"; 1 message\(s\) accepted, 0 session\(s\) open, 1 queued",
                         msg["STATUS"]):
                break

        log = d.log(since_start=True)
        self.assertRegex(log, rf"listening: name=MTA, address=127\.0\.0\.1, port={d.port}, "
                              r"workers=2, tls=starttls")
        self.assertRegex(log, r"warning: tls: certificate file=\S+soon\.test\.pem, "
                              r"type=ECDSA-P256, cn=soon\.test, not_after=\d{4}-\d\d-\d\dT"
                              r"[\d:]+Z, days_left=(9|10): expires within 30 days")
        self.assertRegex(log, r"spool \S+: 0 message\(s\) found")

        # no_new_privs: the engine set it; the parent may still run set-id programs
        self.assertEqual(status_of(d.engine_pid, "NoNewPrivs"), "1")
        self.assertEqual(status_of(d.pid, "NoNewPrivs"), "0")

        # a reload that works: RELOADING=1, then READY=1 with its outcome, and the log says
        # what changed and repeats the summary
        d.config["limits"]["recipients"] = 7
        d.write_config()
        d.signal(signal.SIGHUP)
        reloading = notify.next()
        self.assertEqual(reloading.get("RELOADING"), "1", notify.got)
        self.assertIn("MONOTONIC_USEC", reloading)
        again = notify.next()
        self.assertEqual(again.get("READY"), "1", notify.got)
        self.assertRegex(again["STATUS"], r"; reloaded \d{4}-\d\d-\d\d [\d:]+$")
        self.assertIsNotNone(d.wait_log(r"configuration reloaded", since_start=True))
        log = d.log(since_start=True)
        self.assertRegex(log, r"reload: changed: limits\n")
        self.assertEqual(len(re.findall(r"listening: name=MTA,", log)), 2, log)
        self.assertEqual(len(re.findall(r"tls: certificate file=", log)), 2, log)

        # a broken file: the manager hears the failure, the old configuration serves on
        d.write_config(text="listen: [\n")
        d.signal(signal.SIGHUP)
        self.assertEqual(notify.next().get("RELOADING"), "1", notify.got)
        failed = notify.next()
        self.assertEqual(failed.get("READY"), "1", notify.got)
        self.assertIn("reload failed", failed["STATUS"])
        self.assertIsNotNone(d.wait_log(r"reload failed, keeping the running configuration",
                                        since_start=True))
        with socket.create_connection(("127.0.0.1", d.port), timeout=IO_TIMEOUT) as s:
            self.assertTrue(s.recv(512).startswith(b"220 "))

        # a file the parent reads but the engine cannot use (a certificate that is not
        # one): the engine reports the failure, and the manager hears it the same way
        garbage = self.tmp / "garbage.pem"
        garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        d.config["tls"] = {"certificates": [{"cert": str(garbage), "key": soon["key"]}]}
        d.write_config()
        d.signal(signal.SIGHUP)
        self.assertEqual(notify.next().get("RELOADING"), "1", notify.got)
        self.assertIn("reload failed", notify.next()["STATUS"])

        d.signal(signal.SIGTERM)
        self.assertEqual(notify.next().get("STOPPING"), "1", notify.got)
        self.assertEqual(d.wait(STOP_TIMEOUT), 0, d.log_tail())
        self.assertEqual(notify.pending(), [])
        self.assertRegex(d.log(since_start=True),
                         r"ringmaild stopped: uptime=\d+s, reloads=3, failed_reloads=2, "
                         r"status=0")


class ExpiredCertificateTest(unittest.TestCase):
    """An expired certificate is an error line (the daemon still starts: clients that do not
    verify still get STARTTLS); --check-config prints the same line."""

    def test_expired(self):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            # openssl req cannot date a certificate in the past; openssl ca can
            (d / "ca.cnf").write_text("[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\n"
                                      "new_certs_dir = .\nserial = serial\n"
                                      "default_md = sha256\npolicy = p\n"
                                      "[p]\ncommonName = supplied\n")
            (d / "index.txt").write_text("")
            (d / "serial").write_text("01\n")
            for args in (["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                          "old.key"],
                         ["req", "-new", "-key", "old.key", "-subj", "/CN=old.test", "-out",
                          "old.csr"],
                         ["ca", "-config", "ca.cnf", "-selfsign", "-keyfile", "old.key", "-in",
                          "old.csr", "-out", "old.pem", "-startdate", "20200101000000Z",
                          "-enddate", "20200102000000Z", "-batch", "-notext"]):
                run = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True,
                                     timeout=IO_TIMEOUT)
                self.assertEqual(run.returncode, 0, run.stderr)
            (d / "ringmail.yaml").write_text(
                f"spool: {d}/spool\ntls:\n  certificates: [{{cert: {d}/old.pem, "
                f"key: {d}/old.key}}]\n")
            run = subprocess.run([ringmaild_path(), "--check-config", "--config",
                                  str(d / "ringmail.yaml")], capture_output=True, text=True,
                                 timeout=IO_TIMEOUT)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertRegex(run.stderr, r"error: tls: certificate file=\S+/old\.pem, "
                                         r"type=ECDSA-P256, cn=old\.test, "
                                         r"not_after=2020-01-02T00:00:00Z, days_left=-\d+: "
                                         r"EXPIRED")


class SyslogOptionTest(unittest.TestCase):
    """--foreground --syslog (the unit's): attached, and nothing on stderr once the
    configuration is read; --syslog alone is a usage error (detached logs to syslog)."""

    def test_foreground_syslog(self):
        self.assertEqual(subprocess.run([ringmaild_path(), "--syslog"], capture_output=True,
                                        timeout=IO_TIMEOUT).returncode, 64)
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            config = Path(tmp) / "ringmail.yaml"
            config.write_text("\n".join(to_yaml(base_config(Path(tmp), port))) + "\n")
            proc = subprocess.Popen([ringmaild_path(), "--config", str(config), "--foreground",
                                     "--syslog"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp)
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while True:  # no "ready" on stderr to wait for: the port answers
                    try:
                        with socket.create_connection(("127.0.0.1", port),
                                                      timeout=IO_TIMEOUT) as s:
                            self.assertTrue(s.recv(512).startswith(b"220 "))
                        break
                    except ConnectionRefusedError:
                        if proc.poll() is not None:
                            self.fail(f"ringmaild exited: {proc.communicate()}")
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.05)
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=STOP_TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.assertEqual(proc.returncode, 0, err)
            self.assertEqual((out, err), (b"", b""))


class ConfigDiscoveryTest(unittest.TestCase):
    """Without --config, ringmaild reads $RINGMAIL_CONFIG (then /etc/ringmail/ringmail.yaml
    when it exists, which a test cannot create here); --builtin-config ignores both."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.broken = os.path.join(self.dir.name, "ringmail.yaml")
        with open(self.broken, "w") as f:
            f.write("bogus_key_from_env: 1\n")

    def check(self, *args: str, env_config: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RINGMAIL_CONFIG"}
        if env_config:
            env["RINGMAIL_CONFIG"] = env_config
        return subprocess.run([ringmaild_path(), "--check-config", *args], env=env,
                              capture_output=True, text=True, timeout=IO_TIMEOUT,
                              cwd=self.dir.name)

    def test_environment_then_builtin(self):
        run = self.check(env_config=self.broken)
        self.assertEqual(run.returncode, 78, run.stderr)
        self.assertIn(f"{self.broken}:1:", run.stderr)
        run = self.check("--builtin-config", env_config=self.broken)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("(built-in default)", run.stdout)
        self.assertRegex(run.stdout, r"\n    port: 2525\n")
        run = self.check("--builtin-config", "--config", self.broken, env_config=None)
        self.assertEqual(run.returncode, 64, run.stderr)


if __name__ == "__main__":
    unittest.main()
