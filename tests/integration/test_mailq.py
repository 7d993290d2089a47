"""mailq against a real queue: ringmaild relays to a sink that answers 4xx, so the messages
stay deferred with sendmail's "Deferred: ..." reason in their qf files; then
`ringmail-queue list` (and `mailq`, ringmail-sendmail under that name, when it is built)
must print exactly sendmail -bp's layout for what the files hold, `list --json` the same
facts as JSON, `shape` the counts, and anyone but root and the run-as user is refused."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from delivery_support import DeliveryTestCase
from ringmail_harness import parse_qf, split_qf

# Deferred once, then left alone for the length of the test.
SLOW_QUEUE = {"minimal_backoff": "1h", "maximal_backoff": "2h", "interval": "1h"}
HELD = 99999999999999999


def ringmail_bin(name: str) -> Path:
    return Path(os.environ.get("RINGMAIL_BIN", "")) / name


def qf_fields(data: bytes) -> dict:
    """parse_qf plus the records it does not name: W as a number, the E reason trimmed."""
    env = parse_qf(data)
    for line in split_qf(data)[0].decode().split("\n"):  # the records, never inline data
        if line.startswith("E"):
            env["reason"] = line[1:].rstrip(" ") or None
        elif line.startswith("W"):
            env["next"] = int(line[1:])
    env.setdefault("reason", None)
    return env


def prtstr(s: str, width: int) -> str:
    """sendmail's prtstr() for printable ASCII: cut at `width` columns."""
    return s[:width]


def sendmail_bp(spool: str, envs: list[dict]) -> str:
    """What sendmail -bp prints for these envelopes (print_single_queue, TZ=UTC)."""
    if not envs:
        return f"{spool} is empty\n\t\tTotal requests: 0\n"

    def pri(e):
        return (int(e["size"]) + 30000 * len(e["rcpts"]) + 90000 * int(e["attempts"]),
                int(e["created"]), e["qid"])

    out = [f"\t\t{spool} ({len(envs)} request{'' if len(envs) == 1 else 's'})\n",
           "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"]
    for e in sorted(envs, key=pri):
        when = time.strftime("%a %b %e %H:%M", time.gmtime(int(e["created"])))
        mark = "X" if e["next"] == HELD else " "
        line = f"{e['qid']:>13}{mark}{int(e['size']):8d} {when} " + prtstr(f"<{e['sender']}>", 39)
        body = {"8": "8BITMIME", "7": "7BIT"}.get(e.get("body"), "")
        if e["reason"] or body:
            line += f"\n    {body:>10.10}"
            if e["reason"]:
                line += f"   ({e['reason'][:60]})"
        for r in e["rcpts"]:
            if r["state"] in ("P", "W"):
                line += "\n\t\t\t\t\t " + prtstr(f"<{r['addr']}>", 38)
        out.append(line + "\n")
    out.append(f"\t\tTotal requests: {len(envs)}\n")
    return "".join(out)


