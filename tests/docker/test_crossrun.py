"""Cross-run isolation of the DockerEngine's pooled containers, tried as an
attacker would.

A pooled container serves up to max_runs (default 25) runs. Each test here
plays one attack class of the cross-run issue through ONE long-lived
DockerEngine (tests/tools/batch, one thread, so the runs come one after
another): run A attacks, run B holds a secret or does normal work, run C
looks. Each test runs with the default pool settings and with pool_size=1
(then one container serves A, B and C unless the engine retires it).

What must hold (the issue's "Done when"): between two runs of a container
nothing of the first run is left - no process in any state, no file in a
writable place, no IPC object (SysV shm/sem/msg, POSIX mqueue, /dev/shm), no
changed limit or attribute of what serves the runs, no memory charged (the
next run can allocate what the first one could), no trace of its data in the
memory the next run starts from - and a run whose container must be retired
because of the previous run still gets its own result.

The assertions are about what a caller sees (each run's result, output and
error; secrets; whether a later run works), never about how the engine gets
there: a design that retires a container it cannot clean, or gives every run
namespaces of its own, passes, as long as no run is lost or changed. Each
test also checks that the attack was really mounted (run A's own report, or
a control run in the same container before it), so none can pass because
the attack code broke. The attacks use a permissive Python policy (ctypes,
os, ...): the Python guardrail is not a security boundary."""
import json
import os
import secrets
import signal
import subprocess
import textwrap
import time
import unittest

from docker.test_docker import PODMAN, READY, WHY, batch, docker, managed_containers, start_batch, top
from integration.common import PERMISSIVE, SprTestCase

DEFAULT_POOL = ()  # the engine's defaults: pool_size min(CPUs, 4), max_runs 25
POOL_SIZE_1 = ("--pool-size", "1")
HOST_PYTHON = "/usr/bin/python3"


def policy(**extra):
    """The permissive policy every run of a sequence uses. Runs of one test
    share the limits that key the pool (memory, tmp size, processes, ...),
    so that they go to the same container."""
    return {**PERMISSIVE, "timeout_seconds": 30, **extra}


def code(text):
    return textwrap.dedent(text).lstrip("\n")


def secret_hex():
    return secrets.token_hex(16)


# ---- class 1: a leftover process (a zombie thread group) ----------------------

# Run A: forks a child that starts its own session, starts a second thread
# and ends only its main thread (the raw exit syscall). The thread group
# then shows Z in /proc/<pid>/stat while the thread (the spy) keeps running.
# The spy watches /proc for new pids; for each (a later run's process) it
# reads environ, cmdline and writable memory through /proc/<pid>/mem,
# keeps every "spr-secret-..." it finds and rewrites it in place
# ("spr-FORGED-..."), writes into the process's stdout (/proc/<pid>/fd/1),
# and drops the loot in /dev/shm. With input_data["kill"] it SIGKILLs every
# new process instead. A reports whether the spy is in place.
LEFTOVER_SPY = code("""
    import ctypes, os, select, threading, time

    MARK = b"spr-secret-"
    FAKE = b"spr-FORGED-"
    SECRET_LEN = len(MARK) + 32
    KILL = bool(input_data.get("kill"))

    def steal(pid, loot):
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            i = data.find(MARK)
            while i >= 0:
                loot.add(data[i:i + SECRET_LEN])
                i = data.find(MARK, i + 1)
        try:
            mem = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        except OSError:
            return
        try:
            with open(f"/proc/{pid}/maps") as f:
                maps = f.read().splitlines()
            for line in maps:
                addr, perms = line.split()[:2]
                if not perms.startswith("rw"):
                    continue
                lo, hi = (int(x, 16) for x in addr.split("-"))
                try:
                    data = os.pread(mem, hi - lo, lo)
                except OSError:
                    continue
                i = data.find(MARK)
                while i >= 0:
                    loot.add(data[i:i + SECRET_LEN])
                    try:
                        os.pwrite(mem, FAKE, lo + i)
                    except OSError:
                        pass
                    i = data.find(MARK, i + 1)
        finally:
            os.close(mem)

    def attack(pid, loot):
        # True when done with pid (attacked, or gone)
        if KILL:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
            return True
        try:
            out = os.open(f"/proc/{pid}/fd/1", os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return True
        except OSError:  # not dumpable yet (still being set up): later
            return not os.path.exists(f"/proc/{pid}")
        try:
            steal(pid, loot)
            msg = b"forged by run A\\n" + b"".join(b"loot: " + s + b"\\n" for s in sorted(loot))
            try:
                os.write(out, msg)
            except OSError:
                pass
        finally:
            os.close(out)
        for s in loot:
            try:
                with open("/dev/shm/loot-" + s[len(MARK):].decode(), "wb") as f:
                    f.write(s)
            except OSError:
                pass
        return True

    def spy(w):
        seen = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        loot = set()
        os.write(w, b"ready")
        os.close(w)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for p in os.listdir("/proc"):
                if p.isdigit() and int(p) not in seen and attack(int(p), loot):
                    seen.add(int(p))
            time.sleep(0.001)

    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(r)
            os.setsid()
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2, 3):  # not the run's pipes: A ends now
                os.dup2(null, fd)
            threading.Thread(target=spy, args=(w,), daemon=True).start()
            libc.syscall(60, 0)  # SYS_exit: this thread only, not the group
        finally:
            os._exit(1)
    os.close(w)
    ready = bool(select.select([r], [], [], 10)[0]) and os.read(r, 16) == b"ready"
    state = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{child}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            break
        time.sleep(0.01)
    result = {"spy_ready": ready, "leader_state": state,
              "threads": len(os.listdir(f"/proc/{child}/task"))}
""")

