#!/usr/bin/env python3
"""CPython's own tests inside spr, compared test by test with outside.

    SPR_BUILD=build python3 tests/compat/compat.py [--short] [--engines local,docker]
        [--modules test.test_os ...] [--report FILE] [--doc docs/SECURITY.md]

Each module of the list (MODULES, or SHORT with --short) runs three ways:
- outside: the interpreter spr runs (`spr doctor --json`'s python), with the
  worker's flags (-I -S -B -u -X utf8) and environment, as an unprivileged
  user (nobody) in a fresh temporary directory: the sandbox's code is not
  root either, so a difference is the sandbox's, not the uid's;
- through `spr-run --engine local`, and `--engine docker` where asked (the
  base image, SPR_DOCKER_BASE_IMAGE, must hold the test package: make
  compat builds one from the host's), with a permissive policy (nothing
  blocked, generous limits: the boundary is under test, not the guardrail
  or the limits). The DockerEngine's baseline is its image's interpreter in
  a plain container as nobody (its Debian patch release may differ from
  the host's, and some tests with it).
Every test's outcome (tests/compat/stdlib_runner.py) is compared. A
difference must be listed in tests/compat/differences.py with its reason;
one that is not, or a listed one that no longer differs, fails the run
(exit 1), so the list in docs/SECURITY.md stays true. --doc rewrites the
block between <!-- COMPAT:BEGIN --> and <!-- COMPAT:END --> there.
"""
import argparse
import collections
import fnmatch
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from differences import DIFFERENCES  # noqa: E402

BUILD = os.path.abspath(os.environ.get("SPR_BUILD", os.path.join(ROOT, "build")))
RUNNER = os.path.join(HERE, "stdlib_runner.py")

# The list: the 11 modules first tried by hand, then subprocess,
# signal, socket, select, mmap, multiprocessing, asyncio, zipfile, tarfile,
# logging, codecs and unicode. multiprocessing: the fork start method's
# tests with real processes ("module::pattern" selects tests as unittest -k
# does); the whole module, with threads, managers and the other start
# methods, takes over 15 minutes here. sqlite3's tests (Lib/test/test_sqlite3) are
# not in Debian's libpython3.11-testsuite; tests/integration/test_compat.py
# covers sqlite3 instead.
MODULES = [
    "test.test_json", "test.test_re", "test.test_math", "test.test_collections",
    "test.test_itertools", "test.test_datetime", "test.test_pathlib",
    "test.test_threading", "test.test_tempfile", "test.test_os", "test.test_shutil",
    "test.test_subprocess", "test.test_signal", "test.test_socket", "test.test_select",
    "test.test_mmap", "test.test_multiprocessing_fork::*WithProcessesTest*", "test.test_asyncio",
    "test.test_zipfile", "test.test_tarfile", "test.test_logging", "test.test_codecs",
    "test.test_unicode",
]
# make check's version: a minute, the modules with most known differences.
SHORT = ["test.test_json", "test.test_os", "test.test_shutil", "test.test_tempfile",
         "test.test_select", "test.test_mmap", "test.test_codecs"]

FLAGS = ["-I", "-S", "-B", "-u", "-X", "utf8"]
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
POLICY = """[policy]
blocked_imports = []
blocked_builtins = []
timeout_seconds = {timeout}
memory_limit_mb = 2048
max_processes = 512
max_output_kb = 1024
"""
MODULE_TIMEOUT = 900


def fail(msg):
    print(f"compat: {msg}", file=sys.stderr)
    sys.exit(2)


def interpreter():
    """The interpreter the LocalEngine runs: asked of a run through spr-run."""
    cmd = [os.path.join(BUILD, "spr-run"), "--engine", "local", "--json", "-"]
    out = subprocess.run(cmd, input="import sys\nresult = sys.executable\n",
                         capture_output=True, text=True)
    try:
        path = json.loads(out.stdout)["result"]
    except (ValueError, KeyError, TypeError):
        path = None
    if not path:
        fail(f"spr-run could not say which interpreter it runs (exit {out.returncode}): "
             f"{out.stdout[:300]} {out.stderr.strip()[-500:]}")
    return path


def default_signals():
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def run_outside(python, module, user="nobody"):
    entry = pwd.getpwnam(user)
    with tempfile.TemporaryDirectory(prefix="spr-compat-") as tmp:
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
        env = dict(ENV, HOME=tmp, TMPDIR=tmp)
        cmd = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
               "--clear-groups", python, *FLAGS, RUNNER, module]
        # A caller started in the background ignores SIGINT, which the
        # interpreter would keep (no KeyboardInterrupt): the signal tests
        # need the default disposition spr's runs start with.
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              timeout=MODULE_TIMEOUT + 60, preexec_fn=default_signals)
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout), None


