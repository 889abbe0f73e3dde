"""The DockerEngine and the `spr` admin CLI against a remote daemon, for real.

setUpModule starts a real sshd on 127.0.0.1 (scripts/sshd-for-tests.sh:
generated host and client keys, root login by key only, sessions get
DOCKER_HOST = the test daemon) and creates a docker context `spr-test-ctx`
for the test daemon in a private DOCKER_CONFIG (the user's ~/.docker is
never read or written). Every run and admin command then goes through
`--ssh-host 127.0.0.1 --ssh-port P --ssh-user root --ssh-key-path K` (the
docker CLI's ssh:// transport through spr's key wrapper) and through
`--docker-context spr-test-ctx`, and is compared with the same thing done
locally (DOCKER_HOST). tearDownModule stops the sshd and checks that
nothing is left: no sshd, no session, no known_hosts entry, no key wrapper
directory, no container these tests created.

Skipped without DOCKER_HOST (or not root: sshd and the root-owned daemon
socket); with SPR_REQUIRE_DOCKER=1 (`make docker`) that is a failure.
SPR_TEST_SSHD_DIR picks the sshd's directory (default: the script's, one
per checkout). An sshd this module did not start (the script reused one
already running) is left running at the end: only the pid the script's
start printed as SPR_TEST_SSHD_STARTED is stopped.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from integration.common import BUILD, PERMISSIVE, SPR, SPR_RUN, SprTestCase, write_policy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SSHD_SCRIPT = os.path.join(ROOT, "scripts", "sshd-for-tests.sh")


def _sshd_dir():
    # The script's default is this checkout's own directory
    # (/var/lib/spr-test-sshd-<checkout id>): ask it rather than repeat the rule.
    if os.environ.get("SPR_TEST_SSHD_DIR"):
        return os.environ["SPR_TEST_SSHD_DIR"].rstrip("/")
    return subprocess.run([SSHD_SCRIPT, "dir"], capture_output=True, text=True,
                          check=True).stdout.strip()


SSHD_DIR = _sshd_dir()
SSHD_LOG = os.path.join(SSHD_DIR, "sshd.log")
BATCH = os.path.join(BUILD, "tests", "tools", "batch")
LIBEXEC = os.path.join(BUILD, "libexec", "spr")
CONTEXT = "spr-test-ctx"
# Unmanaged containers made here carry this label (and are removed at the end).
LABEL = "io.spr.test=remote"
# The engine's private ssh wrapper directories (src/docker/remote.c).
WRAPPER_GLOB = "/tmp/spr-ssh-*"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
# Fields of a RunnerResult that legitimately differ between two runs of the
# same code (measured by the host); everything else must be equal.
MEASURED = ("duration_ms", "memory_peak_kb")

SSH = {}            # host, port, user, key, known_hosts, started: the script's exports
STATE = {}          # docker_config, started_sshd, sshd_pid, managed_before
ENV = {}            # the environment every command here runs with


def require(why):
    """Skip, or fail under `make docker` where a skip would hide it."""
    if os.environ.get("SPR_REQUIRE_DOCKER") == "1":
        raise AssertionError("SPR_REQUIRE_DOCKER=1 but " + why)
    raise unittest.SkipTest(why)


def docker(*args, check=True, env=None, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=check, env=env or ENV)


def sshd_script(*command, timeout=300):
    return subprocess.run([SSHD_SCRIPT, *command], capture_output=True, text=True,
                          timeout=timeout, env=dict(ENV, SPR_TEST_SSHD_DIR=SSHD_DIR))


def sshd_pid():
    try:
        with open(os.path.join(SSHD_DIR, "sshd.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def children_of(pid):
    kids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            kids.append(int(stat.split("/")[2]))
    return kids


def alive(pid):
    """True while pid runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def managed_containers(all_states=True):
    out = docker("ps", *(["-a"] if all_states else []), "-q", "--no-trunc",
                 "--filter", "label=io.spr.managed=1").stdout
    return set(out.split())