# Run B: normal work on a secret; its result and output are a function of
# its input only. The work lasts a second (a leftover process has the time
# any real run gives it; nothing waits for anything).
SECRET_WORK = code("""
    import time
    time.sleep(1.0)
    print("B-OUT")
    result = {"echo": input_data["secret"], "length": len(input_data["secret"])}
""")

# Run C: lasts a second too, then looks for anything left where a run can
# read: /dev/shm and /tmp.
LOOK_AROUND = code("""
    import os, time
    time.sleep(1.0)
    found = {}
    for d in ("/dev/shm", "/tmp"):
        for name in os.listdir(d):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    found[d + "/" + name] = f.read(4096).decode("latin-1")
            except OSError as e:
                found[d + "/" + name] = str(e)
    print("C-OUT")
    result = found
""")


def secret_request(secret):
    return {"code": SECRET_WORK, "input_data": {"secret": secret}, "policy": policy()}


class CrossRunCase(SprTestCase):
    def sequence(self, requests, pool_args, timeout=300):
        """Runs `requests` one after another through one DockerEngine (one
        batch process, one thread); their RunnerResults in order. A request
        without a result (batch's {"error": ...}) fails the test."""
        proc, lines = batch(requests, *pool_args, threads=1, timeout=timeout)
        self.assertEqual(len(lines), len(requests), f"batch: {proc.stderr}")
        results = []
        for i, line in enumerate(lines):
            self.assertIn("result", line, f"request {i} got no result: {line}")
            results.append(line["result"])
        return results

    def assertRunIs(self, run, result, stdout, what):
        """run is ok, with exactly this result and stdout (and no stderr)."""
        self.assertTrue(run["ok"], f"{what} failed: {run}")
        self.assertEqual(run["result"], result, f"{what}: result not its own: {run}")
        self.assertEqual(run["stdout"], stdout, f"{what}: stdout not its own: {run}")
        self.assertEqual(run["stderr"], "", f"{what}: stderr: {run}")


@unittest.skipUnless(READY, WHY)
class CrossRun1LeftoverProcess(CrossRunCase):
    """A leftover process survives the clean-up between runs and forges the
    next run's result (issue, attack 1).

    Run A leaves a thread group whose leader ended alone (SYS_exit in the
    main thread after setsid): /proc shows it as a zombie while its second
    thread, the spy, keeps running. The spy watches /proc for later runs'
    processes, reads their environ/cmdline/memory, rewrites their memory
    through /proc/<pid>/mem and writes into their stdout. Run B holds a
    secret; run C looks around (/dev/shm, /tmp) and is written to as well.

    Must hold: B comes back ok with exactly its own result and stdout; C's
    output is its own and C (its result, its output) holds nothing of B's
    secret."""

    def attack(self, pool_args):
        token = secret_hex()
        secret = "spr-secret-" + token
        a, b, c = self.sequence([
            {"code": LEFTOVER_SPY, "policy": policy()},
            secret_request(secret),
            {"code": LOOK_AROUND, "policy": policy()},
        ], pool_args)
        # The attack was mounted: A's child is a zombie group with a live spy.
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["result"], {"spy_ready": True, "leader_state": "Z", "threads": 2}, a)
        outcome = {"run B": (b["ok"], b["result"], b["stdout"], b["stderr"]),
                   "run C": (c["ok"], c["stdout"], c["stderr"]),
                   "B's secret seen by run C": token in json.dumps(c)}
        self.assertEqual(outcome, {
            "run B": (True, {"echo": secret, "length": len(secret)}, "B-OUT\n", ""),
            "run C": (True, "C-OUT\n", ""),
            "B's secret seen by run C": False,
        }, f"run B: {b}\nrun C: {c}")

    def test_default_pool(self):
        self.attack(DEFAULT_POOL)

    def test_pool_size_1(self):
        self.attack(POOL_SIZE_1)


# ---- class 2: IPC objects ----------------------------------------------------------

