"""A differential test of ringmail-mc2yaml against sendmail's own macros: every good .mc
in tests/compat and tests/compat/oracle, and etc/sendmail.mc, is also turned into sendmail.cf by Debian's
sendmail-cf (`m4 cf.m4 FILE.mc`), and every setting sendmail.cf ends up with — the `O`
options, the `D` macros (smart host, masquerade, hub, local relay, ...), the classes w, R,
M, E and TrustAuthMech (with the Fw/FR files they read), the K maps, the X milters and the
local mailer's program — is checked against the YAML the translator writes with
--future-keys. A submit.cf (FEATURE(msp)) listens nowhere and sends everything to
${MTAHost}. Settings the .mc leaves at sendmail's default are found by also building a
bare .mc, and must not show up in the YAML either. An option the .mc changes that this test does not know is a failure: a new
.mc that sets it needs a rule here (or in IGNORED, with the reason).

Absolute include paths and the Fw/FR files are read under tests/compat/root, as the
translator reads them with --root; sendmail-cf and m4 come from scripts/deps.sh test."""

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import unittest

from ringmail_harness import ringmaild_path

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "compat"
REPO = GOLDEN.parent.parent
CF_M4 = "/usr/share/sendmail/cf/m4/cf.m4"
BARE_MC = ("include(`/usr/share/sendmail/cf/m4/cf.m4')dnl\nOSTYPE(`bsd4.4')dnl\n"
           "MAILER(`local')dnl\nMAILER(`smtp')dnl\n")
# cf.m4's complaints about mistakes it builds anyway (the translator warns about them)
TOLERATED = ("No such file or directory", "No system type defined",
             "FEATURE() should be before MAILER()")

LOOPBACK = {"127.0.0.1", "ipv6:0:0:0:0:0:0:0:1", "ipv6:::1"}
DEFAULT_MSA = "Port=587, Name=MSA, M=E"
PORTS = {"smtp": 25, "submission": 587, "smtps": 465}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# Options the translator leaves out on purpose, with the reason (docs/migrating.md).
IGNORED = {
    "HelpFile": "ringmail answers HELP itself",
    "InputMailFilters": "checked with the X lines (maps_and_milters)",
    "DeadLetterDrop": "sendmail's dead.letter file",
    "DontBlameSendmail": "sendmail's file-permission checks (OSTYPE(debian))",
    "ControlSocketName": "sendmail's control socket",
    "Milter.macros.": "checked with the X lines (maps_and_milters)",
    "Milter.LogLevel": "how much sendmail logs about its filters (ignored by the translator)",
    "DontProbeInterfaces": "ringmail never probes interfaces",
    "FallbackSmartHost": "not set by these .mc files",
    "UnixFromLine": "the local mailer's business",
    "QueueSortOrder": "the order of a queue run: ringmail has no queue runs",
    "MaxQueueRunSize": "the size of a queue run: ringmail has no queue runs",
}
# What Debian's OSTYPE(debian) and DOMAIN(debian-mta) set beyond the settings the
# translator takes from them (docs/migrating.md): sendmail's own files, modes and
# process names, and behaviour ringmail has built in.
DISTRO_DEFAULTS = {
    "HostStatusDirectory": "sendmail's host status files",
    "PidFile": "ringmaild has its own pid handling",
    "ProcessTitlePrefix": "sendmail's process titles",
    "QueueFileMode": "ringmail's spool files are always private",
    "TempFileMode": "ringmail's spool files are always private",
    "SafeFileEnvironment": "sendmail's file delivery chroot: the delivery issue's",
    "TrustedUser": "sendmail's trusted user for its own files",
    "MaxRunnersPerQueue": "sendmail's queue runner processes",
    "MaxHopCount": "ringmail's own hop limit applies",
    "MeToo": "sendmail's default since 8.10, ringmail's behaviour",
    "RrtImpliesDsn": "ringmail never turns Return-Receipt-To into a DSN",
    "MustQuoteChars": "header address quoting: the delivery issue's",
    "RejectNUL": "not carried over: ringmail does not refuse NUL in messages (listed as not "
                 "supported in docs/migrating.md)",
}
# Options the translator reports as needing a person (not carried over).
PERSON = {"UserDatabaseSpec": "confUSERDB_SPEC", "ResolverOptions": "confBIND_OPTS"}
# What FEATURE(msp) sets for the submission program's own work; the translator reports a
# submit.mc as needing a person (ringmail has no separate submission program).
MSP_OPTIONS = {"UseMSP": "the submission program's mode", "DeliveryMode": "msp.m4's i"}
# sendmail's defaults that ringmail has as its own: the YAML need not repeat them.
SAME_DEFAULT = {"PrivacyOptions": "authwarnings"}


