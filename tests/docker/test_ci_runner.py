"""spr-run inside a CI job's container (SPEC §7 "Degraded mode"): a real
container on the test daemon, with Docker's default seccomp profile and
capabilities, spr's build bind-mounted in (and the one runtime library the
base image lacks, libcjson), as root and as uid 1000 — GitLab's docker
executor, Jenkins agents, GitHub Actions `container:` jobs. User namespaces
are refused there; `--allow-degraded` must still keep the code from the
job's network, /dev/shm, SysV IPC and processes, and leave nothing running.
tests/tools/ci_job.py plays the job; tests/hostile/test_degraded.py says
what must hold."""
import json
import os
import subprocess
import unittest

from docker.test_docker import PODMAN, READY, WHY
from hostile.test_degraded import CI_JOB, DegradedJobChecks
from integration.common import BUILD, SprTestCase, sanitized

BASE_IMAGE = os.environ.get("SPR_DOCKER_BASE_IMAGE", "spr-base:bookworm")
LIBCJSON = "/lib/x86_64-linux-gnu/libcjson.so.1"


def in_container(user, *command):
    return subprocess.run(
        ["docker", "run", "--rm", "--user", user,
         "-v", f"{os.path.abspath(BUILD)}:/spr:ro", "-v", f"{CI_JOB}:/ci_job.py:ro",
         "-v", f"{LIBCJSON}:/usr/lib/x86_64-linux-gnu/libcjson.so.1:ro",
         "--label", "io.spr.test=ci-runner", BASE_IMAGE, *command],
        capture_output=True, text=True, timeout=900)


@unittest.skipUnless(READY, WHY)
@unittest.skipIf(sanitized(), "a sanitized spr-run needs the host's libasan, which the "
                              "job's image lacks (make docker runs these)")
class CiRunnerContainer(SprTestCase, DegradedJobChecks):
    def job(self, user, own_uid):
        p = in_container(user, "python3", "/ci_job.py", "/spr/spr-run")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.check_job(json.loads(p.stdout), own_uid)

    def test_as_root(self):
        self.job("0:0", own_uid=True)

    def test_as_uid_1000(self):
        if PODMAN:
            # podman's default profile lets uid 1000 make user namespaces
            # but refuses sethostname: spr then refuses to run (the run's
            # hostname would be the container's) and names the fix
            p = in_container("1000:1000", "sh", "-c",
                             "echo 'result = 1' | /spr/spr-run --allow-degraded -")
            self.assertEqual(p.returncode, 125, p.stderr)
            self.assertIn("sethostname", p.stderr)
            self.assertIn("seccomp=unconfined", p.stderr)
            return
        self.job("1000:1000", own_uid=False)

    def test_without_allow_degraded_the_fix_is_named(self):
        for user in ("0:0", "1000:1000"):
            with self.subTest(user=user):
                p = in_container(user, "sh", "-c", "echo 'result = 1' | /spr/spr-run -")
                self.assertEqual(p.returncode, 125, p.stderr)
                if PODMAN and user != "0:0":
                    self.assertIn("sethostname", p.stderr)
                    continue
                self.assertIn(f"inside a {'podman' if PODMAN else 'docker'} container",
                              p.stderr)
                self.assertIn("unmask=ALL" if PODMAN else "systempaths=unconfined", p.stderr)
                self.assertIn("--allow-degraded", p.stderr)
                self.assertNotIn("run as root", p.stderr)


if __name__ == "__main__":
    unittest.main()
