"""Shared machinery of the hostile suite.

Every case is one Python script body, run twice with a permissive Python
policy (the Python guardrail must not stop the attack before the kernel
does, SPEC §2):

1. the control: directly on the host, `/usr/bin/python3 -I -S script IN OUT`
   as the user running the tests, to prove the attack works there;
2. the same body through spr-run, where it must fail.

The body reads its parameters from `input_data` and leaves its findings in
`result` (JSON values). A prologue makes that work in both places: inside
the sandbox the worker provides `input_data` and collects `result`; run
directly, the prologue loads `input_data` from the JSON file in argv[1] and
an epilogue writes `result` to argv[2]. The probe (probe.py) is prepended
to every body: nothing of the host tree is visible inside the sandbox.

The suite runs as root and as an unprivileged user (CI uses `runuser -u
sprtest`); targets are picked with os.geteuid() so the control always shows
the attack succeeding for the user at hand.
"""
import json
import os
import pwd
import secrets
import signal
import socket
import shutil
import subprocess
import tempfile
import time
import unittest

from integration.common import (DEGRADED, DEGRADED_ARGS, DEGRADED_PREFIX,  # noqa: F401
                                PODMAN_ROOTLESS, PODMAN_ROOTLESS_DEGRADED, PERMISSIVE, SPR_RUN, ENGINE, ENGINE_KIND, Run, host_processes, spr_run,
                                write_policy)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "probe.py")) as _f:
    PROBE_SOURCE = _f.read()

# The interpreter spr-run uses by default, so both halves run the same one.
HOST_PYTHON = "/usr/bin/python3"
IS_ROOT = os.geteuid() == 0
HOME = pwd.getpwuid(os.geteuid()).pw_dir
HOST_HOSTNAME = socket.gethostname()

PROLOGUE = '''
# ---- hostile harness: prologue ----
import sys as _h_sys
_H_DIRECT = "input_data" not in globals()
if _H_DIRECT:
    import json as _h_json
    with open(_h_sys.argv[1]) as _h_f:
        input_data = _h_json.load(_h_f)
result = None
'''

EPILOGUE = '''
# ---- hostile harness: epilogue ----
if _H_DIRECT:
    import json as _h_json
    with open(_h_sys.argv[2], "w") as _h_f:
        _h_json.dump(result, _h_f)
'''

# What every sandboxed RunnerResult must report (SPEC §3 isolation).
EXPECTED_ISOLATION = {"engine": "local", "userns": True, "pidns": True, "netns": True,
                      "mountns": True, "network": "loopback", "seccomp": "spr-deny-v4",
                      "landlock": True, "degraded": False}
EXPECTED_ISOLATION_HOST_NET = dict(EXPECTED_ISOLATION, netns=False, network="host")
# The same sandbox inside a container (SPEC §7 "DockerEngine"); with
# network the run shares the container's network namespace.
IN_CONTAINER = ENGINE_KIND == "docker"
if IN_CONTAINER:
    EXPECTED_ISOLATION = dict(EXPECTED_ISOLATION, engine="docker", network="none")
    EXPECTED_ISOLATION_HOST_NET = dict(EXPECTED_ISOLATION, netns=False, network="bridge")
# slirp4netns opens /dev/net/tun as the user (Debian's udev makes it 0666;
# a host without udev may leave it 0600).
ROOTLESS_NETWORK = os.access("/dev/net/tun", os.R_OK | os.W_OK)
# Rootless podman (SPR_TEST_PODMAN_ROOTLESS=1): the same sandbox in a
# container of the user's subordinate ids; where podman cannot enforce
# limits (cgroup v1 hosts) the run is degraded to rlimits and says so.
if PODMAN_ROOTLESS:
    _podman = dict(rootless=True, runtime="podman")
    if PODMAN_ROOTLESS_DEGRADED:
        _podman.update(degraded=True, memory="rlimit")
    EXPECTED_ISOLATION = dict(EXPECTED_ISOLATION, **_podman)
    EXPECTED_ISOLATION_HOST_NET = dict(EXPECTED_ISOLATION_HOST_NET, **_podman)
