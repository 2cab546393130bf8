#!/usr/bin/env bash
# Installs what Passthru's demo and tests need when it is missing (Debian, as root):
# Samba AD DC and LDAP tools for the throwaway forests, dnsmasq for the tests' DNS zone, iptables for the
# fault suite's network cut (crates/e2e/tests/faults.rs), MSAL for Python for the client test, and
# (PASSTHRU_NEED_NODE=1) the Node packages of the client-library tests.
# Safe to run again: it only installs what is absent.
set -euo pipefail

need_apt=()
command -v samba >/dev/null 2>&1 || need_apt+=(samba)
command -v samba-tool >/dev/null 2>&1 || need_apt+=(samba-common-bin)
dpkg -s samba-ad-dc >/dev/null 2>&1 || need_apt+=(samba-ad-dc)
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# The tests' DNS zone for domain verification (TXT records), started per test on loopback.
[ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
# The fault suite cuts an agent's connection with an owner-matching rule on loopback.
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need_apt[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps: installing ${need_apt[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq samba samba-ad-dc samba-common-bin ldap-utils iproute2 dnsmasq-base iptables >/dev/null
  for p in "${need_apt[@]}"; do
    case "$p" in python3*) apt-get install -y -qq python3 python3-pip >/dev/null ;; esac
  done
fi

# Samba's packaged services would hold the AD ports and /run/samba: the test bed runs its own.
for svc in samba-ad-dc smbd nmbd winbind; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done

# OpenLDAP's slapd, only for `passthru-bench signins --directory slapd` (a fast directory that
# shows the relay's own ceiling). The package's own service must not start: it would listen on
# every address's port 389 and 636, where the test forests' DCs bind.
if [ "${PASSTHRU_NEED_SLAPD:-0}" = 1 ] && [ ! -x /usr/sbin/slapd ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing slapd; run as root (or install it) first" >&2
    exit 1
  fi
  echo "deps: installing slapd (apt-get; its service is not started)" >&2
  export DEBIAN_FRONTEND=noninteractive
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  apt_log=$(mktemp)
  if ! { apt-get install -y -qq --no-install-recommends slapd ldap-utils \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slapd ldap-utils; }; } >"$apt_log" 2>&1; then
    [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
    cat "$apt_log" >&2; rm -f "$apt_log"; exit 1
  fi
  rm -f "$apt_log"
  [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now slapd >/dev/null 2>&1 || true; fi
fi

if [ "${PASSTHRU_NEED_MSAL:-0}" = 1 ] && ! python3 -c 'import msal' >/dev/null 2>&1; then
  echo "deps: installing msal (pip)" >&2
  python3 -m pip install -q msal 2>/dev/null || python3 -m pip install -q --break-system-packages msal
fi

# The browser test (crates/e2e/tests/browser.rs): headless Chromium and its driver, and, for
# the relying party, Selenium and Authlib (PKCE, the code exchange, ID-token checks against the JWKS).
if [ "${PASSTHRU_NEED_BROWSER:-0}" = 1 ]; then
  need_browser=()
  [ -x /usr/bin/chromium ] || need_browser+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_browser+=(chromium-driver)
  # The MFA test decodes the enrolment page's QR code from its screenshot.
  [ -x /usr/bin/zbarimg ] || need_browser+=(zbar-tools)
  if [ ${#need_browser[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "deps: missing ${need_browser[*]}; run as root (or install them) first" >&2
      exit 1
    fi
    echo "deps: installing ${need_browser[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      "${need_browser[@]}" fonts-dejavu-core; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2; rm -f "$apt_log"; exit 1
    fi
    rm -f "$apt_log"
  fi
  need_pip=()
  python3 -c 'import selenium' >/dev/null 2>&1 || need_pip+=(selenium)
  python3 -c 'import authlib' >/dev/null 2>&1 || need_pip+=(authlib)
  python3 -c 'import requests' >/dev/null 2>&1 || need_pip+=(requests)
  python3 -c 'import cryptography' >/dev/null 2>&1 || need_pip+=(cryptography)
  if [ ${#need_pip[@]} -gt 0 ]; then
    echo "deps: installing ${need_pip[*]} (pip)" >&2
    python3 -m pip install -q "${need_pip[@]}" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "${need_pip[@]}"
  fi
fi

# The client-library tests (crates/e2e/tests/app_developers.rs, PASSTHRU_NEED_NODE=1): Node.js
# (20 or later) and npm, and the packages of crates/e2e/js (MSAL Node, MSAL Browser,
# openid-client, jose) installed from the npm registry exactly as its package-lock.json pins
# them: `npm ci` when node_modules is missing or older than the lockfile.
if [ "${PASSTHRU_NEED_NODE:-0}" = 1 ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "deps: Node.js and npm are missing: install Node.js 20 or later (e.g. apt-get install nodejs npm, or from nodejs.org)" >&2
    exit 1
  fi
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$node_major" -lt 20 ]; then
    echo "deps: Node.js $(node --version) is too old: the client-library tests need 20 or later" >&2
    exit 1
  fi
  js_dir="$(cd "$(dirname "$0")/.." && pwd)/crates/e2e/js"
  if [ ! -d "$js_dir/node_modules" ] || [ "$js_dir/package-lock.json" -nt "$js_dir/node_modules" ]; then
    echo "deps: installing the Node packages of crates/e2e/js (npm ci)" >&2
    npm_log=$(mktemp)
    if ! (cd "$js_dir" && npm ci --no-audit --no-fund) >"$npm_log" 2>&1; then
      cat "$npm_log" >&2; rm -f "$npm_log"; exit 1
    fi
    rm -f "$npm_log"
    touch "$js_dir/node_modules"
  fi
fi

# Several cloud instances (PASSTHRU_NEED_CLUSTER=1): PostgreSQL on 127.0.0.1:5432 that the
# tests reach as postgres://postgres@127.0.0.1:5432/postgres (each test makes a database of
# its own), psql, and the nats-server binary (each test starts a nats-server of its own; one
# on 127.0.0.1:4222 is started too when none runs, for the benchmarks and the README's
# two-instance setup). On a fresh test machine this installs Debian's packages, starts the
# cluster and lets the postgres role in from 127.0.0.1 without a password (trust, loopback
# only): never run it on a server whose PostgreSQL holds anything else.
if [ "${PASSTHRU_NEED_CLUSTER:-0}" = 1 ]; then
  need_cluster=()
  command -v psql >/dev/null 2>&1 || need_cluster+=(postgresql-client)
  command -v pg_ctlcluster >/dev/null 2>&1 || need_cluster+=(postgresql)
  [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || need_cluster+=(nats-server)
  if [ ${#need_cluster[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "deps: missing ${need_cluster[*]}; run as root (or install them) first" >&2
      exit 1
    fi
    echo "deps: installing ${need_cluster[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    if ! { apt-get install -y -qq --no-install-recommends "${need_cluster[@]}" \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_cluster[@]}"; }; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2; rm -f "$apt_log"; exit 1
    fi
    rm -f "$apt_log"
  fi
  pg_url="${PASSTHRU_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
  if ! psql "$pg_url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "deps: PostgreSQL does not answer at $pg_url; start it (trust for 127.0.0.1) or set PASSTHRU_TEST_POSTGRES" >&2
      exit 1
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      echo "deps: starting PostgreSQL" >&2
      ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
      if ! pg_lsclusters -h 2>/dev/null | grep -q .; then pg_createcluster "$ver" main >/dev/null; fi
      cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
      # shellcheck disable=SC2086
      pg_ctlcluster $cluster start || { command -v service >/dev/null 2>&1 && service postgresql start; }
      for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
    fi
    if ! psql "$pg_url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
      hba=$(runuser -u postgres -- psql -Atqc 'SHOW hba_file' 2>/dev/null || true)
      if [ -n "$hba" ] && ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
        echo "deps: letting the postgres role in from 127.0.0.1 without a password ($hba)" >&2
        sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
        runuser -u postgres -- psql -Atqc 'SELECT pg_reload_conf()' >/dev/null
      fi
    fi
    psql "$pg_url" -Atqc 'SELECT 1' >/dev/null || { echo "deps: PostgreSQL still does not answer at $pg_url" >&2; exit 1; }
  fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    echo "deps: starting nats-server on 127.0.0.1:4222" >&2
    nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    nohup "$nats_bin" -a 127.0.0.1 -p 4222 >/tmp/passthru-nats.log 2>&1 &
    for _ in $(seq 1 40); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.25; done
  fi
fi

# The package tests (PASSTHRU_NEED_PACKAGING=1, scripts/test-packages.sh): cargo-deb builds
# the Debian packages; systemd-analyze (Debian's systemd package) verifies their units
# offline; adduser runs in their maintainer scripts; curl asks the packaged cloud.
if [ "${PASSTHRU_NEED_PACKAGING:-0}" = 1 ]; then
  need_pkg=()
  command -v systemd-analyze >/dev/null 2>&1 || need_pkg+=(systemd)
  [ -x /usr/sbin/adduser ] || need_pkg+=(adduser)
  command -v curl >/dev/null 2>&1 || need_pkg+=(curl)
  if [ ${#need_pkg[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "deps: missing ${need_pkg[*]}; run as root (or install them) first" >&2
      exit 1
    fi
    echo "deps: installing ${need_pkg[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt_log=$(mktemp)
    if ! { apt-get install -y -qq --no-install-recommends "${need_pkg[@]}" \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkg[@]}"; }; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2; rm -f "$apt_log"; exit 1
    fi
    rm -f "$apt_log"
  fi
  if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "deps: installing cargo-deb (cargo install --locked; a few minutes, once)" >&2
    # Its own build dir, not the workspace's.
    env -u CARGO_TARGET_DIR nice cargo install cargo-deb --locked --quiet
  fi
fi
