"""ringmaild is two processes: the privileged parent (the pid file's; it reads keys and
maps, binds, and holds the spool lock) and the engine it forks. One instance per spool and
per port; an engine that dies stops the daemon; a parent that dies stops the engine;
detached, the starting command waits for the outcome; root-only keys are read at every
reload."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest
from pathlib import Path

from ringmail_harness import (HOSTNAME, RingmailTestCase, free_port, make_message,
                              ringmaild_path, to_yaml)
from tls_support import Certs, SClient, fingerprint

EX_SOFTWARE, EX_OSERR, EX_TEMPFAIL, EX_CONFIG = 70, 71, 75, 78


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a child of ours that ended must be reaped to be gone
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


class Processes(RingmailTestCase):

    def test_pid_file_names_the_parent(self):
        d = self.daemon()
        pid_file = Path(d.config["spool"]).parent / "ringmaild.pid"
        self.assertEqual(pid_file.read_text(), f"{d.pid}\n")
        engine = d.engine_pid
        self.assertNotEqual(engine, d.pid)
        self.assertRegex(d.log(), rf"ringmaild\[{engine}\]: ready")
        self.assertEqual(d.stop(), 0)
        self.assertFalse(pid_file.exists(), "pid file left behind after a clean stop")
        self.assertTrue(wait_gone(engine))

    def test_second_instance_on_the_same_spool_is_refused(self):
        first = self.daemon()
        qid = self.assertAccepted(self.session(first).send_mail(
            "a@b.example", [f"u@{HOSTNAME}"], make_message()))
        second = self.daemon(start=False, spool=first.config["spool"],
                             pid_file=str(self.tmp / "second.pid"))
        with self.assertRaises(AssertionError):
            second.start()
        self.assertEqual(second.returncode, EX_TEMPFAIL)
        self.assertRegex(second.log(), rf"spool {re.escape(first.config['spool'])} is in use "
                                       rf"by another ringmaild \(pid {first.pid}\)")
        # the first one's spool and pid file are untouched, and it still serves
        self.assertIn(qid, first.spool.qids())
        self.assertEqual((Path(first.config["spool"]).parent / "ringmaild.pid").read_text(),
                         f"{first.pid}\n")
        self.assertAccepted(self.session(first).send_mail(
            "a@b.example", [f"u@{HOSTNAME}"], make_message()))

    def test_second_instance_on_the_same_port_is_refused(self):
        first = self.daemon()
        second = self.daemon(start=False)
        second.config["listen"][0]["port"] = first.port
        second.write_config()
        with self.assertRaises(AssertionError):
            second.start()
        self.assertEqual(second.returncode, EX_OSERR)
        self.assertIn(f"port {first.port} is in use by another program", second.log())
        # nothing left of the refused one: its pid file is gone again
        self.assertFalse((Path(second.config["spool"]).parent / "ringmaild.pid").exists())
        # every connection still reaches the first (none is shared with a second group)
        for _ in range(20):
            c = self.connect(first)
            self.assertEqual(c.greeting.code, 220)
            c.close()

    def test_engine_death_stops_the_daemon(self):
        d = self.daemon()
        engine = d.engine_pid
        os.kill(engine, signal.SIGKILL)
        self.assertEqual(d.wait(10), EX_SOFTWARE)
        self.assertRegex(d.log(), rf"the engine \(pid {engine}\) was killed by signal 9")
        self.assertFalse((Path(d.config["spool"]).parent / "ringmaild.pid").exists())

    def test_parent_death_stops_the_engine(self):
        d = self.daemon()
        engine = d.engine_pid
        os.kill(d.pid, signal.SIGKILL)
        d.returncode = d.proc.wait()
        self.assertTrue(wait_gone(engine), "the engine outlived its parent")
        self.assertRegex(d.log(), rf"ringmaild\[{engine}\]: error: the privileged parent "
                                  r"has gone")

    def test_sighup_to_the_engine_asks_the_parent(self):
        d = self.daemon(relay_domains=["old.test"])
        d.config["relay_domains"] = ["new.test"]
        d.write_config()
        os.kill(d.engine_pid, signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"configuration reloaded .*\(generation 2\)"))
        c = self.session(d)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<u@new.test>").code, 250)

    def test_connections_fit_the_descriptor_limit(self):
        """limits.connections above what RLIMIT_NOFILE allows is lowered, with a warning,
        and the clients past it get 421 instead of failing the spool with EMFILE."""
        d = self.daemon(start=False, limits={"connections": 5000})
        d.proc = None
        with open(d.log_path, "ab") as log:
            d.proc = subprocess.Popen(
                ["prlimit", "--nofile=160:160", ringmaild_path(), "--config",
                 str(d.config_path), "--foreground"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        d._log_offset = 0
        self.assertIsNotNone(d.wait_log(r"\bready\b"), d.log_tail())
        m = d.wait_log(r"limits\.connections 5000 needs up to 3 file descriptors per "
                       r"connection, and this process may open 160 \(RLIMIT_NOFILE\): using "
                       r"(\d+)")
        self.assertIsNotNone(m, d.log_tail())
        fit = int(m.group(1))
        self.assertLess(fit, 50)
        conns = [self.connect(d) for _ in range(fit)]
        self.assertTrue(all(c.greeting.code == 220 for c in conns))
        extra = self.connect(d)
        self.assertEqual(extra.greeting.code, 421, extra.greeting.text)
        # the admitted ones still commit: their spool files find descriptors
        for c in conns[:5]:
            c.ehlo("client.example")
            self.assertAccepted(c.send_mail("a@b.example", [f"u@{HOSTNAME}"], make_message()))


class RootOnlyKeys(RingmailTestCase):
    """A key migrated from sendmail, root:root 0600 in a root-only directory: read at start
    and at every reload by the parent, while the engine runs as ringmail."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root")
        try:
            pwd.getpwnam("ringmail")
        except KeyError:
            self.skipTest("user 'ringmail' does not exist")
        os.chmod(self.tmp, 0o755)
        self.certs = Certs(self.tmp / "certs")
        self.keys = self.tmp / "keys"
        self.keys.mkdir(mode=0o700)

    def install(self, kind: str) -> dict:
        key, cert = self.certs.server[kind]
        shutil.copy(key, self.keys / "server.key")
        shutil.copy(cert, self.keys / "server.pem")
        for f in ("server.key", "server.pem"):
            os.chmod(self.keys / f, 0o600)
        return {"certificates": [{"cert": str(self.keys / "server.pem"),
                                  "key": str(self.keys / "server.key")}]}

    def test_reload_reads_root_only_keys(self):
        work = self.tmp / "work"
        work.mkdir(mode=0o755)
        d = self.daemon(workdir=work, run_as=None, tls=self.install("ECDSA-P256"))
        with open(f"/proc/{d.engine_pid}/status") as f:
            uid = next(l for l in f if l.startswith("Uid:")).split()[1]
        self.assertEqual(int(uid), pwd.getpwnam("ringmail").pw_uid)
        first = SClient(d.port)
        self.assertTrue(first.ok, first)
        self.assertEqual(fingerprint(first.cert),
                         fingerprint(self.certs.server["ECDSA-P256"][1].read_bytes()))
        # a renewed certificate, still readable by root only
        d.write_config(dict(d.config, tls=self.install("ECDSA-P384")))
        d.signal(signal.SIGHUP)
        self.assertIsNotNone(d.wait_log(r"configuration reloaded .*\(generation 2\)"),
                             d.log_tail())
        self.assertNotIn("reload failed", d.log())
        second = SClient(d.port)
        self.assertTrue(second.ok, second)
        self.assertEqual(fingerprint(second.cert),
                         fingerprint(self.certs.server["ECDSA-P384"][1].read_bytes()))

    def test_builtin_default_reloads_as_root(self):
        """./run.sh as root: the built-in default's demo certificates are made by root
        (keys 0600); a reload read them again as ringmail and failed with Permission
        denied. The built-in default listens on 127.0.0.1:2525."""
        try:
            with socket.create_connection(("127.0.0.1", 2525), timeout=1):
                self.skipTest("something already listens on 127.0.0.1:2525")
        except OSError:
            pass
        work = self.tmp / "default"
        work.mkdir(mode=0o755)
        log_path = work / "ringmaild.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([ringmaild_path(), "--foreground"], cwd=work,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        self.addCleanup(lambda: (os.killpg(proc.pid, signal.SIGKILL)
                                 if proc.poll() is None else None, proc.wait()))

        def wait_for(rx):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                m = re.search(rx, log_path.read_text(errors="replace"))
                if m or proc.poll() is not None:
                    return m
                time.sleep(0.05)
            return None

        self.assertIsNotNone(wait_for(r"\bready\b"), log_path.read_text())
        key = work / "state" / "tls" / "ecdsa.key"
        self.assertEqual(os.stat(key).st_uid, 0)
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(wait_for(r"configuration reloaded .*\(generation 2\)"),
                             log_path.read_text())
        self.assertNotIn("reload failed", log_path.read_text())
        run = SClient(2525)
        self.assertTrue(run.ok, run)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(15), 0)