def containers_of(pid):
    """Managed containers, any state, created by process pid (io.spr.creator
    is host:boot-id:pid:start-time): a batch's, spares included."""
    out = docker("ps", "-a", "--no-trunc", "--filter", "label=io.spr.managed=1", "--format",
                 '{{.ID}} {{.Label "io.spr.creator"}}').stdout
    return {cid for cid, _, creator in (line.partition(" ") for line in out.splitlines())
            if creator.split(":")[2:3] == [str(pid)]}


def wrappers_for(key):
    """The engine's ssh wrapper directories whose script uses `key`."""
    found = []
    for d in glob.glob(WRAPPER_GLOB):
        try:
            with open(os.path.join(d, "ssh")) as f:
                if key in f.read():
                    found.append(d)
        except OSError:
            pass
    return found


def accepted_logins():
    """sshd's "Accepted publickey" lines so far."""
    try:
        with open(SSHD_LOG, errors="replace") as f:
            return [line for line in f if "Accepted publickey for " in line]
    except OSError:
        return []


def fingerprint(key):
    out = subprocess.run(["ssh-keygen", "-l", "-f", key + ".pub"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]  # SHA256:...


def setUpModule():
    ENV.clear()
    ENV.update(os.environ, SPR_LIBEXEC_DIR=LIBEXEC)
    if os.environ.get("SPR_TEST_PODMAN") == "1":  # tests/podman/test_remote.py
        raise unittest.SkipTest("a docker daemon over SSH and contexts (podman: tests/podman)")
    if not os.environ.get("DOCKER_HOST"):
        require("DOCKER_HOST is not set: start the test daemon first, "
                "eval \"$(make -s docker-env-start)\"")
    if os.geteuid() != 0:
        require("not root: sshd-for-tests.sh starts sshd and logs in as root "
                "(the daemon socket is root's)")
    # The user's ~/.docker is never used: contexts live in a private config.
    config = tempfile.mkdtemp(prefix="spr-test-docker-config-")
    ENV["DOCKER_CONFIG"] = config
    try:
        docker("info")
    except (subprocess.SubprocessError, OSError) as e:
        os.rmdir(config)
        require(f"test daemon unreachable: {e}")
    STATE["docker_config"] = config
    # unittest skips tearDownModule when setUpModule fails: clean up here then.
    try:
        STATE["managed_before"] = managed_containers()
        proc = sshd_script("start")
        if proc.returncode != 0:
            raise AssertionError(f"scripts/sshd-for-tests.sh start failed "
                                 f"({proc.returncode}):\n{proc.stderr}")
        STATE["sshd_pid"] = sshd_pid()
        for m in re.finditer(r"^export SPR_TEST_SSHD?_(\w+)=(.*)$", proc.stdout, re.M):
            SSH[m.group(1).lower()] = m.group(2)
        # Ours to stop at the end only if this start started it (not reused).
        STATE["started_sshd"] = bool(SSH.get("started"))
        missing = {"host", "port", "user", "key", "known_hosts", "started"} - set(SSH)
        if missing:
            raise AssertionError(f"sshd-for-tests.sh printed no {sorted(missing)}: "
                                 f"{proc.stdout!r}")
        docker("context", "create", CONTEXT, "--description", "spr tests: the test daemon",
               "--docker", "host=" + os.environ["DOCKER_HOST"])
    except BaseException:
        try:
            tearDownModule()
        except Exception as e:  # noqa: BLE001 - the setup failure is the news
            print(f"test_remote: cleaning up after the failed setup: {e}", file=sys.stderr)
        finally:
            STATE.clear()
        raise


def tearDownModule():
    if not STATE:
        return
    problems = []
    left = docker("ps", "-aq", "--filter", "label=" + LABEL, check=False).stdout.split()
    if left:
        docker("rm", "-f", *left, check=False)
        problems.append("unmanaged test containers left: " + " ".join(left))
    if "docker_config" in STATE:
        docker("context", "rm", "-f", CONTEXT, check=False)
        subprocess.run(["rm", "-rf", STATE["docker_config"]], check=False)
    pid = STATE.get("sshd_pid")
    # Every engine here has ended: its ssh connections must be closed too
    # (checked on an sshd of our own: a shared one may serve someone else).
    sessions = children_of(pid) if pid and STATE.get("started_sshd") else []
    deadline = time.monotonic() + 10
    while sessions and time.monotonic() < deadline:
        time.sleep(0.2)
        sessions = children_of(pid)
    if sessions:
        problems.append("ssh sessions still open after the tests: "
                        + ", ".join(f"{s} {cmdline(s)!r}" for s in sessions))
    if STATE.get("started_sshd"):
        proc = sshd_script("stop", SSH["started"])
        if proc.returncode != 0:
            problems.append(f"sshd-for-tests.sh stop failed: {proc.stderr}")
        if pid and alive(pid):
            problems.append(f"sshd (pid {pid}) still running after stop")
        left = [s for s in sessions if alive(s)]
        if left:
            problems.append(f"sshd sessions left after stop: {left}")
        try:
            with open(GLOBAL_KNOWN_HOSTS) as f:
                ours = [line for line in f if line.split()[-1:] == ["spr-test-sshd:" + SSHD_DIR]]
        except FileNotFoundError:
            ours = []
        if ours:
            problems.append(f"known_hosts entries left in {GLOBAL_KNOWN_HOSTS}: {ours}")
    if SSH.get("key") and wrappers_for(SSH["key"]):
        problems.append(f"ssh wrapper directories left: {wrappers_for(SSH['key'])}")
    if problems:
        raise AssertionError("; ".join(problems))


# ---- helpers ----------------------------------------------------------------------


def ssh_args(key=None, host=None):
    return ["--ssh-host", host or SSH["host"], "--ssh-port", SSH["port"],
            "--ssh-user", SSH["user"], "--ssh-key-path", key or SSH["key"]]


def context_args():
    return ["--docker-context", CONTEXT]


# The DockerEngine's own DOCKER_HOST must not matter when remote options are
# given: runs through ssh/context get one that points nowhere.
def nowhere_env(tmp):
    return dict(ENV, DOCKER_HOST=f"unix://{tmp}/no-daemon.sock")


def run_code(code, remote=(), input_data=None, policy=None, env=None, timeout=300):
    """spr-run --engine docker --json [remote options]; returns (proc, result)."""
    with tempfile.TemporaryDirectory(prefix="spr-remote-") as tmp:
        path = os.path.join(tmp, "code.py")
        with open(path, "w") as f:
            f.write(code)
        cmd = [SPR_RUN, "--engine", "docker", "--json", *remote]
        if input_data is not None:
            cmd += ["--input", json.dumps(input_data)]
        if policy is not None:
            cmd += ["--policy", write_policy(policy, tmp)]
        proc = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=timeout,
                              env=env(tmp) if callable(env) else (env or ENV))
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, result


