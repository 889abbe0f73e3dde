"""`spr`, the admin CLI, against a real docker daemon (SPEC §5 admin, §6,
§7 "spr (admin CLI) and managed containers").

Managed containers are made the honest way: a long-lived caller holds a
DockerEngine (the batch tool sleeping between two runs, or spr-run of code
that sleeps) and its warm pool keeps containers running while `spr` looks
at them. Next to them, containers started by hand with `docker run`:
unmanaged ones (spr must never touch them) and, where a state cannot be
reached through the engine (an exited managed container, one whose
creator is gone), containers carrying the managed label by hand. Such a
container *is* managed by the contract's definition ("Managed means
labelled io.spr.managed=1"), so it is a fair fixture; each says so where
it is made.

Every container made by hand carries the label io.spr.test=admin;
tearDownModule stops the callers, removes what the tests made and fails
if anything they made was left behind.

Needs DOCKER_HOST (scripts/dockerd-for-tests.sh); skipped without a
daemon unless SPR_REQUIRE_DOCKER=1. The usage tests need no daemon.
Tests within a class run in name order and some build on the state the
earlier ones leave (test_a_..., test_b_...).
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from integration.common import PERMISSIVE, SPR, SPR_RUN, write_policy

from docker.test_docker import ENV, HOST_VAR, PODMAN, READY, WHY, BATCH, make_wheel, top

BASE_IMAGE = os.environ.get("SPR_DOCKER_BASE_IMAGE") or "spr-base:bookworm"
LABEL = "io.spr.test=admin"
MANAGED = "io.spr.managed=1"
TAG = f"spr-admin-{os.getpid()}"  # prefix of every name the tests give
HOST = socket.gethostname()
with open("/proc/sys/kernel/random/boot_id") as _f:
    BOOT_ID = _f.read().strip()
# io.spr.creator = host:boot-id:pid:start-time (SPEC §7)
MACHINE = f"{HOST}:{BOOT_ID}"

NOT_MANAGED = "Container '{}' is not managed by spr and cannot be modified"
UNREACHABLE = ("Podman is installed but cannot run containers here." if PODMAN else
               "Docker is installed but the daemon is not running or not accessible.")
CLI_MISSING = "Docker CLI was not found. Install Docker and ensure it is on PATH."
CONFLICT = "Use either docker_context or docker_host/ssh settings, not both"
# docs/SPEC.md §7 (not in the shared SPEC §5): ssh_host makes the URL itself.
HOST_CONFLICT = ("Use either docker_host or ssh_host, not both (ssh_host makes the ssh:// "
                 "URL itself)")

CONTAINER_COLUMNS = ["CONTAINER ID", "NAME", "IMAGE", "STATE", "STATUS", "RUNS"]
IMAGE_COLUMNS = ["IMAGE ID", "TAG", "KIND", "SIZE", "CREATED", "CONTAINERS"]

# Module state for tearDownModule.
HOLDERS = []          # Holder objects still alive
CREATORS = set()      # io.spr.creator of every engine the tests started
IMAGES_MADE = set()   # image tags the tests made (env images, committed)
BEFORE = set()        # container ids on the daemon before the module
UNMANAGED = {}        # the unmanaged container U: id, name, started


# ---- helpers ---------------------------------------------------------------

def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=check, env=ENV)


def spr(*args, env=None, timeout=180):
    """Runs $SPR_BUILD/spr with exactly args; a CompletedProcess (text)."""
    return subprocess.run([SPR, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or ENV, stdin=subprocess.DEVNULL)


def spr_json(testcase, *args):
    """`spr --json ARGS`, asserted to exit 0; the parsed document."""
    p = spr("--json", *args)
    testcase.assertEqual(p.returncode, 0, show(p))
    try:
        return json.loads(p.stdout)
    except ValueError:
        testcase.fail("--json output is not one JSON document: " + show(p))


def show(p):
    return (f"\n$ {' '.join(p.args)}\nexit {p.returncode}\nstdout: {p.stdout[:3000]}"
            f"\nstderr: {p.stderr[:3000]}")


def all_container_ids():
    return set(docker("ps", "-aq", "--no-trunc").stdout.split())


def running_managed():
    return set(docker("ps", "-q", "--no-trunc", "--filter", "label=" + MANAGED).stdout.split())


def state(cid):
    """(running, exit code, started at) or None when the container is gone."""
    p = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}} {{.State.StartedAt}}",
               cid, check=False)
    if p.returncode != 0:
        return None
    running, code, started = p.stdout.split(None, 2)
    return running == "true", int(code), started


def wait_not_running(cid, timeout=30):
    """True once cid is gone or no longer running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = state(cid)
        if s is None or not s[0]:
            return True
        time.sleep(0.2)
    return False


