#!/bin/bash
# Run a command inside a throw-away cgroup-v2-only Linux VM (qemu, TCG).
#
#   tests/vm/run-vm.sh [options] [--] COMMAND [ARG...]
#
#   --mem MB          guest memory (default 1024)
#   --smp N           guest CPUs (default 2)
#   --timeout S       hard limit for the whole VM run, boot included (default 900)
#   --env NAME=VALUE  set NAME in COMMAND's environment (repeatable);
#   --env NAME        pass the caller's NAME through
#
# The guest boots Debian's generic kernel (the cloud flavour has no 9p) with
# cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1, mounts the host's /
# read-only over 9p (with a throw-away tmpfs overlay on top) and switches root
# into it, with the project tree (the directory containing tests/vm) shared
# read-write at the same path, cgroup2 at /sys/fs/cgroup, fresh /proc /sys /dev
# /dev/pts /dev/shm, tmpfs /tmp /run, lo up and a dummy0 interface with
# 10.0.2.15/24 (no route out, no link to the host: the guest has no network).
# See tests/vm/guest-init.sh for the guest side. COMMAND runs there as root in
# the caller's working directory (or the project root if that is not visible),
# with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# HOME=/root LANG=C.UTF-8 TERM=dumb SPR_CACHE_DIR=/tmp/spr-cache
# PYTHONDONTWRITEBYTECODE=1 SPR_TEST_VM=1 plus the --env variables; stdin is
# /dev/null.
#
# COMMAND's stdout and stderr (merged, in order) are streamed to stdout while it
# runs; run-vm.sh's own messages and the one-line summary go to stderr.
# Exit status: COMMAND's, or 124 if the timeout fired, 125 if the VM could not
# be set up or the guest never reported a status (the last 50 lines of the
# guest console are shown whenever the status is not 0).
#
# Environment:
#   SPR_VM_CACHE    kernel cache (default /var/cache/spr-vm)
#   SPR_VM_WORKDIR  where per-run work directories go (default <repo>/build/vm)
#   SPR_VM_KEEP=1   keep the run's work directory (console.log, initrd, output)
#   SPR_VM_DEBUG=1  verbose guest console (no `quiet`, init traced)
#   SPR_VM_ACCEL    qemu accelerator (default tcg: KVM hangs on our CI hosts)
#   SPR_VM_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
#   SPR_VM_MODULES  extra kernel modules to load at boot (dependencies resolved)
#   SPR_VM_ROOT     overlay (default): the guest's / is the host root under a
#                   tmpfs overlay, writable, changes lost at power-off; ro: the
#                   host root as is, read-only (the host is never written either way)
#   SPR_VM_HOSTROOT_CACHE  9p cache mode of the host root (default loose: fast,
#                   and the host root is not meant to change during a run)
set -eu
set -o pipefail

PROG=run-vm
say() { echo "$PROG: $*" >&2; }
die() {
	say "error: $*"
	exit 125
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# Single-quote a word for sh.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

T0=$(now)
HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)

MEM=1024 SMP=2 TIMEOUT=900
ENVS=()
usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; }
while [ $# -gt 0 ]; do
	case $1 in
	--mem) MEM=${2:?--mem needs a value}; shift 2 ;;
	--smp) SMP=${2:?--smp needs a value}; shift 2 ;;
	--timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
	--env)
		e=${2:?--env needs NAME=VALUE or NAME}
		n=${e%%=*}
		[[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env: bad variable name '$n'"
		if [ "$n" = "$e" ]; then
			[ -n "${!n+set}" ] || die "--env $n: not set in the caller's environment"
			e="$n=${!n}"
		fi
		ENVS+=("$e")
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (try --help)" ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
for v in "$MEM" "$SMP" "$TIMEOUT"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || die "--mem/--smp/--timeout need positive integers (got '$v')"
done
[ "$(id -u)" = 0 ] || die "must run as root (9p passthrough of the host root, apt for the kernel)"

CACHE=${SPR_VM_CACHE:-/var/cache/spr-vm}
WORKBASE=${SPR_VM_WORKDIR:-$REPO/build/vm}
ACCEL=${SPR_VM_ACCEL:-tcg}
ROOT_MODE=${SPR_VM_ROOT:-overlay}
case $ROOT_MODE in overlay | ro) ;; *) die "SPR_VM_ROOT must be overlay or ro (got '$ROOT_MODE')" ;; esac
MODULES="virtio_pci 9pnet_virtio 9p dummy ${SPR_VM_MODULES:-}"
[ "$ROOT_MODE" = ro ] || MODULES="$MODULES overlay"
BUSYBOX=/bin/busybox

