"""Degraded mode (SPEC §7 "Degraded mode"): where user namespaces are refused
(a host under deny-userns here; tests/docker/test_ci_runner.py does the same
inside unprivileged containers), `--allow-degraded` still keeps the code from
the network, the host's /dev/shm and SysV IPC, the job's processes, and
leaves nothing running after the run; as root the code runs as a uid no
account has.

tests/tools/ci_job.py plays the CI job: each attack is first shown to work
without spr (plain python3), then to fail through spr-run."""
import json
import os
import subprocess
import unittest

from integration.common import BUILD, SPR_RUN, SprTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CI_JOB = os.path.join(ROOT, "tests", "tools", "ci_job.py")
DENY_USERNS = os.path.join(BUILD, "tests", "tools", "deny-userns")
RANGE = range(1879048192, 1879048192 + 65536)


class DegradedJobChecks:
    """What must hold for a job's degraded runs (ci_job.py's report)."""

    def check_job(self, d, own_uid):
        secret = d["secret"]
        one = d["one_plus_one"]
        self.assertTrue(one["ok"], one)
        self.assertEqual(one["result"], 2)
        iso = one["isolation"]
        self.assertIs(iso["degraded"], True, iso)
        self.assertIs(iso["userns"], False, iso)
        self.assertEqual((iso["network"], iso["ipc"]), ("refused", "refused"), iso)

        net = d["network"]
        self.assertEqual(net["plain"]["result"], {"tcp": secret, "udp": "sent"},
                         "the control could not reach the job's listener")
        self.assertTrue(net["spr"]["ok"], net["spr"])
        self.assertEqual(net["spr"]["result"], {"tcp": "PermissionError", "udp": "PermissionError"})

        ipc = d["ipc"]
        self.assertEqual(ipc["plain"]["result"], {"dev_shm": secret, "sysv": secret},
                         "the control could not read the job's /dev/shm and SysV segment")
        self.assertTrue(ipc["spr"]["ok"], ipc["spr"])
        got = ipc["spr"]["result"]
        self.assertEqual(got["dev_shm"], "PermissionError", got)
        self.assertNotIn(secret, json.dumps(got))

        left = d["leftover"]
        self.assertEqual(left["plain"]["survivors"], 1, "the control left no process")
        self.assertTrue(left["spr"]["run"]["ok"], left["spr"])
        self.assertEqual(left["spr"]["survivors"], 0, "a grandchild of the run survived it")

        sig = d["signal"]
        self.assertFalse(sig["plain"]["victim_alive"], "the control could not kill the job's process")
        run_iso = sig["spr"]["run"]["isolation"]
        if own_uid or run_iso["landlock_scoped"]:
            self.assertEqual(sig["spr"]["run"]["result"], "PermissionError", sig["spr"])
            self.assertTrue(sig["spr"]["victim_alive"], "the run killed a process of the job")
        else:
            # Neither a uid of its own nor Landlock's scope (a kernel
            # before 6.10, not root): nothing keeps the code's signals
            # from the caller's processes, and isolation says so
            self.assertIn("signals to the caller's processes", run_iso["visible"], sig["spr"])

        uid, gid = d["run_uid"]["result"]
        if own_uid:
            self.assertIn(uid, RANGE, "the run's uid is not one of spr's range")
            self.assertEqual(gid, uid)
            self.assertNotIn(uid, d["accounts"], "the run's uid is an account's")
        else:
            # Without CAP_SETUID there is no other uid to take: the run is
            # the caller's (Landlock keeps its signals inside, above).
            self.assertEqual(uid, d["uid"])


@unittest.skipUnless(os.path.exists(DENY_USERNS), "tests/tools/deny-userns not built")
class HostWithoutUserNamespaces(SprTestCase, DegradedJobChecks):
    def test_a_ci_job_on_this_host(self):
        p = subprocess.run(["/usr/bin/python3", "-I", CI_JOB, SPR_RUN, DENY_USERNS],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_job(json.loads(p.stdout), own_uid=os.geteuid() == 0)

    def test_refused_namespaces_name_the_fix(self):
        p = subprocess.run([DENY_USERNS, SPR_RUN, "-"], input="result = 1", capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 125, p.stderr)
        self.assertIn("--allow-degraded", p.stderr)
        self.assertIn("the seccomp filter, Landlock", p.stderr)

    def test_require_fails_closed(self):
        """A layer the host cannot give, required: the run never starts,
        exit 125 naming it; layers degraded mode keeps are fine."""
        for layers, ok in (("seccomp,landlock-fs,network-off,ipc-private", True),
                           ("namespaces", False), ("seccomp,namespaces", False)):
            with self.subTest(layers=layers):
                p = subprocess.run([DENY_USERNS, SPR_RUN, "--allow-degraded", "--json",
                                    "--require", layers, "-"],
                                   input="result = 1",
                                   capture_output=True, text=True, timeout=120)
                r = json.loads(p.stdout)
                if ok:
                    self.assertEqual((p.returncode, r["result"]), (0, 1), r)
                else:
                    self.assertEqual(p.returncode, 125, r)
                    self.assertIn("requires the isolation layer 'namespaces'", r["error"])
                    self.assertIsNone(r["result"])


if __name__ == "__main__":
    unittest.main()