# Every kind of IPC object a run can make, through ctypes: put() stores a
# value in a /dev/shm file, a SysV shared memory segment, message queue and
# semaphore (keyed by `key`), and a POSIX message queue ("/" + tag); look()
# returns what this run finds of them, and of any object at all
# (/proc/sysvipc lists every SysV object of the IPC namespace; /dev/shm and
# /tmp every file). A refusal (the object cannot be made, or opened) is
# reported as an errno name and means "nothing there".
IPC_LIB = code("""
    import ctypes, errno, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    libc.shmdt.argtypes = (ctypes.c_void_p,)
    libc.mq_open.restype = ctypes.c_int
    libc.mq_open.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)
    libc.mq_send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint)
    libc.mq_receive.restype = ctypes.c_ssize_t
    libc.mq_receive.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p)
    libc.msgrcv.restype = ctypes.c_ssize_t
    libc.msgrcv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long,
                            ctypes.c_int)
    libc.msgsnd.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    IPC_CREAT, IPC_NOWAIT, SHM_RDONLY, GETVAL, SETVAL = 0o1000, 0o4000, 0o10000, 12, 16

    def err():
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

    def put(tag, key, value, mode):
        done = {}
        try:
            with open("/dev/shm/" + tag, "wb") as f:
                f.write(value)
            os.chmod("/dev/shm/" + tag, mode)
            done["dev_shm"] = True
        except OSError as e:
            done["dev_shm"] = errno.errorcode.get(e.errno)
        shm = libc.shmget(key, 4096, IPC_CREAT | mode)
        if shm >= 0:
            addr = libc.shmat(shm, None, 0)
            ctypes.memmove(addr, value, len(value))
            libc.shmdt(addr)
            done["sysv_shm"] = True
        else:
            done["sysv_shm"] = err()
        msq = libc.msgget(key, IPC_CREAT | mode)
        if msq >= 0:
            buf = ctypes.create_string_buffer((1).to_bytes(8, "little") + value)
            done["sysv_msg"] = libc.msgsnd(msq, buf, len(value), IPC_NOWAIT) == 0 or err()
        else:
            done["sysv_msg"] = err()
        sem = libc.semget(key, 1, IPC_CREAT | mode)
        if sem >= 0:
            value_as_number = ctypes.c_int(key % 30000 + 1)
            done["sysv_sem"] = libc.semctl(sem, 0, SETVAL, value_as_number) == 0 or err()
        else:
            done["sysv_sem"] = err()
        mq = libc.mq_open(b"/" + tag.encode(), os.O_CREAT | os.O_RDWR, mode, None)
        if mq >= 0:
            done["mqueue"] = libc.mq_send(mq, value, len(value), 0) == 0 or err()
        else:
            done["mqueue"] = err()  # refused (e.g. EACCES): it cannot leak either
        return done

    def look(tags_keys):
        found, refused = {}, {}
        for d in ("/dev/shm", "/tmp"):
            for name in os.listdir(d):
                try:
                    with open(os.path.join(d, name), "rb") as f:
                        found[d + "/" + name] = f.read(4096).decode("latin-1")
                except OSError as e:
                    found[d + "/" + name] = errno.errorcode.get(e.errno)
        for kind in ("shm", "msg", "sem"):
            try:
                with open("/proc/sysvipc/" + kind) as f:
                    lines = f.read().splitlines()[1:]
                if lines:
                    found["sysvipc_" + kind] = lines
            except OSError as e:
                refused["sysvipc_" + kind] = errno.errorcode.get(e.errno)
        for tag, key in tags_keys:
            shm = libc.shmget(key, 0, 0)
            addr = libc.shmat(shm, None, SHM_RDONLY) if shm >= 0 else None
            if addr is not None and addr != ctypes.c_void_p(-1).value:
                data = ctypes.string_at(addr, 64).rstrip(b"\\0")
                found[f"sysv_shm {key}"] = data.decode("latin-1")
            else:
                refused[f"sysv_shm {key}"] = err()
            msq = libc.msgget(key, 0)
            buf = ctypes.create_string_buffer(8 + 256)
            n = libc.msgrcv(msq, buf, 256, 0, IPC_NOWAIT) if msq >= 0 else -1
            if msq >= 0:
                found[f"sysv_msg {key}"] = buf.raw[8:8 + n].decode("latin-1") if n >= 0 else err()
            else:
                refused[f"sysv_msg {key}"] = err()
            sem = libc.semget(key, 0, 0)
            if sem >= 0:
                found[f"sysv_sem {key}"] = libc.semctl(sem, 0, GETVAL)
            else:
                refused[f"sysv_sem {key}"] = err()
            mq = libc.mq_open(b"/" + tag.encode(), os.O_RDONLY | os.O_NONBLOCK, 0, None)
            if mq >= 0:
                buf = ctypes.create_string_buffer(1 << 16)
                n = libc.mq_receive(mq, buf, len(buf), None)
                found["mqueue /" + tag] = buf.raw[:n].decode("latin-1") if n >= 0 else err()
            else:
                refused["mqueue /" + tag] = err()
        return {"found": found, "refused": refused}
""")


