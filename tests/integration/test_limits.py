"""End-to-end limits: timeouts, output caps, memory, and the exit codes of
SPEC §3 and §7 (0, 1, n, 124, 125, 137, 128+n, 152)."""
import json
import os
import signal
import subprocess
import tempfile
import textwrap
import time
import unittest
import uuid

from integration.common import (ENGINE, ENGINE_KIND, PERMISSIVE, host_pids_with_argv0, SPR_RUN, SprTestCase, spr_run,
                                 strict_json_loads, write_policy)

LOOP = "while True:\n    pass\n"


def code(text):
    return textwrap.dedent(text).lstrip("\n")


class Timeout(SprTestCase):

    def check_timeout(self, r, seconds_text, stdout):
        self.assertFailed(r, 124, f"Execution timed out after {seconds_text}s")
        self.assertTrue(r["timed_out"], r)
        self.assertFalse(r["resource_exceeded"], r)
        self.assertIsNone(r["result"])
        self.assertEqual(r["stdout"], stdout)
        self.assertEqual(r.returncode, 124)
        strict_json_loads(r.stdout)

    def test_flag_timeout(self):
        t0 = time.monotonic()
        r = spr_run("import sys\nprint('before')\nsys.stdout.write('partial')\n" + LOOP,
                    args=["--timeout", "0.5"])
        elapsed = time.monotonic() - t0
        self.check_timeout(r, "0.5", "before\npartial")
        self.assertGreaterEqual(r["duration_ms"], 450)
        self.assertLess(elapsed, 10)

    def test_policy_timeout(self):
        r = spr_run("import sys\nsys.stderr.write('err-partial')\nprint('x')\n" + LOOP,
                    policy={"timeout_seconds": 0.5})
        self.check_timeout(r, "0.5", "x\n")
        self.assertEqual(r["stderr"], "err-partial")

    def test_whole_seconds_format(self):
        r = spr_run(LOOP, policy={"timeout_seconds": 1})
        self.check_timeout(r, "1", "")

    def test_timeout_with_result_set(self):
        r = spr_run("result = 5\n" + LOOP, policy={"timeout_seconds": 0.3})
        self.check_timeout(r, "0.3", "")

    def test_sleeping_code_times_out(self):
        r = spr_run("import time\ntime.sleep(30)", args=["--timeout", "0.4"])
        self.check_timeout(r, "0.4", "")
        self.assertLess(r["duration_ms"], 5000)

    def test_sigterm_ignored_still_killed(self):
        r = spr_run(code("""
            import signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ignoring", flush=True)
            while True:
                pass
        """), args=["--timeout", "0.5"])
        self.check_timeout(r, "0.5", "ignoring\n")
        self.assertLess(r["duration_ms"], 5000)

    def test_under_timeout_is_ok(self):
        r = spr_run("import time\ntime.sleep(0.1)\nresult = 'done'", args=["--timeout", "2"])
        self.assertOk(r, "done")
        self.assertFalse(r["timed_out"])

    def test_no_process_left_behind(self):
        """A double-forked, setsid'd grandchild that ignores SIGTERM must be dead
        once spr-run returns. The grandchild execs /bin/sleep with a unique
        argv[0], so the host finds it in its own /proc whatever pid (or mount)
        namespace the run lives in, without the run writing anywhere."""
        token = "sprgc" + uuid.uuid4().hex[:12]
        user_code = code("""
            import os, signal
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() > 0:
                    os._exit(0)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                os.write(w, b"r")
                os.execv("/bin/sleep", [input_data["token"], "1000"])
            os.waitpid(pid, 0)
            os.read(r, 1)
            print("grandchild started", flush=True)
            while True:
                pass
        """)

        def host_pids_with_token():
            return host_pids_with_argv0(token)

        with tempfile.TemporaryDirectory(prefix="spr-it-gc-") as tmp:
            code_path = os.path.join(tmp, "code.py")
            with open(code_path, "w") as f:
                f.write(user_code)
            cmd = [SPR_RUN, "--engine", ENGINE, "--json", "--timeout", "2",
                   "--policy", write_policy(dict(PERMISSIVE), tmp),
                   "--input", json.dumps({"token": token}), code_path]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            seen = []
            try:
                deadline = time.monotonic() + 10
                while proc.poll() is None and time.monotonic() < deadline and not seen:
                    seen = host_pids_with_token()
                    time.sleep(0.01)
                out, err = proc.communicate(timeout=30)
                res = json.loads(out)
                self.assertTrue(seen, ("the grandchild never appeared in the host's /proc",
                                       res, err))
                self.assertEqual(res["exit_code"], 124, res)
                self.assertTrue(res["timed_out"], res)
                self.assertEqual(res["error"], "Execution timed out after 2s")
                self.assertEqual(res["stdout"], "grandchild started\n")
                self.assertEqual(proc.returncode, 124)
                # spr-run returned: the tree is gone now, not eventually.
                alive = host_pids_with_token()
                self.assertEqual(alive, [], f"grandchild {seen} survived the run")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for pid in host_pids_with_token():  # only our own token
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


