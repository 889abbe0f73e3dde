"""Resource limits enforced by cgroups, for real (issue: cgroups v2/v1/hybrid).

Runs on this hybrid host (v1 memory/pids/cpu) and, through tests/vm, on a
pure cgroup v2 kernel. The expected version comes from `spr --json doctor`,
never assumed."""
import json
import os
import subprocess
import tempfile
import time
import unittest

from integration.common import BUILD, FORK_BOMB, PERMISSIVE, SPR, SprTestCase, spr_run

SOAK = os.path.join(BUILD, "tests", "tools", "soak")


def doctor():
    proc = subprocess.run([SPR, "--json", "doctor"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(
                              BUILD, "libexec", "spr")))
    return proc.returncode, json.loads(proc.stdout)


DOCTOR_RC, DOCTOR = doctor()
CGROUPS = DOCTOR["cgroups"]
USABLE = CGROUPS["usable"]
VERSION = CGROUPS["version"]


def expected_version():
    """What the host has, found without spr: cgroup2 mounted at
    /sys/fs/cgroup is a pure v2 host; otherwise the v1 memory hierarchy
    (hybrid or legacy) is what runs use."""
    fstype = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True,
                            text=True).stdout.strip()
    if fstype == "cgroup2fs":
        return "v2"
    return "v1" if os.path.isdir("/sys/fs/cgroup/memory") else "none"


EXPECTED_VERSION = expected_version()


def private_parent(case, tag):
    """A cgroup parent of this test's own, for a test that counts what is
    left in <base>/spr or expects an exact count from `spr cleanup`: the
    default <base> is the caller's own cgroup, which other spr callers on
    the host share, other checkouts' test suites running side by side
    included (their runs and stale cgroups would be counted too, and their
    engines may sweep ours first). Makes <base>/spr-test-TAG-PID in every
    hierarchy the doctor lists, removes it at the end, and returns it as
    spr takes it (--cgroup-parent, SPR_CGROUP_PARENT: relative to the own
    cgroup, below $SPR_CGROUP_PARENT if set), with the memory hierarchy's
    directory; (None, None) where the default must stay: on v2 a parent
    below the caller's own cgroup would hold no controllers while the
    caller sits there (the v2 runs are in the VM, or rootless in a
    delegation of their invocation's own, scripts/rootless-tests.sh)."""
    if VERSION != "v1":
        return None, None
    name = f"spr-test-{tag}-{os.getpid()}"
    made = []
    for info in CGROUPS.values():
        if isinstance(info, dict) and info.get("base") and info["base"] not in made:
            path = os.path.join(info["base"], name)
            try:
                os.mkdir(path)
            except OSError as e:
                for d in reversed(made):
                    os.rmdir(os.path.join(d, name))
                case.skipTest(f"cannot make the private cgroup parent {path}: {e}")
            made.append(info["base"])
            case.addCleanup(remove_cgroup_tree, path)
    inherited = os.environ.get("SPR_CGROUP_PARENT", "").strip("/")
    return (f"{inherited}/{name}" if inherited else name,
            os.path.join(CGROUPS["memory"]["base"], name))


def remove_cgroup_tree(path):
    """rmdir, deepest first (v1 may refuse for a moment after the last task)."""
    for _ in range(100):
        try:
            for root, dirs, _files in os.walk(path, topdown=False):
                for d in dirs:
                    os.rmdir(os.path.join(root, d))
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


class Detection(SprTestCase):
    def test_root_always_has_usable_cgroups(self):
        # Guards the skips below: as root on this host and in the v2 VM the
        # cgroup suites must run, never skip.
        if os.geteuid() != 0:
            self.skipTest("rootless: usable only with a delegated subtree")
        self.assertTrue(USABLE, DOCTOR)
        self.assertEqual(VERSION, EXPECTED_VERSION, DOCTOR["cgroups"])


