#!/bin/sh
# Installs the Debian packages ringmail needs to build, run and test, when missing, and
# creates the `ringmail` system user that the daemon runs as when started by root.
# Usage: scripts/deps.sh [build|test]
set -eu
want="cmake gcc make pkg-config libssl-dev liburing-dev libcyaml-dev libc-ares-dev"
case "${1:-build}" in
test) want="$want libcmocka-dev python3 swaks libnet-ssleay-perl clang libclang-rt-14-dev sendmail-cf m4 openssl fail2ban" ;;
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
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

if [ "$(id -u)" -eq 0 ] && ! getent passwd ringmail >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ringmail
    echo "created system user ringmail"
fi
