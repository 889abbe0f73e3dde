"""Per-user kernel budgets (issue: a run exhausting host root's).

The kernel charges inotify instances, queued signals and POSIX message
queue bytes to the user who owns the user namespace, up the chain of
owners. A run whose namespace root created would use up root's budgets
host-wide while it lives. As root, spr creates each run's namespaces with
a host uid leased for that run (core/uid_lease.h), so a run can use up
only its own.

Each case takes a whole budget and holds it; meanwhile a fresh host
process as root takes one more of the same. The control holds it in a
user namespace that root owns (`unshare --user --map-root-user --ipc`,
what the sandbox was before) and root's attempt fails; through spr-run
root's attempt succeeds. Rootless callers' runs are their own uid's by
design (SPEC §4), so the suite is root's.
"""
import json
import shutil
import subprocess
import tempfile
import time
import unittest

from hostile.harness import HOST_PYTHON, IS_ROOT, HostileCase, run_direct_raw, script
from integration.common import (DEGRADED, DEGRADED_ARGS, DEGRADED_PREFIX, PERMISSIVE, SPR_RUN,
                                write_policy)

# Takes everything of one budget, says so on stdout, holds it for HOLD s.
TAKE = r'''
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
kind = input_data["kind"]
held = []
if kind == "inotify":
    while True:
        fd = libc.inotify_init1(0)
        if fd < 0:
            break
        held.append(fd)
elif kind == "signals":
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
    class Val(ctypes.Union):
        _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
    while len(held) < 10**7:
        if libc.sigqueue(os.getpid(), signal.SIGRTMIN, Val(0)) != 0:
            break
        held.append(1)
elif kind == "mqueue":
    rt = ctypes.CDLL("librt.so.1", use_errno=True)
    class Attr(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                    ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]
    attr = Attr(0, 10, 8192, 0)
    while len(held) < 4096:
        q = rt.mq_open(("/spr-budget-%d" % len(held)).encode(), os.O_CREAT | os.O_RDWR, 0o600,
                       ctypes.byref(attr))
        if q < 0:
            break
        held.append(q)
errno_at_end = ctypes.get_errno()
print("held", len(held), flush=True)
time.sleep(input_data["hold"])
result = {"held": len(held), "errno": errno_at_end}
'''

# One more of the same kind, by host root, in a fresh process.
PROBE = {
    "inotify": "import ctypes; l = ctypes.CDLL(None, use_errno=True); "
               "print(0 if l.inotify_init1(0) >= 0 else ctypes.get_errno())",
    "signals": "import ctypes, os, signal; l = ctypes.CDLL(None, use_errno=True); "
               "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN]); "
               "print(0 if l.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0)) == 0 "
               "else ctypes.get_errno())",
    "mqueue": "import ctypes, os\n"
              "rt = ctypes.CDLL('librt.so.1', use_errno=True)\n"
              "class A(ctypes.Structure):\n"
              "    _fields_ = [('f', ctypes.c_long), ('m', ctypes.c_long), ('s', ctypes.c_long),"
              " ('c', ctypes.c_long), ('p', ctypes.c_long * 4)]\n"
              "a = A(0, 10, 8192, 0)\n"
              "name = b'/spr-budget-probe-%d' % os.getpid()\n"
              "q = rt.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(a))\n"
              "print(0 if q >= 0 else ctypes.get_errno())\n"
              "q >= 0 and rt.mq_unlink(name)\n",
}

HOLD = 6


def host_root_attempt(kind):
    out = subprocess.run([HOST_PYTHON, "-I", "-S", "-c", PROBE[kind]], capture_output=True,
                         text=True, timeout=30)
    return int(out.stdout.strip())


@unittest.skipUnless(IS_ROOT, "rootless runs use the caller's own budgets by design")
class Budgets(HostileCase):

    def hold(self, popen):
        """Waits for the holder's 'held N' line; returns N."""
        line = popen.stdout.readline().decode()
        if not line.startswith("held "):  # (stderr read only then: it blocks until the end)
            self.fail(line + popen.stderr.read().decode())
        return int(line.split()[1])

    def control(self, kind):
        # Root-owned user, mount and IPC namespaces: the budgets are root's.
        proc, tmp = run_direct_raw(TAKE, {"kind": kind, "hold": HOLD}, popen=True,
                                   prefix=("unshare", "--user", "--map-root-user", "--ipc"))
        try:
            held = self.hold(proc)
            return held, host_root_attempt(kind)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def sandboxed_attempt(self, kind):
        with tempfile.TemporaryDirectory() as d:
            code = script(TAKE)
            path = f"{d}/case.py"
            with open(path, "w") as f:
                f.write(code)
            proc = subprocess.Popen([*DEGRADED_PREFIX, SPR_RUN, *DEGRADED_ARGS, "--json",
                                     "--policy", write_policy(PERMISSIVE, d),
                                     "--timeout", str(HOLD * 4), "--input",
                                     json.dumps({"kind": kind, "hold": HOLD}), path],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                # spr-run prints the code's stdout only at the end with --json:
                # watch the holder's effect instead, by polling the host.
                deadline = time.monotonic() + HOLD - 1
                seen = 0
                while time.monotonic() < deadline:
                    seen = host_root_attempt(kind)
                    if seen:
                        break
                    time.sleep(0.2)
                out, err = proc.communicate(timeout=HOLD * 6)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        run = json.loads(out)
        self.assertTrue(run["ok"], run)
        return run["result"]["held"], seen, run

    def check(self, kind, errnum, refused_inside=None):
        held, attempt = self.control(kind)
        self.assertGreater(held, 0)
        self.assertEqual(attempt, errnum, f"{kind}: the control must exhaust root's budget")
        # The kernel frees a dead namespace's objects (the control's message
        # queues) a little later: root's budget must be back first.
        deadline = time.monotonic() + 30
        while host_root_attempt(kind) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(host_root_attempt(kind), 0, f"{kind}: root's budget did not come back")
        held, attempt, run = self.sandboxed_attempt(kind)
        if refused_inside is None or run["result"]["errno"] != refused_inside:
            self.assertGreater(held, 0, run)
        self.assertEqual(attempt, 0, f"{kind}: root lost its budget to a run ({held} held)")
        self.assertGreaterEqual(run["isolation"]["host_uid"], 1)
        self.assertNotEqual(run["isolation"]["host_uid"], 0)

    def test_inotify_instances(self):
        self.check("inotify", 24)  # EMFILE

    def test_queued_signals(self):
        self.check("signals", 11)  # EAGAIN

    def test_posix_message_queue_bytes(self):
        # EMFILE: RLIMIT_MSGQUEUE. Inside, creating a queue may be refused
        # outright (EACCES: Landlock allows creating files only under the
        # writable paths, and a queue is a file of the mqueue filesystem).
        # Degraded (no IPC namespace), the filter refuses queues (EPERM).
        self.check("mqueue", 24, refused_inside=1 if DEGRADED else 13)


if __name__ == "__main__":
    unittest.main()