def spr_admin(*args, remote=(), env=None, timeout=120):
    return subprocess.run([SPR, *args, *remote], capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def comparable(result):
    """Everything but what differs between any two runs: the measured
    figures, and which container (and its leased uid) served the run."""
    out = {k: v for k, v in result.items() if k not in MEASURED}
    iso = out.get("isolation")
    if isinstance(iso, dict) and "container" in iso:
        iso = dict(iso, container=dict(iso["container"], name="-"), host_uid="-")
        out["isolation"] = iso
    return out


def runs_through_one_engine(remote, requests, env):
    """Runs the requests one after the other through ONE DockerEngine with
    the remote options (pool of one container), with the batch tool (the C
    API, spr_run_json); returns the RunnerResults."""
    cmd = [BATCH, "--engine", "docker", "--pool-size", "1", *remote]
    proc = subprocess.run(cmd, input="".join(json.dumps(r) + "\n" for r in requests),
                          capture_output=True, text=True, timeout=600, env=env)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0:
        raise AssertionError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr} {lines}")
    return [line["result"] for line in lines]


def run_in_pty(cmd, env, timeout):
    """Runs cmd with a pseudo-terminal as its controlling terminal (as a user
    at a shell has): an ssh that wanted to ask something would ask there and
    wait, which the timeout would turn into a failure."""
    master, slave = os.openpty()
    name = os.ttyname(slave)

    def take_tty():
        os.setsid()
        os.close(os.open(name, os.O_RDWR))  # the first tty opened becomes the ctty

    try:
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdin=slave, capture_output=True, text=True,
                              timeout=timeout, env=env, preexec_fn=take_tty)
        return proc, time.monotonic() - t0
    finally:
        os.close(slave)
        os.close(master)