def run_in_image(cli, image, module):
    """The DockerEngine's baseline: the image's own interpreter (its patch
    release may differ from the host's) in a plain container as nobody,
    without spr: a difference is then the sandbox's, not the version's."""
    cmd = [cli, "run", "--rm", "--init", "--user", "65534:65534", "--workdir", "/tmp",
           "-v", f"{RUNNER}:/compat/stdlib_runner.py:ro",
           *[a for k, v in dict(ENV, HOME="/tmp", TMPDIR="/tmp").items() for a in ("-e", f"{k}={v}")],
           image, "python3", *FLAGS, "/compat/stdlib_runner.py", module]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MODULE_TIMEOUT + 120)
    if proc.returncode != 0:
        return None, f"{cli} run exit {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout), None


def run_spr(engine, module, policy_path):
    cmd = [os.path.join(BUILD, "spr-run"), "--engine", engine, "--json", "--policy",
           policy_path, "--input", json.dumps({"modules": [module]}), RUNNER]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MODULE_TIMEOUT + 120)
    try:
        res = json.loads(proc.stdout)
    except ValueError:
        return None, f"spr-run exit {proc.returncode}, no JSON: {proc.stderr[-2000:]}"
    if not res.get("ok"):
        return None, (f"spr-run exit {proc.returncode}: error {res.get('error')!r}, "
                      f"timed_out {res.get('timed_out')}, stderr {res.get('stderr', '')[-1500:]!r}")
    return res["result"], None


def explain(engine, test, outside, inside):
    for entry in DIFFERENCES:
        if engine not in entry["engines"]:
            continue
        if not any(fnmatch.fnmatchcase(test, p) for p in entry["tests"]):
            continue
        if entry.get("outside", outside) == outside and entry.get("inside", inside) == inside:
            return entry
    return None


def compare(engine, outside, inside):
    """(explained [(test, out, in, entry)], unexplained [(test, out, in, why)])."""
    explained, unexplained = [], []
    out_tests, in_tests = outside["tests"], inside["tests"]
    for test in sorted(set(out_tests) | set(in_tests)):
        o, i = out_tests.get(test, "absent"), in_tests.get(test, "absent")
        if o == i:
            continue
        entry = explain(engine, test, o, i)
        if entry:
            explained.append((test, o, i, entry))
        else:
            why = inside.get("details", {}).get(test) or outside.get("details", {}).get(test)
            unexplained.append((test, o, i, why))
    return explained, unexplained


def markdown(report):
    lines = [f"Measured {report['date']} on this machine with `{report['command']}` "
             f"(Python {report['python']}; outside: as `nobody` with the worker's flags; "
             f"inside: a permissive policy). The LocalEngine is compared with the host's "
             f"interpreter outside, the DockerEngine with its image's interpreter in a plain "
             f"container (`docker run --init --user 65534`, no spr): the image's Debian "
             f"patch release may differ from the host's.", ""]
    lines.append("| module | tests | outside: pass / skip / other | "
                 + " | ".join(f"{e}: differences" for e in report["engines"]) + " |")
    lines.append("|---|---|---|" + "---|" * len(report["engines"]))
    for m in report["modules"]:
        row = report["per_module"][m]
        c = row["outside_counts"]
        other = sum(v for k, v in c.items() if k not in ("pass", "skip"))
        cells = [str(row["diffs"].get(e, "not run")) for e in report["engines"]]
        name = m.removeprefix("test.")
        name = f"`{name}`" if "::" in name else name  # its pattern is not emphasis
        lines.append(f"| {name} | {row['tests']} | "
                     f"{c.get('pass', 0)} / {c.get('skip', 0)} / {other} | " + " | ".join(cells) + " |")
    t = report["totals"]
    lines.append(f"| **all** | {t['tests']} | | "
                 + " | ".join(str(t['diffs'].get(e, 0)) for e in report["engines"]) + " |")
    lines += ["", "Every difference and its reason (tests/compat/differences.py):", ""]
    for reason, items in report["reasons"].items():
        lines.append(f"- {reason}")
        for engine, test, o, i in items[:8]:
            lines.append(f"  - {engine}: `{test}` {o} → {i}")
        if len(items) > 8:
            lines.append(f"  - … and {len(items) - 8} more of the same")
    return "\n".join(lines) + "\n"