@unittest.skipUnless(READY, WHY)
class CrossRun2IpcObjects(CrossRunCase):
    """IPC objects outlive their run (issue, attack 2): only /tmp is wiped
    between runs, never /dev/shm, POSIX message queues or SysV IPC objects.

    Run A leaves an object of every kind, readable and writable by anyone
    (mode 0666). Run B first looks for anything left (it must start clean),
    then stores its secret in a /dev/shm file, a SysV shared memory segment,
    a SysV message queue, a SysV semaphore (its value) and a POSIX message
    queue, and ends without removing them. Run C looks for A's and B's
    objects by name and key, and for any object at all (/proc/sysvipc,
    /dev/shm, /tmp).

    Must hold: B and C find no object of an earlier run and C learns
    nothing of B's secret. B must have been able to store the secret in
    /dev/shm and SysV shared memory at least (so the test proves
    something); a POSIX queue the sandbox refuses to create cannot leak."""

    def attack(self, pool_args):
        token = secret_hex()
        secret = "spr-secret-" + token
        a_tag, b_tag = "spr-a-" + secrets.token_hex(6), "spr-b-" + secrets.token_hex(6)
        a_key, b_key = (secrets.randbelow(1 << 29) + (1 << 20) for _ in range(2))
        a, b, c = self.sequence([
            {"code": IPC_LIB + "result = put(input_data['tag'], input_data['key'],"
                               " b'left by run A', 0o666)",
             "input_data": {"tag": a_tag, "key": a_key}, "policy": policy()},
            {"code": IPC_LIB + "before = look([(input_data['a_tag'], input_data['a_key'])])\n"
                               "stored = put(input_data['tag'], input_data['key'],"
                               " input_data['secret'].encode(), 0o600)\n"
                               "result = {'before': before, 'stored': stored}",
             "input_data": {"tag": b_tag, "key": b_key, "a_tag": a_tag, "a_key": a_key,
                            "secret": secret}, "policy": policy()},
            {"code": IPC_LIB + "result = look(input_data['objects'])",
             "input_data": {"objects": [[a_tag, a_key], [b_tag, b_key]]}, "policy": policy()},
        ], pool_args)
        self.assertTrue(a["ok"], a)
        self.assertTrue(b["ok"], b)
        self.assertTrue(c["ok"], c)
        stored = b["result"]["stored"]
        self.assertIs(stored["dev_shm"], True, b)
        self.assertIs(stored["sysv_shm"], True, b)
        outcome = {"run B found (of A's)": b["result"]["before"]["found"],
                   "run C found (of A's and B's)": c["result"]["found"],
                   "B's secret seen by run C": token in json.dumps(c)}
        self.assertEqual(outcome, {"run B found (of A's)": {}, "run C found (of A's and B's)": {},
                                   "B's secret seen by run C": False},
                         f"run B stored {stored}; refused to C: {c['result']['refused']}")

    def test_default_pool(self):
        self.attack(DEFAULT_POOL)

    def test_pool_size_1(self):
        self.attack(POOL_SIZE_1)


# ---- class 3: limits and attributes of what serves the runs ------------------------

# Run A: sets a limit on every process it can see (pid 1 - today's serving
# process - included) with prlimit(); reports what worked.
PRLIMIT_ALL = code("""
    import os, resource
    done = {}
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                resource.prlimit(int(p), input_data["resource"], tuple(input_data["limit"]))
                done[p] = "set"
            except OSError as e:
                done[p] = e.strerror
    result = done
""")

# A normal run: a little memory (48 MiB) and a few files.
NORMAL_WORK = code("""
    b = bytearray(48 << 20)
    for j in range(0, len(b), 4096):
        b[j] = 1
    files = [open("/dev/null") for _ in range(16)]
    result = {"i": i, "square": i * i}
""")

# Run A: changes what it may of every process it can see: lowers resource
# limits (soft and hard), raises the nice value, narrows the CPU affinity.
CHANGE_ATTRIBUTES = code("""
    import os, resource
    LIMITS = {0x1: ("FSIZE", 1 << 20), 0x3: ("STACK", 1 << 20), 0x4: ("CORE", 0),
              0x6: ("NPROC", 50), 0x8: ("MEMLOCK", 0), 0xa: ("LOCKS", 5),
              0xb: ("SIGPENDING", 10), 0xc: ("MSGQUEUE", 0), 0x2: ("DATA", 1 << 30)}
    done = {}
    def attempt(what, f):
        try:
            f()
            done[what] = "set"
        except OSError as e:
            done[what] = e.strerror
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        pid = int(p)
        for number, (name, value) in LIMITS.items():
            attempt(f"{pid} RLIMIT_{name}", lambda: resource.prlimit(pid, number, (value, value)))
        attempt(f"{pid} nice", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))
        attempt(f"{pid} affinity", lambda: os.sched_setaffinity(pid, {0}))
    result = done
""")

# What a run starts with: every resource limit, nice value, CPU affinity,
# umask.
ATTRIBUTES_PROBE = code("""
    import os, resource
    result = {
        "rlimits": {n: resource.getrlimit(n) for n in range(16)},
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "umask": os.umask(0o022),
    }
""")

RLIMIT_AS, RLIMIT_NOFILE = 9, 7