# 256 MiB, every page touched so the memory is really used.
MEMORY_HOG = ("chunks = []\n"
              "for i in range(16):\n"
              "    b = bytearray(16 << 20)\n"
              "    for j in range(0, len(b), 4096):\n"
              "        b[j] = 1\n"
              "    chunks.append(b)\n"
              "result = 'survived'\n")


@unittest.skipUnless(USABLE, f"no usable cgroup here: {DOCTOR['problems']}")
class Limits(SprTestCase):
    def assertIsolatedByCgroup(self, run):
        iso = run["isolation"]
        self.assertEqual(iso["cgroup"], VERSION, iso)
        self.assertEqual(iso["memory"], "cgroup", iso)

    def test_memory_four_times_the_limit(self):
        # 4x the limit: the OOM kill must end the run well before the 2 s timeout.
        run = spr_run(MEMORY_HOG, policy={"memory_limit_mb": 64, "timeout_seconds": 2})
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)
        self.assertFalse(run["timed_out"], run)
        self.assertEqual(run.returncode, 137)
        self.assertIsolatedByCgroup(run)

    def test_peak_memory_is_reported(self):
        code = ("b = bytearray(100 << 20)\n"
                "for j in range(0, len(b), 4096):\n"
                "    b[j] = 1\n"
                "result = len(b)\n")
        run = spr_run(code, policy={"memory_limit_mb": 256})
        self.assertOk(run, 100 << 20)
        self.assertGreaterEqual(run["memory_peak_kb"], 100 * 1024, run)
        self.assertLess(run["memory_peak_kb"], 256 * 1024, run)

    def test_tmpfs_filled_past_the_memory_limit_is_memory(self):
        code = ("with open('/tmp/fill', 'wb') as f:\n"
                "    for i in range(200):\n"
                "        f.write(b'x' * (1 << 20))\n"
                "result = 'wrote 200 MiB'\n")
        run = spr_run(code, policy=dict(PERMISSIVE, memory_limit_mb=64, tmp_size_mb=512,
                                        timeout_seconds=10))
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)

    def test_fork_bomb_is_contained(self):
        bomb = FORK_BOMB
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bomb.py")
            with open(path, "w") as f:
                f.write(bomb)
            from integration.common import write_policy, SPR_RUN, ENGINE
            proc = subprocess.Popen(
                [SPR_RUN, "--engine", ENGINE, "--json", "--policy",
                 write_policy(dict(PERMISSIVE, timeout_seconds=10), tmp), path],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # The host stays responsive while the bomb goes off: start
            # processes on it, one after the other, until the run ends.
            latencies = []
            while proc.poll() is None or not latencies:
                t0 = time.monotonic()
                subprocess.run(["/bin/true"], check=True, timeout=30)
                latencies.append(time.monotonic() - t0)
            host_latency = max(latencies)
            out, err = proc.communicate(timeout=60)
        res = json.loads(out)
        self.assertEqual(res["error"], "Process limit exceeded", res)
        self.assertTrue(res["resource_exceeded"], res)
        self.assertFalse(res["timed_out"], "the run must end on the limit, not the timeout")
        self.assertFalse(res["ok"])
        self.assertLess(host_latency, 2.0,
                        f"the host did not stay responsive ({len(latencies)} samples)")

    def test_cpu_quota(self):
        code = ("import time\n"
                "t0, c0 = time.monotonic(), time.process_time()\n"
                "while time.monotonic() - t0 < 2:\n"
                "    pass\n"
                "result = (time.process_time() - c0) / (time.monotonic() - t0)\n")
        run = spr_run(code, policy={"cpu_cores": 0.5, "timeout_seconds": 10})
        self.assertTrue(run["ok"], run)
        share = run["result"]
        self.assertLessEqual(share, 0.6, f"{share:.3f} core-seconds per wall second")
        self.assertGreater(share, 0.2, "the spin barely ran")

    def test_cpu_seconds_budget(self):
        run = spr_run("while True:\n    pass\n",
                      policy={"cpu_seconds": 0.5, "timeout_seconds": 20})
        self.assertFailed(run, 152, "CPU time limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)
        self.assertFalse(run["timed_out"], run)
        self.assertLess(run["duration_ms"], 10000, run)

    def test_cpu_seconds_across_processes(self):
        # The budget is the whole run's, not each process's.
        code = ("import os\n"
                "for _ in range(3):\n"
                "    if os.fork() == 0:\n"
                "        while True:\n"
                "            pass\n"
                "while True:\n"
                "    pass\n")
        run = spr_run(code, policy=dict(PERMISSIVE, cpu_seconds=1, cpu_cores=2,
                                        timeout_seconds=20))
        self.assertFailed(run, 152, "CPU time limit exceeded")
        self.assertLess(run["duration_ms"], 10000, run)


@unittest.skipUnless(USABLE, f"no usable cgroup here: {DOCTOR['problems']}")
class Housekeeping(SprTestCase):
    def test_co_mounted_cpu_and_cpuacct(self):
        """The usual systemd v1 layout mounts cpu and cpuacct together (one
        directory for both): a run cgroup must still be made, entered and
        removed. tests/tools/cg-comount simulates it on this host."""
        proc = subprocess.run([os.path.join(BUILD, "tests", "tools", "cg-comount")],
                              capture_output=True, text=True, timeout=60)
        report = json.loads(proc.stdout)
        if "skip" in report:
            self.skipTest(report["skip"])
        self.assertEqual(proc.returncode, 0, (report, proc.stderr))
        self.assertEqual(report, {"entered": True, "in_run_cgroup": True, "removed": True})

    def test_doctor_reports_every_controller(self):
        self.assertEqual(DOCTOR_RC, 0, DOCTOR)
        self.assertEqual(VERSION, EXPECTED_VERSION, "doctor picked the wrong hierarchy")
        for ctl in ("memory", "pids", "cpu"):
            self.assertTrue(CGROUPS[ctl]["usable"], CGROUPS[ctl])
            self.assertEqual(CGROUPS[ctl]["hierarchy"], VERSION)
        self.assertTrue(DOCTOR["run"]["ok"], DOCTOR["run"])
        self.assertEqual(DOCTOR["run"]["isolation"]["cgroup"], VERSION)

    def test_stale_run_cgroup_removed_by_next_start(self):
        # A run cgroup whose monitor is gone (pid 1 never is a monitor's, and
        # its start time will not match): what a killed caller leaves.
        base = CGROUPS["memory"]["base"]
        stale = os.path.join(base, "spr", "run-999999999-1")
        os.makedirs(stale, exist_ok=True)
        try:
            run = spr_run("result = 1")
            self.assertOk(run, 1)
            self.assertFalse(os.path.exists(stale), "the next engine start kept it")
        finally:
            if os.path.isdir(stale):
                os.rmdir(stale)

    def test_spr_cleanup_removes_stale(self):
        # Exactly one stale cgroup: in a parent no other caller uses.
        parent, base = private_parent(self, "cleanup")
        base = base or CGROUPS["memory"]["base"]
        stale = os.path.join(base, "spr", "run-999999998-1")
        os.makedirs(stale, exist_ok=True)
        try:
            proc = subprocess.run([SPR, "cleanup", *(["--cgroup-parent", parent] if parent else [])],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc)
            self.assertIn("removed 1 stale run cgroup", proc.stdout)
            self.assertFalse(os.path.exists(stale))
        finally:
            if os.path.isdir(stale):
                os.rmdir(stale)

    def test_bad_cgroup_parent_is_125_or_degraded(self):
        run = spr_run("result = 1", args=["--cgroup-parent", "spr-no-such-parent"])
        self.assertFailed(run, 125)
        self.assertIn("spr-no-such-parent does not exist", run["error"])
        self.assertIn("--allow-degraded", run["error"])
        run = spr_run("result = 1", args=["--cgroup-parent", "spr-no-such-parent",
                                          "--allow-degraded"])
        self.assertOk(run, 1)
        self.assertEqual(run["isolation"]["cgroup"], "none")
        self.assertEqual(run["isolation"]["memory"], "rlimit")
        self.assertTrue(run["isolation"]["degraded"])
        run = spr_run("result = 1", args=["--cgroup-parent", "../escape"])
        self.assertEqual(run.returncode, 125, run)

    def test_without_a_cgroup_rlimits_stand_in(self):
        # allow_degraded on a host (here: a parent) without a usable cgroup:
        # RLIMIT_AS still ends a memory hog the same way, RLIMIT_NPROC keeps a
        # fork bomb from taking the host, and the pid namespace ends it.
        degraded = ["--cgroup-parent", "spr-no-such-parent", "--allow-degraded"]
        run = spr_run(MEMORY_HOG, policy={"memory_limit_mb": 64, "timeout_seconds": 5},
                      args=degraded)
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertTrue(run["resource_exceeded"], run)
        self.assertEqual(run["isolation"]["memory"], "rlimit", run)
        t0 = time.monotonic()
        run = spr_run(FORK_BOMB, policy=dict(PERMISSIVE, timeout_seconds=3), args=degraded)
        self.assertFailed(run, 124)
        self.assertTrue(run["timed_out"], run)
        self.assertLess(time.monotonic() - t0, 10, "the bomb outlived its timeout")
        self.assertEqual(run["isolation"]["cgroup"], "none", run)

    def test_soak_leaves_nothing(self):
        runs = int(os.environ.get("SPR_SOAK_RUNS", "1000"))
        timeouts = ooms = max(1, runs // 10)
        # soak counts every run cgroup left in <base>/spr: a base of its own.
        parent, _ = private_parent(self, "soak")
        env = dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr"))
        if parent:
            env["SPR_CGROUP_PARENT"] = parent
        soak = subprocess.Popen([SOAK, str(runs), str(timeouts), str(ooms)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        try:
            out, err = soak.communicate(timeout=1800)
        finally:
            if soak.poll() is None:
                soak.kill()
                soak.wait()
        proc = subprocess.CompletedProcess(soak.args, soak.returncode, out, err)
        self.assertEqual(proc.returncode, 0, (proc.stdout, proc.stderr[-3000:]))
        report = json.loads(proc.stdout)
        self.assertEqual(report["runs"], runs)
        self.assertEqual(report["failures"], 0, report)
        self.assertEqual(report["fds_after"], report["fds_before"], report)
        self.assertEqual(report["children_left"], 0, report)
        self.assertEqual(report["run_cgroups_left"], 0, report)
        self.assertEqual(report["spr_cgroups_left"], 0, "a freed engine keeps its spr/ cgroup")
        # And no spr-sandbox of ours survived anywhere on the host: the
        # soak's (`spr-sandbox --serve <caller pid>`, servers and their
        # forks alike), not those of other callers (another checkout's tests).
        ours = [b"--serve", str(soak.pid).encode()]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv[0].endswith(b"spr-sandbox") and argv[1:3] == ours:
                    self.fail(f"spr-sandbox {entry} left running: {argv}")


def own_v2_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return "/sys/fs/cgroup" + line[3:].strip().rstrip("/")
    return None


OWN_V2 = own_v2_cgroup() if EXPECTED_VERSION == "v2" else None


@unittest.skipUnless(OWN_V2 == "/sys/fs/cgroup" and os.geteuid() == 0,
                     "cgroup v2 only; the test makes cgroups below the root cgroup (the VM)")
class NoInternalProcesses(SprTestCase):
    """cgroup v2 forbids a non-root cgroup with processes to hand controllers
    to its children, and the caller is always in its own cgroup. A caller
    alone there moves itself into <own>/spr-caller; one that shares it gets
    exit 125 naming the rule and the fix. The suite itself runs in the root
    cgroup (exempt), so these tests make a cgroup the way systemd-run --scope
    does and start spr-run inside it."""

    def setUp(self):
        with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
            f.write("+memory +pids +cpu")
        self.scope = tempfile.mkdtemp(prefix="spr-test-scope-", dir="/sys/fs/cgroup")
        self.addCleanup(self.remove_scope)

    def remove_scope(self):
        deadline = time.monotonic() + 10
        for root, dirs, _ in os.walk(self.scope, topdown=False):
            for d in dirs:
                path = os.path.join(root, d)
                while True:
                    try:
                        os.rmdir(path)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        os.rmdir(self.scope)

    def enter(self, leaf="", exec_=True):
        """A shell that moves itself into the scope (or a leaf of it) and
        then runs spr-run: by exec (spr-run alone there), or as a child
        (the shell stays: the cgroup is shared)."""
        target = os.path.join(self.scope, leaf)
        script = 'echo $$ > "$0/cgroup.procs" && ' + ('exec "$@"' if exec_ else '"$@"')
        return ["sh", "-c", script, target]

    def subtree(self, path):
        with open(os.path.join(path, "cgroup.subtree_control")) as f:
            return set(f.read().split())

    def test_a_caller_alone_in_its_cgroup_moves_into_a_leaf(self):
        run = spr_run(MEMORY_HOG, policy={"memory_limit_mb": 64, "timeout_seconds": 5},
                      wrapper=self.enter())
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertEqual(run["isolation"]["cgroup"], "v2", run)
        self.assertEqual(run["isolation"]["memory"], "cgroup", run)
        self.assertTrue(os.path.isdir(os.path.join(self.scope, "spr-caller")))
        self.assertLessEqual({"memory", "pids", "cpu"}, self.subtree(self.scope))

    def test_doctor_says_the_caller_will_move(self):
        proc = subprocess.run(self.enter() + [SPR, "--json", "doctor"], capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, SPR_LIBEXEC_DIR=
                                  os.path.join(BUILD, "libexec", "spr")))
        report = json.loads(proc.stdout)
        self.assertEqual(proc.returncode, 0, report)
        self.assertEqual(report["cgroups"]["moves_caller_to"],
                         os.path.join(self.scope, "spr-caller"))
        self.assertTrue(report["run"]["ok"], report)

    def test_a_child_of_a_moved_caller_reuses_its_place(self):
        # What a caller spr moved leaves: controllers on in the scope, the
        # caller in spr-caller. Its child spr-run (sharing spr-caller with
        # the shell) puts its runs in <scope>/spr, beside it.
        os.mkdir(os.path.join(self.scope, "spr-caller"))
        with open(os.path.join(self.scope, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +pids +cpu")
        run = spr_run(MEMORY_HOG, policy={"memory_limit_mb": 64, "timeout_seconds": 5},
                      wrapper=self.enter("spr-caller", exec_=False))
        self.assertFailed(run, 137, "Memory limit exceeded")
        self.assertEqual(run["isolation"]["cgroup"], "v2", run)

    def test_a_shared_cgroup_is_125_with_the_rule_and_the_fix(self):
        run = spr_run("result = 1", wrapper=self.enter(exec_=False))
        self.assertFailed(run, 125)
        self.assertIn(f"{self.scope} also holds other processes", run["error"])
        self.assertIn("no internal processes rule", run["error"])
        self.assertIn("systemd-run --scope -p Delegate=yes", run["error"])
        self.assertEqual(self.subtree(self.scope), set(), "spr changed a cgroup it shares")
        run = spr_run("result = 1", args=["--allow-degraded"], wrapper=self.enter(exec_=False))
        self.assertOk(run, 1)
        self.assertEqual(run["isolation"]["cgroup"], "none")
        proc = subprocess.run(self.enter(exec_=False) + [SPR, "doctor"], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 1, proc)
        self.assertIn("fix: " + f"{self.scope} also holds other processes", proc.stdout)