class OutputCap(SprTestCase):
    CAP1 = {"max_output_kb": 1}

    def test_stdout_truncated(self):
        r = spr_run("print('a' * 5000)\nresult = 1", policy=self.CAP1)
        self.assertOk(r, 1)
        self.assertEqual(r["stdout"], "a" * 1024)
        self.assertTrue(r["stdout_truncated"])
        self.assertFalse(r["stderr_truncated"])
        self.assertEqual(r["stderr"], "")

    def test_stderr_truncated_independently(self):
        r = spr_run("import sys\nprint('small')\nsys.stderr.write('b' * 5000)",
                    policy=self.CAP1)
        self.assertOk(r)
        self.assertEqual(r["stderr"], "b" * 1024)
        self.assertTrue(r["stderr_truncated"])
        self.assertFalse(r["stdout_truncated"])
        self.assertEqual(r["stdout"], "small\n")

    def test_both_truncated(self):
        r = spr_run("import sys\nprint('a' * 3000)\nsys.stderr.write('b' * 3000)",
                    policy=self.CAP1)
        self.assertEqual((r["stdout"], r["stderr"]), ("a" * 1024, "b" * 1024))
        self.assertTrue(r["stdout_truncated"])
        self.assertTrue(r["stderr_truncated"])

    def test_flag(self):
        r = spr_run("print('a' * 5000)", args=["--max-output", "2"])
        self.assertOk(r)
        self.assertEqual(r["stdout"], "a" * 2048)
        self.assertTrue(r["stdout_truncated"])

    def test_flag_overrides_policy(self):
        r = spr_run("print('a' * 5000)", policy={"max_output_kb": 1}, args=["--max-output", "2"])
        self.assertEqual(r["stdout"], "a" * 2048)

    def test_cut_on_utf8_boundary(self):
        # 'a' + 1000 two-byte characters: the 1024-byte cap falls mid-character.
        r = spr_run("import sys\nsys.stdout.write('a' + 'é' * 1000)", policy=self.CAP1)
        self.assertOk(r)
        self.assertEqual(r["stdout"], "a" + "é" * 511)
        self.assertEqual(len(r["stdout"].encode()), 1023)
        self.assertTrue(r["stdout_truncated"])
        self.assertNotIn("\ufffd", r["stdout"])

    def test_cut_on_utf8_boundary_four_byte(self):
        # 1 + 4*n: the cap falls inside the 256th emoji.
        r = spr_run("import sys\nsys.stderr.write('a' + '😀' * 600)", policy=self.CAP1)
        self.assertEqual(r["stderr"], "a" + "😀" * 255)
        self.assertTrue(r["stderr_truncated"])

    def test_invalid_bytes_replaced(self):
        r = spr_run("import sys\nsys.stdout.buffer.write(b'ab\\xffcd\\xc3')\nsys.stdout.flush()")
        self.assertOk(r)
        self.assertEqual(r["stdout"], "ab\ufffdcd\ufffd")
        self.assertFalse(r["stdout_truncated"])
        strict_json_loads(r.stdout)

    def test_invalid_bytes_in_stderr_replaced(self):
        r = spr_run("import sys\nsys.stderr.buffer.write(b'\\xfe\\xff!')\nsys.stderr.flush()")
        self.assertOk(r)
        self.assertEqual(r["stderr"], "\ufffd\ufffd!")

    def test_exactly_at_cap_not_truncated(self):
        r = spr_run("import sys\nsys.stdout.write('a' * 1024)", policy=self.CAP1)
        self.assertOk(r)
        self.assertEqual(r["stdout"], "a" * 1024)
        self.assertFalse(r["stdout_truncated"])

    def test_one_over_cap_truncated(self):
        r = spr_run("import sys\nsys.stdout.write('a' * 1025)", policy=self.CAP1)
        self.assertEqual(r["stdout"], "a" * 1024)
        self.assertTrue(r["stdout_truncated"])

    def test_os_write_captured(self):
        r = spr_run("import os, sys\nos.write(1, b'direct\\n')\nos.write(2, b'err\\n')",
                    policy=PERMISSIVE)
        self.assertOk(r)
        self.assertEqual(r["stdout"], "direct\n")
        self.assertEqual(r["stderr"], "err\n")

    def test_os_write_capped(self):
        r = spr_run("import os\nos.write(1, b'z' * 3000)",
                    policy=dict(PERMISSIVE, max_output_kb=1))
        self.assertEqual(r["stdout"], "z" * 1024)
        self.assertTrue(r["stdout_truncated"])

    def test_zero_cap(self):
        r = spr_run("import sys\nprint('x')\nsys.stderr.write('y')\nresult = 2",
                    policy={"max_output_kb": 0})
        self.assertOk(r, 2)
        self.assertEqual((r["stdout"], r["stderr"]), ("", ""))
        self.assertTrue(r["stdout_truncated"])
        self.assertTrue(r["stderr_truncated"])

    def test_zero_cap_nothing_written(self):
        r = spr_run("result = 3", policy={"max_output_kb": 0})
        self.assertOk(r, 3)
        self.assertEqual((r["stdout"], r["stderr"]), ("", ""))
        self.assertFalse(r["stdout_truncated"])
        self.assertFalse(r["stderr_truncated"])

    def test_large_output_default_cap(self):
        # Default cap 128 KiB; the code is not blocked by a full pipe.
        r = spr_run("import sys\nfor i in range(2000):\n    sys.stdout.write('x' * 1000)\nresult = 'done'")
        self.assertOk(r, "done")
        self.assertEqual(r["stdout"], "x" * (128 * 1024))
        self.assertTrue(r["stdout_truncated"])

    def test_truncated_on_timeout(self):
        r = spr_run("print('a' * 3000, flush=True)\n" + LOOP,
                    policy={"max_output_kb": 1, "timeout_seconds": 0.5})
        self.assertFailed(r, 124, "Execution timed out after 0.5s")
        self.assertEqual(r["stdout"], "a" * 1024)
        self.assertTrue(r["stdout_truncated"])