@unittest.skipUnless(READY, WHY)
class CrossRun3Limits(CrossRunCase):
    """A run changes the limits every later run inherits (issue, attack 3):
    prlimit() on pid 1 works (same uid), and each run is a fork of it.

    Run A sets a limit on every process it can see: RLIMIT_NOFILE = 12, or
    (separately) RLIMIT_AS = 64 MiB; or changes every attribute it can
    (several rlimits, nice, CPU affinity). Then normal runs follow (48 MiB
    of memory, 16 open files; or a probe of the run's own limits and
    attributes).

    Must hold: a control run before A and the 15 normal runs after it all
    succeed with their own result; the probe after A shows exactly what the
    same probe showed before A (in a fresh container)."""

    def limited(self, pool_args, resource, limit):
        normal = [{"code": NORMAL_WORK, "input_data": {"i": i}, "policy": policy()}
                  for i in range(16)]
        attack = {"code": PRLIMIT_ALL, "policy": policy(),
                  "input_data": {"resource": resource, "limit": [limit, limit]}}
        runs = self.sequence([normal[0], attack] + normal[1:], pool_args)
        self.assertRunIs(runs[0], {"i": 0, "square": 0}, "", "the control run (before A)")
        self.assertTrue(runs[1]["ok"], runs[1])
        failed = [(i, r["error"]) for i, r in enumerate(runs[2:], 1)
                  if not r["ok"] or r["result"] != {"i": i, "square": i * i}]
        self.assertEqual(failed, [], f"later runs failed after A's prlimit ({runs[1]['result']})")

    def attributes(self, pool_args):
        probe = {"code": ATTRIBUTES_PROBE, "policy": policy()}
        before, a, after = self.sequence(
            [probe, {"code": CHANGE_ATTRIBUTES, "policy": policy()}, probe], pool_args)
        self.assertTrue(before["ok"], before)
        self.assertTrue(a["ok"], a)
        self.assertTrue(after["ok"], after)
        self.assertEqual(after["result"], before["result"],
                         f"a later run starts with what A changed ({a['result']})")

    def test_nofile_default_pool(self):
        self.limited(DEFAULT_POOL, RLIMIT_NOFILE, 12)

    def test_nofile_pool_size_1(self):
        self.limited(POOL_SIZE_1, RLIMIT_NOFILE, 12)

    def test_address_space_default_pool(self):
        self.limited(DEFAULT_POOL, RLIMIT_AS, 64 << 20)

    def test_address_space_pool_size_1(self):
        self.limited(POOL_SIZE_1, RLIMIT_AS, 64 << 20)

    def test_attributes_default_pool(self):
        self.attributes(DEFAULT_POOL)

    def test_attributes_pool_size_1(self):
        self.attributes(POOL_SIZE_1)


# ---- class 4: memory left charged ---------------------------------------------------

MEMORY_LIMIT_MB = 128
BALLAST_MB = MEMORY_LIMIT_MB * 60 // 100  # what A leaves: 60% of the limit
ALLOCATE_MB = MEMORY_LIMIT_MB * 70 // 100  # what B must get: 70% of it

# Run A: leaves memory behind that belongs to no process: a /dev/shm file,
# or a SysV shared memory segment (created, filled, detached, not removed).
LEAVE_MEMORY = code("""
    import ctypes, os
    size = input_data["mb"] << 20
    if input_data["how"] == "dev_shm":
        chunk = b"x" * (1 << 20)
        with open("/dev/shm/ballast", "wb") as f:
            for _ in range(size >> 20):
                f.write(chunk)
        result = os.path.getsize("/dev/shm/ballast")
    else:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
        libc.shmdt.argtypes = (ctypes.c_void_p,)
        shm = libc.shmget(0, size, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
        addr = libc.shmat(shm, None, 0)
        ctypes.memset(addr, 1, size)  # every page used
        libc.shmdt(addr)
        result = size
""")

ALLOCATE = code("""
    b = bytearray(input_data["mb"] << 20)
    for j in range(0, len(b), 4096):
        b[j] = 1
    result = len(b) >> 20
""")


@unittest.skipUnless(READY, WHY)
class CrossRun4ChargedMemory(CrossRunCase):
    """Memory a run leaves behind stays charged to the container (issue,
    attack 4), /dev/shm files and SysV shared memory included.

    Run A (memory_limit_mb 128) leaves 60% of the limit in a /dev/shm file
    or (separately) in a SysV shared memory segment, and ends. Run B then
    allocates and touches 70% of the limit. A control run doing what B does
    runs first, in the fresh container.

    Must hold: B succeeds as the control run did (ok, not "Memory limit
    exceeded"): the next run can allocate what the first one could."""

    def attack(self, pool_args, how):
        p = policy(memory_limit_mb=MEMORY_LIMIT_MB, tmp_size_mb=BALLAST_MB + 16)
        alloc = {"code": ALLOCATE, "input_data": {"mb": ALLOCATE_MB}, "policy": p}
        control, a, b = self.sequence(
            [alloc, {"code": LEAVE_MEMORY, "input_data": {"how": how, "mb": BALLAST_MB},
                     "policy": p}, alloc], pool_args)
        self.assertRunIs(control, ALLOCATE_MB, "", "the control run (before A)")
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["result"], BALLAST_MB << 20, a)
        self.assertRunIs(b, ALLOCATE_MB, "", "run B (after A)")

    def test_dev_shm_default_pool(self):
        self.attack(DEFAULT_POOL, "dev_shm")

    def test_dev_shm_pool_size_1(self):
        self.attack(POOL_SIZE_1, "dev_shm")

    def test_sysv_shm_default_pool(self):
        self.attack(DEFAULT_POOL, "sysv_shm")

    def test_sysv_shm_pool_size_1(self):
        self.attack(POOL_SIZE_1, "sysv_shm")


