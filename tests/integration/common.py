"""Helpers for end-to-end tests through the spr-run binary.

Every test runs the real binary against the real kernel. SPR_TEST_ENGINE
selects the engine (local by default; docker once it exists), so one
behaviour suite covers both engines.
"""
import atexit
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

BUILD = os.environ.get("SPR_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
SPR_RUN = os.path.join(BUILD, "spr-run")
SPR = os.path.join(BUILD, "spr")
ENGINE = os.environ.get("SPR_TEST_ENGINE", "local")
# The engine a run names (isolation.engine): podman is the DockerEngine's CLI.
ENGINE_KIND = "docker" if ENGINE == "podman" else ENGINE
# SPR_TEST_DEGRADED=1 (make hostile-degraded): every spr-run of the suites
# runs where user namespaces are refused (tests/tools/deny-userns), with
# --allow-degraded: what degraded mode still holds, case by case.
DEGRADED = os.environ.get("SPR_TEST_DEGRADED") == "1"
DEGRADED_PREFIX = [os.path.join(BUILD, "tests", "tools", "deny-userns")] if DEGRADED else []
# SPR_TEST_PODMAN_ROOTLESS=1: the suites run as a rootless podman user
# (make podman: PODMAN_ROOTLESS_SUITES). On a host where rootless podman cannot
# enforce limits (cgroup v1) every run asks for --allow-degraded and its
# limits are rlimits; the sandbox inside the container is the same.
PODMAN_ROOTLESS = ENGINE == "podman" and os.environ.get("SPR_TEST_PODMAN_ROOTLESS") == "1"
PODMAN_ROOTLESS_DEGRADED = PODMAN_ROOTLESS and os.environ.get("SPR_TEST_PODMAN_DEGRADED") == "1"
DEGRADED_ARGS = ["--allow-degraded"] if DEGRADED else []
if PODMAN_ROOTLESS_DEGRADED:
    # Every container run of the suites asks for it, those that build
    # their own command lines too: SPR_RUN is a wrapper adding
    # --allow-degraded to `--engine podman` runs, and to `--engine docker`
    # ones (the docker suite's, where `docker` on PATH is this user's
    # podman: there is no other). A LocalEngine run (no --engine, or
    # local) is passed as it is: the suites test its refusals too.
    _wrapper_dir = tempfile.mkdtemp(prefix="spr-it-wrap-")
    atexit.register(shutil.rmtree, _wrapper_dir, True)
    _wrapper = os.path.join(_wrapper_dir, "spr-run")
    _real = shlex.quote(SPR_RUN)
    with open(_wrapper, "w") as _f:
        _f.write("#!/bin/sh\n"
                 "prev=\n"
                 "for a in \"$@\"; do\n"
                 "  if [ \"$prev\" = --engine ] && { [ \"$a\" = podman ] || [ \"$a\" = docker ]; }; then\n"
                 f"    exec {_real} --allow-degraded \"$@\"\n"
                 "  fi\n"
                 "  prev=$a\n"
                 "done\n"
                 f"exec {_real} \"$@\"\n")
    os.chmod(_wrapper, 0o755)
    SPR_RUN = _wrapper
    # and tests/tools/batch, which every suite starts with os.environ
    os.environ["SPR_TEST_ALLOW_DEGRADED"] = "1"

# A permissive Python policy: tests of the kernel boundary must not be
# stopped by the Python guardrail first (SPEC §2).
PERMISSIVE = {"blocked_imports": [], "blocked_builtins": []}

# Forks until the process limit refuses, forever: only a pids limit or the
# timeout ends it.
FORK_BOMB = ("import os\n"
             "while True:\n"
             "    try:\n"
             "        os.fork()\n"
             "    except OSError:\n"
             "        pass\n")


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def write_policy(policy: dict, directory: str) -> str:
    """Writes a policy dict as a TOML file under [policy]; returns its path."""
    lines = ["[policy]"]
    tables = []
    for k, v in policy.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {toml_value(v)}")
    for name, table in tables:
        lines.append(f"[policy.{name}]")
        for k, v in table.items():
            lines.append(f"{json.dumps(k)} = {toml_value(v)}")
    path = os.path.join(directory, "policy.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Run:
    """The outcome of one spr-run invocation."""

    def __init__(self, proc: subprocess.CompletedProcess, json_mode: bool):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.result = None
        if json_mode and proc.stdout.strip():
            self.result = json.loads(proc.stdout)

    def __getitem__(self, key):
        return self.result[key]

    def __repr__(self):
        return (f"Run(rc={self.returncode}, result={self.result!r}, "
                f"stdout={self.stdout[:500]!r}, stderr={self.stderr[:2000]!r})")


def spr_run(code=None, *, file=None, input_data=None, input_text=None, policy=None,
            args=(), json_mode=True, timeout=120, stdin=None, engine=None,
            wrapper=()) -> Run:
    """Runs code (str or bytes) through spr-run. input_data is JSON-encoded;
    input_text is passed verbatim to --input. wrapper is a command prefix
    (e.g. a shell that first moves itself into a cgroup)."""
    with tempfile.TemporaryDirectory(prefix="spr-it-") as tmp:
        cmd = list(wrapper) + DEGRADED_PREFIX + [SPR_RUN, "--engine", engine or ENGINE,
                                                 *DEGRADED_ARGS]
        if json_mode:
            cmd.append("--json")
        if policy is not None:
            cmd += ["--policy", write_policy(policy, tmp)]
        if input_data is not None:
            cmd += ["--input", json.dumps(input_data)]
        if input_text is not None:
            cmd += ["--input", input_text]
        cmd += list(args)
        if file is None and code is not None:
            file = os.path.join(tmp, "code.py")
            with open(file, "wb") as f:
                f.write(code.encode() if isinstance(code, str) else code)
        if file is not None:
            cmd.append(file)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
        proc.stdout = proc.stdout.decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
        return Run(proc, json_mode)


class SprTestCase(unittest.TestCase):
    maxDiff = None

    def assertOk(self, run: Run, result=...):
        self.assertIsNotNone(run.result, run)
        self.assertTrue(run["ok"], run)
        self.assertEqual(run["exit_code"], 0, run)
        self.assertEqual(run.returncode, 0, run)
        if result is not ...:
            self.assertEqual(run["result"], result, run)

    def assertFailed(self, run: Run, exit_code: int, error=None):
        self.assertIsNotNone(run.result, run)
        self.assertFalse(run["ok"], run)
        self.assertEqual(run["exit_code"], exit_code, run)
        if error is not None:
            self.assertEqual(run["error"], error, run)


# ---- additions for the behaviour suites (keep the API above unchanged) ----

# RunnerResult members in the order of SPEC §3.
RESULT_FIELDS = ("ok", "result", "stdout", "stderr", "stdout_truncated",
                 "stderr_truncated", "timed_out", "resource_exceeded", "error",
                 "exit_code", "duration_ms", "memory_peak_kb", "isolation")


def strict_json_loads(text):
    """json.loads that refuses NaN/Infinity literals (strict JSON)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def run_cli(args, *, stdin=None, timeout=120, with_engine=False):
    """Runs spr-run with exactly `args` (plus `--engine ENGINE` first when
    with_engine); returns the CompletedProcess with stdout/stderr decoded."""
    cmd = [SPR_RUN] + (["--engine", ENGINE] if with_engine else []) + list(args)
    if isinstance(stdin, str):
        stdin = stdin.encode()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def host_pids_with_argv0(token: str) -> list:
    """Host pids whose argv[0] is `token`: how tests find processes a run
    started (by exec'ing a program under a unique name), whatever pid or
    mount namespace the run lives in."""
    found = []
    want = token.encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == want:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def host_processes():
    """{pid: (argv list, state, starttime, ppid)} of every live process on the host
    (zombies excluded: they run nothing and are the reaper's business)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0")[:-1]]
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            continue
        procs[int(name)] = (argv, fields[0], int(fields[19]), int(fields[1]))
    return procs


# ---- libspr.so through ctypes, as a language binding uses it ----

# Loads the library named in argv[1] and makes a LocalEngine `engine`
# (P = c_void_p); what follows it in a program uses lib and engine.
LIBSPR_PRELUDE = r"""
import ctypes, json, os, signal, sys, threading, time
lib = ctypes.CDLL(sys.argv[1])
P = ctypes.c_void_p
lib.spr_run_json.argtypes = [P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(P),
                             ctypes.POINTER(P)]
lib.spr_engine_free.argtypes = [P]
lib.spr_free.argtypes = [P]
class LocalOptions(ctypes.Structure):
    _fields_ = [("python", ctypes.c_char_p), ("libexec_dir", ctypes.c_char_p),
                ("allow_degraded", ctypes.c_bool), ("cgroup_parent", ctypes.c_char_p),
                ("pool_size", ctypes.c_int), ("uid_range", ctypes.c_char_p),
                ("venv_dir", ctypes.c_char_p), ("venv_manager", ctypes.c_char_p),
                ("packages", ctypes.c_void_p), ("pip_index_url", ctypes.c_char_p),
                ("pip_find_links", ctypes.c_char_p), ("pip_no_index", ctypes.c_bool),
                ("install_policy", ctypes.c_void_p), ("install_timeout_seconds", ctypes.c_int),
                ("show_progress", ctypes.c_bool)]
# as spr-run does: a rootless caller's delegated subtree
parent = os.environ.get("SPR_CGROUP_PARENT")
opts = LocalOptions(cgroup_parent=parent.encode() if parent else None)
engine = P()
assert lib.spr_local_engine_new(ctypes.byref(opts), ctypes.byref(engine), ctypes.byref(P())) == 0
"""


def sanitized():
    """Whether the build under test is a sanitizer build (make asan)."""
    ldd = subprocess.run(["ldd", SPR_RUN], capture_output=True, text=True).stdout
    return "libasan" in ldd or "libubsan" in ldd


def sanitizer_env(lib):
    """A sanitizer build (make asan) of libspr.so loads into an interpreter
    only behind its runtime; the interpreter's own allocations are not ours
    to leak-check."""
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    runtimes = [line.split("=>")[1].split()[0] for line in ldd.splitlines()
                if "=>" in line and ("libasan" in line or "libubsan" in line)]
    if not runtimes:
        return {}
    return {"LD_PRELOAD": " ".join(runtimes), "ASAN_OPTIONS": "detect_leaks=0"}


def libspr_program(prelude, body):
    """Runs prelude + body (dedented) in a fresh interpreter with libspr.so
    as argv[1]; returns what it printed (JSON)."""
    lib = os.path.join(BUILD, "libspr.so")
    env = dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr"),
               **sanitizer_env(lib))
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body), lib],
                          capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"program failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
