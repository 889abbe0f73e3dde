"""Rootless Podman (SPEC §5 "Podman"), as a user with subordinate id ranges
that `make podman-rootless` creates and removes (scripts/podman-for-tests.sh
rootless-start). Every run goes through runuser as that user.

On a host where rootless podman cannot enforce limits (cgroup v1, or v2
without the memory, pids and cpu controllers delegated) a run must fail
closed, naming the fix; with --allow-degraded it runs on rlimits, and
isolation says so. Where it can (tests/vm), limits are the container's."""
import json
import os
import pwd
import subprocess
import tempfile
import unittest

from integration.common import BUILD, SPR, SPR_RUN, SprTestCase

BATCH = os.path.join(BUILD, "tests", "tools", "batch")

USER = os.environ.get("SPR_TEST_PODMAN_USER", "")
WHY = "SPR_TEST_PODMAN_USER is not set (make podman-rootless)"
BASE_IMAGE = os.environ.get("SPR_DOCKER_BASE_IMAGE", "spr-base:bookworm")


def as_user(*argv, stdin=None, timeout=600):
    home = pwd.getpwnam(USER).pw_dir
    env = ["HOME=" + home, "USER=" + USER, "PATH=/usr/local/bin:/usr/bin:/bin",
           "XDG_RUNTIME_DIR=/run/user/%d" % pwd.getpwnam(USER).pw_uid, "SPR_DOCKER_BASE_IMAGE=" + BASE_IMAGE,
           "LANG=C.UTF-8",
           "SPR_LIBEXEC_DIR=" + os.path.join(os.path.abspath(BUILD), "libexec", "spr")]
    return subprocess.run(["runuser", "-u", USER, "--", "env", "-i", *env, *argv],
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd="/")


def podman_info(fmt):
    return as_user("podman", "info", "--format", fmt).stdout.strip()


def sub_range(path):
    with open(path) as f:
        for line in f:
            name, start, count = line.strip().split(":")
            if name == USER:
                return int(start), int(count)
    raise AssertionError(f"{USER} has no range in {path}")


class Run:
    def __init__(self, p):
        self.returncode, self.stdout, self.stderr = p.returncode, p.stdout, p.stderr
        self.result = json.loads(p.stdout) if p.stdout.strip().startswith("{") else None

    def __getitem__(self, key):
        return self.result[key]

    def __repr__(self):
        return f"Run(rc={self.returncode}, result={self.result!r}, stderr={self.stderr[-1500:]!r})"


# The guardrail out of the way: these tests are about the container.
PERMISSIVE = 'blocked_imports = []\nblocked_builtins = []\n'


def spr_run(code, *args, policy=PERMISSIVE):
    """spr-run --engine podman as the test user (code on stdin; a policy in
    a file the user can read)."""
    with tempfile.TemporaryDirectory(prefix="spr-pm-") as tmp:
        os.chmod(tmp, 0o755)
        extra = []
        if policy is not None:
            path = os.path.join(tmp, "policy.toml")
            with open(path, "w") as f:
                f.write(policy)
            os.chmod(path, 0o644)
            extra = ["--policy", path]
        return Run(as_user(SPR_RUN, "--engine", "podman", "--json", *extra, *args, "-",
                           stdin=code))


