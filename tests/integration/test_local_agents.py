"""The parent's local delivery agents (docs/local-delivery.md, "Agents"), end to end with the
daemon as root and users made for the test: an agent that has become a user serves that
user's next deliveries too; deliveries past mailers.max_agents wait for an agent instead of
being deferred, in the parent or, past what its socket holds, in the engine; an agent killed
in the middle of a delivery leaves the recipient deferred (4.3.0), and the retry delivers
it."""

import os
import re
import signal
import threading
import time

from delivery_support import FAST_QUEUE
from local_support import LocalCase, unique_users, write_script
from ringmail_harness import HOSTNAME

SENDER = "someone@remote.test"
ALICE, BOB, CAROL = unique_users("rma")

# Appends the pid of the agent that runs it (its nearest ringmaild ancestor) to $1.
AGENT_PID = ('p=$PPID\n'
             'while [ "$(cat /proc/$p/comm)" != ringmaild ]; do\n'
             '    p=$(sed "s/.*) //" /proc/$p/stat | cut -d" " -f2)\n'
             'done\n'
             'echo $p >> "$1"\n')


class LocalAgents(LocalCase):
    USERS = (ALICE, BOB, CAROL)

    def send_at_once(self, d, rcpts, n):
        """`n` messages to `rcpts`, each over a session of its own, all at the same time."""
        threads = [threading.Thread(target=self.send, args=(d, SENDER, rcpts),
                                    kwargs={"subject": f"m{i}"}) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def test_agent_reused_for_its_user(self):
        """Two deliveries to one alias program, one after the other: both run by the same
        agent process (it stays for its user's next request)."""
        script = write_script(self.files / "who.sh", AGENT_PID + "cat > /dev/null\n")
        pids = self.files / "who.pids"
        d = self.local_daemon(aliases=f'who: "|{script} {pids}"\n')
        for n in (1, 2):
            self.send(d, SENDER, [f"who@{HOSTNAME}"], subject=f"who {n}")
            self.wait_file(pids, lambda data, n=n: len(data.split()) == n, d=d)
        first, second = pids.read_text().split()
        self.assertEqual(first, second, "a new agent for the second delivery")
        self.assertNotEqual(int(first), self.engine_pid(d))

    def test_past_max_agents_waits(self):
        """mailers.max_agents 2 and 20 messages to three users at once: every message
        lands promptly, nothing is deferred (the parent holds the rest back)."""
        d = self.local_daemon(mailers={"max_agents": 2})
        self.send_at_once(d, [f"{u}@{HOSTNAME}" for u in self.USERS], 20)
        for u in self.USERS:
            self.assertEqual(len(self.wait_mbox(d, u, n=20, timeout=30)), 20, u)
        log = d.log(since_start=True)
        self.assertNotRegex(log, r"4\.3\.2|stat=Deferred|too many local deliveries")

    def test_burst_past_the_parents_socket(self):
        """Four messages of 99 local recipients each at once: more requests than the
        socket to the parent holds wait in the engine, none is deferred."""
        d = self.local_daemon(mailers={"max_agents": 2})
        self.send_at_once(d, [f"{u}+{i}@{HOSTNAME}" for u in self.USERS for i in range(33)], 4)
        for u in self.USERS:
            self.assertEqual(len(self.wait_mbox(d, u, n=4 * 33, timeout=60)), 4 * 33, u)
        self.assertNotRegex(d.log(since_start=True), r"4\.3\.2|stat=Deferred|busy")

    def test_agent_killed_mid_delivery(self):
        """kill -9 of the agent while its program runs: the recipient is deferred 4.3.0
        ("local delivery agent died"), the retry delivers it with a new agent."""
        script = write_script(self.files / "slow.sh",
                              AGENT_PID + f'if [ ! -e "{self.files}/slow.once" ]; then\n'
                              f'    : > "{self.files}/slow.once"; echo $$ > "{self.files}/slow.sh.pid"\n'
                              '    sleep 30\nfi\ncat > /dev/null\n')
        pids = self.files / "slow.pids"
        d = self.local_daemon(aliases=f'slow: "|{script} {pids}"\n', queue=FAST_QUEUE)
        qid = self.send(d, SENDER, [f"slow@{HOSTNAME}"], subject="slow")
        self.wait_file(self.files / "slow.sh.pid", d=d)
        agent = int(pids.read_text().split()[0])
        os.kill(agent, signal.SIGKILL)
        os.kill(int((self.files / "slow.sh.pid").read_text()), signal.SIGKILL)
        rcpt = rf'{qid}: to="\|{re.escape(str(script))} {re.escape(str(pids))}", '
        self.wait_log(d, rcpt + r".*dsn=4\.3\.0, stat=Deferred: local delivery agent died")
        self.wait_log(d, rcpt + r".*stat=Sent", timeout=30)
        second = pids.read_text().split()[1]
        self.assertNotEqual(int(second), agent)
        self.wait_spool_empty(d)
        time.sleep(0.2)  # the killed agent's line, logged by the parent when it reaps it
        self.assertRegex(d.log(since_start=True),
                         rf"local delivery agent {agent} killed by signal 9")
