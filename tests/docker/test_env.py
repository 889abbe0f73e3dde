"""Smoke test of the docker test environment (`make docker-env-start`).

    eval "$(make -s docker-env-start)"
    SPR_BUILD=$PWD/build python3 tests/run.py docker -k test_env
    make docker-env-stop

Checks, against the daemon DOCKER_HOST names (skipped when it is unset):
the daemon answers; the base image (spr-base:bookworm) runs python3; the
runtime image (spr-runtime:test) is labelled as spr's, has the packages
directory, runs as nobody and holds nothing of spr (every container gets
the worker and spr-sandbox on stdin when it starts); a container
with the DockerEngine's hardened flags runs python with no capabilities, no
network but lo, a read-only root and a writable /tmp. Real docker only.

SPR_TEST_BASE_IMAGE / SPR_TEST_RUNTIME_IMAGE override the image names.
"""
import json
import os
import subprocess
import unittest

BASE_IMAGE = os.environ.get("SPR_TEST_BASE_IMAGE", "spr-base:bookworm")
RUNTIME_IMAGE = os.environ.get("SPR_TEST_RUNTIME_IMAGE", "spr-runtime:test")
SITE = "/opt/spr/site"
# Every container here carries this label (and --rm); tearDownModule checks
# that none is left.
LABEL = "io.spr.test=env"
# The DockerEngine's hardened `docker run` flags (docs/DESIGN.md).
HARDENED = [
    "--network", "none", "--read-only", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--user", "1000:1000",
    "--pids-limit", "64", "--memory", "256m", "--memory-swap", "256m",
    "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m", "--ipc", "none",
]


def setUpModule():
    if not os.environ.get("DOCKER_HOST") and os.environ.get("SPR_TEST_PODMAN") != "1":
        if os.environ.get("SPR_REQUIRE_DOCKER") == "1":  # `make docker`: a skip would hide it
            raise AssertionError("SPR_REQUIRE_DOCKER=1 but DOCKER_HOST is not set")
        raise unittest.SkipTest(
            "DOCKER_HOST is not set: start the test daemon first, "
            "eval \"$(make -s docker-env-start)\"")


def tearDownModule():
    if not os.environ.get("DOCKER_HOST") and os.environ.get("SPR_TEST_PODMAN") != "1":
        return
    left = docker("ps", "-aq", "--filter", "label=" + LABEL).stdout.split()
    if left:
        docker("rm", "-f", *left)
        raise AssertionError("containers left behind: %s" % " ".join(left))


def docker(*args, input=None, timeout=120):
    """Runs the docker CLI (DOCKER_HOST from the environment); bytes out."""
    return subprocess.run(["docker", *args], input=input, capture_output=True,
                          timeout=timeout)


def run(image, argv, flags=(), input=b""):
    """`docker run --rm` of argv in image; returns the CompletedProcess."""
    return docker("run", "--rm", "-i", "--label", LABEL, *flags, image, *argv,
                  input=input)


def run_python(image, code, flags=()):
    """Runs code with the image's python3; returns what it printed as JSON."""
    p = run(image, ["python3", "-c", code], flags)
    if p.returncode != 0:
        raise AssertionError("python3 in %s failed (%d): %s"
                             % (image, p.returncode, p.stderr.decode(errors="replace")))
    return json.loads(p.stdout)


def inspect(image):
    p = docker("image", "inspect", image)
    if p.returncode != 0:
        raise AssertionError("image %s not found on %s (run `make docker-env-start`): %s"
                             % (image, os.environ.get("DOCKER_HOST", "podman"), p.stderr.decode().strip()))
    return json.loads(p.stdout)[0]


class Daemon(unittest.TestCase):

    def test_docker_info(self):
        p = docker("info", "--format", "{{json .}}")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        info = json.loads(p.stdout)
        if os.environ.get("SPR_TEST_PODMAN") == "1":  # podman has no server
            self.assertTrue(info["version"]["Version"])
        else:
            self.assertTrue(info["ServerVersion"])


