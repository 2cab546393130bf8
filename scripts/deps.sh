#!/usr/bin/env bash
# Installs what Passthru's demo and tests need when it is missing (Debian, as root):
# Samba AD DC and LDAP tools for the throwaway forests, MSAL for Python for the client test.
# Safe to run again: it only installs what is absent.
set -euo pipefail

need_apt=()
command -v samba >/dev/null 2>&1 || need_apt+=(samba)
command -v samba-tool >/dev/null 2>&1 || need_apt+=(samba-common-bin)
dpkg -s samba-ad-dc >/dev/null 2>&1 || need_apt+=(samba-ad-dc)
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need_apt[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "deps: installing ${need_apt[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq samba samba-ad-dc samba-common-bin ldap-utils iproute2 >/dev/null
  for p in "${need_apt[@]}"; do
    case "$p" in python3*) apt-get install -y -qq python3 python3-pip >/dev/null ;; esac
  done
fi

# Samba's packaged services would hold the AD ports and /run/samba: the test bed runs its own.
for svc in samba-ad-dc smbd nmbd winbind; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done

if [ "${PASSTHRU_NEED_MSAL:-0}" = 1 ] && ! python3 -c 'import msal' >/dev/null 2>&1; then
  echo "deps: installing msal (pip)" >&2
  python3 -m pip install -q msal 2>/dev/null || python3 -m pip install -q --break-system-packages msal
fi
