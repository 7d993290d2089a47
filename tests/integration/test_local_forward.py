"""Local delivery end to end, beyond the mailbox (docs/config.md, `mailers`): a user's
.forward (a copy kept with "\\user" and a program run as the user; another local user and
a remote address, forwarded as a new message; a loop between two users bounced; an unsafe
.forward ignored; an empty one), FEATURE(smrsh), the virtusertable and procmail as the
local mailer. The daemon runs as root with users made for the test; mailboxes are read
back with Python's mailbox module, remote mail at a sink (mailertable remote.test)."""

import os
import re
import shutil
import unittest
from pathlib import Path

from local_support import LocalCase, read_mbox, unique_users, write_script
from ringmail_harness import HOSTNAME

SENDER = "someone@remote.test"
ALICE, BOB, CAROL = unique_users("rmf")


class Forward(LocalCase):
    USERS = (ALICE, BOB, CAROL)

    def test_copy_and_program_as_the_user(self):
        """"\\alice, |prog": a copy in the mailbox (not forwarded again) and the program
        run with the user's uid, the message on its standard input."""
        rec = write_script(self.files / "record.sh", 'id -u > "$1.uid"\ncat > "$1"\n')
        out = self.home(ALICE) / "prog.out"
        self.user_file(ALICE, ".forward", f'\\{ALICE}, "|{rec} {out}"\n')
        d = self.local_daemon()
        qid = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="fwd prog")
        (msg,) = self.wait_mbox(d, ALICE)
        self.assertEqual(msg["Subject"], "fwd prog")
        data = self.wait_file(out, lambda b: b"\n\n" in b and b.endswith(b"\n"), d=d)
        self.assertIn(b"Subject: fwd prog\n", data)
        uid = self.wait_file(Path(f"{out}.uid"), d=d)
        self.assertEqual(int(uid), self.pw[ALICE].pw_uid)
        self.assertEqual(os.stat(out).st_uid, self.pw[ALICE].pw_uid)
        # sendmail's lines: one per target, with the controlling address and the identity
        # it was delivered as; none for the address that led to them
        ids = rf"\({self.pw[ALICE].pw_uid}/{self.pw[ALICE].pw_gid}\)"
        ctl = rf"ctladdr=<{ALICE}@{re.escape(HOSTNAME)}> {ids}"
        self.wait_log(d, rf"{qid}: to=\\{ALICE}, {ctl}, .*mailer=local, .*dsn=2\.0\.0, "
                         rf"stat=Sent$")
        self.wait_log(d, rf'{qid}: to="\|{re.escape(f"{rec} {out}")}", {ctl}, .*mailer=prog, '
                         rf".*stat=Sent")
        self.wait_spool_empty(d)
        self.assertEqual(len(self.mbox(d, ALICE)), 1)
        self.assertNotRegex(d.log(), rf"{qid}: to=<{ALICE}@")

    def test_forward_to_local_and_remote(self):
        """alice forwards to bob and to a remote address: one new message ("forwarded
        as QID"), bob's mailbox and the sink get it, alice's mailbox stays empty."""
        sink = self.remote_sink()
        self.user_file(ALICE, ".forward", f"{BOB}, far@remote.test\n")
        d = self.local_daemon()
        qid = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="fwd both")
        m = self.wait_log(d, rf"{qid}: to=<{ALICE}@{re.escape(HOSTNAME)}>, .*"
                             rf"stat=Sent \(forwarded as (\w+)\)")
        fqid = m.group(1)
        (msg,) = self.wait_mbox(d, BOB)
        self.assertEqual(msg["Subject"], "fwd both")
        self.assertEqual(msg["Return-Path"], f"<{SENDER}>")
        self.assertEqual(msg["Delivered-To"], f"{ALICE}@{HOSTNAME}")
        (remote,) = sink.wait_messages(1)
        self.assertEqual((remote.mail_from, remote.rcpt_tos), (SENDER, ["far@remote.test"]))
        self.assertIn(b"Subject: fwd both", remote.data)
        self.sent_line(d, fqid, "far@remote.test")
        self.wait_spool_empty(d)
        self.assertEqual(self.mbox(d, ALICE), [])
        self.assertEqual(len(self.mbox(d, BOB)), 1)
        self.assertEqual(len(sink.messages), 1)

    def test_forwarding_loop_bounced(self):
        """alice -> bob -> alice: the loop is broken (5.4.6) and the sender gets a
        bounce; neither mailbox gets the message."""
        sink = self.remote_sink()
        self.user_file(ALICE, ".forward", f"{BOB}\n")
        self.user_file(BOB, ".forward", f"{ALICE}\n")
        d = self.local_daemon()
        self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="loop")
        self.wait_log(d, rf"to=<{ALICE}@.*dsn=5\.4\.6, stat=.*loop")
        _, notice = self.notice_of(sink)
        self.assertEqual(self.notices(sink)[0].rcpt_tos, [SENDER])
        _, groups, returned = self.report_parts(notice)
        self.assertTrue(any(g["Status"] == "5.4.6" for g in groups[1:]),
                        [str(g) for g in groups[1:]])
        self.assertIn("Subject: loop", returned.as_string())
        self.wait_spool_empty(d)
        self.assertEqual((self.mbox(d, ALICE), self.mbox(d, BOB)), ([], []))

    def test_unsafe_forward_ignored(self):
        """A world-writable .forward, and one owned by another user, are not followed (a
        log line says why): the mail goes to the mailbox."""
        self.user_file(ALICE, ".forward", f"{CAROL}\n", mode=0o666)
        self.user_file(BOB, ".forward", f"{CAROL}\n", owner=ALICE)
        os.chmod(self.home(ALICE) / ".forward", 0o666)  # past the umask
        d = self.local_daemon()
        q1 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="ww")
        q2 = self.send(d, SENDER, [f"{BOB}@{HOSTNAME}"], subject="other owner")
        self.assertEqual([m["Subject"] for m in self.wait_mbox(d, ALICE)], ["ww"])
        self.assertEqual([m["Subject"] for m in self.wait_mbox(d, BOB)], ["other owner"])
        for qid, user in ((q1, ALICE), (q2, BOB)):
            self.wait_log(d, rf"{qid}: forward {re.escape(str(self.home(user)))}/\.forward "
                             rf"not followed: ")
        self.wait_spool_empty(d)
        self.assertEqual(self.mbox(d, CAROL), [])

    def test_empty_forward(self):
        """An empty .forward (blank lines, a comment) delivers to the mailbox."""
        self.user_file(ALICE, ".forward", "\n# nothing here\n\n")
        d = self.local_daemon()
        self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="empty fwd")
        (msg,) = self.wait_mbox(d, ALICE)
        self.assertEqual(msg["Subject"], "empty fwd")
        self.wait_spool_empty(d)
        self.assertEqual(len(self.mbox(d, ALICE)), 1)

    def test_copy_and_forward_delivered_once(self):
        """"\\alice, bob": one copy in alice's mailbox, one in bob's, as sendmail delivers;
        the message forwarded to bob does not hold alice's mailbox again (it did: her
        .forward was then read again and the sender got a false "mail forwarding loop")."""
        self.user_file(ALICE, ".forward", f"\\{ALICE}, {BOB}\n")
        d = self.local_daemon()
        self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="copy and forward")
        self.wait_mbox(d, BOB)
        self.wait_mbox(d, ALICE)
        self.wait_spool_empty(d)
        self.assertEqual([len(self.mbox(d, u)) for u in (ALICE, BOB)], [1, 1])

    def test_include_in_forward(self):
        """alice's .forward names two :include: files under her home (0700: only she can
        read them): one lists bob and a program and includes the other, which lists carol;
        the other is group-writable, so it is not used (sendmail's include()): that target
        bounces with 5.2.4 and the rest is delivered. The program runs as alice."""
        sink = self.remote_sink()
        home = self.home(ALICE)
        rec = write_script(self.files / "inc.sh", 'id -u > "$1.uid"\ncat > "$1"\n')
        out = home / "inc.out"
        (home / "lists").mkdir()
        os.chown(home / "lists", self.pw[ALICE].pw_uid, self.pw[ALICE].pw_gid)
        self.user_file(ALICE, "lists/team", f'{BOB}, "|{rec} {out}"\n:include:{home}/lists/more\n',
                       mode=0o600)
        self.user_file(ALICE, "lists/more", f"{CAROL}\n", mode=0o600)
        self.user_file(ALICE, "lists/open", f"{CAROL}\n", mode=0o664)
        os.chmod(home / "lists", 0o700)
        os.chmod(home / "lists/open", 0o664)  # past the umask
        self.user_file(ALICE, ".forward",
                       f":include:{home}/lists/team\n:include:{home}/lists/open\n")
        d = self.local_daemon()
        qid = self.send(d, f"{SENDER}", [f"{ALICE}@{HOSTNAME}"], subject="fwd include")
        for user in (BOB, CAROL):
            self.assertEqual([m["Subject"] for m in self.wait_mbox(d, user)], ["fwd include"])
        data = self.wait_file(out, lambda b: b"\n\n" in b and b.endswith(b"\n"), d=d)
        self.assertIn(b"Subject: fwd include\n", data)
        uid = self.wait_file(Path(f"{out}.uid"), d=d)
        self.assertEqual(int(uid), self.pw[ALICE].pw_uid)
        self.wait_log(d, rf"{qid}: :include:{re.escape(str(home))}/lists/open not used: "
                         rf"group or world writable")
        self.wait_log(d, rf"{qid}: to=<{ALICE}@{re.escape(HOSTNAME)}>, .*dsn=5\.2\.4, "
                         rf"stat=Cannot open {re.escape(str(home))}/lists/open: ")
        _, notice = self.notice_of(sink)
        self.assertIn("Status: 5.2.4", notice.as_string())
        self.wait_spool_empty(d)
        self.assertEqual(self.mbox(d, ALICE), [])
        self.assertEqual([len(self.mbox(d, u)) for u in (BOB, CAROL)], [1, 1])