class BaseImage(unittest.TestCase):

    def test_runs_python(self):
        inspect(BASE_IMAGE)
        p = run(BASE_IMAGE, ["python3", "-c", "print(1)"], ["--network", "none"])
        self.assertEqual((p.returncode, p.stdout), (0, b"1\n"), p.stderr.decode())

    def test_pip(self):
        labels = inspect(BASE_IMAGE)["Config"].get("Labels") or {}
        if "python3-pip" not in labels.get("io.spr.base", ""):
            self.skipTest("%s was built without python3-pip (label io.spr.base=%r)"
                          % (BASE_IMAGE, labels.get("io.spr.base")))
        p = run(BASE_IMAGE, ["python3", "-m", "pip", "--version"], ["--network", "none"])
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertTrue(p.stdout.startswith(b"pip "), p.stdout)


class RuntimeImage(unittest.TestCase):

    def test_image_config(self):
        config = inspect(RUNTIME_IMAGE)["Config"]
        self.assertEqual(config["User"], "65534:65534")
        self.assertEqual(config["WorkingDir"], "/")
        self.assertEqual(config["Labels"].get("io.spr.image"), "runtime")
        self.assertNotIn("io.spr.managed", config["Labels"],
                         "containers inherit image labels: never mark an image managed")
        self.assertTrue(config["Labels"].get("io.spr.worker-version"))

    def test_site_directory_and_nothing_of_spr(self):
        r = run_python(RUNTIME_IMAGE, """if 1:
            import json, os
            st = os.stat(%r)
            print(json.dumps({"uid": os.getuid(), "site": [st.st_uid, st.st_mode & 0o7777],
                              "opt_spr": sorted(os.listdir("/opt/spr"))}))""" % SITE,
                       ["--network", "none"])
        self.assertEqual(r["uid"], 65534)
        self.assertEqual(r["site"], [0, 0o755])
        self.assertEqual(r["opt_spr"], ["site"])


class HardenedContainer(unittest.TestCase):

    PROBE = """if 1:
        import errno, json, os
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return line.split()[1]
        def write(path):
            try:
                with open(path, "w") as f:
                    f.write("x")
                return open(path).read() == "x"
            except OSError as e:
                return errno.errorcode.get(e.errno, str(e.errno))
        def first(*paths):
            for p in paths:
                try:
                    return open(p).read().strip()
                except OSError:
                    pass
        root = [l.split() for l in open("/proc/self/mountinfo") if l.split()[4] == "/"]
        print(json.dumps({
            "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "cap_eff": status("CapEff"), "no_new_privs": status("NoNewPrivs"),
            "ifaces": sorted(os.listdir("/sys/class/net")),
            "root_opts": root[-1][5].split(","),
            "write_etc": write("/etc/spr-probe"),
            "write_tmp": write("/tmp/spr-probe"),
            "pids_max": first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
            "mem_max": first("/sys/fs/cgroup/memory.max",
                             "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "shm": os.path.ismount("/dev/shm"),
        }))"""

    def test_hardened_flags(self):
        r = run_python(RUNTIME_IMAGE, self.PROBE, HARDENED)
        self.assertEqual((r["uid"], r["gid"]), (1000, 1000))
        self.assertEqual(int(r["cap_eff"], 16), 0)
        self.assertEqual(r["no_new_privs"], "1")
        self.assertEqual(r["ifaces"], ["lo"])
        self.assertIn("ro", r["root_opts"])
        self.assertNotEqual(r["write_etc"], True)
        self.assertIs(r["write_tmp"], True)
        self.assertEqual(r["pids_max"], "64")
        self.assertEqual(int(r["mem_max"]), 256 << 20)
        self.assertFalse(r["shm"], "--ipc none leaves no /dev/shm")

    def test_read_only_root_even_for_root(self):
        # uid 1000 cannot write /etc anyway; root (no capabilities, but the
        # owner of /etc) shows that the root filesystem itself refuses.
        flags = list(HARDENED)
        flags[flags.index("--user") + 1] = "0:0"
        r = run_python(RUNTIME_IMAGE, self.PROBE, flags)
        self.assertEqual(r["uid"], 0)
        self.assertEqual(int(r["cap_eff"], 16), 0)
        self.assertEqual(r["write_etc"], "EROFS")
        self.assertIs(r["write_tmp"], True)


if __name__ == "__main__":
    unittest.main()
