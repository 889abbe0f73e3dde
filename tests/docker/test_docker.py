"""DockerEngine against the real test daemon (scripts/dockerd-for-tests.sh).

The SPEC §1-§3 behaviour suite runs against this engine too
(SPR_TEST_ENGINE=docker tests/run.py integration); this file covers what
only the DockerEngine has: the hardened container, the warm pool
(rotation, TTL, wiping, fresh state, concurrency), images, and errors."""
import glob
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest
import zipfile

from integration.common import (BUILD, FORK_BOMB, PERMISSIVE, PODMAN_ROOTLESS, PODMAN_ROOTLESS_DEGRADED,
                                SPR, SPR_RUN, SprTestCase, spr_run, write_policy)

BATCH = os.path.join(BUILD, "tests", "tools", "batch")
LIBEXEC = os.path.join(BUILD, "libexec", "spr")
ENV = dict(os.environ, SPR_LIBEXEC_DIR=LIBEXEC)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120,
                          check=check, env=ENV)


# `make podman` runs these suites with podman behind the `docker` on PATH
# (the engine finds out itself: SPEC §5 "Podman").
PODMAN = os.environ.get("SPR_TEST_PODMAN") == "1"
# How the CLI itself is pointed at a service (podman ignores DOCKER_HOST).
HOST_VAR = "CONTAINER_HOST" if PODMAN else "DOCKER_HOST"


def top(cid, *fields, check=True):
    """`docker top` of container cid with these ps fields (pid, ppid,
    args, comm): docker passes ps options, podman takes descriptors."""
    if PODMAN:
        return docker("top", cid, *fields, check=check).stdout
    return docker("top", cid, "-eo", ",".join(fields), check=check).stdout


