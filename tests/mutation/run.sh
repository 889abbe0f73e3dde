#!/bin/bash
# Mutation spot-checks (docs/SECURITY.md §6 "Mutation spot-checks").
#
#   tests/mutation/run.sh [PATCH...]   (a file, a name or its number: 04;
#                                       none: all of them; make mutation)
#
# Each tests/mutation/NN-layer-what.patch is a small bug that disables or
# weakens one isolation layer. Its first lines name the tests that must
# catch it, one per line:
#   # test: SUITE -k PATTERN      a tests/run.py suite (integration, hostile,
#                                 cgroup, docker) with unittest's -k
#   # test: unit NAME             the C unit test binary build/tests/NAME
# (git apply ignores text before the diff.)
#
# First the control: every named test must pass on this tree, unmutated
# (and must run: a pattern that matches nothing, or a test that skips, is
# an error). Then, for each patch, a throwaway copy of the tree (build/
# included, so the rebuild is incremental) gets the patch, is rebuilt, and
# runs the patch's tests. A patch is "caught" when at least one of its
# tests fails, "SURVIVED" when all pass: then the claim's test does not
# prove the claim. Exit status: 0 when every patch was caught, 1 when one
# survived, 2 on an error (control failing, patch not applying, build
# failing). Logs: build/mutation/; the results table: build/mutation/results.md.
#
# Docker suites need a daemon: when a selected patch names one and
# DOCKER_HOST is not set, the test daemon is started as `make docker` does
# (make docker-env-start) and stopped at the end if this script started it.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${TEST_PYTHON:-/usr/bin/python3}
NICE=(nice -n "${MUTATION_NICE:-10}")
TEST_TIMEOUT=${MUTATION_TEST_TIMEOUT:-1800}
OUT=$ROOT/build/mutation
started=$(date +%s)

