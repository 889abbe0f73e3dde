#!/bin/sh
# Runs test suites as an unprivileged user, so the LocalEngine is tested
# rootless as well as as root (user namespaces mapped to the caller's own
# id, no nobody mapping, no open_tree).
#   usage: scripts/rootless-tests.sh BUILD_DIR SUITE...
# The user (default sprtest, override with SPR_TEST_USER) is created if
# missing. A checkout may sit in a directory that user cannot enter, so the
# binaries and tests are staged in a fresh world-readable directory first.
#
# Several invocations may run at once (two clones' `make check` side by
# side): the user is shared by all of them, created once under a lock and
# never deleted; everything else is this invocation's own (a mktemp staging
# directory, delegated cgroups named after this script's pid) and is the
# only thing its clean-up removes.
set -eu
build=$(cd "$1" && pwd); shift
user=${SPR_TEST_USER:-sprtest}
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "rootless-tests: already unprivileged; run the suites directly" >&2
  exit 0
fi
# useradd refuses to run while another holds /etc/passwd's lock, and two
# invocations could both find the user missing: create it under our lock.
if ! id "$user" >/dev/null 2>&1; then
  mkdir -p /run/lock
  (
    flock -w 120 8 || { echo "rootless-tests: /run/lock/spr-test-user.lock held for 2 minutes" >&2; exit 1; }
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin "$user"
  ) 8>/run/lock/spr-test-user.lock
fi

# cgroups: an unprivileged user may not create cgroups unless a subtree is
# delegated to it, as an admin (or systemd's Delegate=yes) would do. On v1
# that is a child cgroup per controller owned by the user, under our own
# cgroup, passed as the cgroup parent. On v2 the user's processes must live
# inside the delegated subtree (a delegatee may only move processes within
# it), as in a Delegate=yes unit: the suites run in <deleg>/spr-caller, the
# leaf spr itself would move a lone caller into, so every spr-run they
# start puts its runs in <deleg>/spr. The delegation is this invocation's
# own (its pid in the name): a concurrent one (another clone) never sees,
# counts or removes our run cgroups, nor we theirs.
deleg="spr-deleg-$user-$$"
uid=$(id -u "$user"); gid=$(id -g "$user")
delegated=""
cg_parent="$deleg"
enter=""
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
  d=/sys/fs/cgroup${own%/}/$deleg
  # The delegated child only gets the controllers our own cgroup enables
  # (possible when it is the root, e.g. in the test VM).
  echo "+memory +pids +cpu" > "/sys/fs/cgroup${own%/}/cgroup.subtree_control" 2>/dev/null || true
  mkdir -p "$d/spr-caller" && echo "+memory +pids +cpu" > "$d/cgroup.subtree_control" &&
    chown -R "$uid:$gid" "$d" && delegated="$d/spr-caller $d"
  cg_parent=""
  enter="$d/spr-caller/cgroup.procs"
else
  for ctl in memory pids cpu cpuacct; do
    own=$(awk -F: -v c="$ctl" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}' /proc/self/cgroup | head -n1)
    [ -n "$own" ] && [ -d "/sys/fs/cgroup/$ctl" ] || continue
    d=/sys/fs/cgroup/$ctl${own%/}/$deleg
    mkdir -p "$d" && chown "$uid:$gid" "$d" "$d/cgroup.procs" "$d/tasks" && delegated="$delegated $d"
  done
fi

stage=$(mktemp -d /tmp/spr-rootless-XXXXXX)
cleanup() {
  rm -rf "$stage"
  # Runs remove their own cgroups; only our (now empty) delegations remain.
  for d in $delegated; do
    for r in "$d"/spr/run-*; do [ -d "$r" ] && rmdir "$r" 2>/dev/null; done
    rmdir "$d/spr" "$d" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM
mkdir -p "$stage/build"
cp -a "$build/spr-run" "$build/spr" "$build/libspr.so" "$build/libexec" "$stage/build/"
[ -d "$build/tests/tools" ] && mkdir -p "$stage/build/tests" && cp -a "$build/tests/tools" "$stage/build/tests/"
cp -a "$src/tests" "$src/scripts" "$stage/"
# SPR_TEST_PODMAN_SHIM=1: a `docker` that runs podman, first on PATH (the
# docker suite through rootless podman, as a host whose docker is podman).
path=/usr/bin:/bin
if [ "${SPR_TEST_PODMAN_SHIM:-}" = 1 ]; then
  mkdir -p "$stage/shim"
  printf '#!/bin/sh\nexec podman "$@"\n' >"$stage/shim/docker"
  chmod 755 "$stage/shim/docker"
  path=$stage/shim:$path
fi
chmod -R a+rX "$stage"

# v2: the command starts inside the delegated subtree.
in_delegation() {
  if [ -n "$enter" ]; then
    sh -c 'echo $$ > "$0" && exec "$@"' "$enter" "$@"
  else
    "$@"
  fi
}

# SPR_TEST_RUN_ARGS: more arguments for tests/run.py (words without
# spaces, e.g. "-k test_docker"). SPR_TEST_PASS_ENV: names of more variables the suites get (e.g. the
# engine and the rootless podman knobs of make podman), values without spaces.
pass_env=""
for name in ${SPR_TEST_PASS_ENV:-}; do
  case $name in *[!A-Za-z0-9_]*) echo "rootless-tests: bad name in SPR_TEST_PASS_ENV: '$name'" >&2; exit 2 ;; esac
  eval "v=\${$name-}"
  case $v in *[[:space:]]*) echo "rootless-tests: $name has a space in its value" >&2; exit 2 ;; esac
  pass_env="$pass_env $name=$v"
done

python=$(command -v /usr/bin/python3 || command -v python3)
rc=0
for suite in "$@"; do
  echo "== $suite as $user (uid $(id -u "$user"))"
  (cd /tmp && in_delegation runuser -u "$user" -- env -i PATH="$path" LANG=C.UTF-8 \
      HOME="$(getent passwd "$user" | cut -d: -f6)" SPR_BUILD="$stage/build" \
      ${cg_parent:+SPR_CGROUP_PARENT="$cg_parent"} ${delegated:+SPR_TEST_CGROUP_DELEGATED=1} \
      ${SPR_SOAK_RUNS:+SPR_SOAK_RUNS="$SPR_SOAK_RUNS"} $pass_env \
      "$python" "$stage/tests/run.py" "$suite" ${SPR_TEST_RUN_ARGS:-}) || rc=1
done
exit $rc