# Cases compared between local, SSH and context runs: values and input_data,
# both streams, a big integer and non-ASCII text, an exception, sys.exit.
CASES = {
    "values": dict(
        code="import sys\n"
             "print('hello', name, flush=True)\n"
             "print('to stderr', file=sys.stderr)\n"
             "result = {'sum': sum(numbers), 'big': 2 ** 100, 'text': name + ' \u2713',\n"
             "          'input': input_data, 'main': __name__}\n",
        input_data={"name": "sp\u00e9r", "numbers": [3, 4, 5], "nested": {"a": [None, True]}}),
    "exception": dict(code="print('before')\n"
                           "def f(x):\n"
                           "    return 1 / x\n"
                           "f(0)\n"),
    "exit": dict(code="import sys\nresult = 7\nprint('bye')\nsys.exit(3)\n",
                 policy=dict(PERMISSIVE)),
}


class RemoteRuns(SprTestCase):
    """One spr-run each way; the results must be the local ones."""

    @classmethod
    def setUpClass(cls):
        cls.local = {}
        for name, case in CASES.items():
            proc, result = run_code(**case)
            cls.local[name] = (proc, result)

    def check_same_as_local(self, remote, env):
        for name, case in CASES.items():
            with self.subTest(case=name):
                local_proc, local = self.local[name]
                self.assertIsNotNone(local, local_proc.stderr)
                proc, result = run_code(**case, remote=remote, env=env)
                self.assertIsNotNone(result, proc.stderr)
                self.assertEqual(comparable(result), comparable(local))
                self.assertEqual(proc.returncode, local_proc.returncode, proc.stderr)
        # Not vacuous: the local runs did what the cases say.
        values = self.local["values"][1]
        self.assertTrue(values["ok"], values)
        self.assertEqual(values["result"]["sum"], 12)
        self.assertEqual(values["result"]["big"], 2 ** 100)
        self.assertEqual(values["stdout"], "hello sp\u00e9r\n")
        self.assertEqual(values["stderr"], "to stderr\n")
        self.assertEqual(values["isolation"]["engine"], "docker")
        exc = self.local["exception"][1]
        self.assertEqual((exc["ok"], exc["exit_code"], exc["error"]),
                         (False, 1, "ZeroDivisionError: division by zero"))
        self.assertIn("line 3, in f", exc["stderr"])
        ex = self.local["exit"][1]
        self.assertEqual((ex["exit_code"], ex["error"], ex["stdout"]), (3, "SystemExit: 3", "bye\n"))

    def test_ssh_run_equals_local(self):
        before = len(accepted_logins())
        self.check_same_as_local(ssh_args(), nowhere_env)
        # It really went through our sshd, with our key (the caller's own
        # DOCKER_HOST pointed nowhere).
        new = accepted_logins()[before:]
        self.assertTrue(new, "no login on the test sshd")
        fp = fingerprint(SSH["key"])
        self.assertTrue(all(fp in line and f"for {SSH['user']} from 127.0.0.1" in line
                            for line in new), new)
        self.assertEqual(wrappers_for(SSH["key"]), [])

    def test_context_run_equals_local(self):
        before = len(accepted_logins())
        # DOCKER_HOST points nowhere: only the context reaches the daemon.
        self.check_same_as_local(context_args(), nowhere_env)
        self.assertEqual(accepted_logins()[before:], [], "a context run went through ssh")

    def test_several_runs_through_one_engine_over_ssh(self):
        self.several_runs(ssh_args())

    def test_several_runs_through_one_engine_over_context(self):
        self.several_runs(context_args())

    def several_runs(self, remote):
        reqs = [{"code": "import socket\nprint(i)\nresult = [i, i * i, socket.gethostname()]",
                 "input_data": {"i": i}, "policy": dict(PERMISSIVE)} for i in range(6)]
        # State does not leak between the runs a container serves.
        reqs.append({"code": "import os\nresult = sorted(os.listdir('/tmp'))",
                     "policy": dict(PERMISSIVE)})
        reqs.insert(1, {"code": "open('/tmp/leak', 'w').write('x')\nresult = 'wrote'",
                        "policy": dict(PERMISSIVE)})
        before = len(accepted_logins())
        with tempfile.TemporaryDirectory() as tmp:
            results = runs_through_one_engine(remote, reqs, nowhere_env(tmp))
        # Through ssh (our key) exactly when asked to.
        logins = accepted_logins()[before:]
        if remote[0] == "--ssh-host":
            self.assertTrue(logins and all(fingerprint(SSH["key"]) in line for line in logins),
                            logins)
        else:
            self.assertEqual(logins, [])
        self.assertEqual(len(results), len(reqs))
        for r in results:
            self.assertTrue(r["ok"], r)
        squares = [r["result"] for r in results if isinstance(r["result"], list)
                   and len(r["result"]) == 3]
        self.assertEqual([s[:2] for s in squares], [[i, i * i] for i in range(6)])
        self.assertEqual([r["stdout"] for r in results[2:7]], [f"{i}\n" for i in range(1, 6)])
        self.assertEqual(len({s[2] for s in squares}), 1, "the warm container was not reused")
        self.assertEqual(results[1]["result"], "wrote")
        self.assertEqual(results[-1]["result"], [])
        if remote[0] == "--ssh-host":
            self.assertEqual(wrappers_for(SSH["key"]), [])


