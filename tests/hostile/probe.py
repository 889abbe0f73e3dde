"""A try-syscall probe in Python (after bubblewrap's tests/try-syscall.c).

This file's source is prepended to every hostile script, so it runs both
directly on the host (the control) and inside the sandbox. It must work on
a bare interpreter started with -I -S and import nothing but the stdlib.

Why a probe: a blocked call and a call that failed for another reason can
look alike. Each probe passes arguments that make the kernel fail the call
with a *distinct* errno once the call reaches it (a bad pointer gives
EFAULT, a bad descriptor EBADF, bad flags EINVAL, ...), while the seccomp
filter answers EPERM (ENOSYS for clone3) without looking at them. So:

    reached the kernel: EFAULT, EBADF, EINVAL, ENOTTY, ESRCH, ...
    stopped by the filter: EPERM (ENOSYS for clone3)

Syscall numbers are x86_64's (the only architecture spr targets).
"""
import ctypes as _ct
import errno as _errno
import os as _os

_libc = _ct.CDLL(None, use_errno=True)
_libc.syscall.restype = _ct.c_long

# A non-canonical address (bits 12..59 set, 60..63 clear): never user
# memory, so every kernel copy from or to it fails with EFAULT.
BAD = 0xFFFFFFFFFFFF000

NR = {
    "ioctl": 16, "getpid": 39, "socket": 41, "socketpair": 53, "clone": 56,
    "kill": 62, "ptrace": 101, "syslog": 103, "personality": 135,
    "pivot_root": 155, "adjtimex": 159, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "sethostname": 170, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "clock_settime": 227,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "memfd_create": 319, "kexec_file_load": 320,
    "bpf": 321, "execveat": 322, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "clone3": 435, "mount_setattr": 442,
    "quotactl_fd": 443, "pidfd_getfd": 438,
    "uselib": 134, "ustat": 136, "sysfs": 139, "modify_ldt": 154, "_sysctl": 156,
    "iopl": 172, "ioperm": 173, "create_module": 174, "get_kernel_syms": 177,
    "query_module": 178, "nfsservctl": 180, "lookup_dcookie": 212, "migrate_pages": 256,
    "move_pages": 279, "fanotify_init": 300, "seccomp": 317, "process_madvise": 440,
    "memfd_secret": 447,
}

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x08000000, 0x10000000, 0x20000000
CLONE_NEWNET, CLONE_THREAD = 0x40000000, 0x00010000
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER = 1, 8
TIOCSTI, TIOCLINUX, FIONREAD = 0x5412, 0x541C, 0x541B
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
AF_KEY, AF_NETLINK, AF_PACKET, AF_ALG, AF_VSOCK = 15, 16, 17, 38, 40
SOCK_RAW = 3
BAD_SOCK_TYPE = 0x10  # a flag bit socket() refuses (EINVAL) before the family


def raw_syscall(nr, *args):
    """(return value, errno): errno is 0 when the call succeeded."""
    if isinstance(nr, str):
        nr = NR[nr]
    _ct.set_errno(0)
    r = _libc.syscall(_ct.c_long(nr), *[_ct.c_ulong(a & 0xFFFFFFFFFFFFFFFF) for a in args])
    return r, (_ct.get_errno() if r == -1 else 0)


def errname(e):
    return "OK" if e == 0 else _errno.errorcode.get(e, str(e))


def try_syscall(nr, *args):
    """The errno name of the call ("OK" when it succeeded; a returned
    descriptor is closed)."""
    r, e = raw_syscall(nr, *args)
    return errname(e)


