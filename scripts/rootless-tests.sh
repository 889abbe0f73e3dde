#!/bin/sh
# Runs test suites as an unprivileged user, so the LocalEngine is tested
# rootless as well as as root (user namespaces mapped to the caller's own
# id, no nobody mapping, no open_tree).
#   usage: scripts/rootless-tests.sh BUILD_DIR SUITE...
# The user (default sprtest, override with SPR_TEST_USER) is created if
# missing. A checkout may sit in a directory that user cannot enter, so the
# binaries and tests are staged in a fresh world-readable directory first.
set -eu
build=$(cd "$1" && pwd); shift
user=${SPR_TEST_USER:-sprtest}
src=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "rootless-tests: already unprivileged; run the suites directly" >&2
  exit 0
fi
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /usr/sbin/nologin "$user"
fi

stage=$(mktemp -d /tmp/spr-rootless-XXXXXX)
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/build"
cp -a "$build/spr-run" "$build/spr" "$build/libexec" "$stage/build/"
[ -d "$build/tests/tools" ] && mkdir -p "$stage/build/tests" && cp -a "$build/tests/tools" "$stage/build/tests/"
cp -a "$src/tests" "$stage/"
chmod -R a+rX "$stage"

python=$(command -v /usr/bin/python3 || command -v python3)
rc=0
for suite in "$@"; do
  echo "== $suite as $user (uid $(id -u "$user"))"
  (cd /tmp && runuser -u "$user" -- env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
      HOME="$(getent passwd "$user" | cut -d: -f6)" SPR_BUILD="$stage/build" \
      "$python" "$stage/tests/run.py" "$suite") || rc=1
done
exit $rc
