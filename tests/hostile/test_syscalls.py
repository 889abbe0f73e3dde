"""The seccomp deny list (src/policy/seccomp.c), call by call.

Each probe (probe.py) calls a syscall with arguments the kernel rejects with
a distinct errno once the call reaches it. Run directly on the host (the
control) every probe must show that errno; through spr-run the filter must
answer first: EPERM, or ENOSYS for clone3. A few calls are allowed inside
and are probed to show the filter is specific (same errno in both places).

Where the kernel checks a capability before the arguments, an unprivileged
control gets EPERM from the kernel itself, which proves nothing. Two kinds:
- "admin": CAP_SYS_ADMIN over the caller's own mount namespace
  (pivot_root, fsopen, fsmount, fspick, move_mount): the unprivileged
  control is repeated in a user+mount namespace of its own (`unshare -Urm`),
  where the same probe reaches the argument check;
- "initcap": a capability in the initial namespace (acct, swapoff, reboot,
  syslog): only root can show the call reaching the kernel; unprivileged,
  the control asserts the kernel's EPERM.
Either way the sandboxed half is the same: EPERM from the filter.
"""
import errno as E
import signal

from hostile.harness import DEGRADED, IS_ROOT, HostileCase

ANY, ADMIN, INITCAP, ALLOWED = "any", "admin", "initcap", "allowed"