class Smrsh(LocalCase):
    USERS = (ALICE, BOB, CAROL)

    def test_only_programs_in_smrsh_dir(self):
        """FEATURE(smrsh): an alias program whose file is linked in smrsh_dir runs; one that
        is not fails for good, and the sender (a local user) gets the bounce."""
        bindir = self.tmp / "bin"
        bindir.mkdir(mode=0o755)
        ok = write_script(bindir / "ok.sh", f'cat > "{self.files}/ok.out"\n')
        bad_out = self.files / "bad.out"
        bad = write_script(bindir / "bad.sh", f'cat > "{bad_out}"\n')
        smrsh_dir = self.tmp / "smrsh"
        smrsh_dir.mkdir(mode=0o755)
        (smrsh_dir / "ok.sh").symlink_to(ok)
        aliases = f'good: "|{ok}"\nbad: "|{bad}"\n'
        d = self.local_daemon(aliases=aliases,
                              mailers={"smrsh": True, "smrsh_dir": str(smrsh_dir)})
        qid = self.send(d, f"{CAROL}@{HOSTNAME}", [f"good@{HOSTNAME}", f"bad@{HOSTNAME}"],
                        subject="smrsh")
        data = self.wait_file(self.files / "ok.out", lambda b: b.endswith(b"\n") and b"\n\n" in b,
                              d=d)
        self.assertIn(b"Subject: smrsh\n", data)
        # the parent says why; the engine's line has sendmail's text for 5.7.1
        self.wait_log(d, rf"{qid}: to=<\|{re.escape(str(bad))}>, local delivery refused: "
                         rf"5\.7\.1 smrsh: \"bad\.sh\" not available for sendmail programs")
        self.wait_log(d, rf'{qid}: to="\|{re.escape(str(bad))}", .*mailer=prog, .*dsn=5\.7\.1, '
                         rf"stat=Service unavailable")
        self.sent_line(d, qid, f"|{ok}")
        (notice,) = self.wait_mbox(d, CAROL)
        self.assertRegex(notice.get_from(), r"^MAILER-DAEMON ")
        self.assertEqual(notice["Return-Path"], "<>")
        text = notice.as_string()
        self.assertIn(f"Final-Recipient: rfc822; |{bad}\n", text)
        self.assertIn("Status: 5.7.1\n", text)
        self.assertNotIn(f"|{ok}", text)
        self.assertIn("Subject: smrsh", text)
        self.wait_spool_empty(d)
        self.assertFalse(bad_out.exists(), "the program outside smrsh_dir ran")
        self.smrsh_notice = text

    def test_smrsh_bounce_says_why(self):
        """The bounce tells the sender why, as sendmail's does (its transcript has smrsh's
        line): today it says only "(reason: 5.7.1)" (delivery/qmgr_local.c leaves the
        recipient's diagnostic empty)."""
        self.test_only_programs_in_smrsh_dir()
        self.assertIn("not available for sendmail programs", self.smrsh_notice)


