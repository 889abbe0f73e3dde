"""The LocalEngine's warm pool: sandboxes set up ahead of time, each used
by one run (docs/SPEC.md §4, DESIGN.md "Warm pool").

Runs go through tests/tools/batch (one engine for many runs, as a
long-lived caller holds it). Whether a run got a prepared sandbox is seen
from inside: its worker process is older than the request (it waited at
the read), which a sandbox set up for the run cannot be. Every property
is also checked against an engine without a pool, so a pool that silently
stopped preparing would fail here, not pass.
"""
import contextlib
import json
import os
import signal
import subprocess
import time
import unittest

from .common import BUILD, ENGINE, PERMISSIVE, SprTestCase, host_processes

BATCH = os.path.join(BUILD, "tests", "tools", "batch")
ENV = dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr"))

# How long the worker process has existed, in seconds (from inside).
AGE = """
import os as _os, time as _time
with open('/proc/self/stat') as _f:
    _start = int(_f.read().rsplit(')', 1)[1].split()[19]) / _os.sysconf('SC_CLK_TCK')
worker_age = _time.clock_gettime(_time.CLOCK_BOOTTIME) - _start
"""
PAUSE_MS = 1500
# A sandbox set up for the run is younger than this; a prepared one that
# waited through PAUSE_MS is older.
PREPARED_AGE = 1.0


def request(code, **policy):
    return {"code": AGE + code, "policy": dict(PERMISSIVE, **policy)}


def pause(ms=PAUSE_MS):
    return {"sleep_ms": ms}


def batch_args(requests, *args):
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    return [BATCH, "--engine", "local", *args], lines


def batch(requests, *args, timeout=300):
    argv, lines = batch_args(requests, *args)
    proc = subprocess.run(argv, input=lines, capture_output=True, text=True,
                          timeout=timeout, env=ENV)
    outputs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc, [o.get("result") or o for o in outputs]