# --- a reader for the YAML the translator writes: block style, two-space indents,
# "- " list items, double-quoted scalars with \" \\ \xNN escapes, "  # " comments.
def _scalar(text):
    text = text.strip()
    if text.startswith('"'):
        out, i = [], 1
        while text[i] != '"':
            if text[i] == "\\":
                if text[i + 1] == "x":
                    out.append(chr(int(text[i + 2:i + 4], 16)))
                    i += 4
                    continue
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out)
    return re.sub(r"\s+#\s.*$", "", text)


def _block(lines, i, indent):
    """Reads the mapping or list whose items start at `indent`; returns (value, next i)."""
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            rest = lines[i][1][2:]
            if re.match(r"[A-Za-z_]+:", rest):  # a mapping as list item
                lines[i] = (indent + 2, rest)
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, _, rest = lines[i][1].partition(":")
        if rest.strip():
            mapping[key] = _scalar(rest)
            i += 1
        else:
            mapping[key], i = _block(lines, i + 1, lines[i + 1][0])
    return mapping, i


def read_yaml(text):
    lines = [(len(line) - len(line.lstrip(" ")), line.strip()) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    value, i = _block(lines, 0, 0) if lines else ({}, 0)
    assert i == len(lines), f"YAML line not read: {lines[i]}"
    return value


def get(tree, path):
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


# --- meanings
def seconds(text, unit):
    """sendmail's convtime: `unit` for a bare number; 1h30m adds up."""
    total = 0
    for number, u in re.findall(r"(\d+)([smhdw]?)", text):
        total += int(number) * UNITS[u or unit]
    return total


def ringmail_seconds(text):
    return 0 if text in ("0", None) else seconds(text, "s")


def ringmail_bytes(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)", text)
    return int(m.group(1)) * SIZES[m.group(2)]


def words(text):
    return [w for w in re.split(r"[\s,]+", text) if w]


# ringmaild's milter_macros defaults (core/config_keys.c): cfhead.m4's
MILTER_MACROS = {"connect": "j _ {daemon_name} {if_name} {if_addr}",
                 "helo": "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
                 "envfrom": "i {auth_type} {auth_authen} {auth_ssf} {auth_author} {mail_mailer} "
                            "{mail_host} {mail_addr}",
                 "envrcpt": "{rcpt_mailer} {rcpt_host} {rcpt_addr}", "data": "", "eoh": "",
                 "eom": "{msg_id}"}


def x_equates(equates):
    """milter_setup()'s reading of an X line's equates: {first letter: value}; None when a
    field has no '=' (sendmail then defines no filter)."""
    fields = {}
    for part in equates.split(","):
        name, eq, value = part.strip().partition("=")
        if not name:
            continue
        if not eq:
            return None
        fields[name[0]] = value.strip().strip('"')
    return fields


def milter_socket(text):
    """S= as ringmaild writes it (a bare path is sendmail's unix socket), None when the
    translator cannot carry it over (unknown scheme, relative path, service name)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        scheme, rest = "local", rest if colon else text
    scheme = scheme.lower()
    if scheme in ("unix", "local"):
        return f"{scheme}:{rest}" if rest.startswith("/") and len(rest) < 108 else None
    port, at, host = rest.partition("@")
    if scheme in ("inet", "inet6") and at and host and port.isdigit() and 0 < int(port) < 65536:
        return f"{scheme}:{rest}"
    return None


def milter_timeouts(spec):
    """T= as milter_parse_timeouts() scans it: {key: seconds}."""
    keys, out = {"C": "connect", "S": "send", "R": "read", "E": "eom"}, {}
    while spec := spec.lstrip("; \t"):
        field, colon = spec[0], spec.find(":")
        if colon < 0:
            break
        value, _, spec = spec[colon + 1:].strip(" \t").partition(";")
        if field in keys and re.fullmatch(r"(\d+[smhdw]?)+", value.strip()):
            out[keys[field]] = seconds(value.strip(), "s")
    return out


def milter_names(text, declared):
    """An InputMailFilters list as milter_config() and the translator read it: the names
    declared, once each, in order."""
    names = []
    for name in re.split(r"[\s,;]+", text or ""):
        if name in declared and name not in names:
            names.append(name)
    return names


def macro_ok(name):
    return (len(name) == 1 and name.isprintable() and not name.isspace() and name not in "{},"
            ) or bool(re.fullmatch(r"\{\w+\}", name))


def yaml_list(value):
    return [] if value == "[]" else value


def daemon_options(text, client=False):
    """One DaemonPortOptions (or ClientPortOptions) value as the listener it means."""
    fields = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        key = name[:1].upper()  # sendmail reads the first letter only
        if key == "M":  # each M= sets its letters' bits: they add up
            value = fields.get("M", "") + value.strip()
        fields[key] = value.strip()
    family = fields.get("F", "inet")
    entry = {"family": family,
             "address": fields.get("A", "::" if family == "inet6" else "0.0.0.0")}
    if not client:
        port = fields.get("P", "smtp")
        entry.update(name=fields.get("N", ""), port=PORTS.get(port) or int(port),
                     modifiers="".join(sorted(set(fields.get("M", "")))))
        if "I" in fields:  # InputMailFilters=, checked with the X lines
            entry["filters"] = fields["I"]
    elif "P" in fields:
        entry["port"] = int(fields["P"])
    return entry


class SendmailCf:
    """The settings of a sendmail.cf: options (a list of values each), macros, classes,
    class files, maps and milters."""

    def __init__(self, text):
        self.options, self.macros, self.classes, self.files = {}, {}, {}, {}
        # the mailer local names go to (confLOCAL_MAILER): local, or cyrusv2 say
        self.local_name = re.search(r"(?m)^R\$\+\t+\$#(\w+) \$: \$1\t+regular local names$",
                                    text).group(1)
        self.maps, self.milters = {}, []
        # FEATURE(preserve_luser_host): Localaddr keeps the recipient's host in {Host}
        self.preserve_luser_host = "$(macro {Host} $@ @$3 $)" in text
        # mailer definitions, continuation lines joined: {"local": {"P": ..., "A": ...}}
        self.mailers = {m.group(1): dict(re.findall(r"(?:^|,)\s*([A-Z])=(.*?)(?=,\s*[A-Z]=|$)",
                                                    re.sub(r"\n\s+", " ", m.group(2))))
                        for m in re.finditer(r"(?m)^M(\w+),\s*(.*(?:\n[ \t].*)*)", text)}
        for line in text.splitlines():
            if m := re.match(r"O (\S+?)=(.*)$", line):
                self.options.setdefault(m.group(1), []).append(m.group(2))
            elif m := re.match(r"D(\{\w+\}|\w)(.*)$", line):
                # the translator drops blanks after the macro name (LOCAL_CONFIG "Dj name")
                self.macros[m.group(1).strip("{}")] = m.group(2).strip()
            elif m := re.match(r"C(\{\w+\}|\w)(.*)$", line):
                self.classes.setdefault(m.group(1).strip("{}"), []).extend(m.group(2).split())
            elif m := re.match(r"F(\{\w+\}|\w)(.*)$", line):
                # "Fw-o /etc/mail/local-host-names %[^\#]": the file is the path
                self.files[m.group(1).strip("{}")] = re.search(r"/\S+", m.group(2)).group()
            elif m := re.match(r"K(\w+) (.*)$", line):
                self.maps[m.group(1)] = m.group(2).split()[-1]
            elif m := re.match(r"X(\w+), (.*)$", line):
                self.milters.append((m.group(1), m.group(2)))


def msp_host(cf):
    """Where a submit.cf (FEATURE(msp)) sends every message: ${MTAHost}, port 587 when
    its relay mailer says so; None for any other sendmail.cf."""
    host = cf.macros.get("MTAHost")
    if host and cf.mailers.get("relay", {}).get("A", "").endswith(" 587"):
        host += ":587"
    return host


def with_relay_port(cf, value):
    """A smart host or hub as ringmail writes it: the relay mailer's port (RELAY_MAILER_ARGS
    `TCP $h 587') after the host when it goes through that mailer and has no ':' after it."""
    port = re.fullmatch(r"TCP \$h (\d+)", cf.mailers.get("relay", {}).get("A", "").strip())
    mailer = re.match(r"([\w-]+):(?!\d+$)", value or "")
    if not value or not port or port.group(1) == "25" or (mailer and mailer.group(1) != "relay"):
        return value
    host = value[mailer.end():] if mailer else value
    after = host[host.find("]") + 1:] if host.startswith("[") else host
    return value if re.search(r"[:,]", after) else f"{value}:{port.group(1)}"


def mc_for_m4(mc: pathlib.Path, root: pathlib.Path) -> str:
    """The .mc with its absolute site includes read under the test root (like --root)."""
    return re.sub(r"(s?include\(`)(/(?!usr/share/sendmail/)[^']*)'",
                  lambda m: f"{m.group(1)}{root}{m.group(2)}'", mc.read_text())


def sendmail_cf(mc_text, tmp, name, include_dirs):
    source = pathlib.Path(tmp) / name
    source.write_text(mc_text)
    # as each platform builds it: Debian and Red Hat run `m4 sendmail.mc` (the .mc
    # includes cf.m4), BSD runs `m4 cf.m4 freebsd.mc`
    preload = [] if re.search(r"include\(`[^']*/cf\.m4'\)", mc_text) else [CF_M4]
    out = subprocess.run(["m4", *[f"-I{d}" for d in include_dirs], *preload, str(source)],
                         capture_output=True, text=True, timeout=60)
    errors = [e for e in out.stderr.splitlines() if not any(t in e for t in TOLERATED)]
    assert out.stdout and not errors, f"{name}: m4: {out.stderr}"
    return SendmailCf(out.stdout)


def read_names(path):
    """The names of a local-host-names/relay-domains file, as sendmail's F line reads it."""
    try:
        text = pathlib.Path(path).read_text()
    except FileNotFoundError:
        return []
    return [w.rstrip(".").lower() for line in text.splitlines()
            for w in line.split("#")[0].split()]


class Oracle(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc2yaml = os.path.join(os.path.dirname(ringmaild_path()), "ringmail-mc2yaml")
        if not os.access(cls.mc2yaml, os.X_OK):
            raise unittest.SkipTest(f"{cls.mc2yaml} not built")
        if not (shutil.which("m4") and os.path.exists(CF_M4)):
            raise unittest.SkipTest("m4 and sendmail-cf are not installed (scripts/deps.sh test)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.bare = sendmail_cf(BARE_MC, cls.tmp.name, "bare.mc", [])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def mcs(self):
        """(.mc, the directory the translator runs in, its --root there)."""
        good = [p for p in GOLDEN.glob("*.mc") if not p.name.startswith("bad_")]
        return ([(mc, GOLDEN, "root") for mc in sorted(good)]
                + [(mc, GOLDEN, "root") for mc in sorted((GOLDEN / "oracle").glob("*.mc"))]
                + [(REPO / "etc" / "sendmail.mc", REPO, ".")])  # its mail/ is /etc/mail

    def test_enough_files(self):
        self.assertGreaterEqual(len(list((GOLDEN / "oracle").glob("*.mc"))), 12)

    def test_same_meaning_as_sendmail_cf(self):
        for mc, cwd, root in self.mcs():
            with self.subTest(mc=mc.name):
                self.root = cwd / root
                cf = sendmail_cf(mc_for_m4(mc, self.root), self.tmp.name, mc.name,
                                 [mc.parent, GOLDEN / "inc"])
                out = subprocess.run([self.mc2yaml, str(mc.relative_to(cwd)), "--root", root,
                                      "-I", "inc", "--future-keys"], cwd=cwd,
                                     capture_output=True, text=True, timeout=60)
                self.assertIn(out.returncode, (0, 1), out.stderr)
                self.compare(cf, read_yaml(out.stdout), out.stderr, mc.name)

    def check(self, yaml, path, want, why):
        self.assertEqual(get(yaml, path), want, f"{path}: sendmail.cf has {why}")

    def compare(self, cf, yaml, report, name):
        # sendmail keeps the last setting of an option (DaemonPortOptions add up: below)
        last = {k: v[-1] for k, v in cf.options.items()}
        bare = {k: v[-1] for k, v in self.bare.options.items()}
        changed = {k: v for k, v in last.items() if bare.get(k) != v}
        for option in set(bare) - set(last):
            changed[option] = None  # undefined by the .mc (e.g. nullclient's AliasFile)
        for option, value in sorted(changed.items()):
            with self.subTest(option=option):
                self.option(yaml, report, name, option, value, last)
        self.listeners(cf, yaml)
        self.local_mailer(cf, yaml)
        self.macros(cf, yaml, report)
        self.classes(cf, yaml)
        self.maps_and_milters(cf, yaml)

    def option(self, yaml, report, name, option, value, options):
        """One O line that differs from sendmail's default, against its YAML key (options:
        all of sendmail.cf's, for the ones that depend on another)."""
        why = f"O {option}={value}"
        if option in DISTRO_DEFAULTS or SAME_DEFAULT.get(option) == value or any(
                option.startswith(i) for i in IGNORED):
            return
        if option == "DefaultUser" and value.split(":")[0] in ("root", "0"):
            self.assertRegex(report, r"(?m): needs a person: define\(confDEF_USER_ID\) = ", why)
            self.assertIsNone(get(yaml, "mailers.default_user"), why)
        elif option == "StatusFile":
            # the .mc's own STATUS_FILE is carried over; the one OSTYPE(debian) or
            # FEATURE(msp) sets is sendmail's own file (/var/lib/sendmail/sendmail.st)
            own = "define(STATUS_FILE)" in report
            self.assertEqual(get(yaml, "statistics_file"), value if own else None, why)
        elif option in PERSON:
            self.assertRegex(report, rf"(?m): needs a person: .*{PERSON[option]}", why)
        elif option.startswith("Timeout."):
            self.timeout(yaml, option[8:], value, options, why)
        elif option in TIMES:
            self.assertEqual(ringmail_seconds(get(yaml, TIMES[option])), seconds(value, "m"), why)
        elif option in NUMBERS:
            self.number(yaml, NUMBERS[option], value, why)
        elif option in PLAIN:
            self.check(yaml, PLAIN[option], value, why)
        elif option in LISTS:
            self.check(yaml, LISTS[option], words(value) if value else None, why)
        elif option in SIZES_OPT:
            want = int(value) if value and int(value) else None
            got = get(yaml, SIZES_OPT[option])
            self.assertEqual(got and ringmail_bytes(got), want, why)
        elif option in ("ServerCertFile", "ServerKeyFile"):
            first = (get(yaml, "tls.certificates") or [{}])[0]
            self.assertEqual(first.get("cert" if "Cert" in option else "key"), value, why)
        elif option == "ConnectionRateWindowSize":
            self.assertEqual(ringmail_seconds(get(yaml, "limits.connection_rate_window")),
                             seconds(value, "s"), why)
        elif option in FEATURE_OPTIONS:  # what the FEATURE sets, kept as the feature
            self.check(yaml, FEATURE_OPTIONS[option], "true" if value == "true" else None, why)
        elif option == "TLSSrvOptions":
            self.check(yaml, "tls.request_client_cert", "false" if "V" in value else None, why)
        elif option in MSP_OPTIONS and re.search(r"(?m): needs a person: FEATURE\(msp\)", report):
            return
        elif option == "ForwardPath":
            self.check(yaml, "mailers.forward_path", forward_path(value), why)
        elif option == "AliasFile":  # alias files only: NIS and the like need a person
            files = [re.sub(r"^(hash|btree|dbm|text):", "", w) for w in words(value or "")]
            self.check(yaml, "maps.aliases", [f for f in files if f.startswith("/")] or None, why)
        elif option == "TryNullMXList":
            self.check(yaml, "routing.try_null_mx_list", str(value[0] in "TtYy").lower(), why)
        elif option not in ("DaemonPortOptions", "ClientPortOptions"):  # see listeners()
            self.fail(f"{name}: {why}: no rule for this option in the oracle test")

    def number(self, yaml, path, value, why):
        # sendmail reads numbers with atoi ('50' in quotes is 0); 0 is "no limit" or
        # "off", and the translator writes it or leaves the key out
        number = str(int(re.match(r"\d*", value or "").group() or 0))
        got = get(yaml, path)
        self.assertIn(got, (number, None) if number == "0" else (number,), why)

    def timeout(self, yaml, name, value, options, why):
        key = TIMEOUT_KEYS.get(name, "timeouts." + name.replace("-", "").replace(".", "_"))
        got = get(yaml, key)
        if name.startswith("resolver.retry"):  # a number of tries, not a time
            self.assertEqual(got, value, why)
            return
        # the unit of a bare number (sendmail's settimeout)
        unit = next((u for prefix, u in TIMEOUT_UNITS if name.startswith(prefix)), "m")
        if name == "iconnect" and seconds(value, unit) == 0:
            # makeconnection: no first-attempt timeout means Timeout.connect's
            value, unit = options.get("Timeout.connect", "0"), "m"
        self.assertIsNotNone(got, why)
        self.assertEqual(ringmail_seconds(got), seconds(value, unit), why)

    def listeners(self, cf, yaml):
        want = []
        # a submit.cf (FEATURE(msp)) is never run as a daemon: sendmail refuses to
        for value in [] if msp_host(cf) else cf.options.get("DaemonPortOptions", []):
            entry = daemon_options(value)
            # sendmail's default MSA next to a listener already on 587 could not bind
            # (the translator leaves it out with a warning)
            if value == DEFAULT_MSA and any(w["port"] == 587 for w in want):
                continue
            want.append(entry)
        self.daemon_filters = [w.pop("filters", None) for w in want]
        got = [{"family": g.get("family", "inet"), "address": g["address"],
                "name": g.get("name", ""), "port": int(g["port"]),
                "modifiers": "".join(sorted(g.get("modifiers", "")))}
               for g in get(yaml, "listen") or []]
        self.assertEqual(got, want, "DaemonPortOptions")
        # M=S: no STARTTLS on that listener, which ringmail enforces
        self.assertEqual([g.get("starttls", "true") for g in get(yaml, "listen") or []],
                         ["false" if "S" in w["modifiers"] else "true" for w in want],
                         "DaemonPortOptions M=S")
        want = [daemon_options(v, client=True) for v in cf.options.get("ClientPortOptions", [])]
        got = [{k: (int(v) if k == "port" else v) for k, v in c.items()}
               for c in get(yaml, "client") or []]
        self.assertEqual(got, want, "ClientPortOptions")

    def local_mailer(self, cf, yaml):
        """The local mailer of the YAML, with the defaults ringmaild fills in (core/config.c),
        must be the program sendmail runs with the same arguments ($g, the sender as the
        mailer sees it, is written $f); Cyrus's LMTP socket when local names go to cyrusv2;
        the program mailer smrsh when FEATURE(smrsh) is on."""
        local = cf.mailers.get("local", {})
        path, args = local.get("P"), local.get("A", "").strip()
        if msp_host(cf):  # a submit.cf's local mailer is the MTA too (see macros())
            for key in ("local_path", "local_args", "local_procmail", "local_lmtp", "lmtp"):
                self.assertIsNone(get(yaml, f"mailers.{key}"), f"Mlocal P={path}")
            return
        lmtp = get(yaml, "mailers.lmtp")
        if cf.local_name == "cyrusv2":
            socket = cf.mailers["cyrusv2"]["A"].split()
            self.assertEqual(socket[0], "FILE", "Mcyrusv2 A=")
            self.assertEqual(lmtp, f"unix:{socket[1]}", f"Mcyrusv2 A={' '.join(socket)}")
        else:
            self.assertIsNone(lmtp, f"local names go to the {cf.local_name} mailer")
        smrsh = get(yaml, "mailers.smrsh")
        prog = cf.mailers.get("prog", {}).get("P")
        if smrsh in (None, "false"):
            self.assertNotEqual(os.path.basename(prog or ""), "smrsh", "Mprog P=")
        else:
            self.assertEqual(os.path.basename(prog) if smrsh == "true" else prog,
                             "smrsh" if smrsh == "true" else smrsh, f"Mprog P={prog}")
        lmtp_pipe = get(yaml, "mailers.local_lmtp")  # kept for later
        if lmtp_pipe:
            self.assertEqual(lmtp_pipe if lmtp_pipe != "true" else os.path.basename(path),
                             path if lmtp_pipe != "true" else "mail.local", f"Mlocal P={path}")
            self.assertIsNone(get(yaml, "mailers.local_path"))
            return
        procmail = get(yaml, "mailers.local_procmail")
        if procmail in ("true", "false"):
            procmail = "/usr/bin/procmail" if procmail == "true" else None
        program = get(yaml, "mailers.local_path") or procmail
        if not program:  # ringmail's own mailbox writer stands for the system's (OSTYPE's)
            self.assertIn(os.path.basename(path), ("mail.local", "mail"),
                          f"Mlocal P={path}: the .mc names a local mailer the YAML has not")
            return
        self.assertEqual(program, path, f"Mlocal P={path}")
        argv = get(yaml, "mailers.local_args") or (
            "procmail -Y -a $h -d $u" if procmail else f"{os.path.basename(program)} -d $u")
        # argv[0] is the program's name to itself: sendmail's default is "mail"
        self.assertEqual(argv.split()[1:], args.replace("$g", "$f").split()[1:],
                         f"Mlocal A={args}")

    def macros(self, cf, yaml, report):
        hub = msp_host(cf)
        if hub:  # the submission program sends everything, local or not, to ${MTAHost}
            self.check(yaml, "routing.smart_host", hub, f"D{{MTAHost}} {hub}")
            self.check(yaml, "routing.mail_hub", hub, f"D{{MTAHost}} {hub}")
        for macro, path, define in (("S", "routing.smart_host", "SMART_HOST"),
                                    ("M", "masquerade.as", None),
                                    ("H", "routing.mail_hub", "MAIL_HUB"),
                                    ("L", "routing.luser_relay", None),
                                    ("R", "routing.local_relay", None),
                                    ("j", "hostname", None)):
            if hub and macro in "SH":
                continue
            # a smart host or hub ringmail cannot take as written (a list of hosts, another
            # mailer than SMTP) is not carried over
            if define and re.search(rf"(?m): needs a person: define\({define}\) = ", report):
                self.assertIsNone(get(yaml, path), f"D{macro} needs a person")
                continue
            value = cf.macros.get(macro)
            if value == self.bare.macros.get(macro):
                self.assertIsNone(get(yaml, path), f"D{macro} is sendmail's default")
                continue
            want = with_relay_port(cf, value) if define else value
            if macro == "L":
                want = luser_relay(value)
            self.check(yaml, path, want, f"D{macro}{value}")
        self.assertEqual(get(yaml, "features.preserve_luser_host") == "true",
                         cf.preserve_luser_host, "Localaddr's {Host} rules")

    def classes(self, cf, yaml):
        hostname = get(yaml, "hostname")
        for cls, path, file_key in (("w", "local_domains", "maps.local_host_names"),
                                    ("R", "relay_domains", "maps.relay_domains_file")):
            names = {n.lower() for n in cf.classes.get(cls, [])}
            if cls in cf.files:
                self.assertEqual(get(yaml, file_key), cf.files[cls], f"F{cls}")
                names |= set(read_names(f"{self.root}{cf.files[cls]}"))
            # ringmail's domain type has no [address] literals (translator: warning);
            # Debian's loopback entries in class R are ringmail's default relay_from
            names = {n for n in names if not n.startswith("[") and n not in LOOPBACK}
            got = {n.lower() for n in get(yaml, path) or []}
            if cls == "w" and not got:
                got = {"localhost", hostname} if hostname else {"localhost"}  # the default
            self.assertEqual(got - {hostname}, names - {hostname}, f"class {cls}")
        for cls, path in (("M", "masquerade.domains"), ("E", "masquerade.exposed_users"),
                          ("N", "masquerade.exceptions"), ("G", "masquerade.generics_domains"),
                          ("TrustAuthMech", "auth.trust_mechanisms"),
                          ("L", "routing.local_users")):
            want = cf.classes.get(cls, [])
            extra = [n for n in want if n not in self.bare.classes.get(cls, [])]
            got = get(yaml, path) or []
            self.assertEqual(sorted(set(got) | set(self.bare.classes.get(cls, []))),
                             sorted(set(want)), f"class {cls}: {extra}")

    def maps_and_milters(self, cf, yaml):
        for k, path in (("access", "maps.access"), ("mailertable", "maps.mailertable"),
                        ("virtuser", "maps.virtusertable"), ("generics", "maps.genericstable"),
                        ("authinfo", "maps.authinfo"), ("domaintable", "maps.domaintable")):
            want = cf.maps.get(k)
            # sendmail opens NAME.db for hash maps; the text source is the same path
            self.check(yaml, path, want and re.sub(r"\.db$", "", want), f"K{k}")
        want, declared = [], set()
        for name, equates in cf.milters:
            fields = x_equates(equates)
            socket = fields and milter_socket(fields.get("S", ""))
            if not socket or name in declared:  # the translator: needs a person, or a warning
                continue
            declared.add(name)
            flags = fields.get("F", "")
            on_fail = ("tempfail" if "T" in flags or "4" in flags
                       else "reject" if "R" in flags else None)
            timeouts = milter_timeouts(fields.get("T", ""))
            want.append({"name": name, "socket": socket, **({"on_fail": on_fail} if on_fail else {}),
                         **({"timeouts": timeouts} if timeouts else {})})
        got = [{"name": m["name"], "socket": m["socket"],
                **({"on_fail": m["on_fail"]} if "on_fail" in m else {}),
                **({"timeouts": {k: ringmail_seconds(v) for k, v in m["timeouts"].items()}}
                   if "timeouts" in m else {})}
               for m in get(yaml, "milters") or []]
        self.assertEqual(got, want, "X milters")
        inputs = milter_names(cf.options.get("InputMailFilters", [""])[-1], declared)
        got = yaml_list(get(yaml, "input_mail_filters"))
        if got is None:  # ringmaild's default: the input: true filters, in order
            got = [m["name"] for m in get(yaml, "milters") or [] if m.get("input") != "false"]
        self.assertEqual(got, inputs, "InputMailFilters")
        for listener, filters in zip(get(yaml, "listen") or [], self.daemon_filters):
            self.assertEqual(yaml_list(listener.get("input_mail_filters")),
                             None if filters is None else milter_names(filters, declared),
                             f"DaemonPortOptions InputMailFilters= of {listener.get('name')}")
        if not cf.milters:  # proto.m4 writes the Milter options only for a .cf with filters
            return
        for step, default in MILTER_MACROS.items():
            value = cf.options.get(f"Milter.macros.{step}", [""])[-1]
            got = yaml_list(get(yaml, f"milter_macros.{step}"))
            self.assertEqual(words(default) if got is None else got,
                             [w for w in words(value) if macro_ok(w)], f"Milter.macros.{step}")


def luser_relay(value):
    """routing.luser_relay for sendmail's $L, as its MailerToTriple ruleset reads it: local:user
    (the host after it ignored), mailer:user@host (that address), mailer:host and host kept;
    none for error:, a mailer that is not SMTP, or local: with no user."""
    mailer, colon, rest = value.partition(":")
    if not colon or not re.fullmatch(r"[\w-]+", mailer):
        return value
    if mailer == "local":
        user = rest.split("@")[0]
        return f"local:{user}" if user else None
    if mailer not in ("smtp", "esmtp", "smtp8", "dsmtp", "relay"):
        return None
    return rest if "@" in rest else value


def forward_path(value):
    """mailers.forward_path for ForwardPath: the files whose macros ringmail expands."""
    files = [f for f in value.split(":") if f and not re.search(r"\$[^zu]", f)]
    return files or None


NUMBERS = {
    "ConnectionCacheSize": "delivery.connection_cache_size",
    "MaxDaemonChildren": "limits.connections",
    "MaxRecipientsPerMessage": "limits.recipients",
    "BadRcptThrottle": "limits.bad_rcpt_throttle",
    "ConnectionRateThrottle": "limits.connection_rate_throttle",
    "QueueLA": "limits.queue_load",
    "RefuseLA": "limits.refuse_load",
    "LogLevel": "log_level",
}
# Options that are times (bare numbers in minutes), by key.
TIMES = {"ConnectionCacheTimeout": "delivery.connection_cache_timeout",
         "MinQueueAge": "queue.min_queue_age"}
# Timeout.* options whose key is not timeouts.<name>.
TIMEOUT_KEYS = {"resolver.retrans": "dns.timeout", "resolver.retry": "dns.tries"}
# The unit sendmail's settimeout gives a bare number, by name prefix (else minutes).
TIMEOUT_UNITS = (("queuewarn", "h"), ("queuereturn", "d"), ("resolver.retrans", "s"))
SIZES_OPT = {"MaxMessageSize": "limits.message_size", "MaxHeadersLength": "limits.header_size"}
PLAIN = {
    "CACertFile": "tls.ca_file",
    "CACertPath": "tls.ca_path",
    "ClientCertFile": "tls.client_cert",
    "ClientKeyFile": "tls.client_key",
    "DHParameters": "tls.dh_params",
    "CipherList": "tls.cipher_list",
    "ServerSSLOptions": "tls.server_ssl_options",
    "ClientSSLOptions": "tls.client_ssl_options",
    "DefaultUser": "mailers.default_user",
    "RunAsUser": "run_as",
    "QueueDirectory": "spool",
    "SmtpGreetingMessage": "greeting",
    "FallbackMXhost": "routing.fallback_mx",
}
FEATURE_OPTIONS = {"SetCertAltnames": "features.check_cert_altnames",
                   "StrictTransportSecurity": "features.sts"}
LISTS = {
    "PrivacyOptions": "privacy",
    "AuthOptions": "auth.options",
    "AuthMechanisms": "auth.mechanisms",
}


if __name__ == "__main__":
    unittest.main()