# ---- class 5: traces in the memory a run starts from -------------------------------

# Run B: puts its secret (15 bytes: what a process name holds) in its
# process name (PR_SET_NAME), in a big string and in /tmp file names, and
# leaves three children (with its name) behind, as sloppy code does.
SECRET_NAME = code("""
    import ctypes, os, time
    secret = ("q" + "Xz" + input_data["suffix"]).encode()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, ctypes.c_char_p(secret), 0, 0, 0)  # PR_SET_NAME
    big = secret * 100000
    for i in range(20):
        open("/tmp/" + secret.decode() + "-%d" % i, "w").close()
    for i in range(3):
        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
    with open("/proc/self/comm", "rb") as f:
        result = f.read().strip().decode()
""")

# Run C: scans every readable mapping of its own memory (/proc/self/mem)
# for "qXz" followed by 12 hex digits, and returns the digits it finds. Its
# own code holds the marker only split ("q" + "Xz"), and never B's digits.
SCAN_OWN_MEMORY = code("""
    import re
    needle = re.compile(("q" + "Xz").encode() + rb"([0-9a-f]{12})")
    found, regions = set(), 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps.read().splitlines():
            fields = line.split()
            if not fields[1].startswith("r") or fields[-1] in ("[vvar]", "[vsyscall]",
                                                               "[vvar_vclock]"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, OverflowError, ValueError):
                continue
            regions += 1
            found.update(m.group(1).decode() for m in needle.finditer(data))
    result = {"regions": regions, "found": sorted(found)}
""")


@unittest.skipUnless(READY, WHY)
class CrossRun5MemoryTraces(CrossRunCase):
    """The memory a run starts from holds traces of earlier runs (issue,
    attack 5): each run starts as a fork of pid 1, and pid 1 reads the
    names of the processes it kills (and of the /tmp files it wipes).

    Run B puts a secret in its process name (prctl PR_SET_NAME), in a big
    string and in /tmp file names, and leaves three children behind. Run C
    scans its own memory (every readable mapping, through /proc/self/mem).

    Must hold: C's scan covers its memory and finds nothing of B's secret."""

    def attack(self, pool_args):
        suffix = secrets.token_hex(6)
        b, c = self.sequence([
            {"code": SECRET_NAME, "input_data": {"suffix": suffix}, "policy": policy()},
            {"code": SCAN_OWN_MEMORY, "policy": policy()},
        ], pool_args)
        self.assertRunIs(b, "qXz" + suffix, "", "run B")  # the name was set
        self.assertTrue(c["ok"], c)
        self.assertGreater(c["result"]["regions"], 5, c)
        self.assertNotIn(suffix, c["result"]["found"], f"run C found run B's secret: {c}")

    def test_default_pool(self):
        self.attack(DEFAULT_POOL)

    def test_pool_size_1(self):
        self.attack(POOL_SIZE_1)


# ---- class 6: per-user kernel budgets ------------------------------------------------

# Run X: takes every inotify instance it can (inotify_init1 until it is
# refused) and holds them until the test releases it (SIGUSR1) or
# hold_seconds pass. Its process name (the token) tells the host it holds.
HOLD_INOTIFY = code("""
    import ctypes, errno, signal
    libc = ctypes.CDLL(None, use_errno=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    held, refused = [], None
    while len(held) < 100000:
        fd = libc.inotify_init1(0o2000000)  # IN_CLOEXEC
        if fd < 0:
            refused = errno.errorcode.get(ctypes.get_errno())
            break
        held.append(fd)
    libc.prctl(15, ctypes.c_char_p(input_data["token"].encode()), 0, 0, 0)
    released = signal.sigtimedwait({signal.SIGUSR1}, input_data["hold_seconds"]) is not None
    result = {"held": len(held), "refused": refused, "released": released}
""")

# Run Y, in another container: waits (its name the token) until the test
# says go (SIGUSR1), then asks for one inotify instance.
WANT_INOTIFY = code("""
    import ctypes, errno, signal
    libc = ctypes.CDLL(None, use_errno=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    libc.prctl(15, ctypes.c_char_p(input_data["token"].encode()), 0, 0, 0)
    go = signal.sigtimedwait({signal.SIGUSR1}, input_data["wait_seconds"]) is not None
    fd = libc.inotify_init1(0o2000000)
    result = {"go": go, "inotify": "ok" if fd >= 0 else errno.errorcode.get(ctypes.get_errno())}
""")

# The host's check, run as a given uid: can it get an inotify instance?
HOST_INOTIFY = ("import ctypes, errno\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "fd = libc.inotify_init1(0)\n"
                "print('ok' if fd >= 0 else errno.errorcode.get(ctypes.get_errno()))\n")


