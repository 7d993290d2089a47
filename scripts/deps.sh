#!/bin/sh
# Installs the Debian packages ringmail needs to build, run and test, when missing, and
# creates the `ringmail` system user that the daemon runs as when started by root.
# Usage: scripts/deps.sh [build|test]
set -eu
want="cmake gcc make pkg-config libssl-dev liburing-dev libcyaml-dev libc-ares-dev libsasl2-dev"
# sd_notify(3): READY/RELOADING/STOPPING/STATUS to systemd (the unit is Type=notify)
want="$want libsystemd-dev"
case "${1:-build}" in
test)
    # python3-aiosmtpd, dnsmasq-base, postfix (smtp-sink, smtp-source): the delivery tests'
    # next hops and DNS, and the relay benchmark's load generator and sink
    want="$want libcmocka-dev python3 swaks libnet-ssleay-perl clang libclang-rt-14-dev sendmail-cf m4 openssl fail2ban"
    want="$want python3-aiosmtpd dnsmasq-base postfix"
    # the programs that run `sendmail` in the command-line tests (mail -s, git send-email,
    # mutt, PHP's mail()); git send-email needs Mail::Address, which git-email does not pull in
    want="$want bsd-mailx git git-email libmailtools-perl mutt php-cli"
    # local delivery's real counterparts: procmail as the local mailer, Dovecot's LMTP
    want="$want procmail dovecot-core dovecot-lmtpd"
    # AUTH and the policy layer's counterparts: saslauthd and saslpasswd2 (sasldb), the
    # SASL mechanisms' plug-ins, HAProxy in front with the PROXY protocol
    want="$want sasl2-bin libsasl2-modules haproxy"
    # mail filters: a libmilter filter written in Python, opendkim signing (opendkim-genkey
    # makes the test's key) and Python's dkim to verify what it signed
    want="$want python3-milter opendkim opendkim-tools python3-dkim"
    # operations: the unit checked with systemd-analyze, the man pages with mandoc -T lint,
    # logwatch's sendmail service reading ringmail's log, the metrics parsed by Prometheus's
    # own Python client
    want="$want systemd mandoc groff-base logwatch python3-prometheus-client"
    ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    case " $missing " in
    *" postfix "*)
        # "No configuration": no /etc/postfix/main.cf, no system instance to start (the
        # tests and bench/postfix.sh run their own, private ones)
        echo "postfix postfix/main_mailer_type select No configuration" |
            $sudo debconf-set-selections
        ;;
    esac
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
    case " $missing " in
    *" postfix "*)
        # a system instance started anyway (a main.cf left by an earlier install) would hold
        # port 25 and compete for the CPU
        if [ -f /etc/postfix/main.cf ] && $sudo postfix status >/dev/null 2>&1; then
            $sudo postfix stop
        fi
        ;;
    esac
fi

if [ "$(id -u)" -eq 0 ] && ! getent passwd ringmail >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ringmail
    echo "created system user ringmail"
fi