@unittest.skipUnless(USER, WHY)
class RootlessPodman(SprTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cgroup_version = podman_info("{{.Host.CgroupsVersion}}")
        cls.controllers = podman_info("{{.Host.CgroupControllers}}")
        cls.enforces = cls.cgroup_version == "v2" and all(
            c in cls.controllers for c in ("memory", "pids", "cpu"))

    def test_podman_runs_rootless_as_the_test_user(self):
        self.assertEqual(podman_info("{{.Host.Security.Rootless}}"), "true")
        self.assertIn(self.cgroup_version, ("v1", "v2"))

    def test_doctor_describes_rootless_podman(self):
        p = as_user(SPR, "doctor", "--engine", "podman", "--json")
        doc = json.loads(p.stdout)
        [d] = doc["containers"]
        self.assertEqual((d["cli"], d["rootless"], d["remote"]), ("podman", True, False), d)
        self.assertEqual(d["cgroup_version"], int(self.cgroup_version[1]), d)
        self.assertEqual(d["storage"], podman_info("{{.Store.GraphDriverName}}"), d)
        self.assertEqual(d["version"], podman_info("{{.Version.Version}}"), d)
        self.assertEqual(all(d["limits"].values()), self.enforces, d)
        said = [p for p in doc["problems"] if "rootless podman cannot enforce" in p]
        self.assertEqual(len(said), 0 if self.enforces else 1, doc["problems"])
        self.assertEqual(p.returncode, 1 if doc["problems"] else 0, p.stderr)
        text = as_user(SPR, "doctor", "--engine", "podman").stdout
        self.assertIn("podman      " + d["version"], text)
        self.assertIn("| rootless | cgroup " + self.cgroup_version, text)

    def test_without_enforceable_limits_no_run_starts(self):
        if self.enforces:
            self.skipTest("podman enforces limits here (cgroup v2, controllers delegated)")
        r = spr_run("print('ran')\nresult = 1\n")
        self.assertEqual(r.returncode, 125, r)
        self.assertFalse(r["ok"], r)
        self.assertEqual((r["exit_code"], r["stdout"], r["isolation"]), (125, "", {}), r)
        for words in ("rootless podman cannot enforce", "run podman as root",
                      "Delegate=yes", "--allow-degraded"):
            self.assertIn(words, r["error"])
            self.assertIn(words, r.stderr)
        if self.cgroup_version == "v1":
            self.assertIn("cgroup v1", r.stderr)

    def test_limits_are_the_containers_where_podman_enforces_them(self):
        if not self.enforces:
            self.skipTest("rootless podman enforces no limits here (tests/vm: cgroup v2)")
        r = spr_run("result = 1\n")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r["isolation"]["memory"], "cgroup", r)
        self.assertFalse(r["isolation"]["degraded"], r)

    def degraded(self, code, *args, **kw):
        return spr_run(code, *([] if self.enforces else ["--allow-degraded"]), *args, **kw)

    def test_degraded_run_says_how_it_is_isolated(self):
        r = self.degraded("result = 6 * 7\n")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r["result"], 42, r)
        iso = r["isolation"]
        self.assertEqual(iso["runtime"], "podman")
        self.assertTrue(iso["rootless"])
        for layer in ("userns", "pidns", "netns", "mountns", "landlock", "read_only_root"):
            self.assertTrue(iso[layer], (layer, iso))
        self.assertFalse(iso["capabilities"])
        self.assertEqual(iso["memfd_exec"], "refused")
        if not self.enforces:
            self.assertTrue(iso["degraded"])
            self.assertEqual(iso["memory"], "rlimit")
        # The run's uid on the host is one of the user's subordinate ids,
        # never the user's own (nor root).
        start, count = sub_range("/etc/subuid")
        self.assertTrue(start <= iso["host_uid"] < start + count, (iso["host_uid"], start, count))

    def test_run_processes_are_host_subordinate_ids(self):
        r = self.degraded("print(open('/proc/self/uid_map').read())\nresult = 1\n")
        self.assertEqual(r.returncode, 0, r)
        # one line: the run's uid mapped onto one id of the container's
        lines = [l.split() for l in r["stdout"].strip().splitlines()]
        self.assertEqual(len(lines), 1, r)
        self.assertEqual(lines[0][2], "1", r)

    def test_memory_limit_holds(self):
        # On the container's cgroup where podman enforces limits (the
        # kernel's OOM kill), else on RLIMIT_AS: either way the run ends.
        r = self.degraded("b = bytearray(400 * 1024 * 1024)\nresult = len(b)\n",
                          "--memory", "64")
        self.assertFalse(r["ok"], r)
        self.assertTrue(r["resource_exceeded"], r)
        self.assertIn("Memory limit exceeded", r["error"], r)
        self.assertEqual(r["isolation"]["memory"], "cgroup" if self.enforces else "rlimit", r)

    def test_where_limits_are_enforced_no_rlimit_stands_in(self):
        # The cgroup, not an rlimit, holds the code: RLIMIT_AS is unlimited
        # in the run and a 200 MB allocation under a 256 MB limit succeeds
        # (RLIMIT_AS counts address space, which would refuse it).
        if not self.enforces:
            self.skipTest("rootless podman enforces no limits here (tests/vm: cgroup v2)")
        r = spr_run("import resource\nb = bytearray(200 * 1024 * 1024)\n"
                    "result = [resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY,"
                    " len(b)]\n", "--memory", "256")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(r["result"], [True, 200 * 1024 * 1024], r)
        self.assertFalse(r["isolation"]["degraded"], r)

    def test_small_allocations_under_the_limit_succeed(self):
        for mb in (1, 8, 32):
            with self.subTest(mb=mb):
                r = self.degraded(f"b = bytearray({mb} * 1024 * 1024)\nresult = len(b)\n",
                                  "--memory", "128")
                self.assertEqual(r["result"], mb * 1024 * 1024, r)

    def test_process_limit_holds(self):
        policy = PERMISSIVE + 'max_processes = 4\n'
        code = ("import subprocess\nps = []\nerr = None\n"
                "try:\n    for i in range(30):\n"
                "        ps.append(subprocess.Popen(['sleep', '5']))\n"
                "except OSError as e:\n    err = e.errno\n"
                "for p in ps: p.kill()\nresult = [len(ps), err]\n")
        r = self.degraded(code, policy=policy)
        self.assertIsNotNone(r.result, r)
        if self.enforces:
            # The container's pids cgroup: reaching it ends the run.
            self.assertFalse(r["ok"], r)
            self.assertTrue(r["resource_exceeded"], r)
            self.assertEqual(r["error"], "Process limit exceeded", r)
            return
        # RLIMIT_NPROC: the code's fork fails and it goes on.
        started, err = r["result"] if r["result"] else (None, None)
        self.assertIsNotNone(err, r)
        self.assertLess(started, 30, r)

    def test_next_run_in_the_container_sees_nothing_of_the_last(self):
        # One engine (tests/tools/batch), so the runs share a container: run
        # A leaves a secret in /tmp, /dev/shm and a SysV segment and a
        # process behind; run B, in the same container, looks for them.
        secret = "rootless-secret-4711"
        attack = (f"open('/tmp/s', 'w').write({secret!r})\n"
                  f"open('/dev/shm/s', 'w').write({secret!r})\n"
                  "import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n"
                  "    time.sleep(60)\n    os._exit(0)\n"
                  "result = len([p for p in os.listdir('/proc') if p.isdigit()])\n")
        look = ("import glob, os\n"
                "procs = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                "result = [glob.glob('/tmp/*') + glob.glob('/dev/shm/*'), len(procs)]\n")
        requests = [{"code": c, "policy": {"blocked_imports": [], "blocked_builtins": []}}
                    for c in (attack, look)]
        argv = [BATCH, "--engine", "podman", "--threads", "1"]
        if not self.enforces:
            argv.append("--allow-degraded")
        p = as_user(*argv, stdin="".join(json.dumps(r) + "\n" for r in requests))
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        a, b = [json.loads(line)["result"] for line in p.stdout.splitlines()]
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["isolation"]["container"]["name"],
                         b["isolation"]["container"]["name"], (a, b))
        self.assertEqual(b["isolation"]["container"]["run"], 2, b)
        files, nprocs = b["result"]
        self.assertEqual(files, [], b)
        # A saw its sandbox's init, its worker and its child; B only its
        # own init and worker: A's child did not outlive A
        self.assertEqual(a["result"], 3, a)
        self.assertEqual(nprocs, 2, b)

if __name__ == "__main__":
    unittest.main()