def host_pid_named(token, proc, timeout=90):
    """The host pid of the process whose name (comm) is `token`; None when
    `proc` (the batch running it) ended first or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/comm") as f:
                        if f.read().strip() == token:
                            return int(name)
                except OSError:
                    pass
        time.sleep(0.05)
    return None


def host_uid(pid):
    """The real uid of host process pid (the Uid: line of its status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def inotify_as(uid):
    """'ok', or the errno name, of inotify_init1 in a host process as uid."""
    proc = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           HOST_PYTHON, "-I", "-c", HOST_INOTIFY],
                          capture_output=True, text=True, timeout=60, cwd="/")
    return proc.stdout.strip() or f"exit {proc.returncode}: {proc.stderr.strip()}"


def finish(proc, timeout=120):
    """The RunnerResult of a one-request batch started by start_batch."""
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "result" in lines[0], (out, err)
    return lines[0]["result"]


@unittest.skipUnless(READY, WHY)
@unittest.skipUnless(os.geteuid() == 0, "the host processes of other uids need root (rootless "
                     "podman: the containers' ids are the user's own subordinate ids)")
class CrossRun6UserBudgets(CrossRunCase):
    """Per-user kernel budgets are shared with the host and with other
    containers (issue, attack 6): every container runs as uid 1000, the
    uid of host user 1000 and of every other container, and the kernel
    charges inotify instances (and watches, queued signals, mqueue bytes,
    processes) per user.

    Run X (engine 1, its container) takes every inotify instance it can
    and holds them. Meanwhile: a host process as uid 1000 (a host account)
    and a host process as the uid that the processes of another container
    (engine 2, run Y) have on the host ask for one, and so does run Y.
    The uids are read from the host (/proc/<pid>/status of the runs'
    processes, found by their names), so the check follows whatever uid a
    container gets.

    Must hold: all three get their inotify instance (a run can exhaust only
    a budget of its own, never a host user's or another container's); X
    and Y end ok. X's own uid is not checked from the host: a budget of its
    own is what X may exhaust."""

    def attack(self, pool_args):
        x_token, y_token = "sprX" + secrets.token_hex(5), "sprY" + secrets.token_hex(5)
        x = start_batch([{"code": HOLD_INOTIFY, "policy": policy(timeout_seconds=90),
                          "input_data": {"token": x_token, "hold_seconds": 60}}], *pool_args)
        y = None
        try:
            x_pid = host_pid_named(x_token, x)
            if not x_pid:
                x.kill()
                self.fail(f"run X never got to hold its instances: {x.communicate()}")
            before = set(managed_containers())
            y = start_batch([{"code": WANT_INOTIFY, "policy": policy(timeout_seconds=90),
                              "input_data": {"token": y_token, "wait_seconds": 60}}], *pool_args)
            y_pid = host_pid_named(y_token, y)
            if not y_pid:
                y.kill()
                self.fail(f"run Y never started: {y.communicate()}")
            # The uids container Y's processes have on the host: its run's
            # and its init's (whatever the engine's design makes them).
            y_uids = {host_uid(y_pid)}
            for cid in set(managed_containers()) - before:
                pid = docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
                y_uids.add(host_uid(int(pid)))
            x_uid = host_uid(x_pid)
            outcome = {"host process as uid 1000": inotify_as(1000)}
            for uid in sorted(y_uids):
                outcome[f"host process as uid {uid} (container Y's)"] = inotify_as(uid)
            os.kill(y_pid, signal.SIGUSR1)
            y_run = finish(y)
            os.kill(x_pid, signal.SIGUSR1)
            x_run = finish(x)
        finally:
            for p in (x, y):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.communicate()
        self.assertTrue(x_run["ok"], x_run)
        self.assertGreater(x_run["result"]["held"], 0, x_run)
        self.assertTrue(x_run["result"]["released"], x_run)
        self.assertTrue(y_run["ok"], y_run)
        self.assertTrue(y_run["result"]["go"], y_run)
        outcome["run Y in container Y"] = y_run["result"]["inotify"]
        self.assertEqual(outcome, dict.fromkeys(outcome, "ok"),
                         f"starved while run X (host uid {x_uid}) holds "
                         f"{x_run['result']['held']} inotify instances")

    def test_default_pool(self):
        self.attack(DEFAULT_POOL)

    def test_pool_size_1(self):
        self.attack(POOL_SIZE_1)


# ---- nothing is lost --------------------------------------------------------------