class RemoteErrors(SprTestCase):
    def test_wrong_key_is_125_not_a_hang(self):
        with tempfile.TemporaryDirectory(prefix="spr-wrong-key-") as tmp:
            key = os.path.join(tmp, "wrong_key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key],
                           check=True, capture_output=True)
            code = os.path.join(tmp, "c.py")
            with open(code, "w") as f:
                f.write("result = 1")
            before = len(accepted_logins())
            proc, took = run_in_pty([SPR_RUN, "--engine", "docker", "--json",
                                     *ssh_args(key=key), code], ENV, timeout=120)
            self.assertEqual(proc.returncode, 125, proc)
            self.assertLess(took, 60)
            res = json.loads(proc.stdout)
            self.assertFalse(res["ok"])
            self.assertEqual(res["exit_code"], 125)
            self.assertTrue(res["error"].startswith(
                "Docker is installed but the daemon is not running or not accessible."), res)
            self.assertIn("Permission denied (publickey)", res["error"])
            # The admin CLI: the same refusal, exit 125.
            adm, took = run_in_pty([SPR, "list", "containers", *ssh_args(key=key)], ENV,
                                   timeout=120)
            self.assertEqual(adm.returncode, 125, adm)
            self.assertLess(took, 60)
            self.assertIn("Permission denied (publickey)", adm.stderr)
            self.assertIn("Docker is installed but the daemon is not running or not accessible.",
                          adm.stderr)
            self.assertEqual(accepted_logins()[before:], [])
            # The key wrapper directories are gone with the processes.
            self.assertEqual(wrappers_for(key), [])

    def test_unknown_host_key_is_125_not_a_prompt(self):
        # `localhost` is the same sshd, but only [127.0.0.1]:PORT is a known
        # host: ssh must refuse, not ask on the terminal.
        with tempfile.TemporaryDirectory(prefix="spr-host-key-") as tmp:
            code = os.path.join(tmp, "c.py")
            with open(code, "w") as f:
                f.write("result = 1")
            proc, took = run_in_pty([SPR_RUN, "--engine", "docker", "--json",
                                     *ssh_args(host="localhost"), code], ENV, timeout=120)
        self.assertEqual(proc.returncode, 125, proc)
        self.assertLess(took, 60)
        self.assertIn("Host key verification failed", json.loads(proc.stdout)["error"])

    def test_unreadable_key_is_125(self):
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "no-such-key")
            proc, res = run_code("result = 1", remote=ssh_args(key=missing))
        self.assertEqual(proc.returncode, 125, proc.stderr)
        self.assertEqual(res["exit_code"], 125)
        self.assertIn(f"ssh_key_path {missing} is not readable", res["error"])

    def test_key_wrapper_lives_only_as_long_as_the_engine(self):
        # Seen while a run is in progress, gone once spr-run has exited:
        # proves the check used elsewhere (wrappers_for) can see one.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.py")
            with open(path, "w") as f:
                f.write("import time\ntime.sleep(3)\nresult = 'slept'")
            proc = subprocess.Popen([SPR_RUN, "--engine", "docker", "--json", *ssh_args(), path],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=ENV)
            seen = []
            deadline = time.monotonic() + 60
            while not seen and proc.poll() is None and time.monotonic() < deadline:
                seen = wrappers_for(SSH["key"])
                time.sleep(0.05)
            out, err = proc.communicate(timeout=120)
        self.assertTrue(seen, "no ssh wrapper seen during the run")
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(json.loads(out)["result"], "slept")
        self.assertFalse(os.path.exists(seen[0]), f"{seen[0]} left behind")
        self.assertEqual(wrappers_for(SSH["key"]), [])


