#!/usr/bin/env bash
# A private docker daemon and a base image for spr's integration tests.
# No registry is needed and host networking is never touched.
#
#   eval "$(scripts/dockerd-for-tests.sh start)"   # exports DOCKER_HOST
#   scripts/dockerd-for-tests.sh status
#   scripts/dockerd-for-tests.sh stop [PID]
#   scripts/dockerd-for-tests.sh base-image        # (re)import spr-base:bookworm only
#   scripts/dockerd-for-tests.sh dir               # prints the daemon directory
#   scripts/dockerd-for-tests.sh tarball           # prints the base rootfs tarball (made if missing)
#
# Each checkout has its own daemon: the directory defaults to
# /var/lib/spr-test-docker-<id>, <id> being 12 hex digits of the sha256 of
# the checkout's absolute top-level path (checkout_id in scripts/lib/
# daemon.sh). Two clones of the project can therefore run `make check` side
# by side: separate locks, sockets, pidfiles and data roots, and a stop in
# one clone never reaches the other's daemon.
#
# start   installs docker.io + debootstrap when missing (scripts/deps.sh
#         docker), starts dockerd unless this script's daemon already answers
#         (then reuses it), and imports the base image `spr-base:bookworm` if the
#         daemon lacks it: debootstrap --variant=minbase --include=python3,
#         python3-pip bookworm from the host's Debian mirror, piped through tar
#         into `docker import`. The rootfs tarball is cached (~1 min to make
#         once, shared by every checkout: made under a lock, renamed into
#         place whole). Only `export` lines go to stdout, DOCKER_HOST last:
#           export SPR_TEST_DOCKERD_STARTED=<pid>   (empty when it was reused)
#           export DOCKER_HOST=unix://$SPR_TEST_DOCKER_DIR/docker.sock
# stop    stops this directory's daemon (by its pidfile, checked against the
#         process's command line), waits for it and for the containerd it
#         manages to exit, removes the socket. `stop PID` stops it only if it
#         is that pid, i.e. the daemon a caller's own `start` printed as
#         SPR_TEST_DOCKERD_STARTED: a caller that reused a running daemon, or
#         finds it restarted by someone else meanwhile, leaves it alone.
#
# The daemon: dockerd --bridge=none --iptables=false --ip6tables=false (no
# docker0, no firewall rules: containers run with --network none), with its
# own data root, exec root, socket, pidfile, config file and log, all under
# $SPR_TEST_DOCKER_DIR. No --containerd: dockerd starts (and stops) its own
# containerd, whose state lives under the exec root as well.
#
# Environment:
#   SPR_TEST_DOCKER_DIR      daemon directory      (/var/lib/spr-test-docker-<checkout id>;
#                            at most 60 bytes: containerd's sockets live below it)
#   SPR_CACHE_DIR            rootfs tarball cache  (/var/cache/spr, shared)
#   SPR_DEBIAN_MIRROR        debootstrap mirror    (from /etc/apt/sources.list*)
#   SPR_TEST_DOCKER_STORAGE  storage driver        (dockerd's choice: overlay2 on ext4/xfs)
#   SPR_TEST_DOCKER_TIMEOUT  seconds to wait for the daemon to answer (60)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "dockerd-for-tests: $*" >&2; }
die() { say "error: $*"; exit 1; }
# shellcheck source=lib/daemon.sh
. "$HERE/lib/daemon.sh"