class Memory(SprTestCase):

    def test_raise_memory_error(self):
        r = spr_run("print('before')\nraise MemoryError")
        self.assertFailed(r, 137, "Memory limit exceeded")
        self.assertTrue(r["resource_exceeded"])
        self.assertFalse(r["timed_out"])
        self.assertIsNone(r["result"])
        self.assertEqual(r["stdout"], "before\n")
        self.assertEqual(r.returncode, 137)

    def test_real_allocation_over_limit(self):
        r = spr_run("print('start', flush=True)\nx = b'x' * (200 << 20)\nresult = len(x)",
                    policy={"memory_limit_mb": 64})
        self.assertFailed(r, 137, "Memory limit exceeded")
        self.assertTrue(r["resource_exceeded"])
        self.assertIsNone(r["result"])
        self.assertEqual(r["stdout"], "start\n")
        self.assertEqual(r.returncode, 137)

    def test_memory_flag(self):
        r = spr_run("x = bytearray(200 << 20)", args=["--memory", "64"])
        self.assertFailed(r, 137, "Memory limit exceeded")
        self.assertTrue(r["resource_exceeded"])

    def test_allocation_under_limit_ok(self):
        r = spr_run("x = b'x' * (20 << 20)\nresult = len(x)", policy={"memory_limit_mb": 256})
        self.assertOk(r, 20 << 20)
        self.assertFalse(r["resource_exceeded"])

    def test_memory_peak_reported(self):
        r = spr_run("x = b'x' * (50 << 20)\nresult = 1")
        self.assertOk(r, 1)
        peak = r["memory_peak_kb"]
        if peak is not None:  # null is allowed when it cannot be measured
            self.assertGreaterEqual(peak, 50 << 10)