def wait_exited(cid, timeout=30):
    """The exit code once cid (a container without --rm) has stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = state(cid)
        if s is not None and not s[0]:
            return s[1]
        time.sleep(0.2)
    raise AssertionError(f"container {cid} did not stop")


def inspect(cid, fmt):
    return docker("inspect", "--format", fmt, cid).stdout.strip()


def image_id(ref):
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


def image_exists(ref):
    return docker("image", "inspect", ref, check=False).returncode == 0


def bare(image):
    """An image id without its "sha256:" prefix."""
    return image.split(":", 1)[1] if image.startswith("sha256:") else image


def hand_container(name, *labels, command=("sleep", "3600"), image=None, rm=True):
    """A running container started by hand (always labelled
    io.spr.test=admin); returns its full id. `labels` may make it managed:
    the callers say why that is a fair fixture."""
    args = ["run", "-d", "--name", name, "--label", LABEL, "--network", "none"]
    if rm:
        args.append("--rm")
    for label in labels:
        args += ["--label", label]
    return docker(*args, image or BASE_IMAGE, *command).stdout.strip()


def exited_container(name, *labels, image=None):
    """A container that ran `true` and exited (kept: no --rm)."""
    docker("run", "--name", name, "--label", LABEL, "--network", "none",
           *[x for label in labels for x in ("--label", label)], image or BASE_IMAGE, "true")
    return docker("inspect", "--format", "{{.Id}}", name).stdout.strip()


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat (the creator label's start time)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[19])


def dead_creator():
    """The creator label of a process of this machine that has exited."""
    p = subprocess.Popen(["sleep", "60"])
    start = proc_start_time(p.pid)
    p.kill()
    p.wait()
    return f"{MACHINE}:{p.pid}:{start}"


class Holder:
    """A live caller holding a DockerEngine, so its pool containers run.

    batch: the batch tool with one quick run, then a long sleep (the pool's
    container stays warm and idle, having served 1 run), then another run.
    sleeper: spr-run of code that runs /bin/sleep (the container is busy).

    wait() returns once the container is in that state, so that stopping
    it cannot hit a container still starting (which an engine may replace).
    """

    SLEEP_MARK = "/bin/sleep 1799"  # the sleeper's process, seen by docker top

    def __init__(self, argv, stdin_text, kind):
        self.kind = kind
        self.tmp = tempfile.mkdtemp(prefix="spr-admin-holder-")
        if kind == "sleeper":
            argv = argv[:-1] + ["--policy", write_policy(PERMISSIVE, self.tmp), argv[-1]]
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=ENV, text=True)
        self.proc.stdin.write(stdin_text)
        self.proc.stdin.close()
        self.pid = self.proc.pid
        self.creator = f"{MACHINE}:{self.pid}:{proc_start_time(self.pid)}"
        CREATORS.add(self.creator)
        self.ids = []
        HOLDERS.append(self)

    @classmethod
    def batch(cls, *args):
        reqs = [{"code": "result = 1"}, {"sleep_ms": 900_000}, {"code": "result = 2"}]
        return cls([BATCH, "--engine", "docker", "--pool-size", "1", *args],
                   "".join(json.dumps(r) + "\n" for r in reqs), "batch")

    @classmethod
    def sleeper(cls, *args):
        code = f"import subprocess\nsubprocess.run({cls.SLEEP_MARK.split()!r})\n"
        return cls([SPR_RUN, "--engine", "docker", "--timeout", "1800", *args, "-"], code,
                   "sleeper")

    def containers(self):
        out = docker("ps", "-q", "--no-trunc", "--filter", "label=" + MANAGED,
                     "--filter", "label=io.spr.creator=" + self.creator).stdout
        return out.split()

    def ready(self, ids):
        if self.kind == "sleeper":
            top_out = top(ids[0], "pid", "args", check=False)
            return self.SLEEP_MARK in top_out
        # Served its first run: the runs count `spr list containers` shows
        # (its own test is B_Listing.test_a_runs_counted_and_fields).
        p = spr("--json", "list", "containers")
        if p.returncode != 0:
            return False
        runs = {c["id"]: c["runs"] for c in json.loads(p.stdout)["containers"]}
        return (runs.get(ids[0]) or 0) >= 1

    def wait(self, timeout=600):
        """Waits for its container(s) to be ready; returns their full ids."""
        deadline = time.monotonic() + timeout
        ids = []
        while time.monotonic() < deadline:
            ids = self.containers()
            if ids and self.ready(ids):
                self.ids = ids
                return ids
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        raise AssertionError(f"{self.proc.args[0]} (pid {self.pid}): no {self.kind} container "
                             f"ready (containers {ids}, exit {self.proc.poll()}): "
                             f"{self.log.read()[-3000:]}")

    def stop(self):
        """Kills the caller; its containers go with it (SPEC §5 pool).
        Returns the ids that outlived it by 30 s (then removed by force)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self in HOLDERS:
            HOLDERS.remove(self)
        deadline = time.monotonic() + 30
        left = self.containers_any_state()
        while left and time.monotonic() < deadline:
            time.sleep(0.3)
            left = self.containers_any_state()
        if left:
            docker("rm", "-f", *left, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left

    def containers_any_state(self):
        out = docker("ps", "-aq", "--no-trunc", "--filter",
                     "label=io.spr.creator=" + self.creator).stdout
        return out.split()


def spr_run_docker(code, *args):
    """spr-run --engine docker --json of code; the RunnerResult. Its
    engine's creator label is recorded (tearDownModule looks for it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.py")
        with open(path, "w") as f:
            f.write(code)
        p = subprocess.Popen([SPR_RUN, "--engine", "docker", "--json", *args, path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        # Still running or a zombie until communicate(): /proc has it.
        CREATORS.add(f"{MACHINE}:{p.pid}:{proc_start_time(p.pid)}")
        out, err = p.communicate(timeout=900)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"spr-run {args} printed no result (exit {p.returncode}): {err}")


def runtime_image():
    """The runtime image the engine uses here: (tag, id), via a real run."""
    res = spr_run_docker("result = 1")
    if not res["ok"]:
        raise AssertionError(f"a DockerEngine run failed: {res}")
    return res["isolation"]["image"], res["isolation"]["image_id"]


def env_image(directory, package):
    """Builds (through a real spr-run) the env image of one local wheel
    `package` (name==version); returns its tag."""
    name, version = package.split("==")
    make_wheel(directory, name, version, "VALUE = %r\n" % package)
    res = spr_run_docker(f"import {name}\nresult = {name}.VALUE", "--package", package,
                         "--wheel-dir", directory)
    if not res["ok"] or res["result"] != package:
        raise AssertionError(f"the run with {package} failed: {res}")
    tag = res["isolation"]["image"]
    IMAGES_MADE.add(tag)
    return tag


def table(text, columns):
    """Parses an aligned table: checks the header has `columns` in order;
    returns (header column offsets, data lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise AssertionError("no table printed")
    header = lines[0]
    offsets, pos = [], 0
    for col in columns:
        i = header.find(col, pos)
        if i < 0:
            raise AssertionError(f"column {col!r} missing or out of order in {header!r}")
        offsets.append(i)
        pos = i + len(col)
    return offsets, lines[1:]


def row_of(rows, id12):
    found = [r for r in rows if r.split()[0] == id12]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} rows start with {id12}: {rows}")
    return found[0]


def cell(row, offsets, i):
    """The value of left-aligned column i (aligned: it starts at the
    header's offset)."""
    end = offsets[i + 1] if i + 1 < len(offsets) else len(row)
    return row[offsets[i]:end].strip()


# ---- module fixtures -----------------------------------------------------------

def setUpModule():
    if not READY:
        return
    BEFORE.update(all_container_ids())
    # U: the one unmanaged container every class checks is never touched.
    name = f"{TAG}-unmanaged"
    cid = hand_container(name)
    UNMANAGED.update(id=cid, name=name, started=state(cid)[2])


def ours():
    """Containers the tests made: labelled by hand, or made by an engine
    the tests started."""
    out = docker("ps", "-a", "--no-trunc", "--format",
                 '{{.ID}}\t{{.Label "io.spr.test"}}\t{{.Label "io.spr.creator"}}').stdout
    found = set()
    for line in out.splitlines():
        cid, test, creator = (line.split("\t") + ["", ""])[:3]
        if test == "admin" or creator in CREATORS:
            found.add(cid)
    return found


def tearDownModule():
    if not READY:
        return
    problems = []
    for h in list(HOLDERS):
        left = h.stop()
        if left:
            problems.append(f"containers of {h.proc.args[0]} (pid {h.pid}) outlived it: {left}")
    labelled = docker("ps", "-aq", "--no-trunc", "--filter", "label=" + LABEL).stdout.split()
    if labelled:
        docker("rm", "-f", *labelled, check=False)
    for tag in IMAGES_MADE:
        docker("image", "rm", "-f", tag, check=False)
    # Engine containers go asynchronously (--rm) once their caller is gone.
    deadline = time.monotonic() + 30
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = ours()
    if left:
        docker("rm", "-f", *left, check=False)
        problems.append(f"containers the tests made were left behind: {sorted(left)}")
    # Anything else new on the daemon (the tests run alone on it).
    stray = all_container_ids() - BEFORE
    if stray:
        problems.append(f"containers appeared during the module and are still there: "
                        f"{sorted(stray)}")
    if problems:
        raise AssertionError("; ".join(problems))


class AdminCase(unittest.TestCase):
    maxDiff = None

    def assertUnmanagedUntouched(self):
        s = state(UNMANAGED["id"])
        self.assertIsNotNone(s, "the unmanaged container is gone")
        self.assertEqual((s[0], s[2]), (True, UNMANAGED["started"]),
                         "the unmanaged container was stopped or restarted")

    def assertRefused(self, p, message):
        self.assertEqual(p.returncode, 1, show(p))
        self.assertIn(message, p.stderr, show(p))

    def assertUsage(self, p):
        self.assertEqual(p.returncode, 2, show(p))
        self.assertRegex(p.stderr, r"(?im)^usage: spr\b", show(p))


# ---- usage (no daemon needed) -----------------------------------------------

class A_Usage(AdminCase):
    def test_bad_usage_is_exit_2_with_usage_line(self):
        for args in (["list"], ["stop", "container"], ["list", "bogus"],
                     ["stop", "container", "X", "--timeout-seconds", "abc"],
                     ["stop", "all", "--timeout-seconds", "abc"],
                     ["stop", "container", "X", "--timeout-seconds"],
                     [], ["bogus"], ["stop"], ["stop", "bogus"], ["kill"],
                     ["kill", "container"], ["kill", "all"], ["container"],
                     ["container", "a", "b"], ["kill", "container", "a", "b"],
                     ["list", "containers", "extra"], ["list", "containers", "--bogus"],
                     ["list", "images", "--all", "x"], ["--bogus", "list", "containers"],
                     ["list", "containers", "--docker-host"],
                     ["--engine", "Podman", "list", "containers"],
                     ["--engine", "", "list", "containers"],
                     ["--engine", "local", "list", "containers"],
                     ["list", "containers", "--engine", "docker,podman"],
                     ["list", "containers", "--engine"]):
            with self.subTest(args=args):
                self.assertUsage(spr(*args))

    def test_help_on_every_level(self):
        # Each level, and what its usage must mention.
        levels = [((), "list containers"), (("list",), "images"),
                  (("list", "containers"), "--all"), (("list", "images"), "images"),
                  (("container",), "ID"), (("stop",), "all"),
                  (("stop", "container"), "--timeout-seconds"),
                  (("stop", "all"), "--timeout-seconds"), (("kill",), "container"),
                  (("kill", "container"), "ID"), (("cleanup",), "cleanup")]
        for prefix, mention in levels:
            for flag in ("--help", "-h"):
                with self.subTest(args=[*prefix, flag]):
                    p = spr(*prefix, flag)
                    self.assertEqual(p.returncode, 0, show(p))
                    self.assertRegex(p.stdout, r"(?i)usage", show(p))
                    self.assertIn(mention, p.stdout, show(p))
        for args in (["help"], ["list", "help"], ["stop", "help"], ["kill", "help"]):
            with self.subTest(args=args):
                p = spr(*args)
                self.assertEqual(p.returncode, 0, show(p))
                self.assertRegex(p.stdout, r"(?i)usage", show(p))

    def test_conflicting_remote_options_are_exit_2(self):
        for args in (["--docker-context", "a", "--docker-host", "unix:///x", "list",
                      "containers"],
                     ["list", "containers", "--docker-context", "a", "--docker-host",
                      "unix:///x"],
                     ["--docker-context", "a", "--ssh-host", "h", "stop", "all"],
                     ["--json", "--docker-context", "a", "--docker-host", "unix:///x",
                      "cleanup"]):
            with self.subTest(args=args):
                p = spr(*args)
                self.assertEqual(p.returncode, 2, show(p))
                self.assertIn(CONFLICT, p.stderr, show(p))
        for opt, value in (("--ssh-user", "u"), ("--ssh-port", "22"),
                           ("--ssh-key-path", "/k")):
            with self.subTest(opt=opt):
                p = spr(opt, value, "list", "containers")
                self.assertEqual(p.returncode, 2, show(p))
                self.assertIn(f"{opt[2:].replace('-', '_')} requires ssh_host", p.stderr,
                              show(p))

    def test_docker_host_with_ssh_host_is_refused(self):
        """Refused before any docker command runs (PATH holds no docker
        here): exit 2 for spr, 125 for spr-run, with the same message."""
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(ENV, PATH=tmp)
            for args in (["--docker-host", "unix:///x", "--ssh-host", "h", "list", "containers"],
                         ["stop", "all", "--ssh-host", "h", "--docker-host", "tcp://h:2375"],
                         ["--json", "--docker-host", "ssh://h", "--ssh-host", "h",
                          "--ssh-user", "u", "cleanup"]):
                with self.subTest(args=args):
                    p = spr(*args, env=env)
                    self.assertEqual(p.returncode, 2, show(p))
                    self.assertIn(HOST_CONFLICT, p.stderr, show(p))
            code = os.path.join(tmp, "c.py")
            with open(code, "w") as f:
                f.write("result = 1\n")
            p = subprocess.run([SPR_RUN, "--engine", "docker", "--json", "--docker-host",
                                "unix:///x", "--ssh-host", "h", code], capture_output=True,
                               text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 125, show(p))
            self.assertEqual(json.loads(p.stdout)["error"], HOST_CONFLICT, show(p))

    @unittest.skipUnless(shutil.which("docker"), "no docker CLI")
    def test_daemon_unreachable_is_125(self):
        for args in (["--docker-host", "unix:///nonexistent.sock", "list", "containers"],
                     ["list", "containers", "--json", "--docker-host",
                      "unix:///nonexistent.sock"],
                     ["--docker-host", "unix:///nonexistent.sock", "list", "images"],
                     ["--docker-host", "unix:///nonexistent.sock", "container", "abc"],
                     ["--docker-host", "unix:///nonexistent.sock", "stop", "all"],
                     ["--docker-host", "unix:///nonexistent.sock", "kill", "container", "x"],
                     # cleanup WITH a remote option: the daemon was asked for
                     ["--docker-host", "unix:///nonexistent.sock", "cleanup"]):
            with self.subTest(args=args):
                p = spr(*args)
                self.assertEqual(p.returncode, 125, show(p))
                self.assertIn(UNREACHABLE, p.stderr, show(p))
        # The same through DOCKER_HOST (podman: CONTAINER_HOST), as the CLI reads it.
        p = spr("list", "containers", env=dict(ENV, **{HOST_VAR: "unix:///nonexistent.sock"}))
        self.assertEqual(p.returncode, 125, show(p))
        self.assertIn(UNREACHABLE, p.stderr, show(p))

    def test_docker_cli_missing_is_125(self):
        with tempfile.TemporaryDirectory() as empty:
            p = spr("list", "containers", env=dict(ENV, PATH=empty))
        self.assertEqual(p.returncode, 125, show(p))
        self.assertIn(CLI_MISSING, p.stderr, show(p))

    def test_cleanup_without_docker_still_runs_and_says_why(self):
        # No remote options and no reachable daemon (here: no docker CLI at
        # all): the cgroups are still cleaned, docker is reported skipped.
        with tempfile.TemporaryDirectory() as empty:
            p = spr("--json", "cleanup", env=dict(ENV, PATH=empty))
        self.assertEqual(p.returncode, 0, show(p))
        doc = json.loads(p.stdout)
        self.assertIsInstance(doc["removed"]["run_cgroups"], int, doc)
        self.assertTrue(doc.get("docker", "").startswith("skipped: "), doc)
        self.assertGreater(len(doc["docker"]), len("skipped: "), doc)


# ---- listing ---------------------------------------------------------------------

@unittest.skipUnless(READY, WHY)
class B_Listing(AdminCase):
    """Pool containers of a live batch caller; an exited managed and an
    exited unmanaged container; U."""

    @classmethod
    def setUpClass(cls):
        cls.holder = Holder.batch()
        cls.pooled = cls.holder.wait()
        # Managed by its label, put there by hand: the engine's own
        # containers run with --rm and vanish when they stop, so an exited
        # managed container cannot be had honestly through it.
        cls.exited = exited_container(f"{TAG}-exited-managed", MANAGED)
        cls.exited_unmanaged = exited_container(f"{TAG}-exited-unmanaged")
        # podman names a local image localhost/...; spr lists it as its own name
        cls.podman_tag = inspect(cls.pooled[0], "{{.Config.Image}}")
        cls.runtime_tag = cls.podman_tag.removeprefix("localhost/") if PODMAN else cls.podman_tag
        cls.runtime_id = inspect(cls.pooled[0], "{{.Image}}")

    @classmethod
    def tearDownClass(cls):
        cls.holder.stop()
        docker("rm", "-f", cls.exited, cls.exited_unmanaged, check=False)

    def list_json(self, *extra):
        doc = spr_json(self, "list", "containers", *extra)
        self.assertEqual(list(doc), ["containers"], doc)
        return {c["id"]: c for c in doc["containers"]}

    def test_a_runs_counted_and_fields(self):
        cid = self.pooled[0]
        # The pool container served one run, then the caller sleeps.
        deadline = time.monotonic() + 60
        while True:
            listed = self.list_json()
            self.assertIn(cid, listed, "the pooled container is not listed")
            if listed[cid]["runs"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        c = listed[cid]
        self.assertEqual(c["runs"], 1, c)
        self.assertEqual(c["name"], inspect(cid, "{{.Name}}").lstrip("/"), c)
        self.assertIn(c["image"], (self.runtime_tag, self.podman_tag, self.runtime_id,
                                   bare(self.runtime_id)), c)
        self.assertEqual(c["state"], "running", c)
        self.assertTrue(c["status"], c)
        self.assertTrue(c["created"], c)
        self.assertEqual(c["pool"], inspect(cid, '{{index .Config.Labels "io.spr.pool"}}'), c)
        self.assertTrue(c["pool"], c)
        # The engine's labels (SPEC §7): env = the image id, creator =
        # host:pid:start-time of the process that made it.
        self.assertEqual(inspect(cid, '{{index .Config.Labels "io.spr.env"}}'), self.runtime_id)
        self.assertEqual(c["env"], self.runtime_id, c)
        self.assertEqual(c["creator"], self.holder.creator, c)
        self.assertIs(c["creator_alive"], True, c)

    def test_b_lists_managed_running_only(self):
        listed = self.list_json()
        for cid in self.pooled:
            self.assertIn(cid, listed)
        for cid in (UNMANAGED["id"], self.exited_unmanaged, self.exited):
            self.assertNotIn(cid, listed)
        # Every one listed is managed and running (so: nothing else slips in).
        for cid in listed:
            self.assertEqual(inspect(cid, '{{index .Config.Labels "io.spr.managed"}}'), "1")
            self.assertEqual(inspect(cid, "{{.State.Running}}"), "true")
        self.assertEqual(set(listed), running_managed())

    def test_c_all_adds_exited_managed(self):
        listed = self.list_json("--all")
        self.assertIn(self.exited, listed)
        self.assertEqual(listed[self.exited]["state"], "exited", listed[self.exited])
        self.assertIsNone(listed[self.exited]["runs"], listed[self.exited])
        self.assertEqual(listed[self.exited]["name"], f"{TAG}-exited-managed")
        for cid in self.pooled:
            self.assertIn(cid, listed)
        self.assertNotIn(UNMANAGED["id"], listed)
        self.assertNotIn(self.exited_unmanaged, listed)
        want = set(docker("ps", "-aq", "--no-trunc", "--filter", "label=" + MANAGED).stdout.split())
        self.assertEqual(set(listed), want)

    def test_d_table(self):
        p = spr("list", "containers")
        self.assertEqual(p.returncode, 0, show(p))
        offsets, rows = table(p.stdout, CONTAINER_COLUMNS)
        cid = self.pooled[0]
        row = row_of(rows, cid[:12])
        self.assertEqual(cell(row, offsets, 1), inspect(cid, "{{.Name}}").lstrip("/"), row)
        self.assertEqual(cell(row, offsets, 3), "running", row)
        self.assertEqual(row.split()[-1], "1", f"RUNS of {row!r}")
        self.assertNotIn(UNMANAGED["id"][:12], p.stdout)
        self.assertNotIn(UNMANAGED["name"], p.stdout)
        self.assertNotIn(self.exited[:12], p.stdout)
        # --all: the exited one too, with RUNS "-".
        p = spr("list", "containers", "--all")
        self.assertEqual(p.returncode, 0, show(p))
        offsets, rows = table(p.stdout, CONTAINER_COLUMNS)
        row = row_of(rows, self.exited[:12])
        self.assertEqual(cell(row, offsets, 1), f"{TAG}-exited-managed", row)
        self.assertEqual(cell(row, offsets, 3), "exited", row)
        self.assertEqual(row.split()[-1], "-", row)
        self.assertNotIn(UNMANAGED["id"][:12], p.stdout)
        self.assertNotIn(self.exited_unmanaged[:12], p.stdout)

    def test_e_options_anywhere(self):
        a = spr("--json", "list", "containers", "--all")
        b = spr("list", "containers", "--all", "--json")
        c = spr("list", "--json", "containers", "--all")
        for p in (a, b, c):
            self.assertEqual(p.returncode, 0, show(p))
        ids = [sorted(x["id"] for x in json.loads(p.stdout)["containers"]) for p in (a, b, c)]
        self.assertEqual(ids[0], ids[1])
        self.assertEqual(ids[0], ids[2])
        self.assertIn(self.exited, ids[0])
        # The remote options too: the same daemon named explicitly (podman
        # has no daemon here: tests/podman covers --docker-host with a
        # podman service).
        if PODMAN:
            return
        host = os.environ["DOCKER_HOST"]
        d = spr("list", "containers", "--docker-host", host, "--json",
                env={k: v for k, v in ENV.items() if k != "DOCKER_HOST"})
        self.assertEqual(d.returncode, 0, show(d))
        self.assertIn(self.pooled[0], [x["id"] for x in json.loads(d.stdout)["containers"]])

    def test_f_images(self):
        doc = spr_json(self, "list", "images")
        self.assertEqual(list(doc), ["images"], doc)
        by_id = {bare(i["id"]): i for i in doc["images"]}
        rt = by_id.get(bare(self.runtime_id))
        self.assertIsNotNone(rt, f"runtime image {self.runtime_id} not listed: {doc}")
        self.assertEqual(rt["kind"], "runtime", rt)
        self.assertIn(self.runtime_tag, rt["tags"], rt)
        self.assertIsInstance(rt["size_bytes"], int, rt)
        self.assertGreater(rt["size_bytes"], 0, rt)
        self.assertTrue(rt["created"], rt)
        self.assertEqual(rt["containers"], len(self.pooled), rt)
        # The base image is not spr's: never listed.
        self.assertNotIn(bare(image_id(BASE_IMAGE)), by_id)
        # spr's images carry io.spr.image (runtime|env), never io.spr.managed:
        # containers inherit image labels (see test_container_of_spr_image_...)
        for i in doc["images"]:
            labels = json.loads(docker("image", "inspect", "--format",
                                       "{{json .Config.Labels}}", i["id"]).stdout)
            self.assertEqual(labels.get("io.spr.image"), i["kind"], i)
            self.assertNotIn("io.spr.managed", labels, i)
        p = spr("list", "images")
        self.assertEqual(p.returncode, 0, show(p))
        offsets, rows = table(p.stdout, IMAGE_COLUMNS)
        row = row_of(rows, bare(self.runtime_id)[:12])
        self.assertEqual(cell(row, offsets, 1), self.runtime_tag, row)
        self.assertEqual(cell(row, offsets, 2), "runtime", row)
        self.assertEqual(row.split()[-1], str(len(self.pooled)), row)
        self.assertNotIn(bare(image_id(BASE_IMAGE))[:12], p.stdout)

    def test_g_inspect_managed(self):
        cid = self.pooled[0]
        name = inspect(cid, "{{.Name}}").lstrip("/")
        for ref in (cid, cid[:12], cid[:7], name, name[:-3]):
            with self.subTest(ref=ref):
                doc = spr_json(self, "container", ref)
                self.assertEqual(list(doc), ["container"], doc)
                c = doc["container"]
                self.assertEqual(c["id"], cid, c)
                self.assertEqual(c["name"], name, c)
                self.assertEqual(c["state"], "running", c)
                self.assertEqual(c["creator"], self.holder.creator, c)
                self.assertEqual(c["labels"].get("io.spr.managed"), "1", c)
                self.assertEqual(c["labels"].get("io.spr.creator"), self.holder.creator, c)
                # What the daemon enforces, in whatever shape spr reports it.
                limits, security = json.dumps(c["limits"]), json.dumps(c["security"])
                self.assertIn(inspect(cid, "{{.HostConfig.Memory}}"), limits)
                self.assertIn(inspect(cid, "{{.HostConfig.PidsLimit}}"), limits)
                self.assertIn('"none"', security)  # network
                # capabilities dropped (podman lists what ALL dropped)
                self.assertIn("CAP_SYS_CHROOT" if PODMAN else "ALL", security)
                self.assertIn("no-new-privileges", security)
        p = spr("container", cid[:12])
        self.assertEqual(p.returncode, 0, show(p))
        self.assertIn(cid[:12], p.stdout)
        # An exited managed one can be inspected too.
        doc = spr_json(self, "container", f"{TAG}-exited-managed")
        self.assertEqual(doc["container"]["id"], self.exited)
        self.assertEqual(doc["container"]["state"], "exited")
        self.assertUnmanagedUntouched()


# ---- refusals: unmanaged, ambiguous, missing ----------------------------------

@unittest.skipUnless(READY, WHY)
class C_Refusals(AdminCase):
    @classmethod
    def setUpClass(cls):
        # Two containers whose names share a prefix: -amb-x carries the
        # managed label by hand (managed by definition), -amb-xy does not.
        cls.x_name, cls.xy_name = f"{TAG}-amb-x", f"{TAG}-amb-xy"
        cls.x = hand_container(cls.x_name, MANAGED)
        cls.xy = hand_container(cls.xy_name)
        cls.x_started = state(cls.x)[2]
        cls.xy_started = state(cls.xy)[2]

    @classmethod
    def tearDownClass(cls):
        docker("rm", "-f", cls.x, cls.xy, check=False)

    def assertBothRunning(self):
        self.assertEqual(state(self.x)[0::2], (True, self.x_started))
        self.assertEqual(state(self.xy)[0::2], (True, self.xy_started))

    def test_unmanaged_is_refused_and_untouched(self):
        cid, name = UNMANAGED["id"], UNMANAGED["name"]
        for ref in (cid, cid[:10], name, name[:-2]):
            for args in (["container", ref], ["stop", "container", ref],
                         ["stop", "container", ref, "--timeout-seconds", "1"],
                         ["kill", "container", ref], ["--json", "container", ref],
                         ["--json", "stop", "container", ref],
                         ["--json", "kill", "container", ref]):
                with self.subTest(args=args):
                    self.assertRefused(spr(*args), NOT_MANAGED.format(ref))
                    self.assertUnmanagedUntouched()

    def test_container_of_spr_image_started_by_hand_is_not_managed(self):
        # docker gives every container the labels of its image: a container
        # someone started by hand from spr's runtime image is still not spr's
        # (so spr's images must never carry io.spr.managed).
        tag = runtime_image()[0]
        cid = hand_container(f"{TAG}-by-hand", image=tag)
        try:
            started = state(cid)[2]
            listed = [c["id"] for c in spr_json(self, "list", "containers", "--all")
                      ["containers"]]
            self.assertNotIn(cid, listed, "listed as managed")
            for args in (["container", cid[:12]], ["kill", "container", cid[:12]],
                         ["stop", "container", cid[:12], "--timeout-seconds", "1"]):
                with self.subTest(args=args):
                    self.assertRefused(spr(*args), NOT_MANAGED.format(cid[:12]))
                    self.assertEqual(state(cid)[0::2], (True, started), "touched")
        finally:
            docker("rm", "-f", cid, check=False)

    def test_exact_name_wins_over_prefix(self):
        # "-amb-x" is a full name and a prefix of "-amb-xy": the exact
        # name is taken first, so it is not ambiguous.
        doc = spr_json(self, "container", self.x_name)
        self.assertEqual(doc["container"]["id"], self.x)
        p = spr("kill", "container", self.xy_name)
        self.assertRefused(p, NOT_MANAGED.format(self.xy_name))
        self.assertBothRunning()

    def test_ambiguous_prefix(self):
        prefix = f"{TAG}-amb-"
        for cmd in (["container", prefix], ["stop", "container", prefix],
                    ["kill", "container", prefix]):
            with self.subTest(args=cmd):
                p = spr(*cmd)
                self.assertEqual(p.returncode, 1, show(p))
                self.assertIn(f"Container prefix '{prefix}' is ambiguous: ", p.stderr, show(p))
                line = p.stderr[p.stderr.index("Container prefix"):].splitlines()[0]
                self.assertIn(f"{self.x[:12]} ({self.x_name})", line, show(p))
                self.assertIn(f"{self.xy[:12]} ({self.xy_name})", line, show(p))
                self.assertBothRunning()
                self.assertUnmanagedUntouched()

    def test_id_prefix_and_name_prefix_are_ambiguous_together(self):
        # A name that begins like U's id: U's id prefix matches both.
        u = UNMANAGED["id"]
        twin_name = u[:8] + "-twin"
        twin = hand_container(twin_name)
        try:
            p = spr("kill", "container", u[:8])
            self.assertEqual(p.returncode, 1, show(p))
            self.assertIn(f"Container prefix '{u[:8]}' is ambiguous: ", p.stderr, show(p))
            self.assertIn(f"{u[:12]} ({UNMANAGED['name']})", p.stderr, show(p))
            self.assertIn(f"{twin[:12]} ({twin_name})", p.stderr, show(p))
            # One more character of the id is unique again.
            self.assertRefused(spr("kill", "container", u[:9]), NOT_MANAGED.format(u[:9]))
            self.assertEqual(state(twin)[0], True)
            self.assertUnmanagedUntouched()
        finally:
            docker("rm", "-f", twin, check=False)

    def test_no_such_container(self):
        ref = f"{TAG}-no-such-container"
        for cmd in (["container", ref], ["stop", "container", ref],
                    ["kill", "container", ref], ["--json", "container", ref]):
            with self.subTest(args=cmd):
                p = spr(*cmd)
                self.assertRefused(p, f"No such container: {ref}")
        # A full-length id that does not exist either.
        p = spr("kill", "container", "f" * 64)
        self.assertRefused(p, "No such container: " + "f" * 64)
        self.assertBothRunning()
        self.assertUnmanagedUntouched()


# ---- stop / kill one ----------------------------------------------------------------

@unittest.skipUnless(READY, WHY)
class D_StopKill(AdminCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Holder.batch()
        cls.b = Holder.sleeper()
        cls.a_ids = cls.a.wait()
        cls.b_ids = cls.b.wait()
        # Managed by their label, put there by hand, so the signal shows:
        # the shell turns SIGTERM into exit 7; SIGKILL gives 137.
        trap = ("sh", "-c", "trap 'exit 7' TERM; sleep 3600 & wait")
        ignore = ("sh", "-c", "trap '' TERM; sleep 3600 & wait")
        cls.graceful = hand_container(f"{TAG}-graceful", MANAGED, command=trap, rm=False)
        cls.graceful2 = hand_container(f"{TAG}-graceful2", MANAGED, command=trap, rm=False)
        cls.stubborn = hand_container(f"{TAG}-stubborn", MANAGED, command=ignore, rm=False)
        cls.stubborn2 = hand_container(f"{TAG}-stubborn2", MANAGED, command=ignore, rm=False)
        time.sleep(0.5)  # the shells have set their traps

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()
        docker("rm", "-f", cls.graceful, cls.graceful2, cls.stubborn, cls.stubborn2,
               check=False)

    def test_stop_pooled_container(self):
        cid = self.a_ids[0]
        others = running_managed() - {cid}
        p = spr("--json", "stop", "container", cid[:12], "--timeout-seconds", "3")
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(json.loads(p.stdout), {"stopped": [cid]})
        self.assertTrue(wait_not_running(cid), "the container still runs")
        self.assertTrue(others <= running_managed(), "another container was stopped too")
        self.assertUnmanagedUntouched()

    def test_kill_busy_container_by_name(self):
        cid = self.b_ids[0]
        name = inspect(cid, "{{.Name}}").lstrip("/")
        others = running_managed() - {cid}
        p = spr("kill", "container", name, "--json")
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(json.loads(p.stdout), {"killed": [cid]})
        self.assertTrue(wait_not_running(cid), "the container still runs")
        self.assertTrue(others <= running_managed(), "another container was stopped too")
        # The caller's run was cut short: spr-run ends with a failure.
        self.b.proc.wait(timeout=60)
        self.assertNotEqual(self.b.proc.returncode, 0)
        self.assertUnmanagedUntouched()

    def test_stop_sends_sigterm_first(self):
        p = spr("stop", "container", f"{TAG}-graceful", "--timeout-seconds", "20")
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(wait_exited(self.graceful), 7, "not stopped by SIGTERM")

    def test_kill_sends_sigkill(self):
        t0 = time.monotonic()
        p = spr("--json", "kill", "container", self.graceful2)
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(json.loads(p.stdout), {"killed": [self.graceful2]})
        self.assertEqual(wait_exited(self.graceful2), 137, "not killed by SIGKILL")
        self.assertLess(time.monotonic() - t0, 8)

    def test_stop_timeout_is_honoured(self):
        t0 = time.monotonic()
        p = spr("--json", "stop", "container", self.stubborn[:12], "--timeout-seconds", "1")
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(json.loads(p.stdout), {"stopped": [self.stubborn]})
        self.assertEqual(wait_exited(self.stubborn), 137)
        self.assertLess(took, 8, "--timeout-seconds 1 was not used")

    def test_stop_timeout_defaults_to_10(self):
        t0 = time.monotonic()
        p = spr("stop", "container", f"{TAG}-stubborn2")
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, show(p))
        self.assertEqual(wait_exited(self.stubborn2), 137)
        self.assertGreaterEqual(took, 9, "SIGKILL came before the 10 s default")
        self.assertLess(took, 40)


# ---- stop all -----------------------------------------------------------------------

@unittest.skipUnless(READY, WHY)
class E_StopAll(AdminCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Holder.batch()
        cls.b = Holder.sleeper()
        cls.pooled = cls.a.wait() + cls.b.wait()
        # Managed by its label, put there by hand (managed by definition).
        cls.labelled = hand_container(f"{TAG}-all-managed", MANAGED)
        cls.other = hand_container(f"{TAG}-all-unmanaged")
        cls.other_started = state(cls.other)[2]

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()
        docker("rm", "-f", cls.labelled, cls.other, check=False)

    def test_a_help_does_not_act(self):
        before = running_managed()
        self.assertTrue({*self.pooled, self.labelled} <= before, before)
        for args in (["stop", "all", "--help"], ["stop", "all", "-h"], ["stop", "--help"],
                     ["--help", "stop", "all"]):
            with self.subTest(args=args):
                p = spr(*args)
                self.assertEqual(p.returncode, 0, show(p))
                self.assertEqual(running_managed(), before, "--help stopped containers")

    def test_b_stop_all_stops_only_managed(self):
        before = running_managed()
        self.assertTrue({*self.pooled, self.labelled} <= before, before)
        existing = set(docker("ps", "-aq", "--no-trunc", "--filter",
                              "label=" + MANAGED).stdout.split())
        p = spr("--json", "stop", "all", "--timeout-seconds", "2")
        self.assertEqual(p.returncode, 0, show(p))
        doc = json.loads(p.stdout)
        self.assertEqual(list(doc), ["stopped"], doc)
        self.assertEqual(sorted(doc["stopped"]), sorted(before))
        for cid in before:
            self.assertTrue(wait_not_running(cid), f"{cid} still runs")
        # The holders' engines are alive and may start a replacement for
        # their pool after the stop (make podman saw one): a new container,
        # never one that existed before.
        self.assertEqual(running_managed() & existing, set())
        self.assertUnmanagedUntouched()
        self.assertEqual(state(self.other)[0::2], (True, self.other_started))

    def test_c_empty_list_is_one_line(self):
        # No live caller either (an engine may start a replacement).
        self.a.stop()
        self.b.stop()
        self.assertEqual(running_managed(), set())
        p = spr("list", "containers")
        self.assertEqual(p.returncode, 0, show(p))
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, show(p))
        self.assertNotIn("CONTAINER ID", p.stdout)
        self.assertEqual(spr_json(self, "list", "containers"), {"containers": []})
        # Nothing running: stop all stops nothing and says so.
        self.assertEqual(spr_json(self, "stop", "all"), {"stopped": []})
        self.assertUnmanagedUntouched()


# ---- cleanup -------------------------------------------------------------------------

@unittest.skipUnless(READY, WHY)
class F_Cleanup(AdminCase):
    @classmethod
    def setUpClass(cls):
        cls.wheels = tempfile.mkdtemp(prefix="spr-admin-wheels-")
        cls.runtime_tag, cls.runtime_id = runtime_image()
        # env image nobody uses after its run: to be removed.
        cls.unused_env = env_image(cls.wheels, "spradminunused==1.0")
        cls.unused_env_id = image_id(cls.unused_env)
        # env image a running managed container uses (a live caller).
        cls.used_env = env_image(cls.wheels, "spradminused==1.0")
        cls.holder = Holder.sleeper("--package", "spradminused==1.0",
                                    "--wheel-dir", cls.wheels)
        cls.held = cls.holder.wait()
        # env image only an unmanaged container uses: still in use.
        cls.foreign_env = env_image(cls.wheels, "spradminforeign==1.0")
        cls.foreign_user = hand_container(f"{TAG}-foreign-user", image=cls.foreign_env)
        # Managed by their label, put there by hand (managed by definition):
        # an exited one, and a running one whose creator (a process of this
        # host) is gone; both are what cleanup exists for.
        cls.exited = exited_container(f"{TAG}-cleanup-exited", MANAGED)
        cls.orphan = hand_container(f"{TAG}-orphan", MANAGED,
                                    "io.spr.creator=" + dead_creator(), rm=False)
        # Running, managed, created on another host: cannot be judged, kept.
        cls.remote = hand_container(f"{TAG}-elsewhere", MANAGED,
                                    "io.spr.creator=spr-admin-elsewhere.invalid:00000000-0000-0000-0000-000000000000:1:1", rm=False)
        # Unmanaged: an exited container, and an image tagged like an env
        # image but without the label.
        cls.exited_unmanaged = exited_container(f"{TAG}-cleanup-exited-unmanaged")
        cls.fake_env = f"spr-env:{TAG}-unmanaged"
        docker("commit", cls.exited_unmanaged, cls.fake_env)
        IMAGES_MADE.add(cls.fake_env)

    @classmethod
    def tearDownClass(cls):
        cls.holder.stop()
        docker("rm", "-f", cls.foreign_user, cls.exited, cls.orphan, cls.remote,
               cls.exited_unmanaged, check=False)
        shutil.rmtree(cls.wheels, ignore_errors=True)

    def test_a_listing_before_cleanup(self):
        listed = {c["id"]: c for c in spr_json(self, "list", "containers", "--all")["containers"]}
        self.assertIs(listed[self.held[0]]["creator_alive"], True, listed[self.held[0]])
        self.assertIs(listed[self.orphan]["creator_alive"], False, listed[self.orphan])
        self.assertIsNone(listed[self.remote]["creator_alive"], listed[self.remote])
        self.assertIn(self.exited, listed)
        self.assertNotIn(self.foreign_user, listed)
        self.assertNotIn(self.exited_unmanaged, listed)
        images = {bare(i["id"]): i for i in spr_json(self, "list", "images")["images"]}
        used = images[bare(image_id(self.used_env))]
        self.assertEqual((used["kind"], used["containers"]), ("env", 1), used)
        self.assertIn(self.used_env, used["tags"])
        unused = images[bare(self.unused_env_id)]
        self.assertEqual((unused["kind"], unused["containers"]), ("env", 0), unused)
        foreign = images[bare(image_id(self.foreign_env))]
        self.assertEqual((foreign["kind"], foreign["containers"]), ("env", 1), foreign)
        self.assertEqual(images[bare(self.runtime_id)]["kind"], "runtime")
        self.assertNotIn(bare(image_id(self.fake_env)), images)

    def test_b_cleanup(self):
        fake_env_id = image_id(self.fake_env)
        p = spr("--json", "cleanup")
        self.assertEqual(p.returncode, 0, show(p))
        doc = json.loads(p.stdout)
        removed = doc["removed"]
        self.assertEqual(sorted(removed), ["containers", "images", "run_cgroups", "run_dirs"], doc)
        self.assertNotIn("docker", doc, "docker was reachable, nothing to skip")
        # At least what this class made (a shared daemon may hold more).
        self.assertGreaterEqual(removed["containers"], 2, doc)
        self.assertGreaterEqual(removed["images"], 1, doc)
        self.assertIsInstance(removed["run_cgroups"], int, doc)
        # Removed: the exited managed container, the orphan, the unused env image.
        self.assertIsNone(state(self.exited), "exited managed container not removed")
        self.assertIsNone(state(self.orphan), "container of a gone creator not removed")
        self.assertFalse(image_exists(self.unused_env_id), "unused env image not removed")
        # Kept: what runs for a live caller and its image, the runtime image,
        # the other host's container, and everything unmanaged.
        self.assertEqual(state(self.held[0])[0], True, "a live caller's container was touched")
        self.assertTrue(image_exists(self.used_env), "an env image in use was removed")
        self.assertTrue(image_exists(self.foreign_env),
                        "an env image an unmanaged container uses was removed")
        self.assertEqual(state(self.foreign_user)[0], True)
        self.assertTrue(image_exists(self.runtime_tag), "the runtime image was removed")
        self.assertEqual(state(self.remote)[0], True, "another host's container was removed")
        self.assertIsNotNone(state(self.exited_unmanaged), "an unmanaged container was removed")
        self.assertEqual(image_id(self.fake_env), fake_env_id, "an unmanaged image was removed")
        self.assertTrue(image_exists(BASE_IMAGE))
        self.assertUnmanagedUntouched()
        # The live caller still works on its container: it is still running.
        self.assertIsNone(self.holder.proc.poll())

    def test_c_cleanup_again_finds_nothing(self):
        doc = spr_json(self, "cleanup")
        self.assertEqual((doc["removed"]["containers"], doc["removed"]["images"]), (0, 0), doc)
        p = spr("cleanup")
        self.assertEqual(p.returncode, 0, show(p))
        self.assertTrue(p.stdout.strip(), show(p))


# ---- a DockerEngine's own start-up cleanup --------------------------------------

@unittest.skipUnless(READY, WHY)
class G_EngineStart(AdminCase):
    def test_engine_start_removes_its_orphans_only(self):
        tag, rid = runtime_image()
        live = Holder.batch()
        live_ids = live.wait()
        try:
            # Managed by their labels, put there by hand (managed by
            # definition), as a caller killed before stopping its pool
            # leaves them: one of the runtime image, one of another image.
            gone = dead_creator()
            mine = hand_container(f"{TAG}-orphan-runtime", MANAGED, "io.spr.env=" + rid,
                                  "io.spr.creator=" + gone, image=tag, rm=False)
            base_id = image_id(BASE_IMAGE)
            other = hand_container(f"{TAG}-orphan-other", MANAGED, "io.spr.env=" + base_id,
                                   "io.spr.creator=" + gone, rm=False)
            self.assertEqual(runtime_image()[1], rid)
            self.assertIsNone(state(mine), "the engine left its image's orphan")
            self.assertEqual(state(other)[0], True, "the engine removed another image's container")
            for cid in live_ids:
                self.assertEqual(state(cid)[0], True, "a live caller's container was removed")
            self.assertUnmanagedUntouched()
        finally:
            live.stop()
            docker("rm", "-f", f"{TAG}-orphan-runtime", f"{TAG}-orphan-other", check=False)


class H_Forgery(AdminCase):
    """Label text is anyone's to choose and images pass labels on: none of
    it may make spr act on what it did not make (the review's F2-F4)."""

    def test_label_text_cannot_forge_a_listing_line(self):
        # An unmanaged container whose label value holds a tab-separated
        # "line" claiming another, unmanaged, container is managed.
        victim = hand_container(f"{TAG}-victim")
        forger = hand_container(f"{TAG}-forger",
                                f"io.spr.managed=0\n{TAG}-victim\t{TAG}-victim\t1")
        # A managed container whose creator label smuggles a "row" for the
        # victim, exited and stale, into what cleanup reads.
        smuggler = hand_container(
            f"{TAG}-smuggler", MANAGED,
            f"io.spr.creator=x\n{victim}\t{TAG}-victim\timg\texited\tExited\tnow\t\t\tx")
        try:
            for args in (["kill", "container", f"{TAG}-victim"],
                         ["stop", "container", f"{TAG}-victim"],
                         ["container", f"{TAG}-victim"]):
                self.assertRefused(spr(*args),
                                   f"Container '{TAG}-victim' is not managed by spr and "
                                   "cannot be modified")
            listed = {c["id"] for c in spr_json(self, "list", "containers", "--all")["containers"]}
            self.assertNotIn(victim, listed)
            self.assertNotIn(forger, listed)
            self.assertIn(smuggler, listed)
            p = spr("--json", "cleanup")
            self.assertEqual(p.returncode, 0, show(p))
            self.assertEqual(state(victim)[0], True, "cleanup touched an unmanaged container")
            self.assertEqual(state(forger)[0], True)
        finally:
            docker("rm", "-f", victim, forger, smuggler, check=False)

    def test_images_are_spr_s_only_under_spr_s_names(self):
        tag, rid = runtime_image()
        with tempfile.TemporaryDirectory() as d:
            env = env_image(d, f"sprforge{os.getpid()}==1.0.0")
        env_id = image_id(env)
        # Another name for spr's env image, an image built FROM it (it
        # inherits the labels), and a third party's image with spr's labels
        # set by hand.
        alias = f"{TAG}-team/app:1"
        derived = f"{TAG}-team/derived:1"
        forged = f"{TAG}-thirdparty/tool:1"
        docker("tag", env, alias)
        IMAGES_MADE.update({alias, derived, forged})
        with tempfile.TemporaryDirectory() as ctx:
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write(f"FROM {env}\nLABEL team=app\n")
            docker("build", "--network", "none", "-q", "-t", derived, ctx, timeout=300)
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write(f"FROM {BASE_IMAGE}\nLABEL io.spr.image=env io.spr.env-hash=forged\n")
            docker("build", "--network", "none", "-q", "-t", forged, ctx, timeout=300)
        listed = spr_json(self, "list", "images")["images"]
        tags = [t for i in listed for t in i["tags"]]
        self.assertIn(env, tags)
        for other in (alias, derived, forged):
            self.assertNotIn(other, tags)
        self.assertNotIn(bare(image_id(derived)), [bare(i["id"]) for i in listed])
        self.assertNotIn(bare(image_id(forged)), [bare(i["id"]) for i in listed])
        p = spr("--json", "cleanup")
        self.assertEqual(p.returncode, 0, show(p))
        self.assertFalse(image_exists(env), "the unused env image's spr name stays")
        self.assertEqual(image_id(alias), env_id, "another name of the image was removed")
        self.assertTrue(image_exists(derived), "an image built FROM spr's was removed")
        self.assertTrue(image_exists(forged), "an image with forged labels was removed")
        self.assertTrue(image_exists(tag), "the runtime image was removed")

    def test_same_host_name_other_machine_is_not_judged(self):
        # A clone of this machine (same host name, another boot) shares
        # the daemon: its creator cannot be judged from here, its running
        # container stays.
        other = hand_container(
            f"{TAG}-clone", MANAGED,
            f"io.spr.creator={HOST}:11111111-2222-3333-4444-555555555555:1:1", rm=False)
        # ...and a label without a boot id (host:pid:start): pid 1 exists
        # here, but whose pid 1 it meant cannot be known.
        older = hand_container(f"{TAG}-clone-old", MANAGED, f"io.spr.creator={HOST}:1:1",
                               rm=False)
        try:
            listed = {c["id"]: c for c in
                      spr_json(self, "list", "containers")["containers"]}
            self.assertIsNone(listed[other]["creator_alive"], listed[other])
            self.assertIsNone(listed[older]["creator_alive"], listed[older])
            p = spr("--json", "cleanup")
            self.assertEqual(p.returncode, 0, show(p))
            self.assertEqual(state(other)[0], True, "cleanup removed another machine's container")
            self.assertEqual(state(older)[0], True, "cleanup judged a label it cannot judge")
        finally:
            docker("rm", "-f", other, older, check=False)
