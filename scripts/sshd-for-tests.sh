#!/usr/bin/env bash
# A private sshd on 127.0.0.1 for the DockerEngine's remote (ssh://) tests.
#
#   eval "$(scripts/sshd-for-tests.sh start)"   # exports SPR_TEST_SSH_*
#   scripts/sshd-for-tests.sh status
#   scripts/sshd-for-tests.sh stop [PID]
#   scripts/sshd-for-tests.sh dir               # prints the sshd's directory
#
# Each checkout has its own sshd: the directory defaults to
# /var/lib/spr-test-sshd-<id>, <id> being 12 hex digits of the sha256 of the
# checkout's absolute top-level path (checkout_id in scripts/lib/daemon.sh),
# with its own keys, port, pidfile and known_hosts line; two clones' tests
# never share, stop or reconfigure each other's sshd.
#
# start   installs openssh-server/openssh-client when missing (scripts/deps.sh
#         docker), generates into $SPR_TEST_SSHD_DIR a host key and a client
#         key pair (ed25519, kept across starts), writes a private sshd_config
#         and starts `/usr/sbin/sshd -D -f $D/sshd_config` on 127.0.0.1 (a free
#         port, or $SPR_TEST_SSHD_PORT), unless this script's sshd already runs
#         with the same settings (then it is reused; with other settings, e.g.
#         another DOCKER_HOST, start fails rather than pull it from under its
#         user). It waits until a login
#         with the client key works and, when DOCKER_HOST is set, until the
#         remote `docker` reaches that daemon. Only `export ...` lines go to
#         stdout:
#           SPR_TEST_SSH_HOST, SPR_TEST_SSH_PORT, SPR_TEST_SSH_USER,
#           SPR_TEST_SSH_KEY (the client's private key),
#           SPR_TEST_SSH_KNOWN_HOSTS (a known_hosts file with the host key),
#           SPR_TEST_SSHD_STARTED (the pid of the sshd this call started;
#           empty when it reused a running one).
# stop    stops this directory's sshd (its pidfile, checked against the
#         process's command line) and the sessions it still serves, removes
#         its known_hosts entry and the pidfile. Keys, config and log stay.
#         `stop PID` stops it only if it is that pid, i.e. the sshd a
#         caller's own `start` printed as SPR_TEST_SSHD_STARTED: a caller
#         that reused a running sshd leaves it to whoever started it.
#
# Who logs in: root (SPR_TEST_SSH_USER is always root), by key only. The
# daemon socket a test talks to is root's (dockerd-for-tests.sh: root:docker
# 0660 in a root-only directory), so a dedicated user would need the docker
# group and access to that directory, i.e. root's power anyway, plus a new
# account on the machine. sshd accepts nothing else: AllowUsers root,
# PermitRootLogin prohibit-password, no password or keyboard-interactive
# authentication, AuthorizedKeysFile = this directory's file (only the
# generated client key), no forwarding, listening on 127.0.0.1 only.
#
# The remote side's docker: sshd sets DOCKER_HOST for every session
# (`SetEnv DOCKER_HOST=<the caller's DOCKER_HOST>`), so `ssh ... docker system
# dial-stdio`, which the docker CLI runs for an ssh:// host, reaches the same
# test daemon, never the machine's default one. Without DOCKER_HOST the
# sessions get the remote docker's default.
#
# Host key checking: the docker CLI runs plain `ssh` (spr's key wrapper adds
# only -i KEY -o IdentitiesOnly=yes), and ssh takes its options from
# ~/.ssh/config of the passwd home (not $HOME) and /etc/ssh; nothing in the
# environment can point it at another known_hosts. So the host key goes into
# the system-wide /etc/ssh/ssh_known_hosts, which every user's ssh reads
# (the user's ~/.ssh is never touched): one line for exactly
# `[127.0.0.1]:PORT`, tagged `spr-test-sshd:$D` in its comment field, added
# at start and removed at stop (and replaced on the next start if a crash
# left it). ssh therefore neither prompts nor writes to ~/.ssh/known_hosts.
# Every checkout's sshd has its line there, and ssh reads the file unlocked
# at every connection: it is only ever replaced whole (written aside, then
# renamed over it) under a lock, so no reader sees it half-written and no
# writer drops another's line.
#
# Environment:
#   SPR_TEST_SSHD_DIR      keys, config, pidfile, log  (/var/lib/spr-test-sshd-<checkout id>)
#   SPR_TEST_SSHD_PORT     port on 127.0.0.1           (a free one, picked here)
#   SPR_TEST_SSHD_TIMEOUT  seconds to wait for sshd to answer (30)
#   DOCKER_HOST            what the remote sessions' docker talks to
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "sshd-for-tests: $*" >&2; }
die() { say "error: $*"; exit 1; }
# shellcheck source=lib/daemon.sh
. "$HERE/lib/daemon.sh"