class ExitCodes(SprTestCase):
    """Every exit code of SPEC §3 / §7 in one place (others are covered in
    detail elsewhere)."""

    def test_0(self):
        r = spr_run("result = 0")
        self.assertOk(r, 0)

    def test_1(self):
        r = spr_run("raise RuntimeError('x')")
        self.assertFailed(r, 1, "RuntimeError: x")
        self.assertEqual(r.returncode, 1)

    def test_n(self):
        for n in (2, 42, 200):
            with self.subTest(n=n):
                r = spr_run(f"import sys\nsys.exit({n})")
                self.assertFailed(r, n, f"SystemExit: {n}")
                self.assertEqual(r.returncode, n)

    def test_124(self):
        r = spr_run(LOOP, args=["--timeout", "0.3"])
        self.assertFailed(r, 124, "Execution timed out after 0.3s")
        self.assertEqual(r.returncode, 124)

    @unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's (tests/docker covers 125)")
    def test_125_interpreter_missing(self):
        r = spr_run("result = 1", args=["--python", "/nonexistent/python3"])
        self.assertEqual(r.returncode, 125, r)
        self.assertIsNotNone(r.result, r)
        self.assertFailed(r, 125)
        self.assertIn("/nonexistent/python3", r["error"])
        self.assertIsNone(r["result"])
        self.assertFalse(r["timed_out"])
        strict_json_loads(r.stdout)
        self.assertIn("spr-run: ", r.stderr)
        self.assertIn("/nonexistent/python3", r.stderr)

    @unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's (tests/docker covers 125)")
    def test_125_plain_mode(self):
        r = spr_run("result = 1", args=["--python", "/nonexistent/python3"], json_mode=False)
        self.assertEqual(r.returncode, 125)
        self.assertEqual(r.stdout, "")
        self.assertTrue(r.stderr.startswith("spr-run: "), r.stderr)
        self.assertIn("/nonexistent/python3", r.stderr)

    @unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's (tests/docker covers 125)")
    def test_125_not_an_interpreter(self):
        r = spr_run("result = 1", args=["--python", "/etc/hostname"])
        self.assertEqual(r.returncode, 125, r)
        self.assertFailed(r, 125)
        self.assertIn("/etc/hostname", r["error"])

    @unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's")
    def test_probe_cache_follows_the_interpreter(self):
        """The interpreter probe is cached across processes; replacing what
        the path names must probe again, never reuse the old answer."""
        real = os.path.realpath("/usr/bin/python3")
        with tempfile.TemporaryDirectory(prefix="spr-probe-") as d:
            os.chmod(d, 0o755)
            py = os.path.join(d, "python3")
            os.symlink(real, py)
            for _ in range(2):  # the second answer comes from the cache
                r = spr_run("import sys\nresult = sys.version_info[0]", args=["--python", py])
                self.assertOk(r, 3)
            os.unlink(py)
            with open(py, "w") as f:
                f.write("#!/bin/sh\necho 'not a python'\n")
            os.chmod(py, 0o755)
            r = spr_run("result = 1", args=["--python", py])
            self.assertEqual(r.returncode, 125, r)
            self.assertIn("did not answer the probe like a Python 3 interpreter", r["error"])
            os.unlink(py)
            os.symlink(real, py)
            self.assertOk(spr_run("result = 2", args=["--python", py]), 2)

    def test_137(self):
        r = spr_run("raise MemoryError")
        self.assertFailed(r, 137, "Memory limit exceeded")
        self.assertEqual(r.returncode, 137)

    def test_killed_by_signal(self):
        r = spr_run("import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)",
                    policy=PERMISSIVE)
        self.assertFailed(r, 139, "Killed by signal 11 (SIGSEGV)")
        self.assertEqual(r["stdout"], "x\n")
        self.assertEqual(r.returncode, 139)

    def test_worker_exits_without_reporting(self):
        r = spr_run("import os\nprint('x')\nos._exit(3)", policy=PERMISSIVE)
        self.assertFailed(r, 3)
        self.assertTrue(r["error"].startswith(
            "WorkerError: the worker exited with status 3 before reporting a result"), r)
        self.assertEqual(r["stdout"], "x\n")
        self.assertEqual(r.returncode, 3)

    def test_worker_exits_0_without_reporting(self):
        r = spr_run("import os\nos._exit(0)", policy=PERMISSIVE)
        self.assertFailed(r, 1)
        self.assertTrue(r["error"].startswith(
            "WorkerError: the worker exited with status 0 before reporting a result"), r)
        self.assertEqual(r.returncode, 1)

    def test_152_cpu_seconds(self):
        r = spr_run(LOOP, policy={"cpu_seconds": 0.5, "timeout_seconds": 10})
        self.assertFailed(r, 152, "CPU time limit exceeded")
        self.assertTrue(r["resource_exceeded"])
        self.assertFalse(r["timed_out"])
        self.assertEqual(r.returncode, 152)

    def test_result_over_64_mib(self):
        r = spr_run("result = 'x' * (65 << 20)", args=["--memory", "1024"])
        self.assertFailed(r, 1, "ResultError: the result is larger than 64 MiB")
        self.assertIsNone(r["result"])