class Virtusertable(LocalCase):
    USERS = (ALICE, BOB, CAROL)

    def test_virtusertable(self):
        """@virt.test %1@mx.test (the catch-all keeps the user part), info@virt.test a local
        user, error:nouser refused at RCPT with 550 5.1.1."""
        virtusers = (f"info@virt.test {ALICE}\n"
                     f"nobody@virt.test error:nouser\n"
                     f"@virt.test %1@{HOSTNAME}\n")
        d = self.local_daemon(virtusers=virtusers,
                              local_domains=[HOSTNAME, "localhost", "virt.test"])
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<nobody@virt.test>"), 550, "5.1.1")
        # the catch-all leads to a name that is no user here
        self.assertReply(c.cmd("RCPT TO:<nosuchuser@virt.test>"), 550, "5.1.1")
        c.close()
        self.send(d, SENDER, ["info@virt.test", f"{BOB}@virt.test"], subject="virt")
        self.assertEqual([m["Subject"] for m in self.wait_mbox(d, ALICE)], ["virt"])
        self.assertEqual([m["Subject"] for m in self.wait_mbox(d, BOB)], ["virt"])
        self.wait_spool_empty(d)
        self.assertEqual(self.mbox(d, CAROL), [])


class LuserRelay(LocalCase):
    USERS = (ALICE,)

    def test_luser_relay_host(self):
        """routing.luser_relay a host: an unknown name goes there as name+detail@host, as
        sendmail's Localaddr ruleset rewrites it; with features.preserve_luser_host
        (FEATURE(preserve_luser_host)) with the recipient's own domain. Known users stay."""
        sink = self.remote_sink()
        relay = f"esmtp:[{sink.addr}]:{sink.port}"
        want = []
        for preserve, domain in ((False, f"[{sink.addr}]"), (True, HOSTNAME)):
            d = self.local_daemon(routing={"luser_relay": relay},
                                  features={"preserve_luser_host": preserve})
            self.send(d, SENDER, [f"whoever+x@{HOSTNAME}", f"{ALICE}@{HOSTNAME}"],
                      subject=f"luser {preserve}")
            want.append(f"whoever+x@{domain}")
            msgs = sink.wait_messages(len(want))
            self.assertEqual([m.rcpt_tos for m in msgs], [[w] for w in want])
            self.assertEqual(len(self.wait_mbox(d, ALICE)), 1)
            self.wait_spool_empty(d)
            d.stop()


