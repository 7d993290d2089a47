"""Local delivery end to end (docs/local-delivery.md): the daemon runs as root, users of
this machine are made for the test, and what reaches them is read back with Python's
mailbox module. RCPT refuses names that reach nobody; aliases, .forward, virtusertable and
luser_relay decide who gets what; the privileged parent's agent writes as the user."""

import mailbox
import os
import re
import stat
import time
import unittest
from pathlib import Path

from delivery_support import DeliveryTestCase
from local_support import MailboxWaits, TestUsers, mail_dir, open_dirs, require_root
from ringmail_harness import HOSTNAME, make_message


class LocalDelivery(MailboxWaits, DeliveryTestCase):
    def setUp(self):
        super().setUp()
        require_root(self)
        open_dirs(self.tmp)
        self.users = TestUsers(self, self.tmp / "home")
        (self.tmp / "home").mkdir(mode=0o755)
        self.alice = self.users.add("rmtalice")
        self.bob = self.users.add("rmtbob")

    def local_daemon(self, aliases: str | None = None, **overrides):
        work = self.tmp / f"d{len(self._daemons)}"
        work.mkdir()
        open_dirs(work)
        mail_dir(work)
        cfg = {"routing": {"luser_relay": None}}
        if aliases is not None:
            (work / "aliases").write_text(aliases)
            cfg["maps"] = {"aliases": [str(work / "aliases")]}
        cfg.update(overrides)
        return self.daemon(workdir=work, **cfg)

    def send(self, d, rcpts, body="hello\r\n", sender="someone@remote.test", subject="t"):
        c = self.session(d)
        qid = self.assertAccepted(c.send_mail(sender, rcpts,
                                              make_message(subject=subject, body=body)))
        c.close()
        return qid

    def wait_known(self, d, rcpt, timeout=15.0):
        """Until RCPT accepts `rcpt`: a reload reaches the engine a moment after the parent
        logs it."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.session(d)
            self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 250)
            code = c.cmd(f"RCPT TO:<{rcpt}>").code
            c.close()
            if code == 250:
                return
            if time.monotonic() > deadline:
                self.fail(f"<{rcpt}> still refused {timeout}s after the reload")
            time.sleep(0.1)

    def test_mbox_as_the_user(self):
        """A system user's mail lands in the mbox as that user, with sendmail's From_ line,
        Return-Path and >From quoting; the log says mailer=local, stat=Sent."""
        d = self.local_daemon()
        qid = self.send(d, [f"rmtalice@{HOSTNAME}"], body="From the start\r\nline two\r\n")
        (msg,) = self.wait_mbox(d, "rmtalice")
        self.assertEqual(msg["Subject"], "t")
        self.assertEqual(msg["Return-Path"], "<someone@remote.test>")
        self.assertRegex(msg.get_from(), r"^someone@remote\.test ")
        self.assertIn(">From the start\nline two\n", msg.get_payload())
        st = os.stat(d.workdir / "mail" / "rmtalice")
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (self.alice.pw_uid, 0o600))
        d.wait_log(rf"{qid}: to=<rmtalice@{re.escape(HOSTNAME)}>, .*mailer=local, .*stat=Sent")
        self.wait_spool_empty(d)

    def test_unknown_user_refused_at_rcpt(self):
        """No backscatter: a name that is no alias, virtual user nor user of the system is
        refused at RCPT with sendmail's reply, and logged as sendmail logs it."""
        d = self.local_daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 250)
        r = c.cmd(f"RCPT TO:<nosuchuser@{HOSTNAME}>")
        self.assertReply(r, 550, "5.1.1")
        self.assertIn(f"<nosuchuser@{HOSTNAME}>... User unknown", r.text)
        # sendmail's finduser: the name as written, then in lower case
        self.assertReply(c.cmd(f"RCPT TO:<RmtAlice@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<rmtalice+box@{HOSTNAME}>"), 250)
        d.wait_log(rf"<nosuchuser@{re.escape(HOSTNAME)}>\.\.\. User unknown")
        # RFC 5321 4.5.1: postmaster is always accepted; with no alias it is root's
        self.assertReply(c.cmd(f"RCPT TO:<Postmaster@{HOSTNAME}>"), 250)
        self.assertReply(c.cmd("RCPT TO:<postmaster>"), 250)
        c.close()
        self.send(d, [f"postmaster@{HOSTNAME}"], subject="to the postmaster")
        (msg,) = self.wait_mbox(d, "root")
        self.assertEqual(msg["Subject"], "to the postmaster")

    def test_luser_relay(self):
        """LUSER_RELAY local:user: unknown names go to that user's mailbox."""
        d = self.local_daemon(routing={"luser_relay": "local:rmtbob"})
        self.send(d, [f"whoever@{HOSTNAME}"])
        (msg,) = self.wait_mbox(d, "rmtbob")
        self.assertEqual(msg["Subject"], "t")

    def test_maildir(self):
        """mailers.mailbox "Maildir/": tmp -> new in the user's home, owned by the user."""
        d = self.local_daemon(mailers={"mailbox": "Maildir/"})
        self.send(d, [f"rmtbob@{HOSTNAME}"], subject="md")
        md = Path(self.bob.pw_dir) / "Maildir"
        deadline = time.monotonic() + 20
        while not (md / "new").is_dir() or not list((md / "new").iterdir()):
            if time.monotonic() > deadline:
                self.fail(f"nothing in {md}/new:\n{d.log_tail()}")
            time.sleep(0.05)
        msgs = list(mailbox.Maildir(str(md), create=False))
        self.assertEqual([m["Subject"] for m in msgs], ["md"])
        self.assertEqual(list((md / "tmp").iterdir()), [])
        (f,) = (md / "new").iterdir()
        self.assertEqual(f.stat().st_uid, self.bob.pw_uid)

    def test_aliases(self):
        """Lists, nested aliases, :include:, an alias program and file (as the default
        user), error: refused at RCPT, a self-reference, and the envelope holding the
        expansion with ORCPT the alias."""
        work_files = self.tmp / "files"
        work_files.mkdir(mode=0o1777)
        work_files.chmod(0o1777)
        (self.tmp / "list.inc").write_text("rmtbob\n")
        prog_out = work_files / "prog.out"
        aliases = (f"team: rmtalice, staff\n"
                   f"staff: :include:{self.tmp}/list.inc\n"
                   f"archive: {work_files}/archive.mbox\n"
                   f"pipe: \"|/bin/sh -c 'cat > {prog_out}'\"\n"
                   f"gone: error:5.1.6:550 This person has moved\n"
                   f"rmtalice: rmtalice, {work_files}/copy.mbox\n")
        d = self.local_daemon(aliases=aliases)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 250)
        r = c.cmd(f"RCPT TO:<gone@{HOSTNAME}>")
        self.assertReply(r, 550, "5.1.6")
        self.assertIn("This person has moved", r.text)
        c.close()
        qid = self.send(d, [f"team@{HOSTNAME}", f"archive@{HOSTNAME}", f"pipe@{HOSTNAME}"])
        self.wait_mbox(d, "rmtalice")
        self.wait_mbox(d, "rmtbob")
        self.wait_spool_empty(d)
        copy = list(mailbox.mbox(str(work_files / "copy.mbox")))
        self.assertEqual(len(copy), 1)
        self.assertEqual(len(list(mailbox.mbox(str(work_files / "archive.mbox")))), 1)
        self.assertIn(b"Subject: t\n", prog_out.read_bytes())
        daemon_uid = os.stat(work_files / "archive.mbox").st_uid
        self.assertNotEqual(daemon_uid, 0, "an alias file was written as root")
        self.assertEqual(os.stat(prog_out).st_uid, daemon_uid)
        d.wait_log(rf'{qid}: to="\|/bin/sh.*mailer=prog, .*stat=Sent')


    def test_owner_alias_is_the_lists_sender(self):
        """owner-NAME: the list's copies go out from the owner (their bounces go there), in
        a message of their own; the original is "expanded as" it."""
        d = self.local_daemon(aliases="staff: rmtalice, rmtbob\n"
                                      "owner-staff: listadmin@remote.test\n")
        qid = self.send(d, [f"staff@{HOSTNAME}"])
        for user in ("rmtalice", "rmtbob"):
            (msg,) = self.wait_mbox(d, user)
            self.assertEqual(msg["Return-Path"], "<listadmin@remote.test>")
        d.wait_log(rf"{qid}: to=<staff@{re.escape(HOSTNAME)}>, .*stat=Sent \(expanded as \w+\)")
        self.wait_spool_empty(d)

    def test_aliases_and_users_read_again_on_change(self):
        """An edited aliases file and a new user of the system are seen without a SIGHUP:
        the parent looks at them every few seconds and reloads."""
        d = self.local_daemon(aliases="team: rmtalice\n")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<newname@{HOSTNAME}>"), 550, "5.1.1")
        self.assertReply(c.cmd(f"RCPT TO:<rmtcarol@{HOSTNAME}>"), 550, "5.1.1")
        c.close()
        (d.workdir / "aliases").write_text("team: rmtalice\nnewname: rmtbob\n")
        d.wait_log(r"aliases changed: reloading", timeout=15)
        self.wait_known(d, f"newname@{HOSTNAME}")  # the engine has the new configuration
        self.send(d, [f"newname@{HOSTNAME}"], subject="renamed")
        (msg,) = self.wait_mbox(d, "rmtbob")
        self.assertEqual(msg["Subject"], "renamed")
        self.users.add("rmtcarol")
        d.wait_log(r"/etc/passwd changed: reloading", timeout=15)
        self.wait_known(d, f"rmtcarol@{HOSTNAME}")
        self.send(d, [f"rmtcarol@{HOSTNAME}"], subject="welcome")
        (msg,) = self.wait_mbox(d, "rmtcarol")
        self.assertEqual(msg["Subject"], "welcome")

if __name__ == "__main__":
    unittest.main()
