#!/usr/bin/env bash
# Installs what Passthru's demo and tests need when it is missing (Debian, as root):
# Samba AD DC and LDAP tools for the throwaway forests, dnsmasq for the tests' DNS zone, iptables for the
# fault suite's network cut (crates/e2e/tests/faults.rs), MSAL for Python for the client test.
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
