"""The manual pages in man/: mandoc finds nothing to warn about in any of them, each one
renders, every option a program prints in its usage is in its page, and every key of the
configuration (as ringmaild --check-config prints it, and as docs/config.md lists it) has
an entry in ringmail.yaml(5)."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from ringmail_harness import ringmaild_path

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"
EX_USAGE = 64

# The pages this branch writes; others (ringmail-stats.8, ...) are linted as they come.
PAGES = ["ringmaild.8", "ringmail.yaml.5", "ringmail-mc2yaml.8", "ringmail-sendmail.8",
         "ringmail-queue.8", "ringmail-makemap.8", "ringmail-postdrop.8"]


def pages() -> list[Path]:
    return sorted(p for p in MAN.iterdir() if re.fullmatch(r".+\.[1-8]", p.name))


def bindir() -> Path:
    return Path(os.environ.get("RINGMAIL_BIN") or Path(ringmaild_path()).parent)


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


def flags_in_page(source: str, entries_only: bool = False) -> set[str]:
    """Every flag the page marks up with Fl, as typed: "-c", "--config", "-qR"...; with
    entries_only, those that head an entry of a list (.It), as an option's own entry does."""
    found = set()
    for line in source.splitlines():
        if not line.startswith(".It " if entries_only else "."):
            continue
        for m in re.finditer(r"\bFl\s+(?:\\&)?(-?[A-Za-z0-9][A-Za-z0-9.!-]*)", line):
            found.add("-" + m.group(1))
    return found


def usage_options(text: str) -> set[str]:
    """The options a usage text names: "-c", "--config", "-t" from "[-t delimiter]"..."""
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][A-Za-z-]*)", text))


