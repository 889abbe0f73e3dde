"""When a protection cannot be applied: exit 125 naming the cause and the
fix, or — with --allow-degraded — a run without it, reported in isolation.

User namespaces are refused the way Docker's default seccomp profile
refuses them (tests/tools/deny-userns), so no host setting changes."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from integration.common import (BUILD, ENGINE, PERMISSIVE, SPR, SPR_RUN, SprTestCase, host_processes,
                                host_pids_with_argv0, write_policy)

DENY = os.path.join(BUILD, "tests", "tools", "deny-userns")


def run_denied(code, *args, policy=None):
    with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
        path = os.path.join(tmp, "code.py")
        with open(path, "w") as f:
            f.write(code)
        cmd = [DENY, SPR_RUN, *args]
        if policy is not None:
            cmd += ["--policy", write_policy(policy, tmp)]
        proc = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=60)
        return proc


@unittest.skipUnless(ENGINE == "local", "namespaces are the LocalEngine's")
class RefusedUserNamespace(SprTestCase):
    def test_exit_125_names_cause_and_fix(self):
        proc = run_denied("result = 1")
        self.assertEqual(proc.returncode, 125, proc)
        msg = proc.stderr.strip().splitlines()[-1]
        self.assertTrue(msg.startswith("spr-run: sandbox setup failed: creating the sandbox "
                                       "namespaces failed: Operation not permitted"), msg)
        # The cause, the fix, and what degrading would still give.
        self.assertIn("forbids unshare/clone of namespaces", msg)
        self.assertIn("--allow-degraded", msg)
        self.assertIn("the seccomp filter, Landlock", msg)

    def test_doctor_shows_where_and_what_degrading_keeps(self):
        """spr doctor, where namespaces are refused: the trial run's refusal,
        where it runs, and a degraded trial run's layers (SPEC §7)."""
        proc = subprocess.run([DENY, SPR, "--json", "doctor"], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(
                                  BUILD, "libexec", "spr")))
        doc = json.loads(proc.stdout)
        self.assertFalse(doc["run"]["ok"], doc["run"])
        self.assertIn("namespaces failed", doc["run"]["error"])
        self.assertIn("container", doc["where"])
        self.assertIn("max_user_namespaces", doc["where"])
        deg = doc["degraded_run"]
        self.assertTrue(deg["ok"], deg)
        self.assertEqual((deg["isolation"]["network"], deg["isolation"]["ipc"]),
                         ("refused", "refused"), deg)
        self.assertTrue(any("--allow-degraded" in p for p in doc["problems"]), doc["problems"])

    def test_json_result_for_125(self):
        proc = run_denied("result = 1", "--json")
        self.assertEqual(proc.returncode, 125, proc)
        res = json.loads(proc.stdout)
        self.assertFalse(res["ok"])
        self.assertEqual(res["exit_code"], 125)
        self.assertIsNone(res["result"])
        self.assertIn("Operation not permitted", res["error"])
        self.assertFalse(res["isolation"]["userns"])

    def test_allow_degraded_runs_and_says_so(self):
        proc = run_denied("result = 6 * 7", "--json", "--allow-degraded")
        self.assertEqual(proc.returncode, 0, proc)
        res = json.loads(proc.stdout)
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["result"], 42)
        iso = res["isolation"]
        self.assertTrue(iso["degraded"])
        for layer in ("userns", "pidns", "netns", "mountns"):
            self.assertFalse(iso[layer], (layer, iso))
        # What does not need namespaces is still applied, and what stands
        # in for them (SPEC §7 "Degraded mode").
        self.assertEqual((iso["network"], iso["ipc"], iso["unix_sockets"]),
                         ("refused", "refused", "socketpair only"), iso)
        self.assertEqual(iso["seccomp"], "spr-deny-v4-no-unix-socket")
        self.assertEqual(iso["process_tree"], "subreaper")
        # ...and without a uid of its own (root) nor Landlock's scope (ABI
        # 6), the caller's processes can be signalled: said too
        signals = [] if iso["landlock_scoped"] or os.geteuid() == 0 else [
            "signals to the caller's processes"]
        # ...and, running as the caller (not root), the metadata of its
        # files, which no Landlock ABI covers
        if os.geteuid() != 0:
            signals.append("metadata of the caller's files (mode, times, extended attributes)")
        self.assertEqual(iso["visible"], ["host processes (/proc)", "hostname", "mountinfo",
                                          "/proc/net", "namespace inodes", *signals])
        self.assertTrue(iso["landlock"])
        # The policy's network: inet sockets stay, unix ones are refused.
        net = json.loads(run_denied("result = 1", "--json", "--allow-degraded",
                                    policy=dict(network=True)).stdout)
        self.assertEqual((net["isolation"]["network"], net["isolation"]["unix_sockets"]),
                         ("host", "socketpair only"), net)

    def test_degraded_still_contains_the_code(self):
        code = (
            "import os\n"
            "def t(f):\n"
            "    try:\n"
            "        f()\n"
            "        return 'allowed'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
            "result = {'uid': os.getuid(), 'passwd': t(lambda: open('/etc/passwd').read()),\n"
            "          'write_host_tmp': t(lambda: open('/tmp/spr-degraded-' + str(os.getpid()), 'w')),\n"
            "          'write_cwd': t(lambda: open('here', 'w').write('x')),\n"
            "          'nnp': st['NoNewPrivs'], 'seccomp': st['Seccomp'], 'capeff': st['CapEff']}\n")
        proc = run_denied(code, "--json", "--allow-degraded", policy=dict(PERMISSIVE))
        res = json.loads(proc.stdout)
        self.assertTrue(res["ok"], res)
        r = res["result"]
        if os.geteuid() == 0:
            # root's code runs as a uid of the run's own (the range's)
            self.assertIn(r["uid"], range(1879048192, 1879048192 + 65536))
            self.assertEqual(r["uid"], res["isolation"]["host_uid"])
        else:
            self.assertEqual(r["uid"], os.geteuid())
        self.assertEqual(r["passwd"], "PermissionError")  # Landlock
        self.assertEqual(r["write_host_tmp"], "PermissionError")
        self.assertEqual(r["write_cwd"], "allowed")  # its private run directory
        self.assertEqual((r["nnp"], r["seccomp"], r["capeff"]), ("1", "2", "0000000000000000"))

    def test_degraded_timeout_kills_the_tree(self):
        code = ("import os, time\n"
                "if os.fork() == 0:\n"
                "    os.setsid()\n"
                "    if os.fork() == 0:\n"
                "        os.execv('/bin/sleep', [input_data['token'], '1000'])\n"
                "    os._exit(0)\n"
                "time.sleep(100)\n")
        token = "sprdeg" + os.urandom(6).hex()
        with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
            path = os.path.join(tmp, "code.py")
            with open(path, "w") as f:
                f.write(code)
            proc = subprocess.run(
                [DENY, SPR_RUN, "--json", "--allow-degraded", "--timeout", "1",
                 "--policy", write_policy(dict(PERMISSIVE), tmp),
                 "--input", json.dumps({"token": token}), path],
                capture_output=True, text=True, timeout=60)
        res = json.loads(proc.stdout)
        self.assertTrue(res["timed_out"], res)
        left = host_pids_with_argv0(token)
        for pid in left:  # only our own token
            os.kill(pid, 9)
        self.assertEqual(left, [], "a degraded run's grandchild survived")

    def test_degraded_sigkill_of_spr_run_then_cleanup_leaves_nothing(self):
        """Without a pid namespace a child the code forked has no parent-death
        signal: when spr-run is SIGKILLed, the worker dies (its own
        PDEATHSIG, re-armed after the uid change as root), and what the code
        forked is still in the run's cgroup, which `spr cleanup` (or the next
        engine start) finds stale and empties (docs/SPEC.md §7)."""
        token = "sprdegk" + os.urandom(6).hex()
        code = ("import os\n"
                "if os.fork() == 0:\n"
                "    os.execv('/bin/sleep', [input_data['token'], '1000'])\n"
                "os.execv('/bin/sleep', [input_data['token'], '1000'])\n")

        def with_token():
            return host_pids_with_argv0(token)

        with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
            path = os.path.join(tmp, "code.py")
            with open(path, "w") as f:
                f.write(code)
            if os.geteuid() != 0 and not os.environ.get("SPR_TEST_CGROUP_DELEGATED"):
                self.skipTest("rootless without a delegated cgroup: nothing contains what "
                              "a degraded run forked (documented)")
            # The run's directory goes in a TMPDIR of the test's own, so
            # what is left there is this run's alone.
            rundirs = os.path.join(tmp, "tmpdir")
            os.mkdir(rundirs)
            env = dict(os.environ, TMPDIR=rundirs)
            proc = subprocess.Popen(
                [DENY, SPR_RUN, "--json", "--allow-degraded", "--timeout", "30",
                 "--policy", write_policy(dict(PERMISSIVE), tmp),
                 "--input", json.dumps({"token": token}), path],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            try:
                deadline = time.monotonic() + 10
                while len(with_token()) < 2 and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertEqual(len(with_token()), 2, "the run never started its sleepers")
                before = with_token()
                proc.kill()
                proc.wait()
                deadline = time.monotonic() + 2
                while len(with_token()) > 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
                # The worker itself (the first sleeper, exec'd in place) is gone.
                self.assertLessEqual(len(with_token()), 1, (before, with_token()))
                # The cgroup is stale once its monitor (spr-sandbox --serve <spr-run pid>)
                # is dead; under load the kernel may take a moment to kill it.
                def monitor_alive():
                    return any(os.path.basename(argv[0]) == "spr-sandbox"
                               and argv[2:3] == [str(proc.pid)]
                               for argv, *_ in host_processes().values() if argv)
                deadline = time.monotonic() + 10
                while monitor_alive() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertFalse(monitor_alive(), "the monitor outlived spr-run")
                cleanup = subprocess.run([os.path.join(BUILD, "spr"), "cleanup"],
                                         capture_output=True, text=True, timeout=60, env=env)
                self.assertEqual(cleanup.returncode, 0, cleanup)
                self.assertEqual(os.listdir(rundirs), [], "the run's directory was left")
                if with_token():
                    self.assertIn("removed 1 stale run cgroup", cleanup.stdout)
                deadline = time.monotonic() + 2
                while with_token() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertEqual(with_token(), [], "spr cleanup left the run's processes")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for pid in with_token():  # only our own token
                    os.kill(pid, signal.SIGKILL)


    def test_a_killed_monitors_run_directory_is_swept(self):
        """A degraded run's directory is in the host's TMPDIR: when its
        monitor is SIGKILLed (nothing it can catch), the directory stays
        behind. The next engine start and `spr cleanup` find it by the
        maker named in it and remove it; a live run's is never touched."""
        code = "import time\ntime.sleep(30)\n"
        with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
            path = os.path.join(tmp, "code.py")
            with open(path, "w") as f:
                f.write(code)
            rundirs = os.path.join(tmp, "tmpdir")
            os.mkdir(rundirs)
            env = dict(os.environ, TMPDIR=rundirs)
            pol = write_policy(dict(PERMISSIVE), tmp)

            def start():
                return subprocess.Popen([DENY, SPR_RUN, "--json", "--allow-degraded",
                                         "--timeout", "60", "--policy", pol, path],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)

            def monitors(caller):
                return [pid for pid, (argv, *_) in host_processes().items()
                        if argv and os.path.basename(argv[0]) == "spr-sandbox"
                        and argv[2:3] == [str(caller.pid)]]

            def wait_for(what, predicate):
                deadline = time.monotonic() + 20
                while not predicate() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertTrue(predicate(), what)

            def killed_monitor():
                """A run whose monitor was SIGKILLed: its directory's name."""
                before = set(os.listdir(rundirs))
                victim = start()
                try:
                    wait_for("the run never made its directory",
                             lambda: set(os.listdir(rundirs)) - before and monitors(victim))
                    made = sorted(set(os.listdir(rundirs)) - before)
                    self.assertEqual(len(made), 1, made)
                    self.assertRegex(made[0],
                                     r"^spr-run-[0-9]+\.[0-9]+\.[0-9]+-[A-Za-z0-9]{6}$")
                    for pid in monitors(victim):
                        os.kill(pid, signal.SIGKILL)
                    out, errout = victim.communicate(timeout=60)
                    self.assertNotEqual(victim.returncode, 0, (out, errout))
                finally:
                    if victim.poll() is None:
                        victim.kill()
                        victim.wait()
                # The leak this guards against: nothing removed it.
                self.assertIn(made[0], os.listdir(rundirs))
                return made[0]

            def cleanup():
                p = subprocess.run([SPR, "cleanup"], capture_output=True, text=True,
                                   timeout=60, env=env)
                self.assertEqual(p.returncode, 0, p)
                return p.stdout

            killed_monitor()
            self.assertIn("and 1 run directory\n", cleanup())
            self.assertEqual(os.listdir(rundirs), [])

            # The next engine's start removes one too, and neither it
            # nor `spr cleanup` touches a live run's.
            stale = killed_monitor()
            live = start()
            try:
                wait_for("the next run never started", lambda: monitors(live))
                wait_for("the next engine left the stale directory",
                         lambda: stale not in os.listdir(rundirs))
                # Its monitor may be there before its directory (slower
                # under ASan): wait for that too.
                wait_for("the next run never made its directory",
                         lambda: len(os.listdir(rundirs)) == 1)
                mine = os.listdir(rundirs)
                self.assertEqual(len(mine), 1, mine)
                self.assertIn("and 0 run directories\n", cleanup())
                self.assertEqual(os.listdir(rundirs), mine)
            finally:
                live.kill()
                live.wait()

    def test_an_engine_start_sweeps_killed_monitors_run_directories(self):
        """The same without `spr cleanup`: the next engine's start removes
        a directory whose maker is gone (here one named after a pid that
        cannot be alive), and leaves a look-alike another user could have
        made alone."""
        with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
            rundirs = os.path.join(tmp, "tmpdir")
            os.mkdir(rundirs)
            pidns = os.stat("/proc/self/ns/pid").st_ino
            # pid_max is at most 2^22: this pid is nobody's.
            stale = os.path.join(rundirs, f"spr-run-{pidns}.{2 ** 30}.1-abcdef")
            os.makedirs(os.path.join(stale, "work", "deep", "er"))
            with open(os.path.join(stale, "work", "deep", "file"), "w") as f:
                f.write("left")
            os.chmod(os.path.join(stale, "work", "deep"), 0o500)
            other_ns = os.path.join(rundirs, f"spr-run-{pidns + 1}.{2 ** 30}.1-abcdef")
            os.mkdir(other_ns)
            not_ours = os.path.join(rundirs, "spr-run-1.2.3-xyz")  # an old-style name
            os.mkdir(not_ours)
            proc = subprocess.run([DENY, SPR_RUN, "--allow-degraded", "-"], input="x = 1\n",
                                  capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, TMPDIR=rundirs))
            self.assertEqual(proc.returncode, 0, proc)
            self.assertEqual(sorted(os.listdir(rundirs)),
                             sorted([os.path.basename(other_ns), os.path.basename(not_ours)]))