# name -> (errnos that show the call reached the kernel, errno inside, kind)
PROBES = {
    "mount": ({E.EFAULT}, E.EPERM, ANY),
    "umount2": ({E.EFAULT}, E.EPERM, ANY),
    "chroot": ({E.EFAULT}, E.EPERM, ANY),
    "pivot_root": ({E.EFAULT}, E.EPERM, ADMIN),
    "fsopen": ({E.EFAULT}, E.EPERM, ADMIN),
    "fsconfig": ({E.EINVAL}, E.EPERM, ANY),
    "fsmount": ({E.EBADF}, E.EPERM, ADMIN),
    "fspick": ({E.EFAULT}, E.EPERM, ADMIN),
    "move_mount": ({E.EFAULT}, E.EPERM, ADMIN),
    "open_tree": ({E.EINVAL}, E.EPERM, ANY),
    "mount_setattr": ({E.EINVAL}, E.EPERM, ANY),
    "unshare": ({E.EINVAL}, E.EPERM, ANY),
    "setns": ({E.EBADF}, E.EPERM, ANY),
    "clone3": ({E.EFAULT}, E.ENOSYS, ANY),
    "clone_NEWNS": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWCGROUP": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWUTS": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWIPC": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWUSER": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWPID": ({E.EINVAL}, E.EPERM, ANY),
    "clone_NEWNET": ({E.EINVAL}, E.EPERM, ANY),
    "clone_plain_invalid": ({E.EINVAL}, E.EINVAL, ALLOWED),
    "ptrace": ({E.ESRCH}, E.EPERM, ANY),
    "process_vm_readv": ({E.EFAULT}, E.EPERM, ANY),
    "process_vm_writev": ({E.EFAULT}, E.EPERM, ANY),
    "kcmp": ({E.EINVAL}, E.EPERM, ANY),
    "pidfd_getfd": ({E.EBADF}, E.EPERM, ANY),
    "process_madvise": ({E.EFAULT, E.EBADF}, E.EPERM, ANY),
    # ENOSYS: a kernel without NUMA (CONFIG_NUMA), LDT, secretmem (needs
    # secretmem.enable on older kernels) or the legacy calls, which are
    # gone from recent kernels: the filter still answers EPERM first.
    "move_pages": ({E.EFAULT, E.ENOSYS}, E.EPERM, ANY),
    "migrate_pages": ({E.EFAULT, E.ENOSYS}, E.EPERM, ANY),
    "seccomp_listener": ({E.EFAULT}, E.EPERM, ANY),
    "seccomp_filter": ({E.EFAULT}, E.EFAULT, ALLOWED),
    # modify_ldt returns its error as an unsigned int (an old ABI quirk):
    # reaching the kernel looks like success; the filter's EPERM does not.
    "modify_ldt": ({0, E.ENOSYS}, E.EPERM, ANY),
    "fanotify_init": ({E.EINVAL}, E.EPERM, INITCAP),  # unprivileged: FAN_REPORT_FID only
    "memfd_secret": ({E.EINVAL, E.ENOSYS}, E.EPERM, ANY),
    "ioperm": ({E.EINVAL, E.ENOSYS}, E.EPERM, ANY),
    "iopl": ({E.EINVAL, E.ENOSYS}, E.EPERM, ANY),
    "uselib": ({E.EFAULT, E.ENOSYS}, E.EPERM, ANY),
    "ustat": ({E.EINVAL, E.ENOSYS}, E.EPERM, ANY),
    "sysfs": ({E.EINVAL, E.ENOSYS}, E.EPERM, ANY),
    "_sysctl": ({E.ENOSYS}, E.EPERM, ANY),
    "lookup_dcookie": ({E.ENOSYS, E.EPERM}, E.EPERM, INITCAP),
    "nfsservctl": ({E.ENOSYS}, E.EPERM, ANY),
    "create_module": ({E.ENOSYS}, E.EPERM, ANY),
    "get_kernel_syms": ({E.ENOSYS}, E.EPERM, ANY),
    "query_module": ({E.ENOSYS}, E.EPERM, ANY),
    "bpf": ({E.EFAULT}, E.EPERM, INITCAP),  # unprivileged_bpf_disabled: EPERM first
    "perf_event_open": ({E.EFAULT}, E.EPERM, ANY),
    "userfaultfd": ({E.EINVAL}, E.EPERM, ANY),
    "io_uring_setup": ({E.EFAULT}, E.EPERM, ANY),
    "io_uring_enter": ({E.EBADF}, E.EPERM, ANY),
    "io_uring_register": ({E.EBADF}, E.EPERM, ANY),
    "keyctl": ({E.EOPNOTSUPP}, E.EPERM, ANY),
    "add_key": ({E.EFAULT}, E.EPERM, ANY),
    "request_key": ({E.EFAULT}, E.EPERM, ANY),
    # ENOSYS: a kernel built without CONFIG_KEXEC(_FILE) / CONFIG_MODULES
    # (this host); otherwise root reaches the argument check.
    "kexec_load": ({E.ENOSYS, E.EINVAL}, E.EPERM, INITCAP),
    "kexec_file_load": ({E.ENOSYS, E.EINVAL}, E.EPERM, INITCAP),
    "init_module": ({E.ENOSYS, E.ENOEXEC}, E.EPERM, INITCAP),
    "finit_module": ({E.ENOSYS, E.EBADF}, E.EPERM, INITCAP),
    "delete_module": ({E.ENOSYS, E.EFAULT}, E.EPERM, INITCAP),
    "acct": ({E.EFAULT}, E.EPERM, INITCAP),
    "swapon": ({E.EINVAL}, E.EPERM, ANY),
    "swapoff": ({E.EFAULT}, E.EPERM, INITCAP),
    "reboot": ({E.EINVAL}, E.EPERM, INITCAP),
    "syslog": ({E.EINVAL}, E.EPERM, INITCAP),
    "quotactl": ({E.EINVAL}, E.EPERM, ANY),
    "quotactl_fd": ({E.EBADF}, E.EPERM, ANY),
    "settimeofday": ({E.EFAULT}, E.EPERM, ANY),
    "clock_settime": ({E.EFAULT}, E.EPERM, ANY),
    "clock_adjtime": ({E.EFAULT}, E.EPERM, ANY),
    "adjtimex": ({E.EFAULT}, E.EPERM, ANY),
    "open_by_handle_at": ({E.EFAULT}, E.EPERM, INITCAP),  # CAP_DAC_READ_SEARCH first (6.1)
    "name_to_handle_at": ({E.EFAULT}, E.EPERM, ANY),
    "personality_set": ({0}, E.EPERM, ANY),
    "personality_query": ({0}, 0, ALLOWED),
    "ioctl_TIOCSTI": ({E.ENOTTY}, E.EPERM, ANY),
    "ioctl_TIOCSTI_high_bits": ({E.ENOTTY}, E.EPERM, ANY),
    "ioctl_TIOCLINUX": ({E.ENOTTY}, E.EPERM, ANY),
    "ioctl_FIONREAD": ({E.EFAULT}, E.EFAULT, ALLOWED),
    "socket_AF_NETLINK": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_PACKET": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_VSOCK": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_KEY": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_ALG": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_UNSPEC": ({E.EINVAL}, E.EPERM, ANY),
    "socket_AF_INET": ({E.EINVAL}, E.EINVAL, ALLOWED),
    "socket_AF_INET6": ({E.EINVAL}, E.EINVAL, ALLOWED),
    "socket_AF_UNIX": ({E.EINVAL}, E.EINVAL, ALLOWED),
    "socketpair_AF_NETLINK": ({E.EINVAL}, E.EPERM, ANY),
    "socketpair_AF_UNIX": ({E.EINVAL}, E.EINVAL, ALLOWED),
}
if DEGRADED:
    # Without namespaces the filter stands in: no inet socket (no network
    # in the policy) and no unix socket (the host's are in reach); the
    # probes then meet the filter first (SPEC §7 "Degraded mode").
    for _probe in ("socket_AF_INET", "socket_AF_INET6", "socket_AF_UNIX"):
        PROBES[_probe] = ({E.EINVAL}, E.EPERM, ANY)