# ---- host packages ----------------------------------------------------------
if [ -x "$REPO/scripts/deps.sh" ]; then
	"$REPO/scripts/deps.sh" vm >&2 || die "scripts/deps.sh vm failed"
fi
for t in qemu-system-x86_64 cpio flock; do
	command -v $t >/dev/null || die "$t not found (scripts/deps.sh vm installs qemu-system-x86 cpio)"
done
case " $("$BUSYBOX" --list 2>/dev/null | tr '\n' ' ') " in
*" depmod "*) ;;
*) die "$BUSYBOX is not busybox-static (scripts/deps.sh vm installs it)" ;;
esac

# ---- kernel: Debian's generic kernel, downloaded once and cached ------------
# $CACHE/kernel/<package>_<version>/{boot/vmlinuz-*,lib/modules/<kver>/...}, with
# modules.dep from busybox depmod (the package ships none).
apt_quiet() { grep -v -e '^W: Download is performed unsandboxed' -e '^$' >&2 || true; }
resolve_kernel() {
	KPKG=${SPR_VM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }')}
	KVER=
	[ -n "$KPKG" ] && KVER=$(apt-cache show --no-all-versions "$KPKG" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }')
	[ -n "$KPKG" ] && [ -n "$KVER" ]
}
fetch_kernel() { # in a directory under $CACHE, lock held
	local tmp
	tmp=$(mktemp -d "$CACHE/tmp.XXXXXX")
	if ! (cd "$tmp" && apt-get download -o APT::Sandbox::User=root "$KPKG=$KVER" 2>&1 | apt_quiet); then
		rm -rf "$tmp"
		return 1
	fi
	say "unpacking $KPKG $KVER into $CACHE"
	mkdir "$tmp/root"
	dpkg-deb -x "$tmp"/*.deb "$tmp/root"
	rm -rf "$tmp"/*.deb "$tmp/root/usr/share"
	local kv
	kv=$(ls "$tmp/root/lib/modules")
	"$BUSYBOX" depmod -b "$tmp/root" "$kv"
	rm -rf "$KDIR"
	mv "$tmp/root" "$KDIR"
	rmdir "$tmp"
	touch "$KDIR/.done"
}
# The cache is shared by every checkout's runs. $CACHE/.lock: exclusive to
# fetch a kernel and drop the others, shared while a run copies its kernel
# and modules out (below), so no run loses its kernel half-way.
mkdir -p "$CACHE/kernel"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	say "waiting for $CACHE/.lock (another run is fetching a kernel or reading the cache)"
	flock 9
fi
if ! resolve_kernel; then
	say "refreshing the apt package index"
	apt-get update -qq >&2 || true
	resolve_kernel || true
fi
KDIR=
if [ -n "${KPKG:-}" ] && [ -n "${KVER:-}" ]; then
	KDIR="$CACHE/kernel/${KPKG}_$KVER"
	if [ ! -f "$KDIR/.done" ]; then
		say "downloading $KPKG $KVER (once; cached in $CACHE)"
		if ! fetch_kernel; then
			say "download failed; refreshing the apt package index and retrying"
			apt-get update -qq >&2 || true
			resolve_kernel || true
			KDIR="$CACHE/kernel/${KPKG}_$KVER"
			[ -f "$KDIR/.done" ] || fetch_kernel || KDIR=
		fi
		# A new kernel is in place: drop the others.
		if [ -n "$KDIR" ]; then
			for d in "$CACHE"/kernel/*/; do
				[ "${d%/}" = "$KDIR" ] || rm -rf "${d%/}"
			done
		fi
	fi
fi
if [ -z "$KDIR" ] || [ ! -f "$KDIR/.done" ]; then # offline: any cached kernel will do
	KDIR=$(ls -d "$CACHE"/kernel/*/.done 2>/dev/null | tail -n 1)
	KDIR=${KDIR%/.done}
	[ -n "$KDIR" ] || die "no guest kernel: cannot resolve/download linux-image-amd64 and nothing cached in $CACHE"
	say "using cached kernel $KDIR"
fi
# Shared from here until the kernel and the modules are copied into the
# work directory. flock converts the lock by dropping and retaking it: a run
# that fetched a newer kernel in between may have dropped ours.
flock -s 9
[ -f "$KDIR/.done" ] || die "the cached kernel $KDIR was replaced by another run's newer one meanwhile; run again"
KERNEL=$(ls "$KDIR"/boot/vmlinuz-* | head -n 1)
KV=$(ls "$KDIR/lib/modules" | head -n 1)
MODDIR=$KDIR/lib/modules/$KV

# ---- per-run work directory -------------------------------------------------
mkdir -p "$WORKBASE"
W=$(mktemp -d "$WORKBASE/run.XXXXXX")
X=$W/xfer
mkdir "$X"
QPID="" TPID=""
cleanup() {
	local st=$?
	trap - EXIT INT TERM HUP
	[ -z "$TPID" ] || kill "$TPID" 2>/dev/null || true
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill -TERM "$QPID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$QPID" 2>/dev/null || true
	fi
	# qemu itself (a child of timeout): make sure it is gone
	if [ -s "$W/qemu.pid" ]; then
		local p
		p=$(cat "$W/qemu.pid")
		if [ -r "/proc/$p/cmdline" ] && grep -qa -- "$W/qemu.pid" "/proc/$p/cmdline"; then
			kill -KILL "$p" 2>/dev/null || true
		fi
	fi
	if [ "${SPR_VM_KEEP:-0}" = 1 ]; then
		say "work directory kept: $W"
	else
		rm -rf "$W"
		rmdir "$WORKBASE" 2>/dev/null || true
	fi
	exit "$st"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# ---- initramfs: static busybox, the modules, guest-init.sh as /init ---------
# Rebuilt every run (~0.1 s); the kernel cache is what saves time.
ORDER=$(awk -v want="$MODULES" '
	function norm(s) { sub(/.*\//, "", s); sub(/\.ko$/, "", s); gsub(/-/, "_", s); return s }
	FILENAME ~ /modules\.builtin$/ { builtin[norm($1)] = 1; next }
	{ sub(/:$/, "", $1); m = norm($1); path[m] = $1; dep[m] = ""
	  for (i = 2; i <= NF; i++) dep[m] = dep[m] " " norm($i) }
	function visit(m,   n, d, i) {
		if (m in seen) return
		seen[m] = 1
		if (m in builtin) return
		if (!(m in path)) { missing = missing " " m; return }
		n = split(dep[m], d, " ")
		for (i = 1; i <= n; i++) visit(d[i])
		print m, path[m]
	}
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) visit(norm(w[i]))
		if (missing != "") { print "modules not found:" missing > "/dev/stderr"; exit 1 }
	}' "$MODDIR/modules.builtin" "$MODDIR/modules.dep") || die "cannot resolve kernel modules"
R=$W/initramfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/modules" "$R/host" "$R/xfer"
cp "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done
ln -s bin "$R/sbin"
while read -r m p; do
	cp "$MODDIR/$p" "$R/modules/$m.ko"
	echo "$m" >>"$R/modules/order"
done <<<"$ORDER"
install -m 0755 "$HERE/guest-init.sh" "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.gz"
rm -rf "$R"
# qemu reads the kernel at start-up: our own copy, and the cache is free again.
cp "$KERNEL" "$W/vmlinuz"
KERNEL=$W/vmlinuz
exec 9>&-

# ---- what the guest runs ----------------------------------------------------
{
	echo "REPO=$(q "$REPO")"
	echo "HOSTROOT_CACHE=$(q "${SPR_VM_HOSTROOT_CACHE:-loose}")"
	echo "ROOT_MODE=$ROOT_MODE"
} >"$X/vm.conf"
{
	echo "# generated by tests/vm/run-vm.sh"
	echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	echo "export HOME=/root LANG=C.UTF-8 TERM=dumb SPR_CACHE_DIR=/tmp/spr-cache"
	echo "export PYTHONDONTWRITEBYTECODE=1 SPR_TEST_VM=1"
	for e in ${ENVS[@]+"${ENVS[@]}"}; do
		echo "export ${e%%=*}=$(q "${e#*=}")"
	done
	echo "cd $(q "$PWD") 2>/dev/null || cd $(q "$REPO") || exit 125"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
} >"$X/cmd.sh"
: >"$X/output"

# ---- boot ---------------------------------------------------------------------
qarg() { printf '%s' "$1" | sed 's/,/,,/g'; } # commas are qemu's option separator
APPEND="console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
if [ "${SPR_VM_DEBUG:-0}" = 1 ]; then
	APPEND="$APPEND spr_vm.debug=1"
else
	APPEND="$APPEND quiet"
fi
T1=$(now)
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
	-accel "$ACCEL" -m "$MEM" -smp "$SMP" \
	-nodefaults -no-user-config -display none -no-reboot -monitor none \
	-serial "file:$W/console.log" -pidfile "$W/qemu.pid" \
	-kernel "$KERNEL" -initrd "$W/initrd.gz" -append "$APPEND" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
	-virtfs "local,path=$(qarg "$REPO"),mount_tag=repo,security_model=passthrough,multidevs=remap" \
	-virtfs "local,path=$(qarg "$X"),mount_tag=xfer,security_model=passthrough,multidevs=remap" \
	</dev/null >"$W/qemu.log" 2>&1 &
QPID=$!
# Stream COMMAND's output while the VM runs; tail makes a last read once qemu
# is gone. Both run in the background: the wait builtin, unlike a foreground
# command, lets the INT/TERM traps run at once.
tail -n +1 -s 0.2 -f --pid="$QPID" "$X/output" &
TPID=$!
QST=0
wait "$QPID" || QST=$?
QPID=
wait "$TPID" || true
TPID=
T2=$(now)

# ---- verdict --------------------------------------------------------------------
times=""
if [ -s "$X/t-start" ] && [ -s "$X/t-end" ]; then
	times=" (guest boot $(cat "$X/t-start")s, command $(elapsed "$(cat "$X/t-start")" "$(cat "$X/t-end")")s)"
fi
if [ "$QST" = 124 ] || [ "$QST" = 137 ]; then
	say "TIMEOUT: the VM did not finish within ${TIMEOUT}s and was killed (--timeout S to change)"
	RC=124
elif [ -s "$X/rc" ]; then
	RC=$(cat "$X/rc")
	[ "$QST" = 0 ] || say "warning: qemu exited with status $QST after the command finished"
else
	[ -s "$X/error" ] && say "guest setup failed: $(cat "$X/error")"
	say "the guest did not report an exit status (qemu exit status $QST)"
	[ -s "$W/qemu.log" ] && sed 's/^/qemu: /' "$W/qemu.log" >&2
	RC=125
fi
if [ "$RC" != 0 ]; then
	if [ "${SPR_VM_KEEP:-0}" = 1 ]; then
		say "---- last 50 lines of the guest console ($W/console.log) ----"
	else
		say "---- last 50 lines of the guest console (SPR_VM_KEEP=1 keeps the whole log) ----"
	fi
	tail -n 50 "$W/console.log" | tr -d '\r' >&2 || true
	say "----"
fi
say "exit status $RC | setup $(elapsed "$T0" "$T1")s, boot-to-poweroff $(elapsed "$T1" "$T2")s$times | kernel $KV, $ACCEL, smp $SMP, ${MEM} MB"
exit "$RC"
