#!/bin/bash
# Inside the cgroup v2 VM (tests/vm/run-vm.sh): rootless podman where it can
# enforce limits. The test user of scripts/podman-for-tests.sh rootless-start
# gets a delegated cgroup subtree with memory, pids and cpu enabled (as a
# Delegate=yes unit would give it) and the podman tests (tests/podman) run
# from inside it: podman's cgroupfs manager then puts each container in a
# child cgroup of the caller's, and `podman info` lists the controllers, so
# spr's runs must be limited by the container's cgroup, not degraded.
#   usage (as root, in the VM): tests/vm/guest-podman-rootless.sh BUILD_DIR [SUITE...]
# The rootfs tarball comes from the host's cache (/var/cache/spr, read-only
# here: the VM has no network to make one).
set -euo pipefail
build=$(cd "$1" && pwd); shift
suites=("${@:-podman}")
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"

[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] ||
  { echo "guest-podman-rootless: not a cgroup v2 host" >&2; exit 1; }

# fuse-overlayfs: vfs would copy the whole image for every container. The
# guest has no udev to open /dev/fuse to users (Debian's rule: MODE 0666).
chmod 0666 /dev/fuse
env=$(SPR_TEST_PODMAN_FUSE=1 SPR_CACHE_DIR=${SPR_TARBALL_CACHE:-/var/cache/spr} scripts/podman-for-tests.sh rootless-start)
eval "$env"
trap 'scripts/podman-for-tests.sh rootless-stop' EXIT
user=$SPR_TEST_PODMAN_USER
uid=$(id -u "$user"); gid=$(id -g "$user")

own=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
root=/sys/fs/cgroup${own%/}
echo "+memory +pids +cpu" >"$root/cgroup.subtree_control"
deleg=$root/spr-pm-deleg-$$
mkdir -p "$deleg/caller"
echo "+memory +pids +cpu" >"$deleg/cgroup.subtree_control"
chown -R "$uid:$gid" "$deleg"
trap 'scripts/podman-for-tests.sh rootless-stop; rmdir "$deleg"/*/ "$deleg" 2>/dev/null || true' EXIT

python=$(command -v /usr/bin/python3 || command -v python3)
rc=0
for suite in "${suites[@]}"; do
  echo "== $suite: rootless podman as $user in a delegated cgroup v2 subtree"
  # The test process itself moves in: podman, started from it through
  # runuser, must start inside the subtree its user owns.
  sh -c 'echo $$ >"$0" && exec "$@"' "$deleg/caller/cgroup.procs" \
    env SPR_BUILD="$build" SPR_TEST_PODMAN_USER="$user" "$python" tests/run.py "$suite" || rc=1
done
exit $rc
