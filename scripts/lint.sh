#!/bin/bash
# Static analysis of the C sources (make lint): cppcheck, then clang-tidy;
# fails on any finding of either.
#   usage: scripts/lint.sh BUILD_DIR CFLAGS...   (CFLAGS: what clang-tidy
#   compiles with; the Makefile passes its own -std, -D and -I flags)
# The levels enforced, and why each check left out is out: here for
# cppcheck (with tests/lint/spr.cfg), .clang-tidy for clang-tidy.
set -uo pipefail
build=$1; shift
cd "$(dirname "$0")/.."
srcs=$(find src -name '*.c' | sort)
jobs=${LINT_JOBS:-2}
rc=0

echo "== cppcheck $(cppcheck --version | sed 's/^Cppcheck //')"
# Level: --enable=warning,style,portability (errors always), every finding
# fails.
# --force: every #if configuration of each file, not only the build's; but
# always with __CPPCHECK__ defined, which src/core/util.h's SPR_CLEANUP
# needs (cppcheck 2.10 does not know cleanup attributes). System headers
# are not read (missingIncludeSystem); what spr needs from them is in
# tests/lint/spr.cfg. A false positive left: an inline
# `// cppcheck-suppress ID` with its reason.
nice cppcheck -q -j "$jobs" --std=c11 --enable=warning,style,portability --inline-suppr \
	--error-exitcode=1 --library=tests/lint/spr.cfg --suppress=missingIncludeSystem \
	-D__CPPCHECK__ --force -I include -I src -I src/core -I "$build/gen" $srcs || rc=1

echo "== clang-tidy $(clang-tidy --version | sed -n 's/.*LLVM version //p')"
# One file per process, two at a time: clang-tidy 14 carries state from
# one file to the next (its valist checker no longer knew va_start in the
# second file). clang's "N warnings generated." counts the diagnostics
# .clang-tidy turned off, so it is dropped.
printf '%s\n' $srcs | nice xargs -P "$jobs" -n 1 bash -c '
	clang-tidy --quiet --warnings-as-errors="*" "$@" -- '"$(printf '%q ' "$@")"' 2>&1 |
		grep -v -E "^[0-9]+ (warnings?|errors?)( and [0-9]+ errors?)? generated\.$"
	exit "${PIPESTATUS[0]}"' _ || rc=1

[ "$rc" = 0 ] && echo "lint: cppcheck and clang-tidy found nothing"
exit "$rc"