PROBE_BODY = "result = run_probes()\n"


def name(e):
    return "OK" if e == 0 else E.errorcode[e]


class SeccompProbes(HostileCase):
    """One test per probe; the three runs (control, control in an own user
    namespace when unprivileged, sandboxed) are shared."""

    @classmethod
    def setUpClass(cls):
        helper = HostileCase()
        cls.control_result = helper.control(PROBE_BODY)
        cls.admin_result = (cls.control_result if IS_ROOT
                            else helper.control(PROBE_BODY, userns=True))
        cls.sandbox_result = helper.sandboxed(PROBE_BODY)

    def test_probe_table_is_complete(self):
        self.assertEqual(sorted(self.sandbox_result), sorted(PROBES))
        self.assertEqual(sorted(self.control_result), sorted(PROBES))

    def check(self, probe):
        reached, inside, kind = PROBES[probe]
        reached_names = sorted(name(e) for e in reached)
        got_control = self.control_result[probe]
        if kind == ADMIN and not IS_ROOT:
            # the kernel's own CAP_SYS_ADMIN check comes first ...
            self.assertEqual(got_control, "EPERM", f"{probe}: plain unprivileged control")
            # ... and in the caller's own namespaces the call reaches its argument check
            self.assertIn(self.admin_result[probe], reached_names,
                          f"{probe}: control in an own user+mount namespace")
        elif kind == INITCAP and not IS_ROOT and got_control not in reached_names:
            # only the initial namespace's root may make this call: the kernel
            # refuses it first; the root run of this suite shows it reaching
            self.assertEqual(got_control, "EPERM", f"{probe}: unprivileged control")
        else:
            self.assertIn(got_control, reached_names, f"{probe}: control on the host")
        self.assertEqual(self.sandbox_result[probe], name(inside), f"{probe}: inside the sandbox")


def _make_probe_test(probe):
    def test(self):
        self.check(probe)
    test.__doc__ = f"{probe}: control {sorted(name(e) for e in PROBES[probe][0])}, " \
                   f"sandboxed {name(PROBES[probe][1])}"
    return test


for _p in PROBES:
    setattr(SeccompProbes, f"test_{_p}", _make_probe_test(_p))


REAL_ATTACKS = r'''
import ctypes, os, socket, time
out = {}

def unshare_user():
    return try_syscall("unshare", CLONE_NEWUSER)
out["unshare_CLONE_NEWUSER"] = in_child(unshare_user)

def mount_tmpfs():
    # on the host: a user+mount namespace of its own first (never the
    # host's mount table); inside, straight onto /tmp
    try_syscall("unshare", CLONE_NEWUSER | CLONE_NEWNS)  # inside: EPERM, and on we go
    tgt = ctypes.create_string_buffer(os.getcwd().encode())
    fst = ctypes.create_string_buffer(b"tmpfs")
    return try_syscall("mount", ctypes.addressof(fst), ctypes.addressof(tgt),
                       ctypes.addressof(fst), 0, 0)
out["mount_tmpfs"] = in_child(mount_tmpfs)

def ptrace_attach_own_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    try:
        return try_syscall("ptrace", 16, pid, 0, 0)  # PTRACE_ATTACH
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
out["ptrace_attach_own_child"] = ptrace_attach_own_child()

def fd_call(nr, *args):
    r, e = raw_syscall(nr, *args)
    if e == 0:
        os.close(r)
    return errname(e)
out["userfaultfd_user_mode"] = fd_call("userfaultfd", 1 | 0x80000)  # UFFD_USER_MODE_ONLY|O_CLOEXEC
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
out["io_uring_setup"] = fd_call("io_uring_setup", 4, ctypes.addressof(params))
# KEYCTL_GET_KEYRING_ID of the process keyring, creating it
r, e = raw_syscall("keyctl", 0, -2, 1, 0, 0)
out["keyctl_process_keyring"] = errname(e)
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    s.close()
    out["socket_netlink_route"] = "OK"
except OSError as x:
    out["socket_netlink_route"] = errname(x.errno)
result = out
'''

