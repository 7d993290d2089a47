"""Local submission: the daemon's unix sockets (submission.socket, submission.control_socket)
and the SMTP sessions on submission.socket, which know their caller by SO_PEERCRED
(docs/config.md, `submission`; docs/logs.md, "Local submission").

Clients run as root and, through setpriv, as the unprivileged user nobody; the tests that
need both skip when not run as root. Messages are checked in the spool (the qf, and the
data wherever it is: inside the qf of a one-file message, else the df; docs/queue.md):
nothing is delivered (the test resolver answers nothing)."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest
from pathlib import Path

from ringmail_harness import HOSTNAME, RingmailTestCase, StartError, free_port

PYTHON = "/usr/bin/python3"

# The client, run in a child process (as the user under test): one SMTP exchange over the
# unix socket; prints every reply as JSON. argv: socket, then JSON {mail, rcpts, message}.
CLIENT = r"""
import json, socket, sys
path, req = sys.argv[1], json.loads(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline().decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines
def cmd(line):
    s.sendall(line.encode() + b"\r\n")
    return reply()
out = [reply(), cmd("EHLO localhost")]
out.append(cmd("MAIL FROM:" + req["mail"]))
for r in req["rcpts"]:
    out.append(cmd("RCPT TO:<%s>" % r))
if out[-1][-1].startswith("250"):
    r = cmd("DATA")
    out.append(r)
    if r[-1].startswith("354"):
        body = req["message"].encode()
        body = b"\r\n".join((b"." + l if l.startswith(b".") else l) for l in body.split(b"\r\n"))
        s.sendall(body + b".\r\n")
        out.append(reply())
out.append(cmd("QUIT"))
print(json.dumps(out))
"""

QID_RE = re.compile(r"^250 2\.0\.0 <?([0-9A-Za-z]+)>? Message accepted")


def is_root() -> bool:
    return os.geteuid() == 0


class Submission(RingmailTestCase):

    def setUp(self):
        super().setUp()
        # an unprivileged client must reach the socket through the test's directories
        os.chmod(self.tmp, 0o755)

    def start(self, **overrides):
        work = self.tmp / f"d{len(self._daemons)}"
        work.mkdir()
        os.chmod(work, 0o755)
        self.d = self.daemon(workdir=work, **overrides)
        self.sock = str(work / "ringmail.sock")
        return self.d

    def submit(self, mail: str, rcpts: list[str], message: bytes, user: str | None = None,
               sock: str | None = None) -> list[list[str]]:
        argv = [PYTHON, "-c", CLIENT, sock or self.sock,
                json.dumps({"mail": mail, "rcpts": rcpts, "message": message.decode()})]
        if user:
            argv = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups"] + argv
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"client failed: {p.stderr}")
        return json.loads(p.stdout)

    def accepted(self, replies) -> str:
        final = replies[-2][-1]
        m = QID_RE.match(final)
        self.assertIsNotNone(m, f"not accepted: {replies}")
        return m.group(1)

    def df(self, qid: str) -> bytes:
        """The message's data: inside the qf (a one-file message) or the df."""
        return self.d.spool.df(qid)

    def header(self, qid: str) -> str:
        return self.df(qid).split(b"\r\n\r\n", 1)[0].decode()

    def need_root(self):
        if not is_root():
            self.skipTest("needs root (clients run as other users)")
        if not shutil.which("setpriv"):
            self.skipTest("setpriv is not installed")


class Sockets(Submission):

    def test_socket_files_modes_and_removal(self):
        d = self.start()
        work = Path(self.sock).parent
        for name in ("ringmail.sock", "ringmail.ctl"):
            st = os.lstat(work / name)
            self.assertTrue(stat.S_ISSOCK(st.st_mode), name)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o666, name)
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, d.config["run_as"], name)
        md = os.lstat(work / "maildrop")
        self.assertTrue(stat.S_ISDIR(md.st_mode))
        if is_root():
            try:
                import grp
                grp.getgrnam("ringmaildrop")
                self.assertEqual(stat.S_IMODE(md.st_mode), 0o1730)
            except KeyError:
                self.assertEqual(stat.S_IMODE(md.st_mode), 0o1733)
                self.assertIn("submission.maildrop_group ringmaildrop does not exist", d.log())
        else:
            self.assertEqual(stat.S_IMODE(md.st_mode), 0o700)
        d.wait_log(r"listening: unix socket .*ringmail\.sock")
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.lexists(work / "ringmail.sock"))
        self.assertFalse(os.path.lexists(work / "ringmail.ctl"))

    def test_stale_socket_replaced(self):
        d = self.start()
        d.kill()  # SIGKILL: nobody removes the socket files
        self.assertTrue(os.path.lexists(self.sock))
        # the kernel tears a dead process's io_uring down a moment later: until then its
        # listening sockets still take connections (and the port stays bound)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(self.sock) != 0:
                    break
            time.sleep(0.05)
        d.config["listen"][0]["port"] = free_port()
        d.write_config()
        d.start()
        qid = self.accepted(self.submit("<root@mx.test>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n"))
        self.assertIn(qid, d.spool.qids())

    def test_second_daemon_refused(self):
        self.start()
        other = self.tmp / "other"
        other.mkdir()
        with self.assertRaises(StartError) as e:
            self.daemon(workdir=other, submission={"socket": self.sock})
        self.assertIn("is in use by a running daemon", str(e.exception))
        # the first one's socket is untouched
        self.accepted(self.submit("<root@mx.test>", ["a@remote.example"],
                                  b"Subject: s\r\n\r\nx\r\n"))

    def test_reload_keeps_the_sockets(self):
        d = self.start()
        moved = str(Path(self.sock).parent / "moved.sock")
        d.config["submission"] = {"socket": moved}
        d.write_config()
        d.signal(signal.SIGHUP)
        d.wait_log(r"changes to 'submission\.socket', .* take effect after a restart")
        d.wait_log(r"configuration reloaded")
        self.assertFalse(os.path.lexists(moved))
        self.accepted(self.submit("<root@mx.test>", ["a@remote.example"],
                                  b"Subject: s\r\n\r\nx\r\n"))

    def test_not_a_socket_refused(self):
        work = self.tmp / "plain"
        work.mkdir()
        (work / "ringmail.sock").write_text("not a socket")
        with self.assertRaises(StartError) as e:
            self.daemon(workdir=work)
        self.assertIn("exists and is not a socket", str(e.exception))
        self.assertEqual((work / "ringmail.sock").read_text(), "not a socket")