# ---- the admin CLI -------------------------------------------------------------


class Holder:
    """A managed container kept busy: a local batch process whose engine
    runs a long sleep (the admin commands must find it from afar)."""

    def __init__(self):
        req = {"code": "import time\ntime.sleep(600)", "policy": {"timeout_seconds": 900}}
        self.proc = subprocess.Popen([BATCH, "--engine", "docker", "--pool-size", "1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=ENV)
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.close()
        # By creator, not "new since": a previous holder's spare (started
        # after its container was stopped or killed) may still be going.
        deadline = time.monotonic() + 120
        mine = set()
        while not mine and time.monotonic() < deadline and self.proc.poll() is None:
            mine = containers_of(self.proc.pid) & managed_containers(all_states=False)
            time.sleep(0.2)
        if len(mine) != 1:
            self.close()
            raise AssertionError(f"the batch started {len(mine)} containers, not one")
        self.id = mine.pop()

    def running(self):
        out = docker("inspect", "--format", "{{.State.Running}}", self.id, check=False)
        return out.returncode == 0 and out.stdout.strip() == "true"

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        # Its containers stop by themselves (their caller is gone): wait, so
        # that the next test starts with them gone.
        deadline = time.monotonic() + 30
        while containers_of(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)


class RemoteAdminCase(SprTestCase):
    """The remote forms of the admin commands: --ssh-* (spr's key wrapper),
    --docker-context, and --docker-host ssh://USER@HOST:PORT, where the key
    comes from the user's own ssh set-up (here an `ssh` first on PATH that
    adds it, as a user's ~/.ssh/config would: spr passes no key then)."""

    @classmethod
    def setUpClass(cls):
        cls.user_ssh = tempfile.mkdtemp(prefix="spr-test-user-ssh-")
        path = os.path.join(cls.user_ssh, "ssh")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nexec {shutil.which('ssh')} -i '{SSH['key']}' "
                    "-o IdentitiesOnly=yes -o BatchMode=yes "
                    f"-o UserKnownHostsFile='{SSH['known_hosts']}' \"$@\"\n")
        os.chmod(path, 0o700)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.user_ssh, ignore_errors=True)

    def remotes(self):
        return {"ssh": ssh_args(), "context": context_args(),
                "docker-host": ["--docker-host",
                                f"ssh://{SSH['user']}@{SSH['host']}:{SSH['port']}"]}

    def remote_env(self, remote, tmp):
        """DOCKER_HOST points nowhere: only the remote options can reach
        the daemon. Only --docker-host ssh:// gets the user's ssh."""
        env = nowhere_env(tmp)
        if remote[:1] == ["--docker-host"]:
            env["PATH"] = self.user_ssh + ":" + env.get("PATH", "/usr/bin:/bin")
        return env

    def admin(self, *args, remote=()):
        with tempfile.TemporaryDirectory() as tmp:
            return spr_admin(*args, remote=remote,
                             env=self.remote_env(remote, tmp) if remote else ENV)

    def admin_json(self, *args, remote=()):
        proc = self.admin(*args, "--json", remote=remote)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)