def probe_table(pipe_fd):
    """name -> (syscall, args). The arguments make each call fail inside the
    kernel with a distinct errno; see the test module for what each gives."""
    me = _os.getpid()
    t = {
        # the mount family
        "mount": ("mount", BAD, BAD, BAD, 0, BAD),
        "umount2": ("umount2", BAD, 0),
        "chroot": ("chroot", BAD),
        "pivot_root": ("pivot_root", BAD, BAD),
        "fsopen": ("fsopen", BAD, 0),
        "fsconfig": ("fsconfig", -1, 0, 0, 0, 0),
        "fsmount": ("fsmount", -1, 0, 0),
        "fspick": ("fspick", -1, BAD, 0),
        "move_mount": ("move_mount", -1, BAD, -1, BAD, 0),
        "open_tree": ("open_tree", -1, BAD, 0xFFFFFFFF),
        "mount_setattr": ("mount_setattr", -1, BAD, 0xFFFFFFFF, BAD, 32),
        # namespaces
        "unshare": ("unshare", 0x1),
        "setns": ("setns", -1, 0),
        "clone3": ("clone3", BAD, 88),
        # other processes' memory
        "ptrace": ("ptrace", 16, 0x3FFFFFF0, 0, 0),  # PTRACE_ATTACH, no such pid
        "process_vm_readv": ("process_vm_readv", me, BAD, 1, BAD, 1, 0),
        "process_vm_writev": ("process_vm_writev", me, BAD, 1, BAD, 1, 0),
        "kcmp": ("kcmp", me, me, 99, 0, 0),
        "pidfd_getfd": ("pidfd_getfd", -1, 0, 0),  # no such pidfd
        # kernel attack surface
        "bpf": ("bpf", 0, BAD, 64),
        "perf_event_open": ("perf_event_open", BAD, 0, -1, -1, 0),
        "userfaultfd": ("userfaultfd", 1 | 4),  # UFFD_USER_MODE_ONLY + a bad flag
        "io_uring_setup": ("io_uring_setup", 1, BAD),
        "io_uring_enter": ("io_uring_enter", -2, 0, 0, 0, 0, 0),
        "io_uring_register": ("io_uring_register", -2, 0, 0, 0),
        "keyctl": ("keyctl", 0x7FFF, 0, 0, 0, 0),
        "add_key": ("add_key", BAD, BAD, 0, 0, 0),
        "request_key": ("request_key", BAD, BAD, 0, 0),
        "kexec_load": ("kexec_load", 0, 0, 0, 0xFFFF0000),
        "kexec_file_load": ("kexec_file_load", -1, -1, 0, 0, 0xFFFF0000),
        "init_module": ("init_module", BAD, 0, BAD),
        "finit_module": ("finit_module", -1, BAD, 0),
        "delete_module": ("delete_module", BAD, 0),
        # others' pages, seccomp listeners, LDT, fanotify, secret memory
        "process_madvise": ("process_madvise", -1, BAD, 1, 0, 0),
        "move_pages": ("move_pages", 0, 1, BAD, 0, BAD, 0),
        "migrate_pages": ("migrate_pages", 0, 64, BAD, BAD),
        "seccomp_listener": ("seccomp", SECCOMP_SET_MODE_FILTER,
                             SECCOMP_FILTER_FLAG_NEW_LISTENER, BAD),
        "seccomp_filter": ("seccomp", SECCOMP_SET_MODE_FILTER, 0, BAD),  # allowed: EFAULT
        "modify_ldt": ("modify_ldt", 1, BAD, 16),  # write an entry from unreadable memory
        "fanotify_init": ("fanotify_init", 0, 0xFFFFFFFF),  # bad event flags
        "memfd_secret": ("memfd_secret", 0xFFFFFFFF),
        "ioperm": ("ioperm", 0x10000, 1, 0),  # past the last port
        "iopl": ("iopl", 4),  # no such level
        "uselib": ("uselib", BAD),
        "ustat": ("ustat", 0, BAD),
        "sysfs": ("sysfs", 99),
        "_sysctl": ("_sysctl", BAD),
        "lookup_dcookie": ("lookup_dcookie", 0, BAD, 0),
        "nfsservctl": ("nfsservctl", 0, BAD, BAD),
        "create_module": ("create_module", BAD, 0),
        "get_kernel_syms": ("get_kernel_syms", BAD),
        "query_module": ("query_module", BAD, 0, BAD, 0, BAD),
        # host-wide state
        "acct": ("acct", BAD),
        "swapon": ("swapon", BAD, 0xFFFFFFFF),
        "swapoff": ("swapoff", BAD),
        "reboot": ("reboot", 0, 0, 0, 0),  # wrong magic: EINVAL, never a reboot
        "syslog": ("syslog", 1000, 0, 0),
        "quotactl": ("quotactl", 0xFF, BAD, 0, BAD),
        "quotactl_fd": ("quotactl_fd", -1, 0xFF, 0, BAD),
        "settimeofday": ("settimeofday", BAD, 0),
        "clock_settime": ("clock_settime", 0, BAD),
        "clock_adjtime": ("clock_adjtime", 0, BAD),
        "adjtimex": ("adjtimex", BAD),
        "open_by_handle_at": ("open_by_handle_at", -1, BAD, 0),
        "name_to_handle_at": ("name_to_handle_at", -100, BAD, BAD, BAD, 0),
        "personality_set": ("personality", 0),
        "personality_query": ("personality", 0xFFFFFFFF),
        # terminal injection: a pipe is no tty (ENOTTY) but the filter
        # answers first; it compares the low 32 bits of the request
        "ioctl_TIOCSTI": ("ioctl", pipe_fd, TIOCSTI, BAD),
        "ioctl_TIOCSTI_high_bits": ("ioctl", pipe_fd, TIOCSTI | (1 << 32), BAD),
        "ioctl_TIOCLINUX": ("ioctl", pipe_fd, TIOCLINUX, BAD),
        "ioctl_FIONREAD": ("ioctl", pipe_fd, FIONREAD, BAD),  # allowed: EFAULT
        # socket families
        "socket_AF_NETLINK": ("socket", AF_NETLINK, BAD_SOCK_TYPE, 0),
        "socket_AF_PACKET": ("socket", AF_PACKET, BAD_SOCK_TYPE, 0),
        "socket_AF_VSOCK": ("socket", AF_VSOCK, BAD_SOCK_TYPE, 0),
        "socket_AF_KEY": ("socket", AF_KEY, BAD_SOCK_TYPE, 0),
        "socket_AF_ALG": ("socket", AF_ALG, BAD_SOCK_TYPE, 0),
        "socket_AF_UNSPEC": ("socket", AF_UNSPEC, BAD_SOCK_TYPE, 0),
        "socket_AF_INET": ("socket", AF_INET, BAD_SOCK_TYPE, 0),  # allowed
        "socket_AF_INET6": ("socket", AF_INET6, BAD_SOCK_TYPE, 0),  # allowed
        "socket_AF_UNIX": ("socket", AF_UNIX, BAD_SOCK_TYPE, 0),  # allowed
        "socketpair_AF_NETLINK": ("socketpair", AF_NETLINK, BAD_SOCK_TYPE, 0, BAD),
        "socketpair_AF_UNIX": ("socketpair", AF_UNIX, BAD_SOCK_TYPE, 0, BAD),  # allowed
    }
    for flag, name in ((CLONE_NEWNS, "NEWNS"), (CLONE_NEWCGROUP, "NEWCGROUP"),
                       (CLONE_NEWUTS, "NEWUTS"), (CLONE_NEWIPC, "NEWIPC"),
                       (CLONE_NEWUSER, "NEWUSER"), (CLONE_NEWPID, "NEWPID"),
                       (CLONE_NEWNET, "NEWNET")):
        # CLONE_THREAD without CLONE_SIGHAND: EINVAL before any child exists
        t["clone_" + name] = ("clone", flag | CLONE_THREAD, 0, 0, 0, 0)
    t["clone_plain_invalid"] = ("clone", CLONE_THREAD, 0, 0, 0, 0)  # allowed: EINVAL
    return t


def run_probes(names=None):
    """Runs the probe table; returns {name: errno name}."""
    r, w = _os.pipe()
    try:
        table = probe_table(r)
        out = {}
        for name, (nr, *args) in table.items():
            if names is None or name in names:
                out[name] = try_syscall(nr, *args)
        return out
    finally:
        _os.close(r)
        _os.close(w)


def in_child(fn):
    """Runs fn() in a forked child (for calls that change the caller, like
    unshare); returns what it returned (a small int/str via a pipe)."""
    r, w = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        try:
            _os.close(r)
            val = str(fn())
        except BaseException as e:  # noqa: BLE001 - report anything
            val = "exception " + type(e).__name__ + ": " + str(e)
        _os.write(w, val.encode())
        _os._exit(0)
    _os.close(w)
    data = b""
    while True:
        chunk = _os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    _os.close(r)
    _os.waitpid(pid, 0)
    return data.decode()
