"""Each run's host uid (SPEC §4 "Identity"): as root, every run's user
namespace is created by a uid leased for that run from a range no account
uses, so the kernel charges the run's per-user budgets there
(tests/hostile/test_budgets.py shows the attack). Rootless runs are the
caller's own uid."""
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

from integration.common import ENGINE, PERMISSIVE, SPR, SPR_RUN, SprTestCase, write_policy

IS_ROOT = os.geteuid() == 0
DEFAULT_RANGE = (1879048192, 65536)

# Reports the uid its worker process has on the host, as the host sees it
# (/proc/self/status inside shows the namespace's view: 1000).
CODE = "import os\nresult = {'inside': os.getuid(), 'pid': os.getpid()}\n"


def run(code, *args, timeout=60):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "code.py")
        with open(path, "w") as f:
            f.write(code)
        return subprocess.run([SPR_RUN, "--json", "--policy", write_policy(PERMISSIVE, d), *args,
                               path], capture_output=True, text=True, timeout=timeout)


def start(case, code, *args):
    d = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, d, ignore_errors=True)
    path = os.path.join(d, "code.py")
    with open(path, "w") as f:
        f.write(code)
    return subprocess.Popen([SPR_RUN, "--json", "--policy", write_policy(PERMISSIVE, d), *args,
                             path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def account_ids():
    return {p.pw_uid for p in pwd.getpwall()}


@unittest.skipIf(ENGINE != "local", "the LocalEngine's identity")
class RunUid(SprTestCase):

    @unittest.skipUnless(IS_ROOT, "rootless runs keep the caller's uid")
    def test_each_run_has_an_unused_uid_of_its_own(self):
        # Two runs at once: each holds a uid the other does not, from the
        # default range, and no account has it.
        slow = "import time\ntime.sleep(2)\n" + CODE
        a, b = start(self, slow), start(self, slow)
        results = []
        for p in (a, b):
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
            results.append(json.loads(out))
        uids = [r["isolation"]["host_uid"] for r in results]
        self.assertNotEqual(uids[0], uids[1])
        for r, uid in zip(results, uids):
            self.assertEqual(r["result"]["inside"], 1000)
            self.assertTrue(DEFAULT_RANGE[0] <= uid < sum(DEFAULT_RANGE), uid)
            self.assertNotIn(uid, account_ids())

    @unittest.skipUnless(IS_ROOT, "rootless runs keep the caller's uid")
    def test_the_host_sees_the_code_as_that_uid(self):
        # A sleeper the code leaves running for a moment, found from the
        # host by its unique argv[0]: its real, effective and saved uids are
        # the run's own.
        tok = f"spr-identity-{os.getpid()}-{time.monotonic_ns()}"
        code = ("import subprocess, time\n"
                f"p = subprocess.Popen(['{tok}', '3'], executable='/bin/sleep')\n"
                "time.sleep(1.5)\nresult = 1\n")
        p = start(self, code)
        found = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and found is None:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if f.read().split(b"\0")[0] == tok.encode():
                            with open(f"/proc/{pid}/status") as s:
                                found = [l for l in s.read().splitlines() if l.startswith(("Uid:", "Gid:"))]
                except OSError:
                    pass
            time.sleep(0.05)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        uid = json.loads(out)["isolation"]["host_uid"]
        self.assertIsNotNone(found, "the sleeper was not seen")
        self.assertEqual(found[0].split()[1:], [str(uid)] * 4, found)
        self.assertEqual(found[1].split()[1:], [str(uid)] * 4, found)

    @unittest.skipUnless(IS_ROOT, "rootless runs keep the caller's uid")
    def test_a_lease_is_held_for_the_whole_run(self):
        start_id = 1879048192 + 65536 + 1000  # a range of one, of this test's own
        rng = f"{start_id}:1"
        holder = start(self, "import time\ntime.sleep(3)\nresult = 1\n", "--uid-range", rng)
        time.sleep(1)  # the holder's sandbox is set up by now
        blocked = run(CODE, "--uid-range", rng)
        self.assertEqual(blocked.returncode, 125, blocked.stderr)
        error = json.loads(blocked.stdout)["error"]
        self.assertIn(f"every uid of the range {rng} is leased", error)
        self.assertIn("--uid-range", error)
        out, err = holder.communicate(timeout=60)
        self.assertEqual(holder.returncode, 0, err)
        self.assertEqual(json.loads(out)["isolation"]["host_uid"], start_id)
        after = run(CODE, "--uid-range", rng)
        self.assertEqual(after.returncode, 0, after.stderr)
        self.assertEqual(json.loads(after.stdout)["isolation"]["host_uid"], start_id)

    @unittest.skipUnless(IS_ROOT, "the range is root's")
    def test_a_range_with_an_account_is_refused(self):
        daemon = pwd.getpwnam("daemon").pw_uid
        proc = run(CODE, "--uid-range", f"{daemon}:1")
        self.assertEqual(proc.returncode, 125, proc.stderr)
        self.assertIn(f"the uid range {daemon}:1 for runs (uid_range) includes the account "
                      "'daemon'", proc.stderr)
        proc = subprocess.run([SPR_RUN, "--json", "-"], input=CODE, capture_output=True,
                              text=True, env=dict(os.environ, SPR_UID_RANGE=f"{daemon}:1"))
        self.assertEqual(proc.returncode, 125, proc.stderr)
        self.assertIn("($SPR_UID_RANGE) includes the account 'daemon'", proc.stderr)

    def test_the_range_as_typed(self):
        for value in ("1879048192", "1:0", "0:1", "-5:1", "a:b", "", "1879048192:65536 ",
                      "4294967295:1", "65000:1000"):
            with self.subTest(value=value):
                proc = run(CODE, "--uid-range", value)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertTrue(proc.stderr.startswith("spr-run: --uid-range: "), proc.stderr)

    def test_doctor_shows_the_range_and_what_overlaps_it(self):
        def doctor(env_range):
            env = dict(os.environ, SPR_UID_RANGE=env_range) if env_range else os.environ
            proc = subprocess.run([SPR, "--json", "doctor"], capture_output=True, text=True,
                                  timeout=120, env=env)
            doc = json.loads(proc.stdout)
            return doc["run_uids"], doc.get("problems", [])
        uids, problems = doctor(None)
        self.assertEqual(uids["range"], "%d:%d" % DEFAULT_RANGE)
        self.assertIs(uids["used"], IS_ROOT)
        self.assertIs(uids["containers"], True)
        self.assertIsNone(uids["overlaps"], uids)
        daemon = pwd.getpwnam("daemon").pw_uid
        uids, problems = doctor(f"{daemon}:1")
        self.assertIn("'daemon'", uids["overlaps"])
        self.assertTrue(any("for runs and containers includes" in p and "--uid-range" in p
                            for p in problems), problems)

    @unittest.skipIf(IS_ROOT, "as root each run has a uid of its own")
    def test_rootless_runs_are_the_callers(self):
        proc = run(CODE)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["isolation"]["host_uid"], os.geteuid())


if __name__ == "__main__":
    unittest.main()