class QueueToolCase(DeliveryTestCase):

    def tool(self, d, *args, prog: str = "ringmail-queue", stdin: str | None = None,
             user: str | None = None, config: Path | None = None):
        exe = ringmail_bin(prog)
        if not exe.exists():
            self.skipTest(f"{exe} is not built")
        env = dict(os.environ, TZ="UTC")
        kw = {}
        if user:
            pw = pwd.getpwnam(user)
            kw["preexec_fn"] = lambda: (os.setgroups([]), os.setgid(pw.pw_gid),
                                        os.setuid(pw.pw_uid))
        return subprocess.run([str(exe), "-C", str(config or d.config_path), *args],
                              input=stdin, capture_output=True, text=True, env=env,
                              timeout=60, **kw)

    def deferred_queue(self, sink_rcpt="451 4.3.0 try again later"):
        """A daemon whose next hop defers every recipient, and three messages in it, each
        tried once: {qid: envelope}."""
        sink = self.sink(rcpt=sink_rcpt)
        d = self.relay(sink, queue=SLOW_QUEUE)
        qids = [
            self.send(d, "alice@client.test", ["bob@remote.test", "carol@remote.test"]),
            self.send(d, "", ["dave@remote.test"], mail_params="BODY=8BITMIME"),
            self.send(d, "a-rather-long-sender-address-for-the-column@client.test",
                      ["erin@remote.test"], body="x" * 5000 + "\r\n"),
        ]
        envs = self.wait_deferred(d, qids)
        return sink, d, envs

    def wait_deferred(self, d, qids, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            envs = {q: qf_fields(d.spool.qf(q)) for q in qids}
            if all(int(e["attempts"]) >= 1 and e["reason"] for e in envs.values()):
                return envs
            if time.monotonic() > deadline:
                self.fail(f"messages not deferred: {envs}")
            time.sleep(0.05)


class Mailq(QueueToolCase):

    def test_sendmail_layout(self):
        _, d, envs = self.deferred_queue()
        r = self.tool(d, "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, sendmail_bp(d.config["spool"], list(envs.values())))
        self.assertIn("(Deferred: 451 4.3.0 try again later)", r.stdout)
        self.assertIn("      8BITMIME   (Deferred:", r.stdout)
        self.assertIn("\t\tTotal requests: 3\n", r.stdout)
        self.assertEqual(r.stderr, "")

    def test_mailq_name(self):
        """ringmail-sendmail called mailq prints the same."""
        _, d, _ = self.deferred_queue()
        sendmail = ringmail_bin("ringmail-sendmail")
        if not sendmail.exists():
            self.skipTest("ringmail-sendmail is not built")
        link = self.tmp / "mailq"
        link.symlink_to(sendmail)
        ref = self.tool(d, "list")
        r = subprocess.run([str(link), "-C", str(d.config_path)], capture_output=True,
                           text=True, env=dict(os.environ, TZ="UTC"), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, ref.stdout)
        r = subprocess.run([str(sendmail), "-bp", "-C", str(d.config_path)],
                           capture_output=True, text=True, env=dict(os.environ, TZ="UTC"),
                           timeout=60)
        self.assertEqual(r.stdout, ref.stdout)
        # -qR/-qS/-qI restrict the listing, as with sendmail -bp -qR...
        r = subprocess.run([str(link), "-qRcarol", "-C", str(d.config_path)],
                           capture_output=True, text=True, env=dict(os.environ, TZ="UTC"),
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<carol@remote.test>", r.stdout)
        self.assertNotIn("erin", r.stdout)
        self.assertIn("\t\tTotal requests: 1\n", r.stdout)
        r = subprocess.run([str(link), "-q!Salice", "--json", "-C", str(d.config_path)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(m["sender"] for m in json.loads(r.stdout)),
                         ["", "a-rather-long-sender-address-for-the-column@client.test"])
        # mailq --json is ringmail-queue list --json
        ref = self.tool(d, "list", "--json")
        r = subprocess.run([str(link), "--json", "-C", str(d.config_path)], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), json.loads(ref.stdout))
        self.assertEqual(len(json.loads(r.stdout)), 3)

    def test_json(self):
        _, d, envs = self.deferred_queue()
        r = self.tool(d, "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(sorted(m["qid"] for m in doc), sorted(envs))
        for m in doc:
            e = envs[m["qid"]]
            self.assertEqual(m["size"], int(e["size"]))
            self.assertEqual(m["created_unix"], int(e["created"]))
            self.assertEqual(m["created"], time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                         time.gmtime(int(e["created"]))))
            self.assertEqual(m["sender"], e["sender"])
            self.assertFalse(m["held"])
            self.assertEqual(m["attempts"], int(e["attempts"]))
            self.assertEqual(m["next_attempt_unix"], e["next"])
            self.assertEqual(m["last_reason"], e["reason"])
            self.assertEqual([(x["address"], x["state"]) for x in m["recipients"]],
                             [(x["addr"], "pending") for x in e["rcpts"]])

    def test_empty_queue(self):
        d = self.daemon()
        r = self.tool(d, "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"{d.config['spool']} is empty\n\t\tTotal requests: 0\n")
        r = self.tool(d, "list", "--json")
        self.assertEqual(json.loads(r.stdout), [])

    def test_shape(self):
        _, d, envs = self.deferred_queue()
        r = self.tool(d, "shape")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["T", "5", "10", "20", "40", "80", "160", "320",
                                            "640", "1280", "1280+"])
        # four recipients, all younger than five minutes
        self.assertEqual(lines[1].split(), ["TOTAL", "4", "4"] + ["0"] * 9)
        self.assertEqual(lines[2].split(), ["remote.test", "4", "4"] + ["0"] * 9)
        r = self.tool(d, "shape", "-s")
        self.assertEqual([ln.split()[:2] for ln in r.stdout.splitlines()[1:]],
                         [["TOTAL", "3"], ["client.test", "2"], ["MAILER-DAEMON", "1"]])
        r = self.tool(d, "shape", "hold")
        self.assertEqual(r.stdout.splitlines()[1].split()[:2], ["TOTAL", "0"])

    def test_maildrop_listed(self):
        """A submission waiting in the maildrop (the daemon down) is listed after the spool,
        as sendmail lists a second queue directory: its own block, one total."""
        d = self.daemon()
        d.stop()  # the daemon made the maildrop; nothing picks files up now
        maildrop = Path(d.config.get("submission", {}).get(
            "maildrop", Path(d.config["spool"]).parent / "maildrop"))
        message = b"Subject: waiting\r\n\r\nhello\r\n"
        image = (b"RINGMAIL-MAILDROP 1\nS\nB8BITMIME\nRbob@remote.test\nRcarol\n\n" + message)
        r = subprocess.run([str(ringmail_bin("ringmail-postdrop")), "-C", str(d.config_path)],
                           input=image, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        (name,) = [n for n in os.listdir(maildrop) if not n.startswith(".")]
        st = os.stat(maildrop / name)
        owner = pwd.getpwuid(st.st_uid).pw_name
        sender = f"{owner}@{d.config['hostname']}"  # S empty: the owner's, as --pickup says
        when = time.strftime("%a %b %e %H:%M", time.gmtime(int(st.st_mtime)))
        want = (f"{d.config['spool']} is empty\n"
                f"\t\t{maildrop} (1 request)\n"
                "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
                f"{name[-16:]:>13} {len(message):8d} {when} " + prtstr(f"<{sender}>", 39) + "\n"
                "      8BITMIME\n"
                "\t\t\t\t\t <bob@remote.test>\n"
                "\t\t\t\t\t <carol>\n"
                "\t\tTotal requests: 1\n")
        r = self.tool(d, "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, want)
        self.assertEqual(r.stderr, "")
        r = self.tool(d, "list", "--json")
        (m,) = json.loads(r.stdout)
        self.assertEqual((m["qid"], m["queue"], m["maildrop"], m["sender"], m["size"]),
                         (name[-16:], "maildrop", name, sender, len(message)))
        self.assertEqual(m["created_unix"], int(st.st_mtime))
        self.assertEqual([x["address"] for x in m["recipients"]], ["bob@remote.test", "carol"])
        # -qR selects in the maildrop too
        sendmail = ringmail_bin("ringmail-sendmail")
        if sendmail.exists():
            r = subprocess.run([str(sendmail), "-bp", "-qRnobody", "-C", str(d.config_path)],
                               capture_output=True, text=True, env=dict(os.environ, TZ="UTC"),
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, f"{d.config['spool']} is empty\n{maildrop} is empty\n"
                             "\t\tTotal requests: 0\n")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run the tool as another user")
    def test_others_are_refused(self):
        """The spool is 0700: only root and the run-as user may list it."""
        d = self.daemon()
        shared = Path(tempfile.mkdtemp(prefix="ringmail-mailq-"))
        self.addCleanup(shutil.rmtree, shared, ignore_errors=True)
        os.chmod(shared, 0o755)
        cfg = shared / "ringmail.yaml"
        shutil.copy(d.config_path, cfg)
        os.chmod(cfg, 0o644)
        r = self.tool(d, "list", user="nobody", config=cfg)
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertEqual(r.stderr, "You are not permitted to see the queue\n")
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
