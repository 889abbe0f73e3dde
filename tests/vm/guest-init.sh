#!/bin/sh
# /init of the spr test VM (built into the initramfs by tests/vm/run-vm.sh;
# runs under the initramfs' static busybox). Not meant to run on a host.
#
# Guest layout, all from 9p shares of the host (virtio-pci):
#   hostroot  the host's /, read-only        -> the guest's / (switch_root), under
#             a tmpfs overlay by default (writable, changes lost at power-off)
#   repo      the project tree, read-write   -> $REPO (same path as on the host)
#   xfer      run-vm.sh's transfer directory -> /run/spr-vm
# plus /proc, /sys, cgroup2 at /sys/fs/cgroup (the only hierarchy: the kernel
# runs with cgroup_no_v1=all), securityfs, /dev (devtmpfs) with /dev/pts and
# /dev/shm, tmpfs /tmp and /run, lo up and a dummy0 with 10.0.2.15/24.
#
# Stage 1 (PID 1 in the initramfs) loads the modules and mounts all that under
# /host, then switch_root's into it: a plain chroot would not do, the kernel
# refuses to create user namespaces from a chroot. Stage 2 (PID 1 in the new
# root, still this script, run by a copy of busybox in /run/spr-vm-init) runs
# /run/spr-vm/cmd.sh as root with a clean environment, its output going to
# /run/spr-vm/output; the exit status goes to /run/spr-vm/rc and the guest
# powers off. Any failure powers off too (run-vm.sh then finds no rc and shows
# the console log); should init itself die, panic=-1 and qemu's -no-reboot end
# the VM.
I=/run/spr-vm-init # stage 2's busybox and this script, on the new root's tmpfs /run
O9P=trans=virtio,version=9p2000.L,msize=262144

say() { echo "spr-vm: $*"; }
off() {
	sync
	poweroff -f
	sleep 30 # poweroff -f does not return; if it does, init exits -> panic -> qemu exits
	exit 1
}
die() {
	say "FATAL: $*"
	[ -w "$X/." ] && echo "$*" >"$X/error"
	off
}
uptime_s() { read -r up _ </proc/uptime && echo "$up"; }

if [ "${1:-}" = stage2 ]; then
	# PID 1 in the host root. Busybox applets via $I/bin only: the host's
	# poweroff is systemd's.
	export PATH=$I/bin
	X=/run/spr-vm
	case " $(cat /proc/cmdline) " in *" spr_vm.debug=1 "*) set -x ;; esac
	say "running command (kernel $(uname -r), up $(uptime_s)s)"
	uptime_s >"$X/t-start"
	cd /
	# Clean environment; cmd.sh (written by run-vm.sh) sets it up and execs COMMAND.
	env -i /bin/sh "$X/cmd.sh" </dev/null >"$X/output" 2>&1
	rc=$?
	uptime_s >"$X/t-end"
	echo "$rc" >"$X/rc.tmp" && mv "$X/rc.tmp" "$X/rc"
	say "command exit status $rc"
	off
fi

# ---- stage 1: PID 1 in the initramfs ----
export PATH=/bin
H=/host
X=/xfer
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
case " $(cat /proc/cmdline) " in *" spr_vm.debug=1 "*) set -x ;; esac

# virtio-pci + 9p modules, in dependency order (computed by run-vm.sh)
while read -r m; do
	insmod "/modules/$m.ko" || die "insmod $m failed"
done </modules/order

mount -t 9p -o "$O9P" xfer "$X" || die "9p mount of the transfer directory failed"
[ -r "$X/vm.conf" ] || die "no vm.conf in the transfer directory"
. "$X/vm.conf" # REPO, HOSTROOT_CACHE, ROOT_MODE
if [ "$ROOT_MODE" = overlay ]; then
	# The host root stays read-only (9p ro); the guest writes to a tmpfs upper
	# layer that is gone at power-off. Tests that prove an attack works "on the
	# host" before spr must stop it need a writable /etc, /usr, /root.
	mkdir -p /lower /rw
	mount -t 9p -o "$O9P,ro,cache=$HOSTROOT_CACHE" hostroot /lower || die "9p mount of the host root failed"
	mount -t tmpfs -o mode=755 tmpfs /rw && mkdir /rw/upper /rw/work || die "tmpfs for the overlay"
	mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay "$H" ||
		die "overlay of the host root failed"
else
	mount -t 9p -o "$O9P,ro,cache=$HOSTROOT_CACHE" hostroot "$H" || die "9p mount of the host root failed"
fi

# API file systems (with SPR_VM_ROOT=ro the root is read-only: mount points must exist).
mount -t proc proc "$H/proc" || die "mount /proc"
mount -t sysfs sysfs "$H/sys" || die "mount /sys"
# Options as systemd mounts it on a pure cgroup v2 host.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 "$H/sys/fs/cgroup" ||
	mount -t cgroup2 cgroup2 "$H/sys/fs/cgroup" || die "mount cgroup2"
mount -t securityfs securityfs "$H/sys/kernel/security" 2>/dev/null || say "no securityfs (ignored)"
mount -t devtmpfs devtmpfs "$H/dev" || die "mount /dev"
mkdir -p "$H/dev/pts" "$H/dev/shm"
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts "$H/dev/pts" || die "mount /dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$H/dev/shm" || die "mount /dev/shm"
for l in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
	[ -e "$H/dev/${l%%:*}" ] || ln -s "${l#*:}" "$H/dev/${l%%:*}"
done
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$H/tmp" || die "mount /tmp"
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$H/run" || die "mount /run"
mkdir -p "$H/run/spr-vm" "$H$I/bin"
mount -o bind "$X" "$H/run/spr-vm" || die "bind mount of the transfer directory"
mkdir -p "$H$REPO" 2>/dev/null # exists unless the repo lives under /tmp or /run
mount -t 9p -o "$O9P" repo "$H$REPO" || die "9p mount of the project tree at $REPO failed"
cp /bin/busybox /init "$H$I/" || die "cannot copy busybox to $H$I"
for a in $(busybox --list); do ln -s ../busybox "$H$I/bin/$a"; done
hostname spr-vm
ip link set lo up || say "cannot bring up lo"
# A host has a non-loopback address too (tests listen on it); no route out.
{ { ip link show dummy0 >/dev/null 2>&1 || ip link add dummy0 type dummy; } && ip addr add 10.0.2.15/24 dev dummy0 && ip link set dummy0 up; } ||
	say "cannot set up dummy0 (ignored)"
umount "$X" # still mounted at /run/spr-vm
exec switch_root "$H" "$I/busybox" sh "$I/init" stage2
die "switch_root failed"
