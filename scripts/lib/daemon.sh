# Process helpers shared by scripts/*-for-tests.sh (sourced; the caller
# defines say and die). Only ever used on pids the caller checked are its
# own (its `ours`): a pidfile can outlive its process.

# A short id of this checkout: the first 12 hex digits of the sha256 of the
# repository's absolute, symlink-free top-level directory. The test daemons'
# default directories end in it, so two clones (/work/a, /work/b) each get
# their own daemon, lock, socket and pidfile, and one clone's start or stop
# never touches the other's. (The same checkout always gets the same id:
# its daemon is found again by the next start, status or stop.)
checkout_id() {
  local top
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
  printf '%s' "$top" | sha256sum | cut -c1-12
}

pid_of() { cat "$1" 2>/dev/null || true; }

# Waits up to $2 seconds for pid $1 to exit (a zombie counts as gone: its
# parent reaps it).
wait_gone() {
  local pid=$1 n=$(($2 * 10))
  while [ "$n" -gt 0 ] && [ -e "/proc/$pid" ]; do
    [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" = Z ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  [ ! -e "/proc/$pid" ]
}

# TERM, up to $3 seconds, then KILL and up to 10 more seconds.
terminate() {
  local pid=$1 what=$2 grace=$3
  kill -TERM "$pid" 2>/dev/null || return 0
  wait_gone "$pid" "$grace" && return 0
  say "$what (pid $pid) still running after ${grace}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || die "$what (pid $pid) does not exit"
}

# `stop PID`: the caller asks to stop only the daemon it started itself
# (the pid its `start` printed). True when the running daemon ($1, from the
# pidfile) is not that one: then it is someone else's to stop, and the
# caller leaves it alone.
not_the_callers() {
  local running=$1 wanted=$2
  [ -n "$wanted" ] || return 1
  [[ $wanted =~ ^[0-9]+$ ]] || die "stop: PID must be a number (got '$wanted')"
  [ "$running" != "$wanted" ]
}