D=${SPR_TEST_DOCKER_DIR:-/var/lib/spr-test-docker-$(checkout_id)}
D=${D%/}
CACHE=${SPR_CACHE_DIR:-/var/cache/spr}
SOCK=$D/docker.sock
HOST=unix://$SOCK
PIDFILE=$D/dockerd.pid
LOG=$D/dockerd.log
EXEC=$D/exec
DATA=$D/data
# dockerd's managed containerd writes its pid here (moby libcontainerd/supervisor).
CTRD_PIDFILE=$EXEC/containerd/containerd.pid
BASE_IMAGE=spr-base:bookworm
SUITE=bookworm
TIMEOUT=${SPR_TEST_DOCKER_TIMEOUT:-60}
# The longest unix socket path below $D (108 bytes with the NUL at most):
# containerd's ttrpc socket, $EXEC/containerd/containerd.sock.ttrpc.
[[ $D == /* ]] || die "SPR_TEST_DOCKER_DIR must be an absolute path (got '$D')"
[ ${#D} -le 60 ] || die "SPR_TEST_DOCKER_DIR is ${#D} bytes long (at most 60: the unix socket paths below it are limited to 107); pick a shorter one"
STARTED=""  # the pid of the dockerd this invocation started, if it did
dk() { DOCKER_HOST=$HOST docker "$@"; }
answers() { dk info >/dev/null 2>&1; }

# True when $1 is a live process whose command line names our directory
# (a pidfile can outlive its process and the pid be reused by another one).
ours() {
  local pid=$1 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmd == *"$D/"* ]]
}

lock() {
  mkdir -p "$D"
  exec 9>"$D/lock"
  # Only this checkout's (or this SPR_TEST_DOCKER_DIR's) scripts take it.
  flock -w 600 9 || die "another dockerd-for-tests.sh has held $D/lock for 10 minutes" \
    "(a start or stop of this directory's daemon still running?); SPR_TEST_DOCKER_DIR=<dir> uses another daemon"
}

# Lazily unmounts every mount at or below directory $1, deepest first.
unmount_under() {
  local mnt
  for mnt in $(awk -v d="$1" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mnt" 2>/dev/null || say "warning: cannot unmount $mnt"
  done
}

# ---- daemon --------------------------------------------------------------

start_daemon() {
  local pid launched=0
  if answers; then
    say "reusing the running test daemon (pid $(pid_of "$PIDFILE"), $HOST)"
    return 0
  fi
  pid=$(pid_of "$PIDFILE")
  if ours "$pid"; then
    say "dockerd (pid $pid) is running but does not answer yet; waiting"
  else
    mkdir -p "$DATA" "$EXEC"
    # Our own (empty) config file: the host's /etc/docker/daemon.json, if
    # any, does not apply to the test daemon.
    [ -f "$D/daemon.json" ] || echo '{}' >"$D/daemon.json"
    local args=(--bridge=none --iptables=false --ip6tables=false
      --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE"
      --config-file "$D/daemon.json" -H "$HOST")
    [ -n "${SPR_TEST_DOCKER_STORAGE:-}" ] && args+=(--storage-driver "$SPR_TEST_DOCKER_STORAGE")
    echo "==== $(date -Is) dockerd ${args[*]}" >>"$LOG"
    # setsid: out of make's process group (a ^C there must not take the
    # daemon down half-way); 9>&-: the daemon must not inherit our lock.
    setsid dockerd "${args[@]}" </dev/null >>"$LOG" 2>&1 9>&- &
    pid=$!
    launched=1
    say "started dockerd (pid $pid), log $LOG"
  fi
  local n=$((TIMEOUT * 4)) t0=$SECONDS
  while ! answers; do
    # dockerd's own pidfile once written ($! is setsid's pid if it forked).
    ours "$(pid_of "$PIDFILE")" && pid=$(pid_of "$PIDFILE")
    if ! ours "$pid"; then
      start_failed "dockerd exited before answering on $HOST"
    fi
    n=$((n - 1))
    if [ "$n" -le 0 ]; then
      say "dockerd (pid $pid) did not answer on $HOST within ${TIMEOUT}s; stopping it"
      terminate "$pid" dockerd 30
      start_failed "dockerd did not answer on $HOST within ${TIMEOUT}s"
    fi
    sleep 0.25
  done
  # Ours to stop later: the pid dockerd wrote (the one `stop PID` compares).
  [ $launched = 0 ] || STARTED=$(pid_of "$PIDFILE")
  say "daemon ready after $((SECONDS - t0))s: $(dk info --format 'docker {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}' 2>/dev/null)"
}

# The daemon is gone without ever answering: say why, clean up, fail.
start_failed() {
  say "error: $1; errors in $LOG and its last lines:"
  grep -E 'level=(error|fatal)|^failed' "$LOG" | tail -n 5 >&2 || true
  echo "  ..." >&2
  tail -n 8 "$LOG" >&2
  reap_leftovers
  unmount_under "$D"
  rm -f "$SOCK" "$PIDFILE"
  exit 1
}

# Kills what a daemon that did not shut down cleanly (SIGKILL, crash) left
# behind: containers in our runc root, shims and containerd on our socket.
reap_leftovers() {
  local pid cmd root=$EXEC/runtime-runc/moby
  if [ -d "$root" ] && command -v runc >/dev/null; then
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      say "removing leftover container $id"
      runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
  for f in $(grep -lsF -- "$EXEC/" /proc/[0-9]*/cmdline); do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
    case $cmd in
    *containerd-shim*"$EXEC/"*) say "stopping leftover shim $pid"; terminate "$pid" containerd-shim 5 ;;
    esac
  done
  pid=$(pid_of "$CTRD_PIDFILE")
  if ours "$pid"; then
    say "stopping leftover containerd $pid"
    terminate "$pid" containerd 15
  fi
}