def update_doc(path, text):
    with open(path) as f:
        doc = f.read()
    begin, end = "<!-- COMPAT:BEGIN -->\n", "<!-- COMPAT:END -->"
    a, b = doc.find(begin), doc.find(end)
    if a < 0 or b < a:
        fail(f"{path} has no {begin.strip()} ... {end} block")
    with open(path, "w") as f:
        f.write(doc[:a + len(begin)] + text + doc[b:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--engines", default="local")
    ap.add_argument("--modules", nargs="*")
    ap.add_argument("--report")
    ap.add_argument("--doc")
    args = ap.parse_args()
    if os.geteuid() != 0:
        fail("run as root: the outside side runs as nobody through setpriv")
    if not shutil.which("setpriv"):
        fail("setpriv not found (util-linux)")
    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        if e not in ("local", "docker", "podman"):
            fail(f"--engines: unknown engine {e!r} (local, docker, podman)")
    modules = args.modules or (SHORT if args.short else MODULES)
    image = os.environ.get("SPR_DOCKER_BASE_IMAGE", "")
    if set(engines) - {"local"} and not image:
        fail("--engines docker/podman needs SPR_DOCKER_BASE_IMAGE: a base image whose "
             "interpreter has the test package (tests/compat/base-image.sh makes one)")
    python = interpreter()
    probe = subprocess.run([python, "-I", "-S", "-c", "import test.support"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        fail(f"{python} has no test package (Debian: apt-get install "
             f"libpython3.11-testsuite; scripts/deps.sh compat): {probe.stderr.strip()[-300:]}")

    report = {"date": time.strftime("%Y-%m-%d"), "engines": engines, "modules": modules,
              "command": "make compat" if not args.short else "make compat-short",
              "per_module": {}, "reasons": collections.OrderedDict(),
              "totals": {"tests": 0, "diffs": collections.Counter()}}
    unexplained_all, seen_entries, errors = [], set(), []
    with tempfile.TemporaryDirectory(prefix="spr-compat-policy-") as tmp:
        policy_path = os.path.join(tmp, "policy.toml")
        with open(policy_path, "w") as f:
            f.write(POLICY.format(timeout=MODULE_TIMEOUT))
        for module in modules:
            start = time.monotonic()
            outside, err = run_outside(python, module)
            if err:
                errors.append(f"{module} outside: {err}")
                continue
            report["python"] = outside["python"]
            out_tests = outside["tests"]
            row = {"tests": len(out_tests), "diffs": {},
                   "outside_counts": dict(collections.Counter(out_tests.values()))}
            report["totals"]["tests"] += len(out_tests)
            for engine in engines:
                baseline = outside
                if engine != "local":
                    baseline, err = run_in_image("podman" if engine == "podman" else "docker",
                                                 image, module)
                    if err:
                        errors.append(f"{module} {engine} baseline: {err}")
                        row["diffs"][engine] = "baseline failed"
                        continue
                inside, err = run_spr(engine, module, policy_path)
                if err:
                    errors.append(f"{module} {engine}: {err}")
                    row["diffs"][engine] = "run failed"
                    continue
                explained, unexplained = compare(engine, baseline, inside)
                row["diffs"][engine] = len(explained) + len(unexplained)
                report["totals"]["diffs"][engine] += len(explained) + len(unexplained)
                for test, o, i, entry in explained:
                    seen_entries.add(id(entry))
                    report["reasons"].setdefault(entry["reason"], []).append((engine, test, o, i))
                unexplained_all += [(engine, *u) for u in unexplained]
            report["per_module"][module] = row
            print(f"compat: {module}: {len(out_tests)} tests, differences "
                  f"{row['diffs']} ({time.monotonic() - start:.0f} s)", flush=True)

    # An entry about a module that ran, for an engine that ran, that
    # matched nothing: the restriction it explains is gone.
    ran = {m.partition("::")[0] for m in modules}
    stale = [e for e in DIFFERENCES
             if id(e) not in seen_entries and set(e["engines"]) & set(engines)
             and any(p.startswith(m + ".") for m in ran for p in e["tests"])]
    text = markdown(report)
    if args.report:
        with open(args.report, "w") as f:
            json.dump({**report, "unexplained": unexplained_all, "errors": errors}, f, indent=1)
    if args.doc and not args.short:
        update_doc(args.doc, text)
    print(text)
    status = 0
    for engine, test, o, i, why in unexplained_all:
        print(f"compat: UNEXPLAINED {engine}: {test}: outside {o}, inside {i}: {why}",
              file=sys.stderr)
        status = 1
    for e in stale:
        # The short run (make check) warns: a module's subset or another
        # host may not show every difference; make compat fails on it.
        print(f"compat: STALE (no longer differs, remove it from differences.py): "
              f"{e['tests']} on {e['engines']}: {e['reason']}", file=sys.stderr)
        if not args.short:
            status = 1
    for err in errors:
        print(f"compat: FAILED {err}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
