"""Executing code from memory: an ELF written into a memfd and run with
execve/fexecve. noexec mounts do not cover a memfd, nor does Landlock
(the memfd filesystem is internal), and glibc's fexecve falls back to
/proc/self/fd/N, so a seccomp rule on execveat would not either. As root,
spr sets vm.memfd_noexec=2 in each run's pid namespace: memfds are made
non-executable. Rootless callers cannot (only the host's root may write
it): there the filter refuses memfd_create without MFD_NOEXEC_SEAL.
Either way isolation says memfd_exec "refused" (SPEC §7).
"""
import os
import unittest

from hostile.harness import DEGRADED, IN_CONTAINER, IS_ROOT, HostileCase

# vm.memfd_noexec (Linux 6.3): as root the sandbox sets it in its pid
# namespace; without it the filter refuses creating the memfd instead.
MEMFD_NOEXEC_SYSCTL = os.path.exists("/proc/sys/vm/memfd_noexec")

BODY = r'''
import ctypes, os
with open("/usr/bin/true", "rb") as f:
    elf = f.read()
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for how in ("execve_fd", "fexecve", "proc_self_fd", "mfd_exec"):
    try:
        flags = 0x10 if how == "mfd_exec" else 0  # MFD_EXEC
        fd = os.memfd_create("payload", flags)
    except OSError as e:
        out[how] = "create " + errname(e.errno)
        continue
    os.write(fd, elf)
    pid = os.fork()
    if pid == 0:
        try:
            if how == "fexecve":
                argv = (ctypes.c_char_p * 2)(b"true", None)
                envp = (ctypes.c_char_p * 1)(None)
                libc.fexecve(fd, argv, envp)
                os._exit(100 + ctypes.get_errno())
            path = "/proc/self/fd/%d" % fd if how == "proc_self_fd" else fd
            os.execve(path, ["true"], {})
        except OSError as e:
            os._exit(100 + e.errno)
        os._exit(99)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    out[how] = "ran" if code == 0 else errname(code - 100) if code > 100 else str(code)
    os.close(fd)
result = out
'''


class MemfdExec(HostileCase):

    def test_memfd_code_runs_on_the_host_not_inside(self):
        control = self.control(BODY)
        self.assertEqual(control["execve_fd"], "ran", control)
        self.assertEqual(control["fexecve"], "ran", control)
        self.assertEqual(control["proc_self_fd"], "ran", control)
        run = self.sandboxed_run(BODY)
        self.assertTrue(run["ok"], run)
        inside = run["result"]
        self.assertEqual(run["isolation"]["memfd_exec"], "refused", run)
        for how in ("execve_fd", "fexecve", "proc_self_fd"):
            # root: the memfd is made, not executable; rootless: not made
            # (degraded there is no pid namespace to set vm.memfd_noexec in:
            # the filter refuses the memfd, as rootless)
            # (in a container, as rootless, or on a kernel without the
            # sysctl (before 6.3): the filter's variant refuses it)
            self.assertEqual(inside[how], "EACCES" if IS_ROOT and not DEGRADED
                             and not IN_CONTAINER and MEMFD_NOEXEC_SYSCTL
                             else "create EPERM", inside)
        # Asking for an executable memfd outright is refused too.
        self.assertNotEqual(inside["mfd_exec"], "ran", inside)


if __name__ == "__main__":
    unittest.main()
