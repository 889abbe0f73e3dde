#!/bin/sh
# Install the Debian packages spr needs to build and test. Idempotent and quick:
# dpkg-query decides what is missing, apt-get runs only when something is.
#   usage: scripts/deps.sh [build|test|lint|compat|bench|docker|vm|podman|all]   (default: build)
set -eu

build_pkgs="gcc make pkg-config libc6-dev libseccomp-dev libcap-ng-dev libnl-3-dev
libnl-route-3-dev libcjson-dev check libsubunit-dev python3"
# python3-venv and the wheels: venv builds (ensurepip) and the environment tests;
# python3-pytest and python3-pip: the Python package's tests (tests/python);
# python3-numpy: preload_imports' tests (a real package that imports os,
# ctypes and importlib).
test_pkgs="clang libclang-rt-14-dev procps iproute2 strace python3-venv python3-pip-whl
python3-setuptools-whl python3-pytest python3-pip python3-numpy"
# make lint (make check runs it): the static analysers.
lint_pkgs="cppcheck clang-tidy"
# gnuplot: bench/chart.py draws the latency chart (bench/latency.png).
bench_pkgs="python3-numpy gnuplot-nox"
docker_pkgs="docker.io debootstrap openssh-server openssh-client"
vm_pkgs="qemu-system-x86 busybox-static cpio"
# runc named: podman's first choice, crun 1.8, cannot run containers on a
# hybrid cgroup host; uidmap for rootless podman's newuidmap.
podman_pkgs="podman runc uidmap slirp4netns fuse-overlayfs conmon"

# make compat: CPython's own tests for the interpreter spr runs (Debian's
# python3, whose version names the package).
compat_pkgs() {
  "$0" build >&2
  v=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  echo "libpython$v-testsuite"
}

case "${1:-build}" in
compat) want=$(compat_pkgs) ;;
build) want=$build_pkgs ;;
test) want="$build_pkgs $test_pkgs" ;;
lint) want="$build_pkgs $lint_pkgs" ;;
docker) want=$docker_pkgs ;;
vm) want=$vm_pkgs ;;
bench) want="$build_pkgs $bench_pkgs" ;;
podman) want=$podman_pkgs ;;
all) want="$build_pkgs $test_pkgs $lint_pkgs $bench_pkgs $docker_pkgs $vm_pkgs $podman_pkgs $(compat_pkgs)" ;;
*) echo "usage: scripts/deps.sh [build|test|lint|compat|bench|docker|vm|podman|all]" >&2; exit 2 ;;
esac

missing_pkgs() {
  missing=""
  for p in $want; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $p"
  done
}
missing_pkgs
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/deps.sh: missing Debian packages:$missing" >&2
  echo "  install them as root: apt-get install -y$missing" >&2
  exit 1
fi
# apt-get fails at once when another apt holds its locks: two checkouts'
# `make check` installing at the same time take turns here (and then find
# what the other installed), and apt itself waits for any other apt user.
mkdir -p /run/lock
exec 9>/run/lock/spr-deps.lock
flock -w 1800 9 || { echo "scripts/deps.sh: /run/lock/spr-deps.lock held for 30 minutes" >&2; exit 1; }
missing_pkgs
[ -z "$missing" ] && exit 0
echo "scripts/deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# 9>&-: a service a package's postinst starts must not inherit (and hold) our lock.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@" 9>&-; }
# A stale package index makes apt-get install fail with 404s; refresh it once.
apt_get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends $missing >/dev/null
}