class ControlSocket(Submission):
    """The control socket is served (core/control.c speaks its protocol); what matters here
    is that the daemon hands its connections over with the caller's credentials."""

    CTL = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"""

    def request(self, line: str, user: str | None = None) -> str:
        argv = [PYTHON, "-c", self.CTL, str(Path(self.sock).parent / "ringmail.ctl"), line]
        if user:
            argv = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups"] + argv
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_caller_known_by_its_credentials(self):
        self.need_root()
        self.start()
        self.assertRegex(self.request("HOLD ALL"), r"(?m)^OK ")
        self.assertRegex(self.request("HOLD ALL", user="nobody"), r"(?m)^ERR 77 ")


class Sessions(Submission):

    def test_root_own_sender_relays_anywhere(self):
        self.start()
        msg = (b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nFrom: root@mx.test\r\n"
               b"To: a@remote.example\r\nMessage-ID: <given@mx.test>\r\nSubject: s\r\n\r\nbody\r\n")
        user = pwd.getpwuid(os.geteuid()).pw_name
        replies = self.submit(f"<{user}@mx.test>", ["a@remote.example", "b@elsewhere.example"],
                              msg)
        qid = self.accepted(replies)
        self.assertTrue(replies[1][0].startswith("250-mx.test Hello"), replies[1])
        df = self.df(qid)
        received, rest = df.split(b"\r\n\tby ", 1)
        self.assertEqual(received, f"Received: (from {user}@localhost)".encode())
        self.assertRegex(rest.split(b"\r\n", 2)[0].decode(),
                         rf"^{HOSTNAME} \(ringmail/[^)]+\) id {qid};$")
        # the client's header is untouched: nothing added, no warning
        self.assertTrue(df.endswith(msg), df)
        self.assertNotIn(b"X-Authentication-Warning", df)
        self.d.wait_log(rf"{qid}: from=<{user}@mx.test>, size={len(df)}, class=0, nrcpts=2, "
                        rf"msgid=<given@mx.test>, relay={user}@localhost$")

    def test_missing_headers_added(self):
        self.start()
        qid = self.accepted(self.submit("<root@mx.test>", ["a@remote.example"],
                                        b"Subject: only\r\n\r\nbody\r\n"))
        head = self.header(qid)
        self.assertRegex(head, r"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n")
        m = re.search(r"\r\nMessage-ID: (<\d{12}\." + qid + r"@mx\.test>)\r\n", head)
        self.assertIsNotNone(m, head)
        self.assertIn("\r\nTo: undisclosed-recipients:;", head)
        self.assertIn("\r\nFrom: ", head)
        self.assertIn("Subject: only\r\n", head)
        self.d.wait_log(rf"{qid}: from=<root@mx\.test>, .*msgid={re.escape(m.group(1))}, "
                        rf"relay=")

    def test_message_without_header_gets_an_empty_line(self):
        self.start()
        qid = self.accepted(self.submit("<root@mx.test>", ["a@remote.example"],
                                        b"no header here\r\n"))
        head, body = self.df(qid).split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nMessage-ID: ", head)
        self.assertEqual(body, b"no header here\r\n")

    def test_fullname(self):
        self.start()
        qid = self.accepted(self.submit("<root@mx.test> FULLNAME=Jane+20Doe",
                                        ["a@remote.example"], b"Subject: s\r\n\r\nx\r\n"))
        self.assertIn("\r\nFrom: Jane Doe <root@mx.test>\r\n", self.header(qid))

    def test_gecos_name_for_own_sender(self):
        self.need_root()
        self.start()
        gecos = pwd.getpwnam("nobody").pw_gecos.split(",")[0]
        qid = self.accepted(self.submit("<nobody@mx.test>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        head = self.header(qid)
        self.assertIn(f"\r\nFrom: {gecos} <nobody@mx.test>\r\n" if gecos else
                      "\r\nFrom: nobody@mx.test\r\n", head)
        self.assertNotIn("X-Authentication-Warning", head)
        self.assertTrue(head.startswith("Received: (from nobody@localhost)\r\n"), head)
        self.d.wait_log(rf"{qid}: from=<nobody@mx.test>, .* relay=nobody@localhost$")

    def test_untrusted_sender_warned(self):
        self.need_root()
        self.start()
        qid = self.accepted(self.submit("<boss@example.com>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        head = self.header(qid)
        # right after our Received:, and From: is the sender without a name
        self.assertRegex(head, r"^Received: \(from nobody@localhost\)\r\n\tby [^\r]+\r\n\t[^\r]+"
                               r"\r\nX-Authentication-Warning: mx\.test: nobody set sender to "
                               r"boss@example\.com using -f\r\n")
        self.assertIn("\r\nFrom: boss@example.com\r\n", head)

    def test_null_sender_warned(self):
        self.need_root()
        self.start()
        qid = self.accepted(self.submit("<>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        self.assertIn("X-Authentication-Warning: mx.test: nobody set sender to <> using -f",
                      self.header(qid))

    def test_trusted_users(self):
        self.need_root()
        self.start(submission={"trusted_users": ["nobody"]})
        qid = self.accepted(self.submit("<boss@example.com>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        self.assertNotIn("X-Authentication-Warning", self.header(qid))
        # root is trusted whatever the list says
        qid = self.accepted(self.submit("<boss@example.com>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n"))
        self.assertNotIn("X-Authentication-Warning", self.header(qid))

    def test_trusted_users_file(self):
        """maps.trusted_users (confCT_FILE): a user the class t file names is trusted."""
        self.need_root()
        ct = self.tmp / "trusted-users"
        ct.write_text("# class t\nmajordom nobody  # list managers\n")
        self.start(maps={"trusted_users": str(ct)})
        qid = self.accepted(self.submit("<boss@example.com>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        self.assertNotIn("X-Authentication-Warning", self.header(qid))
        # the file adds to submission.trusted_users, it does not replace it
        self.assertNotIn("X-Authentication-Warning", self.header(self.accepted(
            self.submit("<boss@example.com>", ["a@remote.example"],
                        b"Subject: s\r\n\r\nx\r\n", user="daemon"))))

    def test_trusted_groups(self):
        self.need_root()
        self.start(submission={"trusted_groups": ["nogroup"]})
        # the client runs with nogroup as its group (SO_PEERCRED's gid)
        qid = self.accepted(self.submit("<boss@example.com>", ["a@remote.example"],
                                        b"Subject: s\r\n\r\nx\r\n", user="nobody"))
        self.assertNotIn("X-Authentication-Warning", self.header(qid))

    def test_local_parameters_only_on_the_socket(self):
        self.start()
        c = self.session(self.d)
        r = c.cmd("MAIL FROM:<x@mx.test> FULLNAME=Jane")
        self.assertEqual(r.code // 100, 5, r.lines)


class Maildrop(Submission):

    def dropfile(self, name: str, owner: str) -> Path:
        path = Path(self.d.config.get("submission", {}).get("maildrop",
                                                           Path(self.sock).parent / "maildrop"))
        f = path / name
        f.write_text("RINGMAIL-MAILDROP 1\n")
        pw = pwd.getpwnam(owner)
        os.chown(f, pw.pw_uid, pw.pw_gid)
        return f

    def test_xmaildrop_file_of_the_caller_removed(self):
        self.need_root()
        self.start()
        f = self.dropfile("1700000000.123.abcdef", "nobody")
        qid = self.accepted(self.submit("<nobody@mx.test> XMAILDROP=1700000000.123.abcdef",
                                        ["a@remote.example"], b"Subject: s\r\n\r\nx\r\n",
                                        user="nobody"))
        self.assertFalse(f.exists())
        qf = self.d.spool.qf_envelope(qid).decode()
        self.assertIn("\nO1700000000.123.abcdef\n", qf)

    def test_xmaildrop_file_of_another_user_kept(self):
        self.need_root()
        self.start()
        f = self.dropfile("1700000000.456.abcdef", "root")
        replies = self.submit("<nobody@mx.test> XMAILDROP=1700000000.456.abcdef",
                              ["a@remote.example"], b"Subject: s\r\n\r\nx\r\n", user="nobody")
        self.assertEqual(replies[2], ["550 5.7.1 Maildrop file not found or not the caller's"])
        self.assertTrue(f.exists())
        self.assertEqual(self.d.spool.qids(), set())
        self.assertIn("not a file of uid", self.d.log())

    def test_xmaildrop_never_submitted_twice(self):
        """A second submission naming a file already taken (gone) is refused at MAIL."""
        self.need_root()
        self.start()
        self.dropfile("1700000000.789.abcdef", "nobody")
        args = ("<nobody@mx.test> XMAILDROP=1700000000.789.abcdef", ["a@remote.example"],
                b"Subject: s\r\n\r\nx\r\n")
        qid = self.accepted(self.submit(*args, user="nobody"))
        replies = self.submit(*args, user="nobody")
        self.assertEqual(replies[2], ["550 5.7.1 Maildrop file not found or not the caller's"])
        self.assertEqual(self.d.spool.qids(), {qid})


if __name__ == "__main__":
    unittest.main()
