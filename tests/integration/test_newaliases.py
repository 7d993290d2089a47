"""newaliases (sendmail -bi) and ringmail-makemap against real files and a real daemon
(docs/command-line.md, "newaliases" and "makemap"): sendmail's counts line per aliases file,
errors with file and line and EX_DATAERR, the running daemon told to read the maps again;
makemap checking a map by its kind, installing it from another file, dumping it."""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import RingmailTestCase, ringmaild_path

EX_USAGE, EX_DATAERR, EX_CONFIG = 64, 65, 78

ALIASES = """\
# sendmail's sample, shortened
postmaster: root
MAILER-DAEMON: postmaster
abuse: root
root:   admin@example.com, ops@example.com
staff: alice,
  bob,
\tcarol
"""


def bin_dir() -> Path:
    return Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent)


def run(cmd, data: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], input=data if data is not None else b"",
                          capture_output=True, timeout=60, cwd=cwd)


class NewAliases(RingmailTestCase):

    def setUp(self):
        super().setUp()
        if not (bin_dir() / "ringmail-sendmail").exists():
            self.skipTest("ringmail-sendmail is not built")
        self.bin = self.tmp / "bin"
        self.bin.mkdir()
        # newaliases is ringmail-sendmail under that name, as installed
        os.symlink(bin_dir() / "ringmail-sendmail", self.bin / "newaliases")
        self.aliases = self.tmp / "aliases"
        self.aliases.write_text(ALIASES)

    def test_counts_and_reload(self):
        d = self.daemon(maps={"aliases": [str(self.aliases)]})
        r = run([self.bin / "newaliases", "-C", d.config_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        # postmaster 10+4, mailer-daemon 13+10, abuse 5+4, root 4+34, staff 5+(6+6+6)
        self.assertEqual(r.stdout.decode().splitlines(), [
            f"{self.aliases}: 5 aliases, longest 34 bytes, 107 bytes total",
            f"ringmaild (pid {d.pid}) told to read the aliases again (SIGHUP)",
        ])
        self.assertTrue(d.wait_log(r"configuration reloaded", since_start=True))
        # sendmail -bi is the same program
        r = run([bin_dir() / "ringmail-sendmail", "-bi", "-C", d.config_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(f"{self.aliases}: 5 aliases", r.stdout.decode())

    def test_daemon_down(self):
        d = self.daemon(maps={"aliases": [str(self.aliases)]})
        d.stop()
        r = run([self.bin / "newaliases", "-C", d.config_path])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("ringmaild is not running: the aliases are read when it starts",
                      r.stdout.decode())

    def test_error_names_file_and_line(self):
        d = self.daemon(maps={"aliases": [str(self.aliases)]})
        d.stop()
        with open(self.aliases, "a") as f:
            f.write("postmaster: someone-else\n")
        r = run([self.bin / "newaliases", "-C", d.config_path])
        # EX_DATAERR from newaliases itself; EX_CONFIG when reading the configuration (which
        # parses maps.aliases too) already stopped at the error
        self.assertIn(r.returncode, (EX_DATAERR, EX_CONFIG), r.stderr.decode())
        self.assertIn(f"{self.aliases}:9: alias 'postmaster' is already defined at line 2",
                      r.stderr.decode())
        self.assertNotIn("aliases,", r.stdout.decode())


class MakeMap(unittest.TestCase):

    def setUp(self):
        self.prog = bin_dir() / "ringmail-makemap"
        if not self.prog.exists():
            self.skipTest("ringmail-makemap is not built")
        self.dir = Path(self.enterContext(tempfile.TemporaryDirectory()))

    def makemap(self, *args, stdin: Path | bytes | None = None):
        if isinstance(stdin, Path):
            with open(stdin, "rb") as f:
                return subprocess.run([str(self.prog), *[str(a) for a in args]], stdin=f, capture_output=True,
                                      timeout=60, cwd=self.dir)
        return run([self.prog, *args], stdin, cwd=self.dir)

    def test_same_file_is_checked_not_written(self):
        access = self.dir / "access"
        access.write_text("Connect:10.0.0 RELAY\nFrom:spam@example.com REJECT\n")
        before = os.stat(access)
        r = self.makemap("hash", access, stdin=access)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(),
                         f"makemap: {access}: 2 entries, checked as a access map; ringmaild "
                         "reads this text file directly, no database to build\n")
        self.assertEqual(os.stat(access).st_ino, before.st_ino)
        self.assertEqual(sorted(os.listdir(self.dir)), ["access"], "no .db, no temporary")

    def test_install_from_another_file(self):
        access = self.dir / "access"
        access.write_text("Connect:10.0.0 RELAY\n")
        os.chmod(access, 0o640)
        new = self.dir / "access.new"
        new.write_text("Connect:10.0.1 RELAY\nexample.com REJECT\n")
        r = self.makemap("hash", str(access) + ".db", stdin=new)  # a .db name: the text map
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 entries, checked as a access map and written", r.stdout.decode())
        self.assertEqual(access.read_text(), new.read_text())
        self.assertEqual(os.stat(access).st_mode & 0o777, 0o640, "the old file's mode kept")
        self.assertEqual(sorted(os.listdir(self.dir)), ["access", "access.new"])

    def test_errors_with_line_and_nothing_written(self):
        mt = self.dir / "mailertable"
        mt.write_text("example.com smtp:[relay.example.com]\n")
        r = self.makemap("hash", mt, stdin=b"ok.example smtp:relay\nbroken.example\n")
        self.assertEqual(r.returncode, EX_DATAERR)
        self.assertRegex(r.stderr.decode(), r"^makemap: stdin:2: ")
        self.assertEqual(mt.read_text(), "example.com smtp:[relay.example.com]\n")
        r = self.makemap("hash", self.dir / "access", stdin=b"Connect:1.2.3.4 MAYBE\n")
        self.assertEqual(r.returncode, EX_DATAERR)
        self.assertIn("stdin:1: ", r.stderr.decode())
        self.assertFalse((self.dir / "access").exists())

    def test_aliases_append_unmap_delimiter(self):
        aliases = self.dir / "aliases"
        aliases.write_text("root: admin\n")
        r = self.makemap("-o", "hash", aliases, stdin=b"staff: a,\n  b\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(aliases.read_text(), "root: admin\nstaff: a,\n  b\n")
        r = self.makemap("-o", "hash", aliases, stdin=b"root: twice\n")
        self.assertEqual(r.returncode, EX_DATAERR)
        self.assertIn(f"{aliases}:4: alias 'root' is already defined at line 1",
                      r.stderr.decode())
        r = self.makemap("-u", "hash", aliases)
        self.assertEqual(r.stdout.decode(), "root\tadmin\nstaff\ta,  b\n")
        vt = self.dir / "virtusertable"
        r = self.makemap("-t", ":", "btree", vt, stdin=b"@example.com:catchall@example.org\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(vt.read_text(), "@example.com\tcatchall@example.org\n")

    def test_usage(self):
        r = self.makemap("nosuchtype", self.dir / "access", stdin=b"")
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertIn("makemap: Unknown database type nosuchtype", r.stderr.decode())
        r = self.makemap("hash", stdin=b"")
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertIn("usage: makemap", r.stderr.decode())
        r = self.makemap("-l", stdin=b"")
        self.assertEqual(r.stdout.decode().split(), ["hash", "btree", "dbm", "implicit", "cdb"])


if __name__ == "__main__":
    unittest.main()
