#!/usr/bin/env bash
# Podman for spr's container tests, rootful and rootless, without touching
# the host's own podman storage or users.
#
#   eval "$(scripts/podman-for-tests.sh start)"    # rootful: exports below
#   scripts/podman-for-tests.sh stop                # its containers removed
#   eval "$(scripts/podman-for-tests.sh rootless-start)"
#   scripts/podman-for-tests.sh rootless-stop       # the user and its ranges removed
#   scripts/podman-for-tests.sh dir
#
# start   installs podman (scripts/deps.sh podman; Debian's podman with runc:
#         crun 1.8 cannot set up containers on a hybrid cgroup host) and
#         gives this checkout its own storage and state under
#         /var/lib/spr-test-podman-<checkout id> (SPR_TEST_PODMAN_DIR):
#         storage.conf and containers.conf there, file locks (podman's shm
#         lock segment is host-wide: two checkouts' databases would hand out
#         the same locks), the base image spr-base:bookworm imported from the
#         rootfs tarball the docker set-up caches, and bin/docker, a shim
#         running podman, spr-runtime:test built from docker/runtime/Dockerfile
#         (as make docker-env-start does): the docker suites then drive podman through the
#         `docker` on PATH, as a host whose `docker` is podman would. Prints
#           export CONTAINERS_CONF=... CONTAINERS_STORAGE_CONF=...
#           export SPR_TEST_PODMAN_SHIM=<dir of the docker shim>
# stop    removes every container of this storage (spr's and the tests').
# rootless-start
#         creates the user spr-pm-<checkout id> (SPR_TEST_PODMAN_USER) with
#         a subordinate uid and gid range of 65536 in /etc/subuid and
#         /etc/subgid, its runtime directory, and the base image in its own
#         storage (podman's cgroupfs manager and file events: no systemd
#         user session; overlay storage, the kernel's or with
#         SPR_TEST_PODMAN_FUSE=1 through fuse-overlayfs).
#         Prints export SPR_TEST_PODMAN_USER=<name>.
# rootless-stop
#         removes that user's containers, storage and home, the user, and
#         its /etc/subuid and /etc/subgid lines.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "podman-for-tests: $*" >&2; }
die() { say "error: $*"; exit 1; }
# shellcheck source=lib/daemon.sh
. "$HERE/lib/daemon.sh"