D=${SPR_TEST_SSHD_DIR:-/var/lib/spr-test-sshd-$(checkout_id)}
D=${D%/}
[[ $D == /* ]] || die "SPR_TEST_SSHD_DIR must be an absolute path (got '$D')"
CONFIG=$D/sshd_config
PIDFILE=$D/sshd.pid
LOG=$D/sshd.log
HOST_KEY=$D/ssh_host_ed25519_key
CLIENT_KEY=$D/client_key
AUTH_KEYS=$D/authorized_keys
KNOWN=$D/known_hosts
GLOBAL_KNOWN=/etc/ssh/ssh_known_hosts
ADDR=127.0.0.1
USER_=root
TAG="spr-test-sshd:$D"
TIMEOUT=${SPR_TEST_SSHD_TIMEOUT:-30}
STARTED=""  # the pid of the sshd this invocation started, if it did

# True when $1 is a live process whose command line names our directory
# (a pidfile can outlive its process and the pid be reused by another one).
ours() {
  local pid=$1 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *sshd*"$D/"* ]]
}

# Pids below $1 (sshd's per-connection processes and what the sessions
# run), parents first.
descendants_of() {
  local f line fields pid
  local -A parent=()
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    # After "pid (comm) ": state, ppid, ... (comm may hold spaces and ')').
    read -ra fields <<<"${line##*) }"
    pid=${f#/proc/}; parent[${pid%/stat}]=${fields[1]:-}
  done
  local queue=("$1") p
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    for pid in "${!parent[@]}"; do
      if [ "${parent[$pid]}" = "$p" ]; then echo "$pid"; queue+=("$pid"); fi
    done
  done
}

lock() {
  mkdir -p "$D"
  chmod 700 "$D"
  exec 9>"$D/lock"
  # Only this checkout's (or this SPR_TEST_SSHD_DIR's) scripts take it.
  flock -w 120 9 || die "another sshd-for-tests.sh has held $D/lock for 2 minutes" \
    "(a start or stop of this directory's sshd still running?); SPR_TEST_SSHD_DIR=<dir> uses another sshd"
}

# ---- keys and config ---------------------------------------------------------

make_keys() {
  if [ ! -f "$HOST_KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "spr-test-sshd host key" -f "$HOST_KEY"
    say "generated host key $HOST_KEY"
  fi
  if [ ! -f "$CLIENT_KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "spr-test-sshd client key" -f "$CLIENT_KEY"
    say "generated client key $CLIENT_KEY"
  fi
  # No options (environment=, command=): the key logs in, nothing more.
  cp "$CLIENT_KEY.pub" "$AUTH_KEYS"
  chmod 600 "$AUTH_KEYS"
}

# Writes the sshd_config for port $1 to stdout.
config_for() {
  cat <<EOF
# Written by scripts/sshd-for-tests.sh; regenerated at every start.
ListenAddress $ADDR:$1
AddressFamily inet
HostKey $HOST_KEY
PidFile $PIDFILE
AuthorizedKeysFile $AUTH_KEYS
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
PermitEmptyPasswords no
PermitRootLogin prohibit-password
AllowUsers $USER_
UsePAM no
PermitUserEnvironment no
PermitTTY no
X11Forwarding no
AllowTcpForwarding no
AllowStreamLocalForwarding no
AllowAgentForwarding no
PermitTunnel no
GatewayPorts no
UseDNS no
PrintMotd no
PrintLastLog no
# A DockerEngine pool opens one connection per container and per CLI call,
# several at once: do not drop concurrent unauthenticated ones (10:30:100).
MaxStartups 100:30:200
LogLevel VERBOSE
EOF
  if [ -n "${DOCKER_HOST:-}" ]; then
    echo "SetEnv DOCKER_HOST=$DOCKER_HOST"
  fi
}

# A port nothing listens on (127.0.0.1, TCP), from the dynamic range.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

# The system-wide known_hosts: our line replaced by $1 (empty: removed).
# Other checkouts' sshds (other $SPR_TEST_SSHD_DIRs) have their lines there
# and their tests' ssh read it at any moment, unlocked. So writers take a
# lock on the file itself, and the file is never rewritten in place: the
# new contents are written aside and renamed over it (a reader sees the old
# file or the new one, whole). The rename (or removal) replaces the file a
# waiting writer has opened and locked; that writer then sees its lock is
# on a file no longer at $GLOBAL_KNOWN and locks the current one instead.
set_global_known() {
  local line=$1
  mkdir -p "$(dirname "$GLOBAL_KNOWN")"
  (
    locked=0
    for _ in $(seq 50); do
      exec 8>>"$GLOBAL_KNOWN"
      flock -w 30 8 || { say "warning: cannot lock $GLOBAL_KNOWN"; exit 1; }
      if [ "$(stat -Lc %d:%i /dev/fd/8)" = "$(stat -c %d:%i "$GLOBAL_KNOWN" 2>/dev/null)" ]; then
        locked=1; break
      fi
      exec 8>&-
    done
    [ $locked = 1 ] || { say "warning: $GLOBAL_KNOWN keeps being replaced; not updated"; exit 1; }
    tmp=$GLOBAL_KNOWN.spr-tmp.$$
    { awk -v tag="$TAG" '$NF != tag' "$GLOBAL_KNOWN"; [ -z "$line" ] || printf '%s\n' "$line"; } >"$tmp"
    if [ -s "$tmp" ]; then
      chmod 644 "$tmp"
      mv -f "$tmp" "$GLOBAL_KNOWN"
    else
      # A file this script created and emptied again goes away.
      rm -f "$tmp" "$GLOBAL_KNOWN"
    fi
  )
}

known_line() {
  local port=$1 type key
  read -r type key _ <"$HOST_KEY.pub"
  echo "[$ADDR]:$port $type $key $TAG"
}

ssh_test() {
  local port=$1; shift
  ssh -n -T -i "$CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$KNOWN" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o ConnectTimeout=5 -p "$port" "$USER_@$ADDR" "$@"
}

# ---- daemon ----------------------------------------------------------------

current_port() { awk '$1 == "ListenAddress" { n = split($2, a, ":"); print a[n] }' "$CONFIG" 2>/dev/null; }

start_daemon() {
  local pid port
  pid=$(pid_of "$PIDFILE")
  if ours "$pid"; then
    port=$(current_port)
    if [ -n "${SPR_TEST_SSHD_PORT:-}" ] && [ "$SPR_TEST_SSHD_PORT" != "$port" ] ||
       ! cmp -s <(config_for "$port") "$CONFIG"; then
      # Someone may be using it: never pull it from under them.
      say "error: the test sshd (pid $pid, $ADDR:$port) runs with other settings:"
      diff <(config_for "$port") "$CONFIG" | grep '^[<>]' | sed 's/^</  wanted:/; s/^>/  running:/' >&2 || true
      say "stop it first ($0 stop) or use another SPR_TEST_SSHD_DIR"
      exit 1
    elif ssh_test "$port" true 2>/dev/null; then
      say "reusing the running test sshd (pid $pid, $ADDR:$port)"
      PORT=$port
      return 0
    else
      say "sshd (pid $pid) does not answer; restarting it"
      stop_daemon
    fi
  fi
  [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd missing (apt-get install openssh-server)"
  # sshd's privilege separation directory (normally made by its init script).
  mkdir -p /run/sshd && chmod 755 /run/sshd
  for _ in 1 2 3 4 5; do
    port=${SPR_TEST_SSHD_PORT:-$(free_port)}
    config_for "$port" >"$CONFIG"
    /usr/sbin/sshd -t -f "$CONFIG" || die "sshd rejects $CONFIG"
    rm -f "$PIDFILE"
    echo "==== $(date -Is) sshd -D -f $CONFIG ($ADDR:$port)" >>"$LOG"
    # -D: stays in the foreground, so $! is sshd itself; setsid: out of
    # make's process group; 9>&-: sshd must not inherit our lock.
    setsid /usr/sbin/sshd -D -f "$CONFIG" -E "$LOG" </dev/null >/dev/null 2>&1 9>&- &
    pid=$!
    # The pidfile is written once the listening socket is bound.
    local n=$((TIMEOUT * 10))
    while [ ! -s "$PIDFILE" ] && [ -e "/proc/$pid" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    if [ -s "$PIDFILE" ] && ours "$(pid_of "$PIDFILE")"; then
      say "started sshd (pid $pid) on $ADDR:$port, log $LOG"
      PORT=$port
      STARTED=$(pid_of "$PIDFILE")
      return 0
    fi
    if ours "$pid"; then terminate "$pid" sshd 5; fi
    if [ -z "${SPR_TEST_SSHD_PORT:-}" ] && tail -n 5 "$LOG" | grep -q 'Address already in use'; then
      say "port $port was taken meanwhile; trying another"
      continue
    fi
    say "error: sshd did not start; last lines of $LOG:"
    tail -n 8 "$LOG" >&2
    exit 1
  done
  die "sshd could not bind a port after 5 attempts"
}

# Waits until a login with the client key works and the remote docker
# reaches $DOCKER_HOST.
wait_ready() {
  local port=$1 n=$((TIMEOUT * 4)) t0=$SECONDS out
  until out=$(ssh_test "$port" true 2>&1); do
    n=$((n - 1))
    if [ "$n" -le 0 ]; then
      say "error: no login to $USER_@$ADDR:$port with $CLIENT_KEY within ${TIMEOUT}s: $out"
      say "last lines of $LOG:"; tail -n 8 "$LOG" >&2
      [ -z "$STARTED" ] || stop_daemon
      exit 1
    fi
    sleep 0.25
  done
  if [ -n "${DOCKER_HOST:-}" ]; then
    if ! out=$(ssh_test "$port" 'docker version --format "{{.Server.Version}}"' 2>&1); then
      say "error: the remote docker does not reach DOCKER_HOST=$DOCKER_HOST: $out"
      [ -z "$STARTED" ] || stop_daemon
      exit 1
    fi
    say "ready after $((SECONDS - t0))s; remote docker reaches $DOCKER_HOST (server $out)"
  else
    say "ready after $((SECONDS - t0))s (DOCKER_HOST unset: remote sessions use docker's default)"
  fi
}

stop_daemon() {
  local pid kids wanted=${1:-}
  pid=$(pid_of "$PIDFILE")
  if ours "$pid" && not_the_callers "$pid" "$wanted"; then
    say "not stopping sshd (pid $pid): it is not the sshd this caller started (pid $wanted)"
    return 0
  fi
  if ours "$pid"; then
    # Connections it still serves (and what their sessions run) are below
    # it; they outlive the listener otherwise.
    kids=$(descendants_of "$pid" | tr '\n' ' ')
    say "stopping sshd (pid $pid)${kids:+ and its sessions: $kids}"
    terminate "$pid" sshd 10
    for k in $kids; do terminate "$k" "sshd session process" 5; done
  else
    say "no test sshd running${pid:+ (stale pidfile, pid $pid)}"
  fi
  rm -f "$PIDFILE"
  set_global_known ""
}

# ---- main ------------------------------------------------------------------

case "${1:-start}" in
start)
  [ "$(id -u)" -eq 0 ] || die "needs root (sshd, root login for the root-owned daemon socket)"
  "$HERE/deps.sh" docker
  lock
  make_keys
  start_daemon
  line=$(known_line "$PORT")
  echo "${line% *}" >"$KNOWN"
  set_global_known "$line"
  wait_ready "$PORT"
  echo "export SPR_TEST_SSH_HOST=$ADDR"
  echo "export SPR_TEST_SSH_PORT=$PORT"
  echo "export SPR_TEST_SSH_USER=$USER_"
  echo "export SPR_TEST_SSH_KEY=$CLIENT_KEY"
  echo "export SPR_TEST_SSH_KNOWN_HOSTS=$KNOWN"
  echo "export SPR_TEST_SSHD_STARTED=$STARTED"
  ;;
stop)
  lock
  stop_daemon "${2:-}"
  ;;
dir)
  echo "$D"
  ;;
status)
  pid=$(pid_of "$PIDFILE")
  if ours "$pid"; then
    port=$(current_port)
    if ssh_test "$port" true 2>/dev/null; then
      echo "running: pid $pid, $USER_@$ADDR:$port, key $CLIENT_KEY"
      grep '^SetEnv' "$CONFIG" || echo "(no DOCKER_HOST for sessions)"
    else
      echo "running but no login: pid $pid, $ADDR:$port (log $LOG)"; exit 1
    fi
  else
    echo "not running"; exit 3
  fi
  ;;
*)
  echo "usage: $0 start|stop [PID]|status|dir" >&2; exit 2 ;;
esac