class FakeSyslog:
    """A syslog daemon's socket at /dev/log (datagrams, as syslog(3) sends them). Only where
    none exists: a machine's real syslog is never replaced. A thread reads it all the time,
    as a syslog daemon does: the socket's queue holds ten datagrams, and every daemon of the
    tests running beside this one logs there too, so a full queue would block a writer."""

    def __init__(self, test: unittest.TestCase):
        if os.path.exists("/dev/log"):
            test.skipTest("/dev/log exists: this machine's syslog is not ours to replace")
        if not os.access("/dev", os.W_OK):
            test.skipTest("cannot create /dev/log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("/dev/log")
        os.chmod("/dev/log", 0o666)  # the engine logs as run_as
        self.sock.settimeout(0.1)
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        test.addCleanup(self.close)

    def read(self):
        while not self.closing.is_set():
            try:
                line = self.sock.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            with self.lock:
                self.lines.append(line)

    def close(self):
        self.closing.set()
        self.reader.join()
        self.sock.close()
        try:
            os.unlink("/dev/log")
        except FileNotFoundError:
            pass

    def wait_for(self, rx: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                text = "\n".join(self.lines)
            if re.search(rx, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{rx!r} not in syslog:\n" + text)
            time.sleep(0.05)


class Detached(RingmailTestCase):
    """Without --foreground the command returns once the engine serves, or with the
    start-up error's status and message; a relative --config survives for reloads."""

    def start_detached(self, d, *args):
        return subprocess.run([ringmaild_path(), "--config", "ringmail.yaml", *args],
                              cwd=d.workdir, capture_output=True, text=True, timeout=30)

    def pid_of(self, d) -> int:
        """The detached daemon's parent, from its pid file; killed at the end of the test."""
        pid = int((Path(d.config["spool"]).parent / "ringmaild.pid").read_text())

        def kill():
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.addCleanup(kill)
        return pid

    def test_detached_logs_reach_syslog(self):
        """Everything a detached daemon says reaches syslog, from the first start-up line
        (with the configured log.ident) to the last, and the start-up also reaches the
        terminal that started it."""
        syslog = FakeSyslog(self)
        d = self.daemon(start=False, log={"ident": "sm-mta"}, greeting="hello")
        run = self.start_detached(d)
        self.assertEqual(run.returncode, 0, run.stderr)
        pid = self.pid_of(d)
        lines = syslog.wait_for(r"sm-mta\[\d+\]: ready")
        for rx in (rf"sm-mta\[{pid}\]: starting ringmaild",
                   r"sm-mta\[\d+\]: warning: .*key 'greeting' is accepted but not enforced",
                   r"sm-mta\[\d+\]: spool .*: 0 message\(s\) found",
                   r"sm-mta\[\d+\]: listening: name=MTA"):
            self.assertRegex(lines, rx)
            self.assertRegex(run.stderr, rx)
        # the recovery's summary comes after `ready`, once the queue is read: syslog only
        syslog.wait_for(r"sm-mta\[\d+\]: spool .*: 0 message\(s\) queued")
        self.assertRegex(lines, r"<2\d>")  # facility mail (2 << 3), as sendmail logs
        os.kill(pid, signal.SIGHUP)
        syslog.wait_for(r"sm-mta\[\d+\]: configuration reloaded")
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_gone(pid))
        self.assertRegex(syslog.wait_for(r"sm-mta\[\d+\]: stopped"), r"stopped")

    def test_detached_start_reload_and_stop(self):
        d = self.daemon(start=False, relay_domains=["old.test"])
        run = self.start_detached(d)
        self.assertEqual(run.returncode, 0, run.stderr)
        pid = self.pid_of(d)
        # the starting command's terminal saw the start-up, up to ready
        self.assertIn("starting ringmaild", run.stderr)
        self.assertIn("ready", run.stderr)
        c = self.session(d)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<u@old.test>").code, 250)
        c.close()
        # a relative --config: the reload still finds it (the daemon's directory is /)
        d.config["relay_domains"] = ["new.test"]
        d.write_config()
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        code = None
        while time.monotonic() < deadline and code != 250:
            c = self.session(d)
            c.cmd("MAIL FROM:<a@b.example>")
            code = c.cmd("RCPT TO:<u@new.test>").code
            c.close()
            time.sleep(0.1)
        self.assertEqual(code, 250, "the reload of a relative --config did not apply")
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_gone(pid), "did not stop on SIGTERM")

    def test_detached_start_error_reaches_the_terminal(self):
        d = self.daemon(start=False, tls={"certificates": [
            {"cert": str(self.tmp / "nowhere.pem"), "key": str(self.tmp / "nowhere.key")}]})
        run = self.start_detached(d)
        self.assertEqual(run.returncode, EX_CONFIG, run.stderr)
        self.assertIn("nowhere.pem: cannot open: No such file or directory", run.stderr)
        self.assertFalse((Path(d.config["spool"]).parent / "ringmaild.pid").exists())


if __name__ == "__main__":
    unittest.main()
