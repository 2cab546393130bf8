#!/usr/bin/env bash
# Tests the Debian packages on this machine (as root): builds passthru-cloud and
# passthru-agent from the debug build (cargo-deb --no-build; scripts/package.sh makes the
# release ones), installs them with dpkg, checks what they created (users, directories and
# their modes, units, configuration), verifies the units offline (systemd-analyze verify
# and security; this machine has no systemd as PID 1), runs the binaries as the service
# users the way the units do (the units' start conditions, `passthru-cloud init`, `serve`
# on a high port with a curl to it and systemd's notifications, the agent registered with
# that cloud and running from its package paths, a second agent on the host refused),
# removes them (the data stays), purges them and checks that nothing of theirs is left.
# The machine is left as it was, also when a check fails (trap). Refuses to run where
# either package, its users or its directories already exist.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/passthru-target}"
bin="$CARGO_TARGET_DIR/debug"

say() { echo "test-packages: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  say "skipped: installing packages needs root"
  exit 0
fi
command -v cargo-deb >/dev/null 2>&1 || fail "cargo-deb is missing (bash scripts/deps.sh installs it)"
command -v systemd-analyze >/dev/null 2>&1 || fail "systemd-analyze is missing (bash scripts/deps.sh installs Debian's systemd package)"

packages=(passthru-cloud passthru-agent)
users=(passthru passthru-agent)
owned_dirs=(/etc/passthru /var/lib/passthru /etc/passthru-agent /var/lib/passthru-agent /run/passthru-agent)
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv '^unknown ok not-installed$'; then
    fail "the package $p is on this machine already: this test installs and purges it (dpkg --purge $p first, if it is a test leftover)"
  fi
done
for u in "${users[@]}"; do
  if getent passwd "$u" >/dev/null || getent group "$u" >/dev/null; then
    fail "the user or group $u exists already: this test creates and deletes it"
  fi
done
for d in "${owned_dirs[@]}"; do
  [ ! -e "$d" ] || fail "$d exists already: this test creates and deletes it"
done

work=$(mktemp -d /tmp/passthru-pkg-test.XXXXXX)
installed=0
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$installed" = 1 ]; then
    dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
    # Whatever a failed purge left (none of it existed before: checked above).
    rm -rf "${owned_dirs[@]}"
    for u in "${users[@]}"; do
      getent passwd "$u" >/dev/null && userdel "$u" 2>/dev/null || true
      getent group "$u" >/dev/null && groupdel "$u" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  if [ "$rc" -ne 0 ]; then say "failed (the machine is cleaned up)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# dpkg refuses at once when another dpkg or apt holds its lock: wait for it a while.
dpkg_run() {
  local log="$work/dpkg.log"
  for _ in $(seq 1 60); do
    if dpkg "$@" >"$log" 2>&1; then return 0; fi
    grep -q 'lock' "$log" || { cat "$log" >&2; return 1; }
    sleep 1
  done
  cat "$log" >&2
  return 1
}

# Asserts owner:group and mode (octal) of a path.
expect_stat() {
  local path=$1 want=$2
  local got
  got=$(stat -c '%U:%G %a' "$path" 2>/dev/null) || fail "$path is missing"
  [ "$got" = "$want" ] || fail "$path is $got, expected $want"
}

# --- Build the packages from the debug binaries (cargo-deb does not package the dev
# profile: it takes them from a release/ directory of a target dir of their own).
for b in passthru-cloud passthru-agent; do
  [ -x "$bin/$b" ] || cargo build --quiet -p "$b" --bins
done
mkdir -p "$work/target/release" "$work/debs"
cp "$bin/passthru-cloud" "$bin/passthru-agent" "$work/target/release/"
for p in "${packages[@]}"; do
  CARGO_TARGET_DIR="$work/target" cargo deb -p "$p" --no-build --fast --quiet \
    --output "$work/debs" >"$work/$p.built" || fail "cargo deb -p $p"
done
cloud_deb=$(tail -n 1 "$work/passthru-cloud.built")
agent_deb=$(tail -n 1 "$work/passthru-agent.built")
say "built $(basename "$cloud_deb") and $(basename "$agent_deb")"

# --- Install.
installed=1
dpkg_run -i "$cloud_deb" "$agent_deb" || fail "dpkg -i"
say "installed"

# Users: system accounts without a login shell, home the state dir, a group of their own.
for u in "${users[@]}"; do
  IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$u") || fail "no user $u"
  [ "$uid" -lt 1000 ] || fail "$u is not a system user (uid $uid)"
  [ "$(getent group "$gid" | cut -d: -f1)" = "$u" ] || fail "$u's group is not $u"
  [ "$home" = "/var/lib/$u" ] || fail "$u's home is $home"
  case "$shell" in */nologin|/bin/false) ;; *) fail "$u has the login shell $shell" ;; esac
