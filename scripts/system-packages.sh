#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Dovecot (a real IMAP server for the
# email poller's tests), Chromium (the inbox page's browser test, driven by Playwright),
# nginx (deploy/nginx.conf's sticky `/socket.io/` routing in front of two gateways, and
# `nginx -t` of it), Prometheus's promtool (`promtool check rules` and `test rules` of
# deploy/prometheus; Debian ships it in `prometheus`) and Node.js with npm. Idempotent:
# installs only what is missing. Needs root (CI is root); without root and with the
# package missing it says what to run and exits non-zero.
set -euo pipefail

installed() {
    if command -v dpkg-query >/dev/null 2>&1; then
        dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
    else
        command -v "$2" >/dev/null 2>&1
    fi
}

missing=()
installed dovecot-imapd dovecot || missing+=(dovecot-imapd)
installed chromium chromium || missing+=(chromium)
installed nginx-light nginx || installed nginx nginx || missing+=(nginx-light)
installed prometheus promtool || missing+=(prometheus)
# Node.js runs AsyncAPI's own parser and the real socket.io-client in the tests
# (scripts/node-packages.sh installs them).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: missing ${missing[*]}; install it (Debian: apt-get install -y ${missing[*]})" >&2
    exit 1
fi

# The tests start their own unprivileged Dovecot and nginx on free loopback ports (and use
# only prometheus's promtool); keep the packages' own system services from starting (policy-rc.d exit 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
fi
cleanup() { if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