stop_daemon() {
  local pid wanted=${1:-}
  pid=$(pid_of "$PIDFILE")
  if ours "$pid" && not_the_callers "$pid" "$wanted"; then
    say "not stopping dockerd (pid $pid): it is not the daemon this caller started (pid $wanted)"
    return 0
  fi
  if ours "$pid"; then
    say "stopping dockerd (pid $pid)"
    # dockerd stops the running containers (up to its 15 s shutdown
    # timeout), then its containerd, then exits.
    local t0=$SECONDS
    terminate "$pid" dockerd 60
    say "dockerd exited after $((SECONDS - t0))s"
  else
    say "no test daemon running${pid:+ (stale pidfile, pid $pid)}"
  fi
  reap_leftovers
  rm -f "$SOCK" "$PIDFILE"
  # A clean shutdown unmounts everything; after a crash the data root's
  # self-bind, container rootfs overlays and netns files stay mounted.
  unmount_under "$D"
  if grep -q " $D/" /proc/mounts; then
    say "warning: mounts left under $D:"; grep " $D/" /proc/mounts >&2
  fi
}

# ---- base image ------------------------------------------------------------

# The Debian mirror this host's apt uses (deb822 .sources first, then
# one-line .list files); deb.debian.org when none names $SUITE.
debian_mirror() {
  if [ -n "${SPR_DEBIAN_MIRROR:-}" ]; then echo "$SPR_DEBIAN_MIRROR"; return; fi
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" '
      function flush() {
        if (uris != "" && types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " "))
          { split(uris, u, " "); print u[1]; found = 1; exit }
        uris = ""; types = ""; suites = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ +/, "")
        if (key == "uris") uris = $0; else if (key == "types") types = $0
        else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0) }
      END { if (!found) flush() }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" '$1 == "deb" {
        i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit } }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  echo http://deb.debian.org/debian
}

# Unmounts whatever debootstrap left mounted in $1 (proc, sys, a bind of the
# host's /dev), then removes it without ever crossing into a mount.
remove_rootfs() {
  [ -e "$1" ] || return 0
  unmount_under "$1"
  rm -rf --one-file-system "$1"
}

# Makes $CACHE/$1.tar from debootstrap --include=$2; returns debootstrap's status.
make_tarball() {
  local name=$1 include=$2 mirror rootfs=$D/rootfs.tmp t0=$SECONDS
  mirror=$(debian_mirror)
  say "debootstrap --variant=minbase --include=$include $SUITE from $mirror (about a minute; log $D/debootstrap.log)"
  remove_rootfs "$rootfs"
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$rootfs" "$mirror" \
      >"$D/debootstrap.log" 2>&1; then
    say "debootstrap --include=$include failed; last lines of $D/debootstrap.log:"
    tail -n 15 "$D/debootstrap.log" >&2
    remove_rootfs "$rootfs"
    return 1
  fi
  # Nothing the image needs: downloaded .debs, apt lists, the host's
  # resolv.conf/hostname (docker bind-mounts its own).
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  : >"$rootfs/etc/resolv.conf"; echo localhost >"$rootfs/etc/hostname"
  # A name of our own, renamed into place once whole: a reader never sees
  # half a tarball, and an interrupted write leaves only our temp file.
  local tmp=$CACHE/$name.tar.tmp.$$
  tar --numeric-owner --xattrs -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -cf "$tmp" . || { rm -f "$tmp"; remove_rootfs "$rootfs"; return 1; }
  mv "$tmp" "$CACHE/$name.tar"
  remove_rootfs "$rootfs"
  say "cached $CACHE/$name.tar ($(du -h "$CACHE/$name.tar" | cut -f1), $((SECONDS - t0))s)"
}

