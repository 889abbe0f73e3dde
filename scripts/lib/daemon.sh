# Process helpers shared by scripts/*-for-tests.sh (sourced; the caller
# defines say and die). Only ever used on pids the caller checked are its
# own (its `ours`): a pidfile can outlive its process.

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