done

# Directories and files, owners and modes.
expect_stat /var/lib/passthru "passthru:passthru 700"
expect_stat /etc/passthru "root:passthru 750"
expect_stat /etc/passthru/passthru-cloud.env "root:root 600"
expect_stat /var/lib/passthru-agent "passthru-agent:passthru-agent 700"
expect_stat /etc/passthru-agent "root:passthru-agent 750"
expect_stat /etc/passthru-agent/agent.toml "root:root 644"
expect_stat /run/passthru-agent "passthru-agent:passthru-agent 755"
expect_stat /usr/bin/passthru-cloud "root:root 755"
expect_stat /usr/bin/passthru-agent "root:root 755"
expect_stat /usr/lib/systemd/system/passthru-cloud.service "root:root 644"
expect_stat /usr/lib/systemd/system/passthru-agent.service "root:root 644"
expect_stat /usr/lib/tmpfiles.d/passthru-agent.conf "root:root 644"
dpkg-query -W -f='${Conffiles}\n' passthru-cloud | grep -q '/etc/passthru/passthru-cloud.env' \
  || fail "passthru-cloud.env is not a conffile"
dpkg-query -W -f='${Conffiles}\n' passthru-agent | grep -q '/etc/passthru-agent/agent.toml' \
  || fail "agent.toml is not a conffile"
# The sample configuration holds settings only as comments.
if grep -v '^[[:space:]]*\(#\|$\)' /etc/passthru-agent/agent.toml | grep -q .; then
  fail "agent.toml sets something: the sample must be comments only"
fi
if grep -v '^[[:space:]]*\(#\|$\)' /etc/passthru/passthru-cloud.env | grep -qv '^PASSTHRU_LISTEN=0.0.0.0:443$\|^PASSTHRU_SERVE_ARGS=$'; then
  fail "passthru-cloud.env sets more than the listen address"
fi
dpkg -L "${packages[@]}" >"$work/files"

# --- The units: what they must say, then systemd's own checks, offline.
unit_cloud=/usr/lib/systemd/system/passthru-cloud.service
unit_agent=/usr/lib/systemd/system/passthru-agent.service
for unit in "$unit_cloud" "$unit_agent"; do
  for line in Type=notify WatchdogSec=30s Restart=on-failure NoNewPrivileges=yes \
    ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' SystemCallFilter=@system-service \
    MemoryDenyWriteExecute=yes ExecCondition= 'ExecReload=/bin/kill -HUP $MAINPID'; do
    grep -q "^$line" "$unit" || fail "$unit lacks $line"
  done
  [ "$(grep -c '^ReadWritePaths=' "$unit")" = 1 ] || fail "$unit: one ReadWritePaths= line expected"
done
grep -qx 'ReadWritePaths=-/var/lib/passthru' "$unit_cloud" || fail "$unit_cloud writes elsewhere than its data dir"
grep -qx 'ReadWritePaths=-/var/lib/passthru-agent' "$unit_agent" || fail "$unit_agent writes elsewhere than its state dir"
grep -qx 'User=passthru' "$unit_cloud" && grep -qx 'User=passthru-agent' "$unit_agent" || fail "User="
grep -qx 'AmbientCapabilities=CAP_NET_BIND_SERVICE' "$unit_cloud" || fail "the cloud cannot bind 443"
grep -qx 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' "$unit_cloud" || fail "the cloud keeps capabilities"
grep -qx 'CapabilityBoundingSet=' "$unit_agent" || fail "the agent keeps capabilities"
grep -q '^ExecStart=/usr/bin/passthru-cloud serve --data-dir /var/lib/passthru --listen ${PASSTHRU_LISTEN} ' "$unit_cloud" \
  || fail "the cloud's ExecStart"