# Sets TARBALL to the cached rootfs tarball, making it first if needed.
base_tarball() {
  local with_pip=$SUITE-minbase-python3-pip plain=$SUITE-minbase-python3
  # The cache is shared by every checkout's daemon (each holds only its own
  # $D/lock): the first to need the tarball makes it, the others wait here
  # and then import it. Our own lock (fd 9) stays held meanwhile.
  mkdir -p "$CACHE"
  exec 7>"$CACHE/rootfs.lock"
  if ! flock -n 7; then
    say "another checkout's dockerd-for-tests.sh is making the base tarball; waiting for it"
    flock -w 900 7 || die "$CACHE/rootfs.lock still held after 15 minutes (a stuck debootstrap? see the other checkout's debootstrap.log)"
  fi
  if [ -f "$CACHE/$with_pip.tar" ]; then TARBALL=$CACHE/$with_pip.tar
  elif [ -f "$CACHE/$plain.tar" ]; then TARBALL=$CACHE/$plain.tar
  elif make_tarball "$with_pip" python3,python3-pip; then TARBALL=$CACHE/$with_pip.tar
  else
    # python3-pip is only needed to build package images from wheels.
    say "warning: falling back to python3 only (no pip in $BASE_IMAGE)"
    make_tarball "$plain" python3 || die "debootstrap failed; see $D/debootstrap.log"
    TARBALL=$CACHE/$plain.tar
  fi
  exec 7>&- # the tarball is complete and never rewritten: import it unlocked
}

ensure_base_image() {
  if dk image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return 0; fi
  base_tarball
  say "docker import $TARBALL $BASE_IMAGE"
  local t0=$SECONDS name
  name=$(basename "$TARBALL" .tar)
  dk import -m "debootstrap --variant=minbase $name" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c "LABEL io.spr.base=$name" -c 'CMD ["python3"]' \
    "$TARBALL" "$BASE_IMAGE" >/dev/null
  say "imported $BASE_IMAGE in $((SECONDS - t0))s"
}

# EXIT trap of a start that started the daemon: on failure, stop it again.
stop_if_failed() {
  local rc=$?
  [ $rc = 0 ] && return 0
  say "stopping the daemon this start started"
  stop_daemon "$STARTED"
  exit $rc
}

# ---- main ------------------------------------------------------------------

case "${1:-start}" in
start)
  [ "$(id -u)" -eq 0 ] || die "needs root (dockerd, debootstrap)"
  "$HERE/deps.sh" docker
  lock
  start_daemon
  # A start that fails after starting the daemon leaves nothing running.
  [ -z "$STARTED" ] || trap stop_if_failed EXIT
  ensure_base_image
  trap - EXIT
  echo "export SPR_TEST_DOCKERD_STARTED=$STARTED"
  echo "export DOCKER_HOST=$HOST"
  ;;
base-image)
  lock
  answers || die "the test daemon is not running (start it first)"
  dk image rm "$BASE_IMAGE" >/dev/null 2>&1 || true
  ensure_base_image
  ;;
stop)
  lock
  stop_daemon "${2:-}"
  ;;
dir)
  echo "$D"
  ;;
tarball)
  # The base image's rootfs tarball (made once, cached), for other engines'
  # test set-ups (scripts/podman-for-tests.sh).
  lock
  base_tarball
  echo "$TARBALL"
  ;;
status)
  pid=$(pid_of "$PIDFILE")
  if answers; then
    echo "running: pid ${pid:-?}, DOCKER_HOST=$HOST"
    dk info --format 'docker {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, {{.Containers}} containers ({{.ContainersRunning}} running), {{.Images}} images'
    dk image ls --format '  {{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -v '<none>' || true
    echo "disk: $(du -sh "$DATA" 2>/dev/null | cut -f1) in $DATA"
  elif ours "$pid"; then
    echo "starting or stuck: pid $pid does not answer on $HOST (log $LOG)"; exit 1
  else
    echo "not running"; exit 3
  fi
  ;;
*)
  echo "usage: $0 start|stop [PID]|status|base-image|dir|tarball" >&2; exit 2 ;;
esac