ID=$(checkout_id)
D=${SPR_TEST_PODMAN_DIR:-/var/lib/spr-test-podman-$ID}
D=${D%/}
USER_NAME=${SPR_TEST_PODMAN_USER:-spr-pm-${ID:0:8}}
BASE_IMAGE=spr-base:bookworm
[[ $D == /* ]] || die "SPR_TEST_PODMAN_DIR must be an absolute path (got '$D')"

export CONTAINERS_CONF=$D/containers.conf CONTAINERS_STORAGE_CONF=$D/storage.conf

lock() {
  mkdir -p "$D"
  exec 9>"$D/lock"
  flock -w 600 9 || die "another podman-for-tests.sh has held $D/lock for 10 minutes"
}

# nofile/nproc for containers the tests start themselves: podman's defaults
# exceed a hard limit root cannot raise here (spr passes its own, SPEC §5).
write_conf() {
  mkdir -p "$D/graph" "$D/run" "$D/tmp" "$D/bin"
  cat >"$D/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$D/graph"
runroot = "$D/run"
EOF
  cat >"$D/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "$D/tmp"
static_dir = "$D/graph/libpod"
volume_path = "$D/graph/volumes"
EOF
  printf '#!/bin/sh\nexec podman "$@"\n' >"$D/bin/docker"
  chmod 755 "$D/bin/docker"
}

import_base() { # [runuser prefix...]
  if "$@" podman image exists "$BASE_IMAGE"; then return 0; fi
  local tarball t0=$SECONDS
  tarball=$("$HERE/dockerd-for-tests.sh" tarball)
  "$@" podman import -m "debootstrap --variant=minbase" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$BASE_IMAGE" <"$tarball" >/dev/null
  say "imported $BASE_IMAGE in $((SECONDS - t0))s"
}

# spr-runtime:test, as make docker-env-start builds it on the test dockerd.
build_runtime() {
  podman image exists spr-runtime:test && return 0
  local ctx out
  ctx=$(mktemp -d)
  cp "$HERE/../docker/runtime/Dockerfile" "$ctx/"
  out=$(podman build --network none --build-arg BASE_IMAGE=$BASE_IMAGE \
    --build-arg SPR_WORKER_VERSION=test -t spr-runtime:test "$ctx" 2>&1) ||
    { rm -rf "$ctx"; echo "$out" >&2; die "building spr-runtime:test failed"; }
  rm -rf "$ctx"
  say "built spr-runtime:test"
}

remove_containers() { # [runuser prefix...]
  local ids
  ids=$("$@" podman ps -aq 2>/dev/null || true)
  [ -z "$ids" ] || "$@" podman rm -f -t 0 $ids >/dev/null 2>&1 || true
}

# ---- rootless --------------------------------------------------------------

as_user() {
  local uid
  uid=$(id -u "$USER_NAME")
  runuser -u "$USER_NAME" -- env -i HOME="$(getent passwd "$USER_NAME" | cut -d: -f6)" \
    USER="$USER_NAME" PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$(id -u "$USER_NAME")" \
    "$@"
}

rootless_start() {
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --shell /usr/sbin/nologin "$USER_NAME"
    say "created the user $USER_NAME"
  fi
  # useradd allocates ranges where /etc/subuid exists; else add one past
  # every range in use.
  local f start
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    grep -q "^$USER_NAME:" "$f" && continue
    start=$(awk -F: 'BEGIN {m = 100000} {e = $2 + $3; if (e > m) m = e} END {print m}' "$f")
    if [ "$f" = /etc/subuid ]; then usermod --add-subuids "$start-$((start + 65535))" "$USER_NAME"
    else usermod --add-subgids "$start-$((start + 65535))" "$USER_NAME"; fi
  done
  # Where a login session (pam_systemd) puts it: podman's rootless network
  # namespace mounts it and finds nothing elsewhere.
  install -d -m 755 /run/user
  install -d -m 700 -o "$USER_NAME" -g "$(id -g "$USER_NAME")" "/run/user/$(id -u "$USER_NAME")"
  # No systemd user session here (nor in the test VM): podman's cgroupfs
  # manager, which on cgroup v2 puts containers under the caller's own
  # (delegated) cgroup, and events in a file instead of the journal.
  local home conf
  home=$(getent passwd "$USER_NAME" | cut -d: -f6)
  conf=$home/.config/containers
  install -d -m 755 -o "$USER_NAME" -g "$(id -g "$USER_NAME")" "$home/.config" "$conf"
  printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >"$conf/containers.conf"
  chown "$USER_NAME:" "$conf/containers.conf"
  # SPR_TEST_PODMAN_FUSE=1 (the test VM, whose root is an overlay: no native
  # overlay on top of it, and vfs copies the whole image per container):
  # overlay through fuse-overlayfs.
  # Otherwise the kernel's own overlay, which a user namespace may mount
  # since Linux 5.13 (podman 4.3 would pick vfs unasked: a copy of the
  # whole image per container, seconds per one-shot run).
  if [ "${SPR_TEST_PODMAN_FUSE:-}" = 1 ]; then
    [ -c /dev/fuse ] && command -v fuse-overlayfs >/dev/null ||
      die "SPR_TEST_PODMAN_FUSE=1 needs /dev/fuse and fuse-overlayfs"
    printf '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = "%s"\n' \
      "$(command -v fuse-overlayfs)" >"$conf/storage.conf"
  else
    printf '[storage]\ndriver = "overlay"\n' >"$conf/storage.conf"
  fi
  chown "$USER_NAME:" "$conf/storage.conf"
  import_base as_user
  echo "export SPR_TEST_PODMAN_USER=$USER_NAME"
}

rootless_stop() {
  id "$USER_NAME" >/dev/null 2>&1 || { say "no user $USER_NAME"; return 0; }
  remove_containers as_user
  # Its storage holds files of its subordinate ids: podman removes them.
  as_user podman system reset -f >/dev/null 2>&1 || true
  local uid
  uid=$(id -u "$USER_NAME")
  for f in /proc/[0-9]*/status; do # its processes (podman's pause process)
    awk -v u="$uid" '/^Uid:/ {exit ($2 == u) ? 0 : 1}' "$f" 2>/dev/null || continue
    p=${f#/proc/}; p=${p%/status}
    terminate "$p" "$USER_NAME's process" 5
  done
  rm -rf --one-file-system "/run/user/$uid"
  userdel -r "$USER_NAME" 2>/dev/null || userdel "$USER_NAME"
  sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid
  say "removed the user $USER_NAME and its subordinate ranges"
}

case "${1:-start}" in
start)
  [ "$(id -u)" -eq 0 ] || die "needs root"
  "$HERE/deps.sh" podman
  lock
  write_conf
  import_base
  build_runtime
  echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  echo "export SPR_TEST_PODMAN_SHIM=$D/bin"
  ;;
stop)
  lock
  [ -f "$D/containers.conf" ] && remove_containers
  ;;
rootless-start)
  [ "$(id -u)" -eq 0 ] || die "needs root"
  "$HERE/deps.sh" podman
  lock
  rootless_start
  ;;
rootless-stop)
  lock
  rootless_stop
  ;;
dir)
  echo "$D"
  ;;
*)
  echo "usage: $0 start|stop|rootless-start|rootless-stop|dir" >&2; exit 2 ;;
esac