# Degraded mode (SPR_TEST_DEGRADED=1): no namespaces; the filter and
# Landlock stand in (SPEC §7 "Degraded mode").
EXPECTED_DEGRADED = {"engine": "local", "userns": False, "pidns": False, "netns": False,
                     "mountns": False, "network": "refused", "ipc": "refused",
                     "unix_sockets": "socketpair only", "landlock": True, "degraded": True,
                     "process_tree": "subreaper"}
EXPECTED_DEGRADED_HOST_NET = dict(EXPECTED_DEGRADED, network="host")


class _AnyRefusal(dict):
    """Equal to any failed attempt ({"ok": False, ...})."""

    def __eq__(self, other):
        return isinstance(other, dict) and other.get("ok") is False

    __hash__ = None


class _AnyErrno(str):
    """Equal to any errno name."""

    def __eq__(self, other):
        return isinstance(other, str) and other.startswith("E") and other != "EAGAIN"

    __hash__ = str.__hash__


def refused(errname):
    """What the sandbox answers an attempt with: errname with namespaces;
    without them (degraded) another wall may answer first (Landlock's
    EACCES, the filter's EPERM), and any refusal holds."""
    return _AnyErrno(errname) if DEGRADED else errname


def failed_attempt(errname):
    return _AnyRefusal() if DEGRADED else {"ok": False, "errno": errname}


def namespaced_only(why):
    """Assertions about the namespaced sandbox's own layout, which a
    degraded run does not have (not an escape: skipped, not counted)."""
    def wrap(f):
        return unittest.skipIf(DEGRADED, f"namespaced only: {why}")(f)
    return wrap


def visible_when_degraded(what):
    """A case degraded mode cannot hold: what it shows is in SPEC §7's list
    of what a run without namespaces sees (and in isolation.visible). In
    degraded mode the case is skipped and counted as an escape."""
    def wrap(f):
        return unittest.skipIf(DEGRADED, f"degraded escape: {what}")(f)
    return wrap


def script(body: str) -> str:
    return PROLOGUE + PROBE_SOURCE + "\n# ---- case body ----\n" + body + EPILOGUE


def token(prefix="spr-hostile") -> str:
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(6)}"


class DirectRun:
    """The outcome of a control run on the host."""

    def __init__(self, returncode, stdout, stderr, result):
        self.returncode, self.stdout, self.stderr, self.result = returncode, stdout, stderr, result

    def __repr__(self):
        return (f"DirectRun(rc={self.returncode}, result={self.result!r}, "
                f"stdout={self.stdout[-1000:]!r}, stderr={self.stderr[-2000:]!r})")


def run_direct_raw(body, input_data=None, *, userns=False, pass_fds=(), timeout=60,
                   popen=False, prefix=()):
    """Runs the script body on the host with the sandbox's interpreter.
    userns=True runs it under `unshare --user --map-root-user --mount` (the
    unprivileged caller's own namespaces: no more rights on the host than the
    caller has, but calls that check CAP_SYS_ADMIN over the caller's own mount
    namespace first now reach their argument checks). prefix: a command the
    interpreter runs under (e.g. setpriv)."""
    tmp = tempfile.mkdtemp(prefix="spr-hostile-ctl-")
    src = os.path.join(tmp, "case.py")
    inp = os.path.join(tmp, "input.json")
    out = os.path.join(tmp, "result.json")
    with open(src, "w") as f:
        f.write(script(body))
    with open(inp, "w") as f:
        json.dump({} if input_data is None else input_data, f)
    cmd = [HOST_PYTHON, "-I", "-S", src, inp, out]
    if userns:
        cmd = ["unshare", "--user", "--map-root-user", "--mount"] + cmd
    cmd = list(prefix) + cmd
    if popen:
        return subprocess.Popen(cmd, cwd=tmp, pass_fds=pass_fds, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE), tmp
    try:
        proc = subprocess.run(cmd, cwd=tmp, pass_fds=pass_fds, capture_output=True,
                              timeout=timeout)
        result = None
        if os.path.exists(out):
            with open(out) as f:
                result = json.load(f)
        return DirectRun(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                         proc.stderr.decode("utf-8", "replace"), result)
    finally:
        # Whatever the control wrote there too (its cwd) goes with it.
        shutil.rmtree(tmp, ignore_errors=True)