RLIMITS = code("""
    import resource
    result = {n: list(resource.getrlimit(getattr(resource, "RLIMIT_" + n)))
              for n in ("NOFILE", "FSIZE", "CORE", "NPROC")}
""")

# A sparse write at the FSIZE limit: EFBIG at once, no tmpfs space used
# (Python ignores SIGXFSZ, so the write fails instead of the process).
PAST_FSIZE = code("""
    import resource
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    with open("/tmp/big", "wb") as f:
        f.seek(limit)
        f.write(b"x")
""")


@unittest.skipIf(ENGINE != "local", "the LocalEngine's rlimits (local_run.c)")
class Rlimits(SprTestCase):
    """What local_run.c sets: NOFILE 1024, FSIZE = tmp_size_mb, no core
    files, NPROC max_processes (a backstop of 2n+16 when a pids cgroup
    counts the processes, so the cgroup reports the hit)."""

    def test_rlimits_inside(self):
        for tmp_mb, procs in ((64, 64), (3, 10)):
            r = spr_run(RLIMITS, policy=dict(PERMISSIVE, tmp_size_mb=tmp_mb,
                                             max_processes=procs))
            self.assertOk(r)
            nproc = procs * 2 + 16 if r["isolation"]["cgroup"] != "none" else procs
            self.assertEqual(r["result"], {"NOFILE": [1024, 1024],
                                           "FSIZE": [tmp_mb << 20, tmp_mb << 20],
                                           "CORE": [0, 0], "NPROC": [nproc, nproc]}, r)

    def test_write_past_fsize_is_a_resource_limit(self):
        r = spr_run(PAST_FSIZE, policy=dict(PERMISSIVE, tmp_size_mb=2))
        self.assertFailed(r, 1, "OSError: [Errno 27] File too large")
        self.assertTrue(r["resource_exceeded"], r)
        self.assertFalse(r["timed_out"], r)
        self.assertIn("OSError: [Errno 27] File too large", r["stderr"])
        # the same write one byte earlier is fine: the limit is exactly tmp_size_mb
        r = spr_run(PAST_FSIZE.replace("f.seek(limit)", "f.seek(limit - 1)"),
                    policy=dict(PERMISSIVE, tmp_size_mb=2))
        self.assertOk(r)


class ImpossiblePolicies(SprTestCase):
    """A policy no run could ever satisfy is a policy error (exit 2, the
    field and the allowed range named) before any sandbox or container
    exists, not a 125 with a kernel message from the middle of setup."""

    def run_policy(self, policy, code_text="result = 1"):
        with tempfile.TemporaryDirectory() as d:
            path = write_policy(policy, d)
            return subprocess.run([SPR_RUN, "--engine", ENGINE, "--json", "--policy", path, "-"],
                                  input=code_text, capture_output=True, text=True, timeout=300)

    def test_too_few_processes(self):
        proc = self.run_policy({"max_processes": 1})
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertIn("'max_processes' must be at least 2 on the", proc.stderr)
        self.assertIn(f" {ENGINE_KIND} engine", proc.stderr)

    def test_the_floor_runs(self):
        proc = self.run_policy({"max_processes": 2})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["result"], 1)

    def test_below_the_smallest_cpu_quota(self):
        for cores in (0.001, 0.005, 0.009):
            with self.subTest(cores=cores):
                proc = self.run_policy({"cpu_cores": cores})
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(f"'cpu_cores' must be a number from 0.01 to 1024 cores (got {cores})",
                              proc.stderr)

    def test_the_smallest_cpu_quota_runs(self):
        # 1% of a CPU: starting the interpreter alone takes seconds of wall
        # time (more on a loaded host, or in a container whose quota the
        # sandbox set-up shares); this is about the quota being accepted
        # and honoured, not about speed, so the timeout is no constraint.
        for cores in (0.01, 0.05):
            with self.subTest(cores=cores):
                proc = self.run_policy({"cpu_cores": cores, "timeout_seconds": 120})
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertEqual(json.loads(proc.stdout)["result"], 1)
