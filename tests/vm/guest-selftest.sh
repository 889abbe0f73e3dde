#!/bin/sh
# Self-test of the VM guest (run inside it: tests/vm/run-vm.sh -- sh tests/vm/guest-selftest.sh).
# Proves the guest is what spr's cgroup v2 tests need: a cgroup2-only kernel
# whose memory/pids/cpu controllers work, user namespaces, Landlock, the host's
# python3, and a working build of spr (SPR_BUILD, default <repo>/build; run
# `make` on the host first). One line per check; exit status 1 if any failed.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${SPR_BUILD:-$REPO/build}
C=/sys/fs/cgroup
T=$C/spr-selftest.$$
fail=0
ok() { echo "selftest: ok   $*"; }
bad() {
	echo "selftest: FAIL $*"
	fail=1
}
info() { echo "selftest: info $*"; }

info "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MB" }' /proc/meminfo)"
info "cmdline: $(cat /proc/cmdline)"
info "root: $(awk '$2 == "/" { r = $3 " " $4 } END { print r }' /proc/mounts)"

# --- cgroup v2 only -----------------------------------------------------------------
mounts=$(awk '$3 ~ /^cgroup/ { print $3 " " $2 }' /proc/mounts)
info "cgroup mounts: $(echo "$mounts" | tr '\n' ';')"
if [ "$mounts" = "cgroup2 $C" ]; then
	ok "the only cgroup mount is cgroup2 at $C"
else
	bad "cgroup mounts are not just cgroup2 at $C: $(echo "$mounts" | tr '\n' ';')"
fi
v1=$(awk 'NR > 1 && $2 != 0 { printf "%s ", $1 }' /proc/cgroups)
[ -z "$v1" ] && ok "no cgroup v1 hierarchies in /proc/cgroups" || bad "cgroup v1 hierarchies in use: $v1"
[ "$(stat -fc %T $C 2>/dev/null)" = cgroup2fs ] || {
	bad "$C is not cgroup2fs: skipping the controller checks"
	C=
}

if [ -n "$C" ]; then
	ctl=$(cat $C/cgroup.controllers)
	info "cgroup.controllers: $ctl"
	for c in memory pids cpu; do
		case " $ctl " in *" $c "*) ok "controller $c available" ;; *) bad "controller $c missing from $C/cgroup.controllers" ;; esac
	done
	if echo "+memory +pids +cpu" >$C/cgroup.subtree_control; then
		ok "enabled in subtree_control: $(cat $C/cgroup.subtree_control)"
	else
		bad "cannot enable +memory +pids +cpu in $C/cgroup.subtree_control"
	fi

	# memory.max: 100 MB in a 32 MB cgroup is OOM-killed; 8 MB fits.
	mkdir "$T" && echo "+memory +pids +cpu" >"$T/cgroup.subtree_control" && mkdir "$T/mem" "$T/pids" ||
		bad "cannot create the test cgroups under $T"
	echo 32M >"$T/mem/memory.max"
	echo 0 >"$T/mem/memory.swap.max" 2>/dev/null
	hog='import sys; b = b"\x5a" * (int(sys.argv[1]) << 20); print(len(b) >> 20, "MB")'
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$T/mem" python3 -c "$hog" 100 >/dev/null 2>&1
	rc=$?
	ev=$(awk '$1 == "oom_kill" { print $2 }' "$T/mem/memory.events")
	if [ "$rc" = 137 ] && [ "${ev:-0}" -gt 0 ]; then
		ok "100 MB in memory.max=32M: OOM-killed (status $rc, oom_kill $ev)"
	else
		bad "100 MB in memory.max=32M: status $rc, oom_kill ${ev:-?} (expected 137 and >0)"
	fi
	out=$(sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$T/mem" python3 -c "$hog" 8 2>&1) &&
		ok "8 MB in memory.max=32M fits ($out)" ||
		bad "8 MB in memory.max=32M failed: $out"

	# pids.max + cpu.max + cgroup.kill
	echo 5 >"$T/pids/pids.max"
	echo "50000 100000" >"$T/pids/cpu.max"
	sh -c 'echo $$ > "$1/cgroup.procs"; for i in 1 2 3 4 5 6 7 8; do sleep 60 & done 2>/dev/null; wait' sh "$T/pids" 2>/dev/null &
	sleep 2
	cur=$(cat "$T/pids/pids.current") mx=$(awk '$1 == "max" { print $2 }' "$T/pids/pids.events")
	if [ "$cur" -le 5 ] && [ "${mx:-0}" -gt 0 ]; then
		ok "pids.max=5 enforced (pids.current $cur, $mx fork(s) refused)"
	else
		bad "pids.max=5: pids.current $cur, pids.events max ${mx:-?}"
	fi
	[ "$(cat "$T/pids/cpu.max")" = "50000 100000" ] && ok "cpu.max set" || bad "cpu.max not set"
	echo 1 >"$T/pids/cgroup.kill"
	wait
	n=0
	until grep -q '^populated 0' "$T/pids/cgroup.events" || [ $n -ge 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ $n -lt 50 ] && ok "cgroup.kill emptied the cgroup" ||
		bad "cgroup.kill left processes behind: $(tr '\n' ' ' <"$T/pids/cgroup.procs")"
	rmdir "$T/mem" "$T/pids" "$T" 2>/dev/null || info "could not remove $T"
fi

# --- namespaces, Landlock, python -------------------------------------------------
out=$(unshare -Urpf --mount-proc sh -c 'echo "$(id -u) $$"' 2>&1)
[ "$out" = "0 1" ] && ok "user+pid namespaces (unshare -Urpf: uid 0, pid 1)" || bad "unshare -Urpf: $out"
if [ -r /proc/sys/kernel/unprivileged_userns_clone ]; then
	info "kernel.unprivileged_userns_clone = $(cat /proc/sys/kernel/unprivileged_userns_clone)"
fi
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Ur id -u 2>&1)
[ "$out" = 0 ] && ok "unprivileged user namespaces (nobody: unshare -Ur)" || bad "unprivileged unshare -Ur: $out"
if /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
	ok "/usr/bin/python3 runs ($(/usr/bin/python3 -V 2>&1))"
else
	bad "/usr/bin/python3 does not run"
fi
abi=$(/usr/bin/python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(444, None, 0, 1))  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
' 2>&1)
case $abi in [1-9]*) ok "Landlock ABI $abi" ;; *) bad "Landlock unavailable: $abi" ;; esac
[ -r /sys/kernel/security/lsm ] && info "LSMs: $(cat /sys/kernel/security/lsm)"

# --- spr itself -------------------------------------------------------------------
if [ -x "$BUILD/spr-run" ]; then
	code=$(mktemp /tmp/selftest.XXXXXX.py)
	echo 'result = 1 + 1' >"$code"
	json=$("$BUILD/spr-run" --json "$code" 2>&1)
	rc=$?
	rm -f "$code"
	if [ "$rc" = 0 ] && printf '%s' "$json" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["ok"] is True and r["result"] == 2, r
i = r.get("isolation", {})
print("selftest: info spr isolation: " + ", ".join("%s=%s" % kv for kv in sorted(i.items())))
'; then
		ok "$BUILD/spr-run --json: result = 1 + 1 -> ok, 2"
	else
		bad "$BUILD/spr-run --json: status $rc: $json"
	fi
else
	bad "$BUILD/spr-run not found (build on the host first: make -j2)"
fi

if [ "$fail" = 0 ]; then
	echo "selftest: PASS"
else
	echo "selftest: FAILED"
fi
exit "$fail"