def spr_run_fds(code, *, input_data=None, policy=None, pass_fds=(), timeout=60) -> Run:
    """spr-run --json with extra descriptors inherited (common.spr_run has no
    pass_fds)."""
    with tempfile.TemporaryDirectory(prefix="spr-hostile-") as tmp:
        cmd = [*DEGRADED_PREFIX, SPR_RUN, "--engine", ENGINE, "--json", *DEGRADED_ARGS,
               "--policy", write_policy(dict(PERMISSIVE, **(policy or {})), tmp)]
        if input_data is not None:
            cmd += ["--input", json.dumps(input_data)]
        path = os.path.join(tmp, "code.py")
        with open(path, "w") as f:
            f.write(code)
        cmd.append(path)
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, pass_fds=pass_fds)
        proc.stdout = proc.stdout.decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
        return Run(proc, True)


def start_sleeper(tok, seconds=300):
    """A host process whose argv[0] is tok (so it can be found in /proc)."""
    return subprocess.Popen([tok, str(seconds)], executable="/bin/sleep",
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


class HostileCase(unittest.TestCase):
    maxDiff = None

    # -- the two halves ------------------------------------------------------
    def control(self, body, input_data=None, **kw):
        """Runs the body on the host; returns its `result` (asserting the script
        itself ran to the end)."""
        run = run_direct_raw(body, input_data, **kw)
        self.assertEqual(run.returncode, 0, f"control script failed: {run!r}")
        self.assertIsNotNone(run.result, run)
        return run.result

    def sandboxed_run(self, body, input_data=None, *, network=False, policy=None,
                      pass_fds=()):
        pol = dict(PERMISSIVE, **(policy or {}))
        if network:
            pol["network"] = True
        code = script(body)
        if pass_fds:
            run = spr_run_fds(code, input_data=input_data or {}, policy=pol,
                              pass_fds=pass_fds)
        else:
            run = spr_run(code, input_data=input_data or {}, policy=pol)
        self.assertIsNotNone(run.result, run)
        if network and PODMAN_ROOTLESS and not ROOTLESS_NETWORK:
            # No network for rootless podman on this host: the run must
            # say why and how to fix it, and the rest of the case cannot run.
            self.assertFalse(run["ok"], run)
            self.assertIn("rootless podman's network", run["error"], run)
            self.assertIn("chmod 0666 /dev/net/tun", run["error"], run)
            self.skipTest("rootless podman has no network here (/dev/net/tun is not open to "
                          "the user); the refusal names the fix")
        self.assertIsolation(run, network=network)
        return run

    def sandboxed(self, body, input_data=None, **kw):
        """Runs the body through spr-run; returns its `result` (asserting the run
        itself finished ok: the attack failing must not crash the script)."""
        run = self.sandboxed_run(body, input_data, **kw)
        self.assertTrue(run["ok"], run)
        self.assertEqual(run["exit_code"], 0, run)
        return run["result"]

    def assertIsolation(self, run, network=False):
        iso = run["isolation"]
        if DEGRADED:
            want = EXPECTED_DEGRADED_HOST_NET if network else EXPECTED_DEGRADED
            self.assertEqual({k: iso.get(k) for k in want}, want, run)
            return
        want = EXPECTED_ISOLATION_HOST_NET if network else EXPECTED_ISOLATION
        if network and iso.get("landlock_abi", 0) < 6:
            # no Landlock scope for abstract unix sockets: the stricter filter
            want = dict(want, seccomp="spr-deny-v4-no-unix-socket")
        self.assertEqual({k: iso.get(k) for k in want}, want, run)

    # -- host-side fixtures ----------------------------------------------------
    def make_file(self, directory, content, mode=0o600, prefix="spr-hostile-"):
        """A file the test owns (removed at cleanup); returns its path."""
        fd, path = tempfile.mkstemp(prefix=prefix, dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        self.addCleanup(_unlink_quiet, path)
        return path

    def sleeper(self, tok):
        proc = start_sleeper(tok)
        self.addCleanup(stop, proc)
        # wait until exec has happened and argv[0] is the token
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == tok.encode():
                        return proc
            except OSError:
                pass
            time.sleep(0.01)
        self.fail(f"sleeper {tok} did not start")


def _unlink_quiet(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def kill_quiet(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