patches=()
if [ $# -eq 0 ]; then
	patches=("$ROOT"/tests/mutation/*.patch)
else
	for p in "$@"; do
		if [ -f "$p" ]; then patches+=("$(cd "$(dirname "$p")" && pwd)/$(basename "$p")")
		elif [ -f "$ROOT/tests/mutation/$p" ]; then patches+=("$ROOT/tests/mutation/$p")
		elif [ -f "$ROOT/tests/mutation/$p.patch" ]; then patches+=("$ROOT/tests/mutation/$p.patch")
		else
			# a number or a prefix: 04, 04-seccomp
			m=("$ROOT/tests/mutation/$p"*.patch)
			if [ ${#m[@]} -ne 1 ] || [ ! -f "${m[0]}" ]; then
				echo "mutation: no single patch $p" >&2
				exit 2
			fi
			patches+=("${m[0]}")
		fi
	done
fi

WORK=$(mktemp -d /tmp/spr-mutation.XXXXXX)
DOCKERD_STARTED=
cleanup() {
	rm -rf "$WORK"
	if [ -n "$DOCKERD_STARTED" ]; then
		"$ROOT"/scripts/dockerd-for-tests.sh stop "$DOCKERD_STARTED" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$OUT"
mkdir -p "$OUT/logs"

tests_of() { sed -n 's/^# test: //p' "$1"; }
header_of() { sed -n "s/^# $2: //p" "$1" | head -n 1; }

build() {
	local tree=$1 log=$2
	local tools
	tools=$(cd "$tree" && ls tests/tools/*.c | sed 's|tests/tools/\(.*\)\.c|build/tests/tools/\1|')
	# shellcheck disable=SC2086
	"${NICE[@]}" make -C "$tree" -s -j2 all $tools >"$log" 2>&1
}

# run_test TREE SPEC LOG: runs one "# test:" line; prints "pass", "fail",
# "timeout", "none" (nothing ran) or "skipped" (everything skipped).
run_test() {
	local tree=$1 spec=$2 log=$3 rc
	# shellcheck disable=SC2086
	set -- $spec
	local suite=$1
	shift
	if [ "$suite" = unit ]; then
		"${NICE[@]}" make -C "$tree" -s "build/tests/$1" >"$log" 2>&1 || { echo fail; return; }
		CK_VERBOSITY=normal timeout "$TEST_TIMEOUT" "${NICE[@]}" "$tree/build/tests/$1" \
			>>"$log" 2>&1
		rc=$?
		if [ $rc -eq 124 ]; then echo timeout; elif [ $rc -ne 0 ]; then echo fail
		elif grep -q '^100%: Checks: [1-9]' "$log"; then echo pass; else echo none; fi
		return
	fi
	(cd "$tree" && SPR_BUILD=$tree/build timeout "$TEST_TIMEOUT" "${NICE[@]}" \
		"$PY" tests/run.py "$suite" "$@") >"$log" 2>&1
	rc=$?
	local ran skipped
	ran=$(sed -n 's/^Ran \([0-9]*\) tests\? in .*/\1/p' "$log" | tail -n 1)
	skipped=$(sed -n 's/.*skipped=\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	if [ $rc -eq 124 ]; then echo timeout
	elif [ $rc -ne 0 ]; then echo fail
	elif [ -z "$ran" ] || [ "$ran" -eq 0 ]; then echo none
	elif [ -n "$skipped" ] && [ "$skipped" -ge "$ran" ]; then echo skipped
	else echo pass; fi
}

# The first failing assertion of a log, on one line.
why_failed() {
	local line
	line=$(grep -m 1 -E ':[FE]:[^:]*:[^:]*:' "$1" ||
	       grep -m 1 -E '^[A-Za-z_.]*(Error|Exception|Failure)(: |$)' "$1" ||
	       grep -m 1 -E '^(FAIL|ERROR): ' "$1" || tail -n 1 "$1")
	printf '%s' "$line" | tr -s ' \t' ' ' | cut -c 1-300
}

# Docker daemon, if a selected patch needs one.
needs_docker=0
for p in "${patches[@]}"; do
	tests_of "$p" | grep -q '^docker ' && needs_docker=1
done
if [ $needs_docker = 1 ]; then
	if [ -z "${DOCKER_HOST:-}" ]; then
		if ! env=$(make -C "$ROOT" -s --no-print-directory docker-env-start 2>"$OUT/logs/dockerd.log"); then
			echo "mutation: could not start the test docker daemon (see $OUT/logs/dockerd.log)" >&2
			exit 2
		fi
		eval "$env"
		DOCKERD_STARTED=${SPR_TEST_DOCKERD_STARTED:-}
	fi
	export SPR_DOCKER_BASE_IMAGE=${SPR_DOCKER_BASE_IMAGE:-spr-base:bookworm} SPR_REQUIRE_DOCKER=1
fi

# The control: this tree, built, every named test passing.
echo "== control: building $ROOT"
if ! build "$ROOT" "$OUT/logs/control-build.log"; then
	echo "mutation: the unmutated tree does not build (see $OUT/logs/control-build.log)" >&2
	exit 2
fi
declare -A control
status=0
n=0
while IFS= read -r spec; do
	[ -n "$spec" ] || continue
	[ -n "${control[$spec]:-}" ] && continue
	n=$((n + 1))
	log="$OUT/logs/control-$n.log"
	control[$spec]=$(run_test "$ROOT" "$spec" "$log")
	printf '   control %-7s %s\n' "${control[$spec]}" "$spec"
	if [ "${control[$spec]}" != pass ]; then
		echo "     $(why_failed "$log") (log: $log)"
		status=2
	fi
done < <(for p in "${patches[@]}"; do tests_of "$p"; done)
if [ $status -ne 0 ]; then
	echo "mutation: the control failed: a mutant's failure would mean nothing" >&2
	exit 2
fi

results="$OUT/results.md"
{
	echo "| patch | layer | mutation | test | outcome | failing assertion |"
	echo "|---|---|---|---|---|---|"
} >"$results"
survived=()
for p in "${patches[@]}"; do
	name=$(basename "$p" .patch)
	layer=$(header_of "$p" layer)
	what=$(header_of "$p" mutation)
	echo "== $name ($layer)"
	tree="$WORK/tree"
	rm -rf "$tree"
	cp -a "$ROOT/." "$tree"
	if ! git -C "$tree" apply "$p" 2>"$OUT/logs/$name-apply.log"; then
		echo "   ERROR: the patch does not apply (see $OUT/logs/$name-apply.log)"
		status=2
		continue
	fi
	if ! build "$tree" "$OUT/logs/$name-build.log"; then
		echo "   ERROR: the mutant does not build (see $OUT/logs/$name-build.log)"
		status=2
		continue
	fi
	caught=0
	i=0
	while IFS= read -r spec; do
		[ -n "$spec" ] || continue
		i=$((i + 1))
		log="$OUT/logs/$name-$i.log"
		t0=$(date +%s)
		r=$(run_test "$tree" "$spec" "$log")
		secs=$(($(date +%s) - t0))
		case $r in
		fail | timeout) outcome="caught"; [ "$r" = timeout ] && outcome="caught (timeout)"
			caught=1; why=$(why_failed "$log") ;;
		pass) outcome="passed"; why="" ;;
		*) outcome="ERROR ($r)"; why=""; status=2 ;;
		esac
		printf '   %-16s %-70s %4ss\n' "$outcome" "$spec" "$secs"
		[ -n "$why" ] && echo "     $why"
		printf '| %s | %s | %s | `%s` | %s | %s |\n' "$name" "$layer" "$what" "$spec" \
			"$outcome" "$(printf '%s' "$why" | sed 's/|/\\|/g; s/`/'"'"'/g')" >>"$results"
	done < <(tests_of "$p")
	if [ $caught = 1 ]; then
		echo "   => caught"
	else
		echo "   => SURVIVED: no named test failed"
		survived+=("$name")
	fi
	rm -rf "$tree"
done

elapsed=$(($(date +%s) - started))
echo
echo "mutation: ${#patches[@]} patches, ${#survived[@]} survived, $((elapsed / 60)) min $((elapsed % 60)) s; table: $results"
for s in "${survived[@]}"; do echo "  SURVIVED: $s"; done
if [ ${#survived[@]} -gt 0 ] && [ $status -eq 0 ]; then status=1; fi
exit $status