@contextlib.contextmanager
def running_batch(requests, *args):
    """A batch whose first run is over and whose pool is being filled, for
    the test to act on meanwhile; killed if the test fails first."""
    argv, lines = batch_args(requests, *args)
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    proc.stdin.write(lines)
    proc.stdin.close()
    proc.stdin = None
    try:
        time.sleep(1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def descendants(root):
    """{pid: (argv, starttime)} of every live process below root."""
    procs = host_processes()
    children = {}
    for pid, (_, _, _, ppid) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = (procs[child][0], procs[child][2])
            todo.append(child)
    return found


def waiting_workers(root):
    """Pids of prepared workers below root (a worker whose run has not come)."""
    return [pid for pid, (argv, _) in descendants(root).items()
            if any("spr_worker" in a for a in argv)]


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@unittest.skipUnless(ENGINE == "local", "the LocalEngine's pool")
class WarmPool(SprTestCase):
    def assertAllOk(self, proc, results):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for r in results:
            self.assertTrue(r.get("ok"), r)

    def test_a_later_run_gets_a_prepared_sandbox(self):
        code = "result = worker_age"
        proc, results = batch([request(code), pause(), request(code)])
        self.assertAllOk(proc, results)
        self.assertGreater(results[1]["result"], PREPARED_AGE, results)
        # The control: without a pool the same run sets its sandbox up.
        proc, results = batch([request(code), pause(), request(code)], "--pool-size", "-1")
        self.assertAllOk(proc, results)
        self.assertLess(results[1]["result"], PREPARED_AGE, results)

    def test_nothing_crosses_from_one_run_to_the_next(self):
        first = r"""
import os, subprocess, sys, time
open('/tmp/left-behind', 'w').write('secret')
sys.spr_left_behind = True
sleeper = subprocess.Popen(['/bin/sleep', '60'], start_new_session=True)
result = {
    'own_file_seen': os.path.exists('/tmp/left-behind'),
    'own_sleeper_seen': os.path.exists(f'/proc/{sleeper.pid}'),
    'ns': [os.readlink(f'/proc/self/ns/{n}') for n in ('mnt', 'pid', 'net', 'ipc', 'uts')],
    'age': worker_age,
}
time.sleep(0.5)  # B's sandbox is set up meanwhile, next to this one
"""
        second = r"""
import os, sys
result = {
    'file_seen': os.path.exists('/tmp/left-behind'),
    'attribute_seen': hasattr(sys, 'spr_left_behind'),
    'processes': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
    'me': os.getpid(),
    'ns': [os.readlink(f'/proc/self/ns/{n}') for n in ('mnt', 'pid', 'net', 'ipc', 'uts')],
    'age': worker_age,
}
"""
        # A warm-up run first: A then runs on a prepared sandbox, and B's is
        # set up while A runs (both alive at once, so their namespaces
        # cannot share an inode number by reuse either).
        proc, results = batch([request("result = 0"), pause(), request(first), pause(),
                               request(second)])
        self.assertAllOk(proc, results)
        a, b = results[1]["result"], results[2]["result"]
        self.assertGreater(a["age"], PREPARED_AGE, a)
        # What run A left is real inside A ...
        self.assertTrue(a["own_file_seen"] and a["own_sleeper_seen"], a)
        # ... and run B, in a sandbox prepared while A ran, sees none of it.
        self.assertGreater(b["age"], PREPARED_AGE, b)
        self.assertFalse(b["file_seen"], b)
        self.assertFalse(b["attribute_seen"], b)
        self.assertEqual(b["processes"], [1, b["me"]], b)  # its init and itself
        for ns_a, ns_b in zip(a["ns"], b["ns"]):
            self.assertNotEqual(ns_a, ns_b)

    def test_a_run_cannot_reach_the_sandbox_prepared_next_to_it(self):
        # While A runs, the next sandbox is being set up (or waits). A kills
        # everything it can signal; B must still get a working prepared
        # sandbox.
        attack = r"""
import os, signal, time
time.sleep(0.5)  # the next sandbox is set up meanwhile
seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
try:
    os.kill(-1, signal.SIGKILL)  # every process A may signal, but itself
    signalled = 'some'
except ProcessLookupError:
    signalled = 'none'
result = {'seen': seen, 'me': os.getpid(), 'signalled': signalled}
"""
        proc, results = batch([request("result = 0"), pause(), request(attack), pause(),
                               request("result = worker_age")])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        results = results[1:]  # after the warm-up, A runs while B's sandbox is set up
        self.assertTrue(results[0]["ok"], results[0])  # A itself survives kill(-1)
        a = results[0]["result"]
        self.assertEqual(a["seen"], [1, a["me"]])  # its init and itself, nothing else
        self.assertEqual(a["signalled"], "none")  # init is exempt, nothing else is there
        self.assertTrue(results[1]["ok"], results[1])
        self.assertGreater(results[1]["result"], PREPARED_AGE, results[1])

    def test_a_run_with_another_policy_gets_its_own_sandbox(self):
        probe = r"""
interfaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
result = {'age': worker_age, 'interfaces': interfaces}
"""
        proc, results = batch([request(probe), pause(), request(probe, network=True), pause(),
                               request(probe, network=True)])
        self.assertAllOk(proc, results)
        loopback, host_cold, host_prepared = (r["result"] for r in results)
        self.assertEqual(loopback["interfaces"], ["lo"])
        self.assertEqual(results[0]["isolation"]["network"], "loopback")
        # The sandbox prepared for the first policy is not used for the
        # second (a loopback-only sandbox would show only lo) ...
        self.assertLess(host_cold["age"], PREPARED_AGE, host_cold)
        self.assertEqual(results[1]["isolation"]["network"], "host")
        self.assertNotEqual(host_cold["interfaces"], ["lo"])
        # ... and the next run of the second policy gets one made for it.
        self.assertGreater(host_prepared["age"], PREPARED_AGE, host_prepared)
        self.assertEqual(results[2]["isolation"]["network"], "host")
        self.assertNotEqual(host_prepared["interfaces"], ["lo"])

    def test_the_limits_are_the_runs_policy(self):
        hog = "block = bytearray(150 * 1024 * 1024)\nresult = worker_age"
        proc, results = batch([request("result = 1", memory_limit_mb=512), pause(),
                               request(hog, memory_limit_mb=64), pause(),
                               request(hog, memory_limit_mb=64), pause(),
                               request(hog, memory_limit_mb=512)])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(results[0]["ok"], results[0])
        for r in results[1:3]:
            self.assertTrue(r["resource_exceeded"], r)
            self.assertEqual(r["exit_code"], 137, r)
        self.assertTrue(results[3]["ok"], results[3])

    def test_the_timeout_counts_from_the_request(self):
        # The prepared sandbox waited longer than the timeout before the
        # request came: the run still gets its whole timeout ...
        sleepy = "import time\ntime.sleep(0.5)\nresult = worker_age"
        spin = "while True:\n    pass"
        proc, results = batch([request("result = 1", timeout_seconds=1), pause(2500),
                               request(sleepy, timeout_seconds=1), pause(),
                               request(spin, timeout_seconds=1)])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(results[1]["ok"], results[1])
        self.assertGreater(results[1]["result"], 2.0, results[1])
        # ... and no more than it.
        self.assertTrue(results[2]["timed_out"], results[2])
        self.assertEqual(results[2]["exit_code"], 124, results[2])
        self.assertGreaterEqual(results[2]["duration_ms"], 900, results[2])

    def test_a_prepared_sandbox_that_died_is_not_used(self):
        with running_batch([request("result = 1"), pause(3000),
                            request("result = worker_age")]) as proc:
            workers = wait_for(lambda: waiting_workers(proc.pid))
            self.assertEqual(len(workers), 1, descendants(proc.pid))
            os.kill(workers[0], signal.SIGKILL)
            out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        second = json.loads(out.splitlines()[1])["result"]
        self.assertTrue(second["ok"], second)
        self.assertLess(second["result"], PREPARED_AGE, second)  # set up anew

    def test_freeing_the_engine_ends_the_prepared_sandboxes(self):
        with running_batch([request("result = 1"), pause(3000), request("result = 2")],
                           "--pool-size", "2") as proc:
            self.assertEqual(len(wait_for(lambda: len(waiting_workers(proc.pid)) == 2
                                          and waiting_workers(proc.pid)) or []), 2)
            below = descendants(proc.pid)  # server, monitors, inits, workers
            out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        now = host_processes()
        alive = {pid: argv for pid, (argv, start) in below.items()
                 if pid in now and now[pid][2] == start}
        self.assertEqual(alive, {})

    def test_a_forked_caller_does_not_take_the_parents_sandboxes(self):
        from .common import LIBSPR_PRELUDE, libspr_program
        out = libspr_program(LIBSPR_PRELUDE, r'''
            def run(code):
                out, err = P(), P()
                req = json.dumps({"code": code, "policy": {"blocked_imports": [],
                                                           "blocked_builtins": []}}).encode()
                assert lib.spr_run_json(engine, req, len(req), ctypes.byref(out),
                                        ctypes.byref(err)) == 0
                r = json.loads(ctypes.string_at(out.value))
                lib.spr_free(out)
                return r["result"]
            AGE = "with open('/proc/self/stat') as f: s = int(f.read().rsplit(')', 1)[1].split()[19])\n"
            AGE += "import time as t, os as o\nresult = t.clock_gettime(t.CLOCK_BOOTTIME) - s / o.sysconf('SC_CLK_TCK')"
            run("result = 1")
            time.sleep(1.5)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(w, json.dumps(run(AGE)).encode())
                os._exit(0)
            os.close(w)
            child_age = json.loads(os.read(r, 4096))
            os.waitpid(pid, 0)
            print(json.dumps({"child_age": child_age, "parent_age": run(AGE)}))
        ''')
        self.assertLess(out["child_age"], 1.0, out)    # the child set its own up
        self.assertGreater(out["parent_age"], 1.0, out)  # the parent's was kept for it

    def test_a_fork_holding_the_sockets_does_not_keep_the_sandboxes(self):
        # The child inherits copies of the prepared sandbox's sockets and
        # holds them until it is killed; freeing the engine in the parent
        # must end the sandbox anyway (were it waiting for EOF, the free
        # would wait for the child, which waits for the parent: a hang).
        from .common import LIBSPR_PRELUDE, libspr_program
        out = libspr_program(LIBSPR_PRELUDE, r'''
            out, err = P(), P()
            req = b'{"code": "result = 1"}'
            assert lib.spr_run_json(engine, req, len(req), ctypes.byref(out),
                                    ctypes.byref(err)) == 0
            time.sleep(1)
            def workers():  # this process's descendants that are workers
                parent, last = {}, {}
                for p in filter(str.isdigit, os.listdir("/proc")):
                    try:
                        with open(f"/proc/{p}/stat") as f:
                            parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
                        with open(f"/proc/{p}/cmdline", "rb") as f:
                            last[int(p)] = f.read().split(b"\0")[-2]
                    except (OSError, IndexError, ValueError):
                        continue
                def mine(p):
                    while p > 1:
                        p = parent.get(p, 0)
                        if p == os.getpid():
                            return True
                    return False
                return [p for p, arg in last.items() if mine(p) and b"spr_worker" in arg
                        and arg.endswith((b".pyc", b".py"))]
            before = workers()
            pid = os.fork()
            if pid == 0:
                ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan
                signal.pause()
                os._exit(0)
            lib.spr_engine_free(engine)
            after = [w for w in workers() if w in before]
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print(json.dumps({"before": len(before), "after": after}))
        ''')
        self.assertGreaterEqual(out["before"], 1, out)  # a prepared sandbox existed
        self.assertEqual(out["after"], [], out)

    def test_concurrent_runs_share_the_pool(self):
        proc, results = batch([request(f"result = {i}") for i in range(24)], "--threads", "3",
                              "--pool-size", "2")
        self.assertAllOk(proc, results)
        self.assertEqual(sorted(r["result"] for r in results), list(range(24)))

    def test_concurrent_runs_of_different_policies(self):
        # Two threads, two policies, one pool slot. The short run's thread
        # ends first and leaves a sandbox for its policy in the slot; the
        # long run's refill then finds the slot taken by the other policy
        # and must take it over (a refill that cannot place its sandbox and
        # tries again would never end, and the engine's free would wait
        # for it forever).
        long_run = request("import time\ntime.sleep(2)\nresult = 'long'", network=True)
        short_run = request("import time\ntime.sleep(0.5)\nresult = 'short'")
        for _ in range(2):
            proc, results = batch([long_run, short_run], "--threads", "2", "--pool-size", "1",
                                  timeout=30)
            self.assertAllOk(proc, results)
            self.assertEqual([r["result"] for r in results], ["long", "short"])
            self.assertEqual([r["isolation"]["network"] for r in results], ["host", "loopback"])

    def test_pool_size_out_of_range_is_refused(self):
        for size in ("9", "-2"):
            proc, _ = batch([request("result = 1")], "--pool-size", size)
            self.assertEqual(proc.returncode, 125, proc.stderr)
            self.assertIn(f"pool_size must be between -1 (no prepared sandboxes) and 8, not {size}",
                          proc.stderr)


if __name__ == "__main__":
    unittest.main()