@unittest.skipUnless(READY, WHY)
class CrossRun7NothingLost(CrossRunCase):
    """A run whose container must be retired because of the previous run
    still gets its own result: B must never fail because of A.

    Two ways A leaves what today's serving process cannot clean:
    - the leftover spy of attack 1, told to SIGKILL every new process (the
      next run's process dies before it has read its request);
    - RLIMIT_NOFILE = 7 on every process it can see (pid 1 then cannot
      open /proc or /tmp to clean up after A).
    Then run B (a secret, normal work) and run C (normal work).

    Must hold: B comes back ok with exactly its own result and stdout, and
    so does C."""

    def attack(self, pool_args, a):
        secret = "spr-secret-" + secret_hex()
        a_run, b, c = self.sequence([a, secret_request(secret), secret_request(secret)],
                                    pool_args)
        self.assertTrue(a_run["ok"], a_run)
        expected = (True, {"echo": secret, "length": len(secret)}, "B-OUT\n", "", None)
        outcome = {name: (r["ok"], r["result"], r["stdout"], r["stderr"], r["error"])
                   for name, r in (("run B (right after A)", b), ("run C", c))}
        self.assertEqual(outcome, dict.fromkeys(outcome, expected), f"run A: {a_run}")

    def killer(self):
        return {"code": LEFTOVER_SPY, "input_data": {"kill": True}, "policy": policy()}

    def nofile(self):
        return {"code": PRLIMIT_ALL, "input_data": {"resource": RLIMIT_NOFILE, "limit": [7, 7]},
                "policy": policy()}

    def test_leftover_kills_next_run_default_pool(self):
        self.attack(DEFAULT_POOL, self.killer())

    def test_leftover_kills_next_run_pool_size_1(self):
        self.attack(POOL_SIZE_1, self.killer())

    def test_clean_up_impossible_default_pool(self):
        self.attack(DEFAULT_POOL, self.nofile())

    def test_clean_up_impossible_pool_size_1(self):
        self.attack(POOL_SIZE_1, self.nofile())


# ---- retirement: what the agent cannot prove clean ------------------------------

def started_batch_results(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return lines, err


def container_processes(cid):
    """(host pid, host ppid, command) of every process of container cid."""
    if PODMAN:  # podman's pid and ppid are the container's; hpid the host's
        rows = [line.split(None, 3) for line in
                top(cid, "pid", "hpid", "ppid", "args").splitlines()[1:]]
        host = {int(pid): int(hpid) for pid, hpid, _, _ in rows}
        return [(int(hpid), host.get(int(ppid), 0), args) for _, hpid, ppid, args in rows]
    out = top(cid, "pid", "ppid", "args").splitlines()[1:]
    rows = []
    for line in out:
        pid, ppid, args = line.split(None, 2)
        rows.append((int(pid), int(ppid), args))
    return rows


@unittest.skipUnless(READY, WHY)
class CrossRun8Retirement(CrossRunCase):
    """No run can leave what the agent cannot clean (classes 1-7 show
    it), so a container it cannot prove clean is made here from outside,
    between two runs, the two ways its proof can fail: a process it cannot
    kill (root's, started with `docker exec`), and a fork server that died.
    The container must be retired, and the run after it must still get its
    own result, from a fresh container: a retirement never becomes a
    failed run."""

    def start(self, gap_ms=4000):
        secret = "spr-secret-" + secret_hex()
        req = secret_request(secret)
        before = set(managed_containers())
        proc = start_batch([req, {"sleep_ms": gap_ms}, req, req], *POOL_SIZE_1)
        # The container of the first run, once it has served it.
        deadline = time.monotonic() + 120
        cid = None
        while time.monotonic() < deadline and proc.poll() is None:
            mine = set(managed_containers()) - before
            if mine:
                cid = mine.pop()
                if "spr-runs-1" in top(cid, "pid", "comm"):
                    break
            time.sleep(0.1)
        self.assertTrue(cid, "the batch never started a container")
        return proc, cid, secret

    def check(self, proc, secret, retired_after):
        lines, err = started_batch_results(proc)
        self.assertEqual(len(lines), 3, err)
        runs = [line.get("result") for line in lines]
        expected = {"echo": secret, "length": len(secret)}
        for i, r in enumerate(runs):
            self.assertIsNotNone(r, f"run {i} got no result: {lines[i]}")
            self.assertRunIs(r, expected, "B-OUT\n", f"run {i}")
        names = [r["isolation"]["container"]["name"] for r in runs]
        numbers = [r["isolation"]["container"]["run"] for r in runs]
        # Same container up to the retirement, a fresh one after it.
        self.assertEqual(names[:retired_after], [names[0]] * retired_after, names)
        self.assertNotEqual(names[retired_after], names[0], names)
        self.assertEqual(numbers[retired_after], 1, numbers)

    def test_unkillable_process_retires_the_container(self):
        proc, cid, secret = self.start()
        # Root's (the agent's uid cannot kill it), in the container's pid
        # namespace, where the agent looks after every run.
        docker("exec", "--user", "0", "-d", cid, "sleep", "300")
        self.assertIn("sleep 300", top(cid, "pid", "args"))
        # Run 2 still runs there (the agent looks after it), then the
        # container goes and run 3 gets a fresh one.
        self.check(proc, secret, retired_after=2)

    def test_dead_fork_server_retires_the_container(self):
        proc, cid, secret = self.start()
        procs = container_processes(cid)
        agent = [p for p in procs if "--container" in p[2] and
                 not any(q[0] == p[1] for q in procs)]
        self.assertEqual(len(agent), 1, procs)
        server = [p for p in procs if p[1] == agent[0][0]]
        self.assertEqual(len(server), 1, procs)
        os.kill(server[0][0], signal.SIGKILL)
        # Its prepared sandbox died with it: run 2 cannot be handed over
        # there and goes to a fresh container.
        self.check(proc, secret, retired_after=1)
