"""Remote podman (SPEC §5 "Podman"): a podman service on a unix socket
(`podman system service`, as podman.socket runs it), reached with
docker_host / --docker-host, which the engine passes as podman's --url.
Runs as root against the podman storage `make podman` set up."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from integration.common import SPR, SPR_RUN, SprTestCase

PODMAN = shutil.which("podman")
WHY = "needs root, podman and SPR_TEST_PODMAN=1 (make podman sets them up)"
ENV = dict(os.environ, SPR_DOCKER_BASE_IMAGE=os.environ.get("SPR_DOCKER_BASE_IMAGE",
                                                            "spr-base:bookworm"))


@unittest.skipUnless(PODMAN and os.geteuid() == 0 and os.environ.get("SPR_TEST_PODMAN") == "1",
                     WHY)
class RemotePodman(SprTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="spr-pm-remote-")
        cls.url = f"unix://{cls.tmp}/podman.sock"
        cls.service = subprocess.Popen([PODMAN, "system", "service", "--time=0", cls.url],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       env=ENV)
        deadline = time.monotonic() + 60
        while not os.path.exists(f"{cls.tmp}/podman.sock"):
            if time.monotonic() > deadline or cls.service.poll() is not None:
                raise AssertionError("podman system service did not start: "
                                     + cls.service.stderr.read().decode(errors="replace"))
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        cls.service.terminate()
        cls.service.wait(timeout=60)
        cls.service.stderr.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_code(self, code, *args):
        p = subprocess.run([SPR_RUN, "--engine", "podman", "--json", *args, "-"], input=code,
                           capture_output=True, text=True, timeout=600, env=ENV)
        return p, (json.loads(p.stdout) if p.stdout.startswith("{") else None)

    def test_a_run_through_the_service(self):
        p, r = self.run_code("result = 6 * 7\n", "--docker-host", self.url)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["result"], 42, r)
        self.assertEqual(r["isolation"]["runtime"], "podman", r)
        self.assertFalse(r["isolation"]["rootless"], r)
        self.assertTrue(r["isolation"]["pidns"], r)

    def test_admin_and_doctor_see_the_service(self):
        p = subprocess.run([SPR, "--engine", "podman", "--docker-host", self.url, "--json",
                            "list", "containers"], capture_output=True, text=True, env=ENV,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("containers", json.loads(p.stdout))

    def test_a_service_that_is_not_there_is_125(self):
        for url in (f"unix://{self.tmp}/none.sock",):
            with self.subTest(url=url):
                p, r = self.run_code("result = 1\n", "--docker-host", url)
                self.assertEqual(p.returncode, 125, p.stderr)
                self.assertTrue(r["error"].startswith(
                    "Podman is installed but cannot run containers here."), r)
                self.assertIn("the service at " + url, r["error"])

    def test_a_service_on_another_host_is_refused_for_runs(self):
        # A remote service would open the seccomp profile on its own host:
        # runs are refused (never started without the profile); the admin
        # commands, which need none, still go there.
        for args in (["--ssh-host", "127.0.0.1", "--ssh-port", "9", "--ssh-user", "nobody"],
                     ["--docker-host", "tcp://127.0.0.1:9"]):
            with self.subTest(args=args):
                p, r = self.run_code("result = 1\n", *args)
                self.assertEqual(p.returncode, 125, p.stderr)
                self.assertIn("podman reads a container's seccomp profile on the service's "
                              "host", r["error"])
        p = subprocess.run([SPR, "--engine", "podman", "--ssh-host", "127.0.0.1", "--ssh-port",
                            "9", "--ssh-user", "nobody", "list", "containers"],
                           capture_output=True, text=True, env=ENV, timeout=120)
        self.assertEqual(p.returncode, 125, p.stderr)
        self.assertIn("the service at ssh://nobody@127.0.0.1:9/run/podman/podman.sock",
                      p.stderr)


if __name__ == "__main__":
    unittest.main()