grep -qx 'Environment=PASSTHRU_LISTEN=0.0.0.0:443' "$unit_cloud" || fail "the cloud's default listen address"
if ! systemd-analyze verify "$unit_cloud" "$unit_agent" >"$work/verify" 2>&1; then
  cat "$work/verify" >&2; fail "systemd-analyze verify"
fi
if grep -q 'passthru' "$work/verify"; then cat "$work/verify" >&2; fail "systemd-analyze verify warns"; fi
for unit in "$unit_cloud" "$unit_agent"; do
  exposure=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$exposure" ] || fail "systemd-analyze security $unit gave no score"
  # systemd rates 0-2 "OK" (its scale: up to 10, "UNSAFE").
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "$unit: exposure $exposure (above 2.0)"
  say "$(basename "$unit"): verified; exposure $exposure"
done

# Runs a command as a service user the way its unit does: that user and group only, no new
# privileges, a clean environment (the units' capabilities are for port 443, not used here).
as_user() {
  local user=$1; shift
  setpriv --reuid="$user" --regid="$user" --clear-groups --no-new-privs --inh-caps=-all \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
# The unit's ExecCondition= command line (single-quoted shell, as systemd splits it).
exec_condition() {
  local unit=$1 user=$2 line
  line=$(sed -n 's/^ExecCondition=//p' "$unit")
  eval "as_user $user $line"
}

# A stand-in for systemd's notification socket, readable by the service users.
notify_dir="$work/notify"
mkdir -p "$notify_dir" && chmod 0711 "$work" && chmod 0777 "$notify_dir"
notify_listen() { # SOCKET LOG
  python3 - "$1" "$2" <<'PY' &
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "a", buffering=1) as out:
    while True:
        out.write(s.recv(4096).decode(errors="replace"))
PY
  pids+=($!)
  for _ in $(seq 1 50); do [ -S "$1" ] && return 0; sleep 0.1; done
  fail "the notification socket $1 did not appear"
}
wait_for_line() { # FILE LINE SECONDS
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -qx "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- The cloud, as user passthru.
# (Outputs go to files: `grep -q` would close a pipe before the program finished writing.)
as_user passthru passthru-cloud --version >"$work/out" || fail "passthru-cloud --version"
grep -q '^passthru-cloud ' "$work/out" || fail "passthru-cloud --version printed $(cat "$work/out")"
as_user passthru passthru-cloud --help >/dev/null || fail "passthru-cloud --help"
# Not initialised: the unit's condition skips it, saying what to do.
if exec_condition "$unit_cloud" passthru 2>"$work/cond"; then fail "the cloud's condition passed before init"; fi
grep -q 'not initialised yet: run sudo -u passthru passthru-cloud init' "$work/cond" || { cat "$work/cond" >&2; fail "the condition's message"; }
admin_password="Pkg-Test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
as_user passthru PASSTHRU_ADMIN_PASSWORD="$admin_password" passthru-cloud init --data-dir /var/lib/passthru \
  --tenant contoso --admin admin@contoso.example --hostname localhost >"$work/init.out" 2>&1 \
  || { cat "$work/init.out" >&2; fail "passthru-cloud init as passthru"; }
expect_stat /var/lib/passthru "passthru:passthru 700"
expect_stat /var/lib/passthru/passthru.db "passthru:passthru 600"
if find /var/lib/passthru ! -user passthru | grep -q .; then fail "files in /var/lib/passthru not owned by passthru"; fi
exec_condition "$unit_cloud" passthru 2>/dev/null || fail "the cloud's condition fails after init"

port=$(free_port)
notify_listen "$notify_dir/cloud.sock" "$work/cloud.notify"
# The unit's command line, with its environment file, on a high port.
(
  set -a
  # shellcheck disable=SC1091
  . /etc/passthru/passthru-cloud.env
  set +a
  exec setpriv --reuid=passthru --regid=passthru --clear-groups --no-new-privs --inh-caps=-all \
    env -i PATH=/usr/bin:/bin NOTIFY_SOCKET="$notify_dir/cloud.sock" WATCHDOG_USEC=2000000 \
    /usr/bin/passthru-cloud serve --data-dir /var/lib/passthru --listen "127.0.0.1:$port" $PASSTHRU_SERVE_ARGS
) >"$work/cloud.log" 2>&1 &
cloud_pid=$!
pids+=("$cloud_pid")
wait_for_line "$work/cloud.notify" READY=1 60 || { cat "$work/cloud.log" >&2; fail "the cloud did not notify READY=1"; }
curl -fsS --max-time 10 --cacert /var/lib/passthru/tls/ca.pem \
  "https://127.0.0.1:$port/contoso/v2.0/.well-known/openid-configuration" >"$work/discovery.json" \
  || { cat "$work/cloud.log" >&2; fail "curl to the packaged cloud"; }
grep -q '"issuer"' "$work/discovery.json" || fail "the discovery document"
wait_for_line "$work/cloud.notify" WATCHDOG=1 10 || fail "the cloud did not ping the watchdog"
say "the cloud runs as passthru: READY=1, WATCHDOG=1, discovery over HTTPS"

# --- The agent, as user passthru-agent.
as_user passthru-agent passthru-agent --version >"$work/out" || fail "passthru-agent --version"
grep -q '^passthru-agent ' "$work/out" || fail "passthru-agent --version printed $(cat "$work/out")"
as_user passthru-agent passthru-agent helpmsg 1909 >"$work/out" || fail "passthru-agent helpmsg"
grep -q 'locked out' "$work/out" || fail "passthru-agent helpmsg 1909 printed $(cat "$work/out")"
as_user passthru-agent passthru-agent --help >/dev/null || fail "passthru-agent --help"
if exec_condition "$unit_agent" passthru-agent 2>"$work/cond"; then fail "the agent's condition passed before register"; fi
grep -q 'holds no registration yet: run sudo -u passthru-agent passthru-agent register' "$work/cond" \
  || { cat "$work/cond" >&2; fail "the condition's message"; }
# The unit's command, before registration: refused, saying to register.
run_agent=(/usr/bin/passthru-agent run --state-dir /var/lib/passthru-agent --config /etc/passthru-agent/agent.toml)
if as_user passthru-agent "${run_agent[@]}" >"$work/agent.out" 2>&1; then fail "the agent ran without a registration"; fi
grep -q 'holds no agent registration: register the agent first' "$work/agent.out" || { cat "$work/agent.out" >&2; fail "the agent's message"; }
# The host lock is the service user's, in the package's directory.
expect_stat /run/passthru-agent/host.lock "passthru-agent:passthru-agent 600"

# Register with the packaged cloud, as the docs say (the cloud's CA copied to /etc/passthru-agent).
install -m 0644 /var/lib/passthru/tls/ca.pem /etc/passthru-agent/cloud-ca.pem
as_user passthru-agent PASSTHRU_ADMIN_UPN=admin@contoso.example PASSTHRU_ADMIN_PASSWORD="$admin_password" \
  passthru-agent register --cloud "https://127.0.0.1:$port" --tenant contoso \
  --ca-file /etc/passthru-agent/cloud-ca.pem --state-dir /var/lib/passthru-agent >"$work/register.out" 2>&1 \
  || { cat "$work/register.out" >&2; fail "passthru-agent register as passthru-agent"; }
expect_stat /var/lib/passthru-agent "passthru-agent:passthru-agent 700"
expect_stat /var/lib/passthru-agent/agent.json "passthru-agent:passthru-agent 600"
exec_condition "$unit_agent" passthru-agent 2>/dev/null || fail "the agent's condition fails after register"
# The sample configuration (comments only) is refused, naming the file.
if as_user passthru-agent "${run_agent[@]}" >"$work/agent.out" 2>&1; then fail "the agent ran on the sample configuration"; fi
grep -q '/etc/passthru-agent/agent.toml' "$work/agent.out" || { cat "$work/agent.out" >&2; fail "the agent's configuration message"; }
# A forest (its DC need not answer for the agent to start).
cp /etc/passthru-agent/agent.toml "$work/agent.toml.orig"
cat >>/etc/passthru-agent/agent.toml <<'TOML'

[[forest]]
name = "corp.contoso.example"
upn_suffixes = ["corp.contoso.example"]
domain_controllers = ["ldaps://127.0.0.1:1"]
ca_file = "/etc/passthru-agent/cloud-ca.pem"
TOML
notify_listen "$notify_dir/agent.sock" "$work/agent.notify"
setpriv --reuid=passthru-agent --regid=passthru-agent --clear-groups --no-new-privs --inh-caps=-all \
  env -i PATH=/usr/bin:/bin NOTIFY_SOCKET="$notify_dir/agent.sock" WATCHDOG_USEC=2000000 \
  "${run_agent[@]}" >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
wait_for_line "$work/agent.notify" READY=1 30 || { cat "$work/agent.log" >&2; fail "the agent did not notify READY=1"; }
wait_for_line "$work/agent.notify" WATCHDOG=1 10 || fail "the agent did not ping the watchdog"
for _ in $(seq 1 100); do
  PASSTHRU_ADMIN_UPN=admin@contoso.example PASSTHRU_ADMIN_PASSWORD="$admin_password" \
    passthru-cloud admin --url "https://127.0.0.1:$port" --tenant contoso --ca-file /etc/passthru-agent/cloud-ca.pem \
    agents list >"$work/agents" 2>&1 || true
  grep -qw 'Active' "$work/agents" && break
  sleep 0.2
done
grep -qw 'Active' "$work/agents" || { cat "$work/agents" "$work/agent.log" >&2; fail "the packaged agent did not connect to the packaged cloud"; }
say "the agent runs as passthru-agent: READY=1, WATCHDOG=1, connected to the cloud"

# One agent per host: a second one, root's, with a state dir of its own, is refused and told
# which agent runs.
mkdir -p "$work/second-state"
if passthru-agent run --state-dir "$work/second-state" --config /etc/passthru-agent/agent.toml \
  >"$work/second.out" 2>&1; then
  fail "a second agent ran on the host"
fi
grep -q "another passthru-agent (pid $agent_pid, state dir /var/lib/passthru-agent) is already running on this host" "$work/second.out" \
  || { cat "$work/second.out" >&2; fail "the second agent's message"; }
say "a second agent on the host is refused, naming the first"

# Both stop on SIGTERM with STOPPING=1, exit 0.
for pid in "$agent_pid" "$cloud_pid"; do
  kill -TERM "$pid"
  wait "$pid" || fail "a service exited with $? on SIGTERM"
done
wait_for_line "$work/agent.notify" STOPPING=1 5 || fail "the agent did not notify STOPPING=1"
wait_for_line "$work/cloud.notify" STOPPING=1 5 || fail "the cloud did not notify STOPPING=1"
cp "$work/agent.toml.orig" /etc/passthru-agent/agent.toml

# --- Remove: the programs go, the data, the settings and the users stay.
dpkg_run -r "${packages[@]}" || fail "dpkg -r"
[ ! -e /usr/bin/passthru-cloud ] && [ ! -e /usr/bin/passthru-agent ] || fail "the binaries stayed after remove"
[ -f /var/lib/passthru/passthru.db ] && [ -f /var/lib/passthru-agent/agent.json ] || fail "remove deleted the data"
[ -f /etc/passthru/passthru-cloud.env ] && [ -f /etc/passthru-agent/agent.toml ] || fail "remove deleted the settings"
getent passwd passthru >/dev/null && getent passwd passthru-agent >/dev/null || fail "remove deleted the users"
say "removed: data, settings and users kept"

# --- Purge: nothing of theirs is left.
dpkg_run --purge "${packages[@]}" || fail "dpkg --purge"
installed=0
for u in "${users[@]}"; do
  ! getent passwd "$u" >/dev/null || fail "the user $u is left after purge"
  ! getent group "$u" >/dev/null || fail "the group $u is left after purge"
done
for d in "${owned_dirs[@]}"; do
  [ ! -e "$d" ] || fail "$d is left after purge"
done
while read -r f; do
  case "$f" in
    /.|/etc|/usr|/usr/bin|/usr/lib|/usr/lib/systemd|/usr/lib/systemd/system|/usr/lib/tmpfiles.d|/usr/share|/usr/share/doc) continue ;;
  esac
  [ ! -e "$f" ] || fail "$f is left after purge"
done <"$work/files"
if find /etc/systemd /var/lib/systemd -name 'passthru*' 2>/dev/null | grep -q .; then
  find /etc/systemd /var/lib/systemd -name 'passthru*' >&2
  fail "systemd state is left after purge"
fi
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv '^unknown ok not-installed$'; then
    fail "dpkg still knows $p after purge"
  fi
done
say "purged: no user, directory, file or unit state left"
echo "Debian package tests passed"
