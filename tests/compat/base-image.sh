#!/bin/sh
# The container base image for make compat: BASE plus the host interpreter's
# CPython test package (Debian's libpython3.X-testsuite), copied to the
# image interpreter's own stdlib, so the DockerEngine runs the same tests as
# the LocalEngine and the outside run. The two interpreters must be the
# same Python version (both Debian 12 here); a mismatch is refused.
#   usage: tests/compat/base-image.sh BASE TAG [PYTHON]   (docker, or podman
#          on PATH as docker; DOCKER_HOST as set by dockerd-for-tests.sh)
set -eu
base=$1 tag=$2 python=${3:-/usr/bin/python3}
src=$("$python" -I -S -c 'import os, test.support; print(os.path.dirname(test.__file__))') || {
  echo "base-image: $python has no test package (scripts/deps.sh compat installs it)" >&2; exit 1; }
host_version=$("$python" -I -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')
info=$(docker run --rm --network none "$base" python3 -I -S -c \
  'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_paths()["stdlib"])')
image_version=${info%% *} stdlib=${info#* }
if [ "$image_version" != "$host_version" ]; then
  echo "base-image: $base has Python $image_version, $python is $host_version: the test" \
    "package must match the interpreter it tests (use a base image of the host's release)" >&2
  exit 1
fi
ctx=$(mktemp -d /tmp/spr-compat-image-XXXXXX)
trap 'rm -rf "$ctx"' EXIT
# The sources only: compiled files are the image interpreter's to make.
tar -C "$(dirname "$src")" --exclude=__pycache__ -cf - test | tar -C "$ctx" -xf -
printf 'FROM %s\nCOPY test %s/test\n' "$base" "$stdlib" >"$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; exit 1; }
echo "base-image: $tag is $base with $src at $stdlib/test" >&2