WITHOUT = os.path.join(BUILD, "tests", "tools", "kernel-without")


def run_without(feature, code, *args):
    """spr-run --json on code, as on a kernel without `feature`
    (tests/tools/kernel-without)."""
    with tempfile.TemporaryDirectory(prefix="spr-it-deg-") as tmp:
        path = os.path.join(tmp, "code.py")
        with open(path, "w") as f:
            f.write(code)
        cmd = [WITHOUT, feature, SPR_RUN, "--json", *args,
               "--policy", write_policy(PERMISSIVE, tmp), path]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@unittest.skipUnless(ENGINE == "local", "the LocalEngine loads the filter itself")
class MissingSeccomp(SprTestCase):
    """A kernel without seccomp filters: exit 125 naming it and the fix, or,
    with --allow-degraded, a run that says it had none."""

    def test_exit_125_names_cause_and_fix(self):
        proc = run_without("seccomp", "result = 1")
        self.assertEqual(proc.returncode, 125, proc)
        res = json.loads(proc.stdout)
        self.assertEqual([res["ok"], res["exit_code"], res["result"]], [False, 125, None])
        self.assertEqual(res["error"], "sandbox setup failed: loading the seccomp filter "
                         "failed (the kernel needs "
                         "CONFIG_SECCOMP_FILTER; pass --allow-degraded to run without it): "
                         "Invalid argument")

    def test_allow_degraded_runs_and_reports_no_seccomp(self):
        proc = run_without("seccomp", "result = 6 * 7", "--allow-degraded")
        self.assertEqual(proc.returncode, 0, proc)
        res = json.loads(proc.stdout)
        self.assertEqual(res["result"], 42, res)
        iso = res["isolation"]
        self.assertEqual([iso["seccomp"], iso["degraded"]], ["none", True], iso)
        # only the filter is missing: the namespaces are all there
        self.assertEqual([iso[k] for k in ("userns", "pidns", "netns", "mountns", "landlock")],
                         [True] * 5, iso)


@unittest.skipUnless(ENGINE == "local", "the LocalEngine clones the sandbox itself")
class NoClone3(SprTestCase):
    """Before Linux 5.3 (or under a profile refusing it) clone3 is ENOSYS:
    the monitor falls back to clone() with the same namespaces."""

    def test_clone_fallback_isolates(self):
        code = ("import os, socket\n"
                "result = [os.getpid(), os.getuid(), socket.gethostname(),\n"
                "          sorted(int(p) for p in os.listdir('/proc') if p.isdigit())]\n")
        proc = run_without("clone3", code)
        self.assertEqual(proc.returncode, 0, proc)
        res = json.loads(proc.stdout)
        # the worker is pid 2 under the namespace's init, as the sandbox user
        self.assertEqual(res["result"], [2, 1000, "sandbox", [1, 2]], res)
        iso = res["isolation"]
        self.assertEqual([iso[k] for k in ("userns", "pidns", "netns", "mountns", "degraded")],
                         [True, True, True, True, False], iso)
        self.assertEqual(iso["seccomp"], "spr-deny-v4", iso)