def ipc_ns_of(cid):
    """The IPC namespace of container cid's first process."""
    pid = docker("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()
    return os.readlink(f"/proc/{pid}/ns/ipc")


def daemon_ready():
    if not os.environ.get("DOCKER_HOST") and not PODMAN:
        return False, "DOCKER_HOST is not set (make docker-env-start)"
    try:
        docker("info")
        return True, ""
    except Exception as e:  # noqa: BLE001 - report why, skip
        return False, f"test daemon unreachable: {e}"


READY, WHY = daemon_ready()
# `make docker` sets this: there, a missing daemon is a failure, not a skip.
if not READY and os.environ.get("SPR_REQUIRE_DOCKER") == "1":
    raise RuntimeError("SPR_REQUIRE_DOCKER=1 but " + WHY)


def managed_containers():
    out = docker("ps", "-a", "-q", "--filter", "label=io.spr.managed=1").stdout
    return [line for line in out.split() if line]


def batch(requests, *args, threads=1, timeout=600):
    lines = []
    for r in requests:
        if isinstance(r, dict) and set(r) == {"sleep_ms"}:
            lines.append(json.dumps(r))
        else:
            lines.append(json.dumps(r))
    proc = subprocess.run([BATCH, "--engine", "docker", "--threads", str(threads), *args],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=timeout, env=ENV)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc, results


def new_container(before, proc, timeout=60):
    """The managed container that appeared since `before` (a running
    batch's pool container), or None when `proc` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        mine = set(managed_containers()) - before
        if mine:
            return mine.pop()
        time.sleep(0.2)
    return None


def start_batch(requests, *args):
    """A batch that keeps its engine (and pool) alive while the test acts."""
    proc = subprocess.Popen([BATCH, "--engine", "docker", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
    proc.stdin.close()
    proc.stdin = None  # so that communicate() only reads
    return proc


def hostname_request(extra=""):
    return {"code": "import socket\n" + extra + "\nresult = socket.gethostname()",
            "policy": dict(PERMISSIVE)}


def container_of(result):
    """The container a run ran in: its name, as isolation reports it (the
    code sees only its sandbox, whose hostname is "sandbox")."""
    return result["isolation"]["container"]["name"]


def container_name(cid):
    return docker("inspect", "--format", "{{.Name}}", cid).stdout.strip().lstrip("/")


@unittest.skipUnless(READY, WHY)
class Hardening(SprTestCase):
    def test_container_is_locked_down(self):
        code = """
import errno, os, socket
def t(f):
    try:
        return f()
    except Exception as e:
        return type(e).__name__
def errno_of(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
root = [l.split() for l in open('/proc/self/mountinfo') if l.split()[4] == '/']
result = {
    'root_mount_options': root[-1][5].split(','),
    'uid': os.getuid(), 'gid': os.getgid(),
    'capeff': st['CapEff'].strip(), 'capbnd': st['CapBnd'].strip(),
    'nnp': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(),
    'ifaces': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]),
    'connect': t(lambda: socket.create_connection(('1.1.1.1', 53), timeout=2)),
    'write_etc': errno_of(lambda: open('/etc/spr-probe', 'w')),
    'write_root': errno_of(lambda: open('/spr-probe', 'w')),
    'write_tmp': t(lambda: open('/tmp/ok', 'w').write('x')),
    'netlink': t(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)),
    'shm': t(lambda: open('/dev/shm/x', 'w').write('x')),
}
"""
        run = spr_run(code, policy=dict(PERMISSIVE), engine="docker")
        self.assertTrue(run["ok"], run)
        r = run["result"]
        self.assertEqual((r["uid"], r["gid"]), (1000, 1000))
        self.assertEqual(r["capeff"], "0000000000000000")
        self.assertEqual(r["capbnd"], "0000000000000000")
        self.assertEqual((r["nnp"], r["seccomp"]), ("1", "2"))
        self.assertEqual(r["ifaces"], ["lo"])
        self.assertEqual(r["connect"], "OSError")  # network unreachable
        # EROFS, not EACCES: uid 1000 may not write / or /etc anyway, so
        # only the errno shows that the root itself is read-only. (Creating
        # a file: the kernel checks the mount before the permissions.)
        self.assertEqual(r["write_etc"], "EROFS")
        self.assertEqual(r["write_root"], "EROFS")
        self.assertIn("ro", r["root_mount_options"])
        self.assertEqual(r["write_tmp"], 1)
        self.assertEqual(r["netlink"], "PermissionError")  # spr's seccomp profile
        self.assertEqual(r["shm"], 1)
        iso = run["isolation"]
        self.assertEqual(iso["engine"], "docker")
        self.assertEqual(iso["seccomp"], "spr-deny-v4")
        self.assertEqual(iso["network"], "none")
        self.assertTrue(iso["image"])

    def test_pool_container_flags(self):
        """What the daemon gave a pool container the engine started, as
        `docker inspect` shows it: each flag can be checked on its own (the
        code inside cannot tell e.g. swap or the seccomp profile apart)."""
        policy = dict(PERMISSIVE, memory_limit_mb=96, max_processes=33, cpu_cores=0.5,
                      tmp_size_mb=7, timeout_seconds=120)
        before = set(managed_containers())
        proc = start_batch([{"code": "import time\ntime.sleep(120)", "policy": policy}])
        try:
            cid = new_container(before, proc)
            self.assertTrue(cid, "the batch never started a container")
            info = json.loads(docker("inspect", cid).stdout)[0]
            if PODMAN:
                container_ipc = ipc_ns_of(cid)
                ipc_and_caps = (container_ipc,
                                docker("exec", cid, "test", "-e", "/dev/shm",
                                       check=False).returncode == 0,
                                docker("exec", cid, "sh", "-c",
                                       "grep CapBnd /proc/1/status | cut -f2").stdout.strip())
        finally:
            proc.kill()
            proc.communicate()
        hc, config = info["HostConfig"], info["Config"]
        self.assertIs(hc["ReadonlyRootfs"], True)
        if PODMAN_ROOTLESS_DEGRADED:
            # Rootless podman here (cgroup v1) ignores cgroup limits: the
            # engine passes none and the run's rlimits stand in (SPEC §7
            # "Podman"), so the container has none to show.
            self.assertEqual((hc["Memory"], hc["NanoCpus"]), (0, 0))
        else:
            # The policy's limits plus the agent's share (SPEC §5): its own
            # processes and the next run's sandbox, prepared meanwhile.
            self.assertEqual(hc["Memory"], (96 + 32) << 20)
            self.assertEqual(hc["MemorySwap"], hc["Memory"], "no swap")
            self.assertEqual(hc["PidsLimit"], 33 + 6)
            self.assertEqual(hc["NanoCpus"], 500_000_000)
        if PODMAN:
            # podman 4.3 reports "shareable" for --ipc none; what it made
            # is an IPC namespace of the container's own without /dev/shm
            self.assertEqual(ipc_and_caps, (container_ipc, False, "0000000000000000"))
            self.assertNotEqual(container_ipc, os.readlink("/proc/self/ns/ipc"))
            self.assertEqual(hc["NetworkMode"], "none")
            # podman lists what ALL dropped
            self.assertLessEqual({"CAP_SYS_CHROOT", "CAP_SETUID", "CAP_KILL"}, set(hc["CapDrop"]))
        else:
            self.assertEqual(hc["IpcMode"], "none")
            self.assertEqual(hc["NetworkMode"], "none")
            self.assertEqual(hc["CapDrop"], ["ALL"])
        self.assertFalse(hc["CapAdd"])
        self.assertFalse(hc["Privileged"])
        # The agent's own /tmp; each run has its own inside its sandbox.
        tmp = set(hc["Tmpfs"]["/tmp"].split(","))
        self.assertLessEqual({"noexec", "nosuid", "nodev", "size=4m"}, tmp)
        # A fresh /proc for each run's pid namespace needs it unmasked.
        self.assertFalse(hc.get("MaskedPaths"), hc)  # podman: not reported (unmask=ALL)
        opts = hc["SecurityOpt"]
        self.assertIn("no-new-privileges", opts)
        seccomp = [o for o in opts if o.startswith("seccomp=")]
        self.assertEqual(len(seccomp), 1, opts)
        # docker's CLI sends the file's JSON; podman keeps its path
        profile = seccomp[0][len("seccomp="):]
        if not profile.startswith("{"):
            with open(profile) as f:
                profile = f.read()
        profile = json.loads(profile)
        self.assertEqual(profile["defaultAction"], "SCMP_ACT_ALLOW")
        denied = {n for e in profile["syscalls"] if e["action"] == "SCMP_ACT_ERRNO"
                  for n in e["names"]}
        # The container's profile leaves setting sandboxes up to the
        # runs' own filter (which refuses it: test_container_is_locked_down).
        self.assertLessEqual({"ptrace", "bpf", "keyctl", "socket", "kexec_load"}, denied)
        self.assertFalse({"unshare", "mount", "pivot_root"} & denied, denied)
        user = config["User"]
        uid, gid = (int(x) for x in user.split(":"))
        self.assertEqual(uid, gid)
        if PODMAN_ROOTLESS:  # leased from 10000..65535 of the container's own ids (SPEC §7)
            self.assertTrue(10000 <= uid < 65536, uid)
        else:
            self.assertGreaterEqual(uid, 1879048192, "not a uid of spr's range")
        self.assertEqual(config["Labels"].get("io.spr.managed"), "1")
        self.assertEqual(config["Labels"].get("io.spr.max-runs"), "25")
        # A run's own writable places have the policy's sizes.
        run = spr_run("import os\nresult = [os.statvfs(p).f_blocks * os.statvfs(p).f_frsize\n"
                      "          for p in ('/tmp', '/dev/shm')]", policy=policy, engine="docker")
        self.assertOk(run, [7 << 20, 7 << 20])

    def test_container_uid_comes_from_the_range(self):
        """Each container runs as a host uid leased from the range (SPEC §7
        "DockerEngine"): the one typed, never an account's."""
        import pwd
        start = 1879048192 + 4096
        run = spr_run("result = 1", engine="docker", args=("--uid-range", f"{start}:3"))
        self.assertOk(run, 1)
        if PODMAN_ROOTLESS:
            # Rootless: the user's subordinate ids, not uid_range (SPEC §7
            # "Podman"); tests/podman checks which.
            self.assertTrue(run["isolation"]["rootless"], run)
            return
        self.assertIn(run["isolation"]["host_uid"], range(start, start + 3), run)
        # A local daemon: a range an account uses is refused before any container.
        daemon = pwd.getpwnam("daemon").pw_uid
        bad = spr_run("result = 1", engine="docker", args=("--uid-range", f"{daemon}:1"))
        self.assertEqual(bad.returncode, 125, bad)
        self.assertIn(f"the uid range {daemon}:1 for runs (uid_range) includes the account "
                      "'daemon'", bad.stderr + json.dumps(bad.result))
        # As typed: refused at once, as for the LocalEngine.
        typo = spr_run("result = 1", engine="docker", args=("--uid-range", "12:x"))
        self.assertEqual(typo.returncode, 2, typo)

    def test_memory_over_the_limit(self):
        code = ("chunks = []\n"
                "for i in range(16):\n"
                "    b = bytearray(16 << 20)\n"
                "    for j in range(0, len(b), 4096):\n"
                "        b[j] = 1\n"
                "    chunks.append(b)\n")
        run = spr_run(code, policy={"memory_limit_mb": 64, "timeout_seconds": 20},
                      engine="docker")
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)

    def test_fork_bomb_is_contained(self):
        bomb = FORK_BOMB
        t0 = time.monotonic()
        if PODMAN_ROOTLESS_DEGRADED:
            # No pids limit (rlimits stand in: the bomb's forks fail and it
            # loops on): only the timeout ends it, and the host stays fine.
            run = spr_run(bomb, policy=dict(PERMISSIVE, timeout_seconds=5), engine="docker")
            self.assertTrue(run["timed_out"], run)
            self.assertEqual(run["isolation"]["memory"], "rlimit", run)
            self.assertOk(spr_run("result = 2", engine="docker"), 2)
            return
        run = spr_run(bomb, policy=dict(PERMISSIVE, timeout_seconds=30), engine="docker")
        # The pids limit, not the timeout, ended it (SPEC §7, as with the
        # LocalEngine): without --pids-limit this is a timeout.
        self.assertFailed(run, 1, "Process limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)
        self.assertFalse(run["timed_out"], run)
        self.assertLess(time.monotonic() - t0, 25)
        # The host is fine and the next run works.
        self.assertOk(spr_run("result = 2", engine="docker"), 2)


@unittest.skipUnless(READY, WHY)
class Pool(SprTestCase):
    def hostnames(self, results):
        """The containers the runs ran in (each ok, its hostname the
        sandbox's)."""
        for r in results:
            self.assertIn("result", r, r)
            self.assertTrue(r["result"]["ok"], r)
            self.assertEqual(r["result"]["result"], "sandbox", r)
        return [container_of(r["result"]) for r in results]

    def test_rotation_by_runs(self):
        proc, results = batch([hostname_request()] * 5, "--pool-size", "1", "--max-runs", "2")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        h = self.hostnames(results)
        self.assertEqual(h[0], h[1])
        self.assertNotEqual(h[1], h[2])
        self.assertEqual(h[2], h[3])
        self.assertNotEqual(h[3], h[4])

    def test_single_use_containers(self):
        proc, results = batch([hostname_request()] * 4, "--pool-size", "1", "--max-runs", "1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        h = self.hostnames(results)
        self.assertEqual(len(set(h)), 4, h)

    def test_rotation_by_ttl(self):
        proc, results = batch([hostname_request(), hostname_request(), {"sleep_ms": 2500},
                               hostname_request()], "--pool-size", "1", "--ttl", "2")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        h = self.hostnames(results)
        self.assertEqual(h[0], h[1])
        self.assertNotEqual(h[1], h[2])

    def test_tmp_wiped_and_state_fresh_between_runs(self):
        first = {"code": "import os, builtins, sys, json\n"
                         "open('/tmp/secret', 'w').write('x')\n"
                         "os.mkdir('/tmp/d')\n"
                         "builtins.LEAK = 1\n"
                         "json.LEAK = 2\n"
                         "sys.modules['spr_leak'] = json\n"
                         "import socket\nresult = socket.gethostname()",
                 "policy": dict(PERMISSIVE)}
        second = {"code": "import os, builtins, sys, json, socket\n"
                          "result = [socket.gethostname(), sorted(os.listdir('/tmp')),\n"
                          "          hasattr(builtins, 'LEAK'), hasattr(json, 'LEAK'),\n"
                          "          'spr_leak' in sys.modules]",
                  "policy": dict(PERMISSIVE)}
        proc, results = batch([first, second], "--pool-size", "1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        host1 = container_of(results[0]["result"])
        host2 = container_of(results[1]["result"])
        _, tmp, builtin_leak, module_leak, modules_leak = results[1]["result"]["result"]
        self.assertEqual(host1, host2, "the same container served both runs")
        self.assertEqual(tmp, [])
        self.assertFalse(builtin_leak)
        self.assertFalse(module_leak)
        self.assertFalse(modules_leak)

    def test_timeout_keeps_the_container_clean(self):
        """A timed-out run ends with its sandbox; the container, proven
        clean by its agent, serves the next run (SPEC §5): that run finds
        nothing of the first, which kept a process busy."""
        loop = {"code": "import os\nos.fork()\nprint('looping', flush=True)\n"
                        "while True:\n    pass\n",
                "policy": dict(PERMISSIVE, timeout_seconds=0.5)}
        look = {"code": "import os\nresult = sorted(p for p in os.listdir('/proc') if p.isdigit())",
                "policy": dict(PERMISSIVE)}
        proc, results = batch([loop, look], "--pool-size", "1")
        # batch exits 0 when every request got a result (a timeout is one).
        self.assertEqual(proc.returncode, 0, proc.stderr)
        first = results[0]["result"]
        self.assertTrue(first["timed_out"], first)
        self.assertEqual(first["exit_code"], 124)
        self.assertEqual(first["error"], "Execution timed out after 0.5s")
        self.assertIn("looping", first["stdout"])
        second = results[1]["result"]
        self.assertTrue(second["ok"], second)
        self.assertEqual(container_of(first), container_of(second))
        self.assertEqual(second["isolation"]["container"]["run"], 2, second)
        # Its own sandbox's init and worker only.
        self.assertEqual(second["result"], ["1", "2"], second)

    def wait_for_runs(self, cid, runs, timeout=60):
        """Until the admin CLI shows `runs` served by container cid (its
        worker is then idle in the pool, between requests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([SPR, "--json", "container", cid], capture_output=True,
                                 text=True, timeout=60, env=ENV).stdout
            if out and json.loads(out)["container"].get("runs") == runs:
                return
            time.sleep(0.2)
        self.fail(f"container {cid} never showed {runs} run(s)")

    def test_idle_container_stopped_from_outside_is_replaced(self):
        """An idle pooled container stopped behind the engine's back is not
        handed out again: the next run gets a new container (without the
        liveness check it failed with "stopped answering")."""
        before = set(managed_containers())
        proc = start_batch([hostname_request(), {"sleep_ms": 10000}, hostname_request()],
                           "--pool-size", "1")
        cid = new_container(before, proc)
        self.assertTrue(cid, "the batch never started a container")
        name = container_name(cid)
        self.wait_for_runs(cid, 1)
        stop = subprocess.run([SPR, "stop", "container", cid, "--timeout-seconds", "1"],
                              capture_output=True, text=True, timeout=60, env=ENV)
        self.assertEqual(stop.returncode, 0, stop.stderr)
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        results = [json.loads(line) for line in out.splitlines() if line.strip()]
        first, second = self.hostnames(results)
        self.assertEqual(name, first)
        self.assertNotEqual(first, second)

    @unittest.skipIf(PODMAN_ROOTLESS_DEGRADED, "rootless podman cannot pause a container on "
                     "cgroup v1 (no freezer it may use)")
    def test_paused_container_is_timed_out_and_replaced(self):
        """A worker that stops answering mid-run (its container frozen by
        `docker pause`): the host's own deadline (timeout + grace) ends the
        run as a timeout, the container is thrown away (docker kill works
        on a paused one), and the next run gets a new one."""
        slow = {"code": "import socket, time\nprint(socket.gethostname(), flush=True)\n"
                        "time.sleep(60)\n",
                "policy": dict(PERMISSIVE, timeout_seconds=2)}
        before = set(managed_containers())
        proc = start_batch([slow, hostname_request()], "--pool-size", "1")
        cid = new_container(before, proc)
        self.assertTrue(cid, "the batch never started a container")
        name = container_name(cid)
        time.sleep(1)  # the run is in its sleep (well before its 2 s)
        docker("pause", cid)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        results = [json.loads(line) for line in out.splitlines() if line.strip()]
        first, second = (r["result"] for r in results)
        self.assertTrue(first["timed_out"], first)
        self.assertEqual(first["exit_code"], 124, first)
        self.assertEqual(first["error"], "Execution timed out after 2s", first)
        self.assertTrue(second["ok"], second)
        self.assertEqual(container_of(first), name)
        self.assertNotEqual(container_of(second), name,
                            "the frozen container served again")
        self.assertLess(time.monotonic() - t0, 60)
        deadline = time.monotonic() + 30
        while cid in managed_containers() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertNotIn(cid, managed_containers(), "the frozen container was left behind")

    def test_background_process_does_not_survive(self):
        start = {"code": "import subprocess, socket\n"
                         "subprocess.Popen(['/bin/sleep', '300'])\n"
                         "result = socket.gethostname()",
                 "policy": dict(PERMISSIVE)}
        check = {"code": "import os, socket\n"
                         "cmds = []\n"
                         "for p in os.listdir('/proc'):\n"
                         "    if p.isdigit():\n"
                         "        try:\n"
                         "            cmds.append(open(f'/proc/{p}/cmdline', 'rb').read())\n"
                         "        except OSError:\n"
                         "            pass\n"
                         "result = [socket.gethostname(), any(c.startswith(b'/bin/sleep') for c in cmds)]",
                 "policy": dict(PERMISSIVE)}
        proc, results = batch([start, check], "--pool-size", "1")
        _, sleeping = results[1]["result"]["result"]
        self.assertEqual(container_of(results[1]["result"]), container_of(results[0]["result"]))
        self.assertFalse(sleeping, "a process of the previous run survived")

    def test_pool_is_keyed_by_limits(self):
        # The reference keyed its pool by image only: a later run with a
        # bigger limit silently got the first run's. Not here.
        small = hostname_request()
        small["policy"] = dict(PERMISSIVE, memory_limit_mb=64)
        big = {"code": "import socket\nb = bytearray(150 << 20)\n"
                       "for j in range(0, len(b), 4096):\n    b[j] = 1\n"
                       "result = socket.gethostname()",
               "policy": dict(PERMISSIVE, memory_limit_mb=512)}
        proc, results = batch([small, big], "--pool-size", "2")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(results[1]["result"]["ok"], results[1])
        self.assertNotEqual(container_of(results[0]["result"]), container_of(results[1]["result"]))

    def test_fifty_concurrent_runs_from_eight_threads(self):
        reqs = [{"code": "result = {'i': i, 'square': i * i}", "input_data": {"i": i}}
                for i in range(50)]
        proc, results = batch(reqs, threads=8)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(results), 50)
        for i, r in enumerate(results):
            self.assertEqual(r["index"], i)
            self.assertTrue(r["result"]["ok"], r)
            self.assertEqual(r["result"]["result"], {"i": i, "square": i * i})
        self.assertGreater(len({r["thread"] for r in results}), 1)

    def test_caller_death_stops_its_containers(self):
        req = {"code": "import time\ntime.sleep(300)", "policy": {"timeout_seconds": 600}}
        before = set(managed_containers())
        proc = subprocess.Popen([BATCH, "--engine", "docker"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        proc.stdin.write((json.dumps(req) + "\n").encode())
        proc.stdin.close()
        deadline = time.monotonic() + 60
        mine = set()
        while time.monotonic() < deadline and not mine:
            mine = set(managed_containers()) - before
            time.sleep(0.2)
        self.assertTrue(mine, "the batch never started a container")
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(managed_containers()) & mine:
            time.sleep(0.2)
        self.assertEqual(set(managed_containers()) & mine, set(),
                         "containers outlived their caller")


@unittest.skipUnless(READY, WHY)
class ImagesAndErrors(SprTestCase):
    def test_explicit_missing_image_is_125(self):
        run = spr_run("result = 1", args=["--image", "spr-no-such-image:1"], engine="docker")
        self.assertFailed(run, 125)
        self.assertIn("spr-no-such-image:1", run["error"])

    def test_daemon_unreachable_is_125_with_spec_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.py")
            with open(path, "w") as f:
                f.write("result = 1")
            # podman: CONTAINER_HOST (it ignores DOCKER_HOST)
            proc = subprocess.run([SPR_RUN, "--engine", "docker", "--json", path],
                                  capture_output=True, text=True, timeout=120,
                                  env=dict(ENV, **{HOST_VAR: f"unix://{tmp}/no.sock"}))
        self.assertEqual(proc.returncode, 125)
        res = json.loads(proc.stdout)
        self.assertTrue(res["error"].startswith(
            "Podman is installed but cannot run containers here." if PODMAN else
            "Docker is installed but the daemon is not running or not accessible."), res)

    def test_cli_missing_is_125_with_spec_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.py")
            with open(path, "w") as f:
                f.write("result = 1")
            proc = subprocess.run([SPR_RUN, "--engine", "docker", path], capture_output=True,
                                  text=True, timeout=60, env=dict(ENV, PATH=tmp))
        self.assertEqual(proc.returncode, 125)
        self.assertIn("Docker CLI was not found. Install Docker and ensure it is on PATH.",
                      proc.stderr)

    def test_unpinned_package_is_refused(self):
        run = spr_run("result = 1", args=["--package", "requests"], engine="docker")
        self.assertFailed(run, 125, "Package specs must be pinned as 'name==version'. "
                                    "Invalid package: requests")

    def test_package_image_built_once_from_local_wheels(self):
        with tempfile.TemporaryDirectory() as wheels:
            make_wheel(wheels, "sprdemo", "1.2.3", "def answer():\n    return 42\n")
            args = ["--package", "sprdemo==1.2.3", "--wheel-dir", wheels]
            run = spr_run("import sprdemo\nresult = sprdemo.answer()", args=args,
                          engine="docker", timeout=900)
            self.assertOk(run, 42)
            image = run["isolation"]["image"]
            self.assertTrue(image.startswith("spr-env:"), image)
            created = docker("image", "inspect", "--format", "{{.Created}}", image).stdout
            again = spr_run("import sprdemo\nresult = sprdemo.answer() + 1", args=args,
                            engine="docker")
            self.assertOk(again, 43)
            self.assertEqual(again["isolation"]["image"], image)
            self.assertEqual(docker("image", "inspect", "--format", "{{.Created}}",
                                    image).stdout, created, "the image was built again")

    def test_pip_options_as_for_the_local_engine(self):
        """--pip-find-links/--pip-no-index (the LocalEngine's spelling)
        build the image offline; a dependency comes along."""
        version = f"2.0.{int(time.time() * 1000) % 1000000}"
        with tempfile.TemporaryDirectory() as wheels:
            make_wheel(wheels, "sprbase", "1.0", "N = 40\n")
            make_wheel(wheels, "sprtop", version, "import sprbase\nN = sprbase.N + 2\n",
                       requires=["sprbase==1.0"])
            run = spr_run("import sprtop\nresult = sprtop.N", engine="docker", timeout=900,
                          args=["--package", f"sprtop=={version}", "--pip-no-index",
                                "--pip-find-links", wheels])
            self.assertOk(run, 42)
            self.assertTrue(run["isolation"]["image"].startswith("spr-env:"), run)

    @unittest.skipUnless(glob.glob("/usr/share/python-wheels/setuptools-*.whl"),
                         "Debian's python3-setuptools-whl is not installed")
    def test_a_real_wheel_from_debian(self):
        """setuptools from Debian's wheel directory (python3-setuptools-whl),
        offline, imported from the environment's site directory."""
        wheel = os.path.basename(glob.glob("/usr/share/python-wheels/setuptools-*.whl")[0])
        version = wheel.split("-")[1]
        run = spr_run("import setuptools\nresult = [setuptools.__version__, setuptools.__file__]",
                      engine="docker", timeout=900,
                      args=["--package", f"setuptools=={version}", "--pip-no-index",
                            "--pip-find-links", "/usr/share/python-wheels"])
        self.assertOk(run)
        self.assertEqual(run["result"][0], version)
        self.assertTrue(run["result"][1].startswith("/opt/spr"), run["result"])

    def test_failed_build_tags_no_image(self):
        """A corrupt wheel and a missing package: a clear error naming
        pip's complaint, and no env image left behind."""
        version = f"3.0.{int(time.time() * 1000) % 1000000}"
        before = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        with tempfile.TemporaryDirectory() as wheels:
            good = make_wheel(wheels, "sprbroken", version, "X = 1\n")
            with open(good, "rb") as f:
                data = f.read()
            with open(good, "wb") as f:
                f.write(data[:len(data) // 2])
            for package, says in ((f"sprbroken=={version}", "invalid"),
                                  (f"sprmissing=={version}", "No matching distribution")):
                run = spr_run("result = 1", engine="docker", timeout=900,
                              args=["--package", package, "--pip-no-index",
                                    "--pip-find-links", wheels])
                self.assertFailed(run, 125)
                self.assertIn(says, run["error"])
        after = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        self.assertEqual(sorted(set(after) - set(before)), [])

    def test_pip_options_need_a_package_and_are_checked(self):
        with tempfile.TemporaryDirectory() as wheels:
            for args, says in ((["--pip-no-index", "--pip-find-links", wheels], 2),
                               (["--package", "x==1", "--pip-no-index"], 125),
                               (["--package", "x==1", "--pip-index-url", "ftp://x"], 125)):
                run = spr_run("result = 1", engine="docker", args=args)
                self.assertEqual(run.returncode, says, (args, run))

    @unittest.skipIf(PODMAN, "podman 4.3 records no event for a build's tag (the build lock "
                             "is the engine's, whichever CLI: make docker tests it)")
    def test_two_callers_never_build_the_same_image_twice(self):
        """The build lock: two processes wanting the same new env image at
        once get one build (one `tag` event on the daemon), both run."""
        version = f"1.0.{int(time.time() * 1000) % 1000000}"  # an image nobody has yet
        with tempfile.TemporaryDirectory() as wheels:
            make_wheel(wheels, "sprrace", version, "X = 7\n")
            code = os.path.join(wheels, "code.py")  # a file: both start at once
            with open(code, "w") as f:
                f.write("import sprrace\nresult = sprrace.X\n")
            args = [SPR_RUN, "--engine", "docker", "--json", "--package",
                    f"sprrace=={version}", "--wheel-dir", wheels, code]
            since = str(int(time.time()) - 1)
            procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=ENV)
                     for _ in range(2)]
            results = []
            for p in procs:
                out, err = p.communicate(timeout=900)
                self.assertEqual(p.returncode, 0, err)
                results.append(json.loads(out))
            for r in results:
                self.assertTrue(r["ok"], r)
                self.assertEqual(r["result"], 7)
            image = results[0]["isolation"]["image"]
            self.assertEqual(results[1]["isolation"]["image"], image)
            until = str(int(time.time()) + 1)
            events = docker("events", "--since", since, "--until", until, "--filter",
                            "type=image", "--filter", "event=tag",
                            "--format", "{{.Actor.Attributes.name}}").stdout.split()
            self.assertEqual(events.count(image), 1, events)


def make_wheel(directory, name, version, source, requires=()):
    """A minimal pure-Python wheel (no index here: tests build their own)."""
    dist = f"{name}-{version}.dist-info"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", source)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: spr-tests\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path


@unittest.skipUnless(READY, WHY)
class ZZNothingLeft(unittest.TestCase):
    """Runs last (unittest orders classes by name)."""

    def test_no_managed_container_left(self):
        deadline = time.monotonic() + 30
        while managed_containers() and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(managed_containers(), [])