class RemoteAdmin(RemoteAdminCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.holder = Holder()
        name = f"spr-test-unmanaged-{os.getpid()}"
        cls.unmanaged = docker("run", "-d", "--rm", "--network", "none", "--label", LABEL,
                               "--name", name, "spr-base:bookworm", "sleep", "600").stdout.strip()

    @classmethod
    def tearDownClass(cls):
        cls.holder.close()
        docker("rm", "-f", cls.unmanaged, check=False)
        super().tearDownClass()

    def test_list_containers(self):
        def rows(doc):
            # status ("Up 3 seconds") moves on between two calls.
            return sorted(({k: v for k, v in c.items() if k != "status"}
                           for c in doc["containers"]), key=lambda c: c["id"])
        local = self.admin_json("list", "containers")
        ids = [c["id"] for c in local["containers"]]
        self.assertIn(self.holder.id, ids)
        self.assertNotIn(self.unmanaged, ids)
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                before = len(accepted_logins())
                doc = self.admin_json("list", "containers", remote=remote)
                self.assertEqual(rows(doc), rows(local))
                self.assertEqual(len(accepted_logins()) > before, how != "context")

    def test_list_images(self):
        local = self.admin_json("list", "images")
        image = docker("inspect", "--format", "{{.Image}}", self.holder.id).stdout.strip()
        mine = [i for i in local["images"] if i["id"] == image]
        self.assertEqual(len(mine), 1, local)
        self.assertEqual(mine[0]["kind"], "runtime")
        self.assertGreaterEqual(mine[0]["containers"], 1)
        self.assertNotIn("spr-base:bookworm", [t for i in local["images"] for t in i["tags"]])
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                self.assertEqual(self.admin_json("list", "images", remote=remote), local)

    def test_container_by_prefix(self):
        local = self.admin_json("container", self.holder.id[:12])["container"]
        self.assertEqual(local["id"], self.holder.id)
        self.assertEqual(local["state"], "running")
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                doc = self.admin_json("container", self.holder.id[:12], remote=remote)
                self.assertEqual(doc["container"]["id"], self.holder.id)
                self.assertEqual({k: v for k, v in doc["container"].items() if k != "status"},
                                 {k: v for k, v in local.items() if k != "status"})

    def test_unmanaged_container_is_refused(self):
        for how, remote in self.remotes().items():
            for command in (["container"], ["stop", "container"], ["kill", "container"]):
                with self.subTest(remote=how, command=command):
                    proc = self.admin(*command, self.unmanaged, remote=remote)
                    self.assertEqual(proc.returncode, 1, proc.stderr)
                    self.assertIn(f"Container '{self.unmanaged}' is not managed by spr and "
                                  "cannot be modified", proc.stderr)
        out = docker("inspect", "--format", "{{.State.Running}}", self.unmanaged).stdout
        self.assertEqual(out.strip(), "true", "the unmanaged container was touched")

    def ends_one_container(self, verb, *extra):
        """`spr VERB container ID` over each remote ends that container, and
        only that one."""
        done = {"stop": "stopped", "kill": "killed"}[verb]
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                holder = Holder()
                try:
                    self.assertTrue(holder.running())
                    doc = self.admin_json(verb, "container", holder.id[:12], *extra,
                                          remote=remote)
                    self.assertEqual(doc, {done: [holder.id]})
                    self.assertFalse(holder.running(), f"still running after {verb}")
                    self.assertNotIn(holder.id, [c["id"] for c in self.admin_json(
                        "list", "containers", remote=remote)["containers"]])
                finally:
                    holder.close()
        # The other managed container was left alone.
        self.assertTrue(self.holder.running())

    def test_stop_container(self):
        self.ends_one_container("stop", "--timeout-seconds", "2")

    def test_kill_container(self):
        self.ends_one_container("kill")


class RemoteAdminSweep(RemoteAdminCase):
    """`stop all` and `cleanup` act on every managed container of the
    daemon: a class of their own, after RemoteAdmin (whose holder they
    would stop)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        name = f"spr-test-unmanaged-sweep-{os.getpid()}"
        cls.unmanaged = docker("run", "-d", "--rm", "--network", "none", "--label", LABEL,
                               "--name", name, "spr-base:bookworm", "sleep", "600").stdout.strip()

    @classmethod
    def tearDownClass(cls):
        docker("rm", "-f", cls.unmanaged, check=False)
        super().tearDownClass()

    def unmanaged_running(self):
        out = docker("inspect", "--format", "{{.State.Running}}", self.unmanaged).stdout
        return out.strip() == "true"

    def test_stop_all(self):
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                holder = Holder()
                try:
                    doc = self.admin_json("stop", "all", "--timeout-seconds", "2",
                                          remote=remote)
                    self.assertIn(holder.id, doc["stopped"], doc)
                    self.assertNotIn(self.unmanaged, doc["stopped"], doc)
                    self.assertFalse(holder.running(), "still running after stop all")
                finally:
                    holder.close()
                self.assertTrue(self.unmanaged_running(), "stop all stopped an unmanaged one")

    def test_cleanup(self):
        for how, remote in self.remotes().items():
            with self.subTest(remote=how):
                # Managed (by its labels) and exited: stale for cleanup.
                stale = docker("run", "-d", "--network", "none", "--label", LABEL, "--label",
                               "io.spr.managed=1", "spr-base:bookworm", "true").stdout.strip()
                docker("wait", stale)
                holder = Holder()
                try:
                    doc = self.admin_json("cleanup", remote=remote)
                    self.assertGreaterEqual(doc["removed"]["containers"], 1, doc)
                    gone = docker("inspect", stale, check=False)
                    self.assertNotEqual(gone.returncode, 0, "the stale container was kept")
                    self.assertTrue(holder.running(), "cleanup touched a live caller's container")
                    self.assertTrue(self.unmanaged_running(), "cleanup touched an unmanaged one")
                finally:
                    holder.close()
                    docker("rm", "-f", stale, check=False)


class ZZNothingLeft(unittest.TestCase):
    """Runs last in this module (unittest orders classes by name)."""

    def test_no_container_of_these_tests_left(self):
        deadline = time.monotonic() + 30
        left = managed_containers() - STATE["managed_before"]
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = managed_containers() - STATE["managed_before"]
        self.assertEqual(left, set())

    def test_no_wrapper_directory_left(self):
        self.assertEqual(wrappers_for(SSH["key"]), [])

    def test_context_only_in_the_private_docker_config(self):
        # docker keeps a context's metadata in contexts/meta/<sha256(name)>/.
        meta = os.path.join("contexts", "meta", hashlib.sha256(CONTEXT.encode()).hexdigest(),
                            "meta.json")
        self.assertTrue(os.path.exists(os.path.join(STATE["docker_config"], meta)))
        self.assertFalse(os.path.exists(os.path.join(os.path.expanduser("~/.docker"), meta)))