def config_keys(printed: str) -> set[str]:
    """The dotted paths of what --check-config prints: every scalar or list value, and every
    list of mappings (listen), named as ringmail.yaml(5) names them (listen.port)."""
    keys, stack = set(), []  # stack: (indent, name) of the mappings the line is in
    for line in printed.splitlines():
        m = re.match(r"^( *)(- )?([A-Za-z0-9_]+):(.*)$", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(m.group(1)) + (2 if m.group(2) else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if m.group(2) and stack:
            keys.add(".".join(n for _, n in stack))
        path = ".".join([n for _, n in stack] + [m.group(3)])
        if m.group(4).strip():
            keys.add(path)
        stack.append((indent, m.group(3)))
    return keys


class ManPages(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pages = pages()
        cls.source = {p.name: p.read_text() for p in cls.pages}

    def test_pages_present(self):
        for name in PAGES:
            self.assertIn(name, self.source, f"man/{name} is missing")

    def test_lint_clean(self):
        """mandoc -T lint at warning level: no message at all, for every page in man/."""
        for page in self.pages:
            with self.subTest(page=page.name):
                out = run(["mandoc", "-T", "lint", "-W", "warning", str(page)])
                self.assertEqual(out.stdout + out.stderr, "", f"mandoc -T lint {page.name}")
                self.assertEqual(out.returncode, 0)

    def test_renders(self):
        """mandoc renders each page, and so does groff, which man(1) runs on Debian, with
        man's warnings on (called directly: man -l takes several times as long)."""
        have_groff = shutil.which("groff") is not None
        for page in self.pages:
            with self.subTest(page=page.name):
                out = run(["mandoc", "-T", "utf8", str(page)])
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(out.stderr, "")
                text = re.sub(".\x08", "", out.stdout)  # the overstrike of bold and italics
                for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
                    self.assertIn(f"\n{section}\n", text, f"{page.name} renders no {section}")
                if have_groff:
                    out = run(["groff", "-mandoc", "-Tutf8", "-wmac", "-z", str(page)])
                    self.assertEqual(out.returncode, 0, out.stderr)
                    self.assertEqual(out.stderr, "", f"groff on {page.name}")

    def assert_documented(self, page: str, options: set[str], program: str):
        self.assertTrue(options, f"no option found for {program}")
        missing = sorted(options - flags_in_page(self.source[page], entries_only=True))
        self.assertFalse(missing, f"options of {program} not in man/{page}: {missing}")

    def test_ringmaild_options(self):
        out = run([str(bindir() / "ringmaild"), "--help"])
        self.assertEqual(out.returncode, 0, out.stderr)
        options = usage_options(out.stdout) | {"--help"}
        self.assertIn("--check-config", options)
        self.assert_documented("ringmaild.8", options, "ringmaild --help")

    def test_usage_options(self):
        """The programs without --help: the options their usage text names (ringmail-queue
        says it before reading any configuration when it is given no command)."""
        for prog, args, page in (("ringmail-mc2yaml", ["--help"], "ringmail-mc2yaml.8"),
                                 ("ringmail-queue", [], "ringmail-queue.8"),
                                 ("ringmail-makemap", ["--help"], "ringmail-makemap.8"),
                                 ("ringmail-postdrop", ["--help"], "ringmail-postdrop.8")):
            with self.subTest(program=prog):
                out = run([str(bindir() / prog)] + args, stdin=subprocess.DEVNULL)
                self.assertEqual(out.returncode, EX_USAGE, out.stderr)
                usage = out.stderr[out.stderr.index("usage:"):]
                self.assert_documented(page, usage_options(usage), f"{prog}'s usage")

    def test_queue_commands(self):
        out = run([str(bindir() / "ringmail-queue")])
        commands = set(re.findall(r"\b(hold|release|delete|requeue|flush|list|shape|hoststat|"
                                  r"purgestat)\b", out.stderr))
        self.assertEqual(len(commands), 9, out.stderr)
        page = self.source["ringmail-queue.8"]
        for c in commands:
            self.assertRegex(page, rf"(?m)^\.It Cm {c}\b", f"ringmail-queue {c}")

    def test_sendmail_flags(self):
        """ringmail-sendmail prints no usage (sendmail has none): its flag tables are the
        list, every letter of sendmail's getopt string, every -b mode and every long flag."""
        src = (ROOT / "cli" / "sendmail_args.c").read_text()
        letters = set(re.findall(r"^\s*\{'(\w)', VALUE_", src, re.M))
        modes = set(re.findall(r"^\s*\{'(\w)', SM_MODE_", src, re.M))
        longs = set(re.findall(r'strn?cmp\(arg, "(--[a-z]+)', src))
        self.assertGreater(len(letters), 25)
        self.assertGreater(len(modes), 8)
        self.assertEqual(longs, {"--version", "--pickup", "--json"})
        documented = flags_in_page(self.source["ringmail-sendmail.8"])
        # a flag documented only with its value attached (-qR, -Ac, -d0.1) counts
        missing = sorted(f"-{c}" for c in letters
                         if not any(d.startswith(f"-{c}") for d in documented))
        missing += sorted(f"-b{c}" for c in modes if f"-b{c}" not in documented)
        missing += sorted(longs - documented)
        self.assertFalse(missing, f"sendmail flags not in man/ringmail-sendmail.8: {missing}")
        for name in ("mailq", "newaliases", "hoststat", "purgestat"):
            self.assertRegex(self.source["ringmail-sendmail.8"], rf"(?m)^\.Nm {name}\b")

    def page_keys(self) -> set[str]:
        return set(re.findall(r"(?m)^\.It Cm (\S+)", self.source["ringmail.yaml.5"]))

    def test_check_config_keys(self):
        """Every key ringmaild prints with --check-config has its entry in ringmail.yaml(5)."""
        env = {k: v for k, v in os.environ.items() if k != "RINGMAIL_CONFIG"}
        with tempfile.TemporaryDirectory() as cwd:
            argv = [str(bindir() / "ringmaild"), "--builtin-config", "--check-config"]
            out = run(argv, env=env, cwd=cwd)
            if out.returncode == EX_USAGE:  # a daemon without --builtin-config
                out = run(argv[:1] + argv[2:], env=env, cwd=cwd)
        self.assertEqual(out.returncode, 0, out.stderr)
        keys = config_keys(out.stdout)
        for sure in ("limits.message_size", "tls.certificates", "listen", "listen.port",
                     "milter_macros.eom", "log.ident"):
            self.assertIn(sure, keys, "the --check-config output was not read right")
        missing = sorted(keys - self.page_keys())
        self.assertFalse(missing, f"keys without an entry in man/ringmail.yaml.5: {missing}")

    def test_config_md_keys(self):
        """Every key docs/config.md lists in its tables has its entry too."""
        md = (ROOT / "docs" / "config.md").read_text()
        keys = set(re.findall(r"(?m)^\| `([a-z_]+(?:\.[a-z_]+)*)` \|", md))
        self.assertGreater(len(keys), 150)
        missing = sorted(keys - self.page_keys())
        self.assertFalse(missing, f"docs/config.md keys not in man/ringmail.yaml.5: {missing}")


if __name__ == "__main__":
    unittest.main()