PROCMAIL = shutil.which("procmail") or "/usr/bin/procmail"


@unittest.skipUnless(os.access(PROCMAIL, os.X_OK), "procmail is not installed")
class Procmail(LocalCase):
    USERS = (ALICE, BOB, CAROL)

    def remove_spool_file(self, path: Path):
        if path.exists() and path.stat().st_size == 0:
            path.unlink()

    def test_procmailrc_files_into_a_folder(self):
        """mailers.local_procmail: procmail runs as the user (Debian's is setuid root, and
        drops to the user for -d user) and files by ~/.procmailrc into a folder under the
        home; everything else goes to an mbox under the home too. (procmail -d also makes
        an empty /var/mail/USER, its ORGMAIL, whatever mailers.mailbox says: removed here.)"""
        self.addCleanup(self.remove_spool_file, Path("/var/mail") / ALICE)
        self.user_file(ALICE, ".procmailrc",
                       "MAILDIR=$HOME/Mail\nDEFAULT=$HOME/inbox\nLOGFILE=$HOME/procmail.log\n"
                       ":0\n* ^Subject: .*filed\nfiled\n", mode=0o600)
        mdir = self.home(ALICE) / "Mail"
        mdir.mkdir(mode=0o700)
        os.chown(mdir, self.pw[ALICE].pw_uid, self.pw[ALICE].pw_gid)
        d = self.local_daemon(mailers={"local_procmail": True})
        q1 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="to be filed")
        q2 = self.send(d, SENDER, [f"{ALICE}@{HOSTNAME}"], subject="other")
        for qid in (q1, q2):
            self.wait_log(d, rf"{qid}: to=<{ALICE}@{re.escape(HOSTNAME)}>, .*"
                             rf"mailer=procmail, .*stat=Sent")
        filed = read_mbox(mdir / "filed")
        self.assertEqual([m["Subject"] for m in filed], ["to be filed"])
        self.assertEqual(filed[0]["Return-Path"], f"<{SENDER}>")
        inbox = read_mbox(self.home(ALICE) / "inbox")
        self.assertEqual([m["Subject"] for m in inbox], ["other"])
        for p in (mdir / "filed", self.home(ALICE) / "inbox"):
            self.assertEqual(os.stat(p).st_uid, self.pw[ALICE].pw_uid, p)
        self.assertFalse(self.mbox_path(d, ALICE).exists())
        self.wait_spool_empty(d)


if __name__ == "__main__":
    unittest.main()
