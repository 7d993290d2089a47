"""test_sendmail_clients.py: the programs that run /usr/sbin/sendmail, pointed at
ringmail-sendmail (issue 10): bsd-mailx, git send-email, mutt, a cron-like pipe, PHP's
mail(). Each message must reach the next hop (a sink) with the envelope sender and the
header its program meant. None of them passes -C: ringmail-sendmail finds the daemon's
configuration through $RINGMAIL_CONFIG.

A client that is not installed is skipped, saying which Debian package brings it
(scripts/deps.sh installs them: bsd-mailx, git-email with libmailtools-perl, mutt,
php-cli).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unittest

from ringmail_harness import HOSTNAME
from test_sendmail_cli import SendmailCase, sendmail_path


def need(test: unittest.TestCase, program: str, package: str) -> str:
    path = shutil.which(program)
    if not path:
        test.skipTest(f"{program} is not installed (Debian package {package})")
    return path


class SendmailClients(SendmailCase):

    def setUp(self):
        super().setUp()
        self.start()

    def test_bsd_mailx(self):
        mail = need(self, "bsd-mailx", "bsd-mailx")
        rc = self.home / "mailrc"
        rc.write_text(f"set sendmail={sendmail_path()}\n")
        r = self.run_cmd([mail, "-s", "from mailx", "-r", "alice@remote.test",
                          "bob@remote.test"], input=b"hello from mailx\n",
                         env=self.env(MAILRC=str(rc)))
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "alice@remote.test")
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        self.assertEqual(msg["Subject"], "from mailx")
        self.assertEqual(msg["To"], "bob@remote.test")
        self.assertIn(b"hello from mailx\r\n", m.data)

    def test_git_send_email(self):
        git = need(self, "git", "git")
        if not shutil.which("git-send-email", path="/usr/lib/git-core"):
            self.skipTest("git send-email is not installed (Debian package git-email)")
        # git-email only recommends the module it cannot work without
        if subprocess.run(["perl", "-MMail::Address", "-e1"], capture_output=True).returncode:
            self.skipTest("git send-email needs Mail::Address (Debian package libmailtools-perl)")
        repo = self.home / "repo"
        env = self.env(GIT_AUTHOR_NAME="Alice Author", GIT_AUTHOR_EMAIL="alice@remote.test",
                       GIT_COMMITTER_NAME="Alice Author",
                       GIT_COMMITTER_EMAIL="alice@remote.test", GIT_CONFIG_NOSYSTEM="1")
        self.assertExit(self.run_cmd([git, "init", "-q", str(repo)], env=env), 0)
        for text, subject in (("one\n", "first"), ("two\n", "fix the frobnicator")):
            (repo / "frob.c").write_text(text)
            for argv in (["add", "frob.c"], ["commit", "-q", "-m", subject]):
                self.assertExit(self.run_cmd([git, "-C", str(repo), *argv], env=env), 0)
        r = self.run_cmd([git, "-C", str(repo), "send-email", f"--sendmail-cmd={sendmail_path()}",
                          "--to=bob@remote.test", "--from=Alice Author <alice@remote.test>",
                          "--envelope-sender=auto", "--confirm=never", "--quiet", "-1"],
                         env=env, cwd=str(repo))
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "alice@remote.test")
        # the author is Cc'd, as send-email does by default
        self.assertEqual(sorted(m.rcpt_tos), ["alice@remote.test", "bob@remote.test"])
        self.assertEqual(msg["To"], "bob@remote.test")
        self.assertIn("fix the frobnicator", msg["Subject"])
        self.assertEqual(msg["From"], "Alice Author <alice@remote.test>")
        self.assertIsNotNone(msg["Message-ID"])

    def test_mutt(self):
        mutt = need(self, "mutt", "mutt")
        r = self.run_cmd([mutt, "-n", "-F", "/dev/null", "-e", f'set sendmail="{sendmail_path()}"',
                          "-e", "set from=carol@remote.test", "-e", "set use_envelope_from=yes",
                          "-s", "from mutt", "bob@remote.test"], input=b"hello from mutt\n")
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "carol@remote.test")
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        self.assertEqual(msg["Subject"], "from mutt")
        self.assertIn("carol@remote.test", msg["From"])

    def test_cron_like_pipe(self):
        # what cron does with a job's output: MAILTO as To:, sendmail -t -oi on a pipe
        cmd = (f"printf 'From: root (Cron Daemon)\\nTo: ops@remote.test\\n"
               f"Subject: Cron <root@host> run-parts /etc/cron.daily\\n\\n"
               f".\\noutput line\\n' | {sendmail_path()} -FCronDaemon -i -t -oem -oi")
        r = self.run_cmd(["/bin/sh", "-c", cmd])
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, f"root@{HOSTNAME}")
        self.assertEqual(m.rcpt_tos, ["ops@remote.test"])
        self.assertTrue(msg["Subject"].startswith("Cron <root@host>"))
        self.assertIn(b"\r\n.\r\noutput line\r\n", m.data)  # -i: the lone dot stays

    def test_php_mail(self):
        php = need(self, "php", "php-cli")
        code = ('exit(mail("bob@remote.test", "from php", "hello from php\\n",'
                ' "From: Dave <dave@remote.test>") ? 0 : 1);')
        r = self.run_cmd([php, "-n", "-d", f"sendmail_path={sendmail_path()} -t -i "
                          "-f dave@remote.test", "-r", code])
        self.assertExit(r, 0)
        [(m, msg)] = self.received()
        self.assertEqual(m.mail_from, "dave@remote.test")
        self.assertEqual(m.rcpt_tos, ["bob@remote.test"])
        self.assertEqual(msg["Subject"], "from php")
        self.assertEqual(msg["From"], "Dave <dave@remote.test>")


if __name__ == "__main__":
    unittest.main()
