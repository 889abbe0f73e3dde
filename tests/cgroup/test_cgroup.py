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


@unittest.skipUnless(USABLE, f"no usable cgroup here: {DOCTOR['problems']}")
class Limits(SprTestCase):
    def assertIsolatedByCgroup(self, run):
        iso = run["isolation"]
        self.assertEqual(iso["cgroup"], VERSION, iso)
        self.assertEqual(iso["memory"], "cgroup", iso)

    def test_memory_four_times_the_limit(self):
        # Touch every page so the memory is really used; the OOM kill must
        # end the run well before the 2 s timeout.
        code = ("chunks = []\n"
                "for i in range(16):\n"
                "    b = bytearray(16 << 20)\n"
                "    for j in range(0, len(b), 4096):\n"
                "        b[j] = 1\n"
                "    chunks.append(b)\n"
                "result = 'survived'\n")
        run = spr_run(code, policy={"memory_limit_mb": 64, "timeout_seconds": 2})
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
            # The host stays responsive while the bomb goes off.
            t0 = time.monotonic()
            subprocess.run(["/bin/true"], check=True, timeout=30)
            host_latency = time.monotonic() - t0
            out, err = proc.communicate(timeout=60)
        res = json.loads(out)
        self.assertEqual(res["error"], "Process limit exceeded", res)
        self.assertTrue(res["resource_exceeded"], res)
        self.assertFalse(res["timed_out"], "the run must end on the limit, not the timeout")
        self.assertFalse(res["ok"])
        self.assertLess(host_latency, 5.0, "the host did not stay responsive")

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
        base = CGROUPS["memory"]["base"]
        stale = os.path.join(base, "spr", "run-999999998-1")
        os.makedirs(stale, exist_ok=True)
        try:
            proc = subprocess.run([SPR, "cleanup"], capture_output=True, text=True,
                                  timeout=60)
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

    def test_soak_leaves_nothing(self):
        runs = int(os.environ.get("SPR_SOAK_RUNS", "1000"))
        timeouts = ooms = max(1, runs // 10)
        proc = subprocess.run([SOAK, str(runs), str(timeouts), str(ooms)],
                              capture_output=True, text=True, timeout=1800,
                              env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(
                                  BUILD, "libexec", "spr")))
        self.assertEqual(proc.returncode, 0, (proc.stdout, proc.stderr[-3000:]))
        report = json.loads(proc.stdout)
        self.assertEqual(report["runs"], runs)
        self.assertEqual(report["failures"], 0, report)
        self.assertEqual(report["fds_after"], report["fds_before"], report)
        self.assertEqual(report["children_left"], 0, report)
        self.assertEqual(report["run_cgroups_left"], 0, report)
        # And no spr-sandbox of ours survived anywhere on the host.
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv[0].endswith(b"spr-sandbox"):
                    self.fail(f"spr-sandbox {entry} left running: {argv}")