INT80 = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
page = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # RWX, MAP_PRIVATE|MAP_ANONYMOUS
assert page not in (None, ctypes.c_void_p(-1).value), "mmap failed"
# mov eax, 20 (i386 getpid); int 0x80; ret
code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])
ctypes.memmove(page, code, len(code))
fn = ctypes.CFUNCTYPE(ctypes.c_int)(page)
print("before int 0x80", flush=True)
got = fn()
print("after int 0x80", flush=True)
result = {"int80_getpid": got, "getpid": os.getpid()}
'''


# An x32 call: the x86_64 entry point with __X32_SYSCALL_BIT set in the
# number (getpid). The filter must not mistake it for the native call.
X32 = r'''
import os
print("before x32", flush=True)
r, e = raw_syscall((1 << 30) | NR["getpid"])
print("after x32", flush=True)
result = {"x32_getpid": r, "errno": errname(e), "getpid": os.getpid()}
'''


class RealAttacks(HostileCase):
    """The calls used for real (not just probed): on the host each succeeds,
    inside each is refused by the filter."""

    def test_real_attacks(self):
        ctl = self.control(REAL_ATTACKS)
        self.assertEqual(ctl, {k: "OK" for k in ctl}, "every attack works on the host")
        self.assertEqual(sorted(ctl), ["io_uring_setup", "keyctl_process_keyring",
                                       "mount_tmpfs", "ptrace_attach_own_child",
                                       "socket_netlink_route", "unshare_CLONE_NEWUSER",
                                       "userfaultfd_user_mode"])
        inside = self.sandboxed(REAL_ATTACKS)
        self.assertEqual(inside, {k: "EPERM" for k in ctl})

    def test_int80_32bit_syscall_kills_the_run(self):
        run = self.control_raw_int80()
        if run.returncode == -signal.SIGSEGV:
            self.skipTest("this kernel has no IA32 emulation: int 0x80 faults (SIGSEGV) "
                          "everywhere, so there is no 32-bit syscall to filter")
        self.assertEqual(run.returncode, 0, run)
        self.assertEqual(run.result["int80_getpid"], run.result["getpid"], run)
        self.assertKilledBySigsys(self.sandboxed_run(INT80), "before int 0x80\n")

    def test_x32_syscall_kills_the_run(self):
        ctl = self.control(X32)
        # the call reaches the kernel: ENOSYS where the x32 ABI is not built
        # in (CONFIG_X86_X32_ABI, this host), else the pid
        if ctl["errno"] == "OK":
            self.assertEqual(ctl["x32_getpid"], ctl["getpid"], ctl)
        else:
            self.assertEqual(ctl, dict(ctl, x32_getpid=-1, errno="ENOSYS"))
        self.assertKilledBySigsys(self.sandboxed_run(X32), "before x32\n")

    def assertKilledBySigsys(self, r, stdout):
        """The filter's bad-arch action killed the run at the call."""
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["exit_code"], 159, r)  # 128 + SIGSYS
        self.assertEqual(r["error"], "Killed by signal 31 (SIGSYS)", r)
        self.assertFalse(r["resource_exceeded"], r)
        self.assertIsNone(r["result"], r)
        self.assertEqual(r["stdout"], stdout, r)  # the code ran up to the call
        self.assertEqual(r.returncode, 159, r)

    def control_raw_int80(self):
        from hostile.harness import run_direct_raw
        return run_direct_raw(INT80)
