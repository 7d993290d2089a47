"""cmake --install, and the installed daemon run with the installed configuration
(docs/operations.md, "Installing").

`cmake --install <build dir> --prefix /usr` into a DESTDIR: every program of the build under
usr/sbin, the man pages of the source tree, the systemd unit (checked with
`systemd-analyze verify`, offline), the configuration and its sample under etc/ringmail, the
fail2ban jail (disabled; fail2ban accepts it once enabled). ringmail-setup registers sendmail, mailq and newaliases with
update-alternatives in the DESTDIR (--root), leaving another MTA's real file alone, and
makes ringmail-postdrop setgid ringmaildrop.

Then, as root in a private mount namespace with a network namespace of its own (loopback
only): the DESTDIR's etc/ringmail appears as /etc/ringmail (an overlay over /etc), tmpfs
over /var/spool and /run; the INSTALLED ringmaild starts with no argument (so it finds
/etc/ringmail/ringmail.yaml itself) and detaches, under the unit's capability bounding set;
swaks sends a message to 127.0.0.1:25, which waits in /var/spool/ringmail (the namespace
has no route out); /run/ringmail.pid names the parent; SIGHUP, then SIGTERM, exit 0.
Nothing is left on the host. Skipped when not root or when the namespaces are refused.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from ringmail_harness import Spool, ringmaild_path

SOURCE = Path(__file__).resolve().parents[2]
CAPS_RE = re.compile(r"^CapabilityBoundingSet=(.*)$", re.M)
PR_SET_CHILD_SUBREAPER = 36


def run(*args, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in args], **kw)


def namespaces_work() -> bool:
    try:
        return run("unshare", "--mount", "--net", "--fork", "true", timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@unittest.skipUnless(os.geteuid() == 0, "needs root (mount and network namespaces)")
@unittest.skipUnless(shutil.which("unshare") and shutil.which("swaks") and shutil.which("ip"),
                     "needs unshare, swaks and ip")
class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not namespaces_work():
            raise unittest.SkipTest("unshare --mount --net is refused here")
        cls.tmp = Path(tempfile.mkdtemp(prefix="ringmail-install-"))
        cls.dest = cls.tmp / "dest"
        cls.build = Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent)
        cls.install = run("cmake", "--install", cls.build, "--prefix", "/usr",
                          env=dict(os.environ, DESTDIR=str(cls.dest)))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)

    def test_files(self):
        sbin = self.dest / "usr/sbin"
        # every program of the build (not the test tools, which live in tests/tools)
        built = {p.name for p in self.build.glob("ringmail*")
                 if p.is_file() and os.access(p, os.X_OK)}
        self.assertIn("ringmaild", built)
        self.assertIn("ringmail-sendmail", built)
        for name in built | {"ringmail-setup"}:
            self.assertTrue(os.access(sbin / name, os.X_OK), name)
        for page in list(SOURCE.glob("man/*.5")) + list(SOURCE.glob("man/*.8")):
            self.assertTrue((self.dest / f"usr/share/man/man{page.suffix[1:]}" / page.name)
                            .is_file(), page.name)
        etc = self.dest / "etc/ringmail"
        shipped = (SOURCE / "etc/ringmail.installed.yaml").read_text()
        self.assertEqual((etc / "ringmail.yaml").read_text(), shipped)
        self.assertEqual((etc / "ringmail.yaml.sample").read_text(), shipped)
        jail = (self.dest / "etc/fail2ban/jail.d/ringmail.conf").read_text()
        self.assertEqual(re.findall(r"^enabled\s*=\s*(\S+)", jail, re.M), ["false", "false"])
        self.assertEqual((self.dest / "etc/logwatch/conf/services/sendmail.conf").read_text(),
                         (SOURCE / "etc/logwatch/sendmail.conf").read_text())
        self.assertTrue((self.dest / "var/spool/ringmail").is_dir())
        unit = (self.dest / "usr/lib/systemd/system/ringmail.service").read_text()
        self.assertIn("ExecStart=/usr/sbin/ringmaild --foreground --syslog --config "
                      "/etc/ringmail/ringmail.yaml\n", unit)

        # the installed configuration is valid as it is
        check = run(sbin / "ringmaild", "--check-config", "--config", etc / "ringmail.yaml")
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("spool: /var/spool/ringmail\n", check.stdout)
        self.assertIn("pid_file: /run/ringmail.pid\n", check.stdout)

        # an operator's edits survive a reinstall; the sample is renewed
        logwatch = self.dest / "etc/logwatch/conf/services/sendmail.conf"
        (etc / "ringmail.yaml").write_text(shipped + "# edited\n")
        logwatch.write_text("# the operator's own\n")
        again = run("cmake", "--install", self.build, "--prefix", "/usr",
                    env=dict(os.environ, DESTDIR=str(self.dest)))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertTrue((etc / "ringmail.yaml").read_text().endswith("# edited\n"))
        self.assertEqual(logwatch.read_text(), "# the operator's own\n")
        (etc / "ringmail.yaml").write_text(shipped)
        logwatch.write_text((SOURCE / "etc/logwatch/sendmail.conf").read_text())

    @unittest.skipUnless(shutil.which("systemd-analyze"), "needs systemd-analyze")
    def test_unit_verifies(self):
        unit = (self.dest / "usr/lib/systemd/system/ringmail.service").read_text()
        # offline: the programs are in the DESTDIR, and `man` looks there for the pages
        man = self.dest / "usr/share/man"
        unit = unit.replace("/usr/sbin/", f"{self.dest}/usr/sbin/")
        def installed(m):  # the pages another part of the build has not written yet
            page = man / f"man{m.group(2)}" / f"{m.group(1)}.{m.group(2)}"
            return m.group(0) if page.exists() else ""
        unit = re.sub(r"(?<=[= ])man:(\S+)\((\d)\) ?", installed, unit)
        path = self.tmp / "ringmail.service"
        path.write_text(unit)
        verify = run("systemd-analyze", "verify", path,
                     env=dict(os.environ, MANPATH=str(man)), cwd=self.tmp)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertNotIn("ringmail.service", verify.stdout + verify.stderr)
        security = run("systemd-analyze", "security", "--offline=true", path, cwd=self.tmp)
        m = re.search(r"Overall exposure level for ringmail\.service: (\d+\.\d)", security.stdout)
        self.assertIsNotNone(m, security.stdout + security.stderr)
        self.assertLessEqual(float(m.group(1)), 3.5, security.stdout)  # docs/operations.md

    @unittest.skipUnless(shutil.which("fail2ban-client") and Path("/etc/fail2ban").is_dir(),
                         "needs Debian's fail2ban")
    def test_fail2ban_jail(self):
        """The installed jail, once enabled, is a configuration fail2ban accepts (with the
        stock filters it names); the host's other jails stay out of it."""
        conf = self.tmp / "fail2ban"
        shutil.copytree("/etc/fail2ban", conf, symlinks=True)
        for other in (conf / "jail.d").iterdir():
            other.unlink()
        jail = (self.dest / "etc/fail2ban/jail.d/ringmail.conf").read_text()
        (conf / "jail.d/ringmail.conf").write_text(
            re.sub(r"^enabled(\s*)= false", r"enabled\1= true", jail, flags=re.M))
        r = run("fail2ban-client", "-c", conf, "-t")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK: configuration test is successful", r.stdout + r.stderr)

    def test_setup_alternatives(self):
        root = self.tmp / "root"  # a copy: the other tests use the DESTDIR as installed
        shutil.copytree(self.dest, root, symlinks=True)
        for f in ("passwd", "group", "shadow", "gshadow"):
            lines = Path("/etc", f).read_text().splitlines(keepends=True)
            (root / "etc" / f).write_text(
                "".join(x for x in lines if not x.startswith(("ringmail:", "ringmaildrop:"))))
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / "usr/lib").mkdir(parents=True, exist_ok=True)
        other = root / "usr/sbin/sendmail"
        other.write_text("#!/bin/sh\n# another MTA's sendmail\n")
        other.chmod(0o755)
        setup = [root / "usr/sbin/ringmail-setup", "--root", root]

        r = run(*setup, "install")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(other.read_text(), "#!/bin/sh\n# another MTA's sendmail\n")
        self.assertIn("/usr/sbin/sendmail is a file of another MTA: left alone", r.stderr)
        self.assertIn("group ringmaildrop created", r.stdout)
        gid = next(int(line.split(":")[2]) for line in
                   (root / "etc/group").read_text().splitlines()
                   if line.startswith("ringmaildrop:"))
        postdrop = (root / "usr/sbin/ringmail-postdrop").stat()
        self.assertEqual((postdrop.st_gid, stat.S_IMODE(postdrop.st_mode)), (gid, 0o2755))
        for link in ("usr/bin/mailq", "usr/bin/newaliases", "usr/lib/sendmail"):
            self.assertEqual(os.readlink(root / link), f"/etc/alternatives/{Path(link).name}"
                             if link != "usr/lib/sendmail" else "/etc/alternatives/lib-sendmail")
        self.assertEqual(os.readlink(root / "etc/alternatives/mailq"),
                         "/usr/sbin/ringmail-sendmail")

        # the other MTA is gone: ringmail becomes sendmail
        other.unlink()
        r = run(*setup, "install")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertEqual(os.readlink(root / "usr/sbin/sendmail"), "/etc/alternatives/sendmail")
        self.assertEqual(os.readlink(root / "etc/alternatives/sendmail"),
                         "/usr/sbin/ringmail-sendmail")

        r = run(*setup, "remove")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for link in ("usr/sbin/sendmail", "usr/bin/mailq", "usr/bin/newaliases"):
            self.assertFalse(os.path.lexists(root / link), link)

    def test_installed_daemon(self):
        unit = (self.dest / "usr/lib/systemd/system/ringmail.service").read_text()
        caps = CAPS_RE.search(unit).group(1).split()
        bounding = "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in caps)
        r = run("unshare", "--mount", "--net", "--fork", sys.executable, "-c",
                "import sys, test_install; sys.exit(test_install.inside(sys.argv[1], "
                "sys.argv[2]))", self.dest, bounding,
                cwd=Path(__file__).parent, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        result = json.loads(r.stdout.strip().splitlines()[-1])
        if "skip" in result:
            self.skipTest(result["skip"])
        self.assertEqual(result["start"], 0, result)
        self.assertRegex(result["swaks"], r"<-\s+250 2\.0\.0 \S+ Message accepted")
        self.assertEqual(len(result["queued"]), 1, result)
        self.assertEqual(result["pid_file"], result["parent"], result)
        self.assertTrue(result["alive_after_hup"], result)
        uid = next(line.split(":")[2] for line in Path("/etc/passwd").read_text().splitlines()
                   if line.startswith("ringmail:"))
        self.assertEqual(result["nnp"], {"parent": "0", "engines": [[uid, "1"]]}, result)
        self.assertEqual(result["exit"], 0, result)
        self.assertFalse(result["pid_file_after"], result)
        self.assertNotIn("killed", result)
        # nothing on the host
        self.assertFalse(os.path.exists("/etc/ringmail"))
        self.assertFalse(os.path.exists("/var/spool/ringmail"))
        self.assertFalse(os.path.exists("/run/ringmail.pid"))


def inside(dest: str, bounding: str) -> int:
    """Runs in the namespaces (test_installed_daemon): mounts, the installed daemon, a
    message, the signals. Prints one JSON line of findings; the test judges them."""
    def sh(*args):
        subprocess.run(args, check=True, timeout=30)

    sh("mount", "--make-rprivate", "/")
    sh("ip", "link", "set", "lo", "up")
    work = Path(tempfile.mkdtemp(prefix="ringmail-ns-"))
    sh("mount", "-t", "tmpfs", "tmpfs", str(work))  # gone with the namespace
    (work / "upper").mkdir()
    (work / "work").mkdir()
    shutil.copytree(Path(dest) / "etc/ringmail", work / "upper/ringmail")
    overlay = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                              f"lowerdir=/etc,upperdir={work}/upper,workdir={work}/work", "/etc"],
                             capture_output=True, text=True, timeout=30)
    if overlay.returncode != 0:
        print(json.dumps({"skip": f"overlay mount over /etc refused: {overlay.stderr.strip()}"}))
        return 0
    for d in ("/var/spool", "/run"):
        sh("mount", "-t", "tmpfs", "tmpfs", d)
    os.mkdir("/var/spool/ringmail")
    # the detached daemon's parent becomes our child: its exit status is ours to read
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    out = {}
    env = {k: v for k, v in os.environ.items() if k not in ("RINGMAIL_CONFIG", "NOTIFY_SOCKET")}
    start = subprocess.run(["setpriv", f"--bounding-set={bounding}",
                            f"{dest}/usr/sbin/ringmaild"], env=env, capture_output=True,
                           text=True, timeout=60)
    out["start"] = start.returncode
    out["start_output"] = start.stderr[-3000:]
    if start.returncode != 0:
        print(json.dumps(out))
        return 0
    pid = int(Path("/run/ringmail.pid").read_text())
    out["pid_file"] = pid
    # the parent: our child now (the starting command has exited), the engine its child
    stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out["parent"] = pid if int(stat_fields[1]) == os.getpid() and children else None
    # the engine, as run_as: no_new_privs once it dropped root; the parent keeps it off
    def status(p, field):
        return next(line.split(":", 1)[1].strip() for line in
                    Path(f"/proc/{p}/status").read_text().splitlines()
                    if line.startswith(field + ":"))
    out["nnp"] = {"parent": status(pid, "NoNewPrivs"),
                  "engines": sorted({(status(c, "Uid").split()[0], status(c, "NoNewPrivs"))
                                     for c in children if len(os.listdir(f"/proc/{c}/task")) > 1})}
    swaks = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", "25", "--from",
                            "root@localhost", "--to", "bob@example.com", "--helo",
                            "client.example", "--timeout", "30"],
                           capture_output=True, text=True, timeout=60)
    out["swaks"] = swaks.stdout[-3000:]
    out["queued"] = sorted(Spool(Path("/var/spool/ringmail")).qids())
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    out["alive_after_hup"] = Path(f"/proc/{pid}").exists()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        got, wstatus = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            status = os.waitstatus_to_exitcode(wstatus)
            break
        time.sleep(0.05)
    out["exit"] = status
    out["pid_file_after"] = Path("/run/ringmail.pid").exists()
    # a daemon that did not stop must not outlive the test: its processes, by the installed
    # program's path (a temporary directory of this test)
    exe = f"{dest}/usr/sbin/ringmaild"
    for p in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.readlink(f"/proc/{p}/exe") == exe:
                os.kill(int(p), signal.SIGKILL)
                out.setdefault("killed", []).append(int(p))
        except OSError:
            pass
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    unittest.main()
