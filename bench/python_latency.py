#!/usr/bin/env python3
"""What the Python package adds to a run: `result = 1 + 1` on a warm
LocalEngine through run_code, against the C API, side by side.

    SPR_BUILD=build /usr/bin/python3 bench/python_latency.py [--runs N] [--rounds R]

Three ways, each on an engine created once (as a long-lived caller holds
it), with a 50 ms pause before every run so that the warm pool's sandbox is
ready (run_latency's "ready" mode), rounds interleaved so that machine
noise hits all alike:
  - the package: spr.run_code(code, engine) on spr.LocalEngine();
  - the C API from this same process: spr_run_json through bare ctypes
    (the request encoded once; no package code on the path);
  - (not a row) run_code's steps one by one, timing the package's own code
    apart from the C call;
  - the C API from a C program: build/bench/run_latency N PYTHON ready.
The package's own cost is the first minus the second.

The reference package (safe-py-runner) cannot be measured here: it is not
installable without its package index, and its source is not on this
machine. The section quotes the issue author's side-by-side figure instead.

Writes the section between the PYTHON markers of bench/RESULTS.md.
"""
import argparse
import ctypes
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("SPR_BUILD") or os.path.join(REPO, "build"))
RESULTS = os.path.join(HERE, "RESULTS.md")
PAUSE = 0.050
CODE = "result = 1 + 1"
REFERENCE_MS = 62  # issue 15: the reference's warm LocalEngine run, measured by its author

os.environ.setdefault("SPR_LIBRARY", os.path.join(BUILD, "libspr.so"))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)
import spr  # noqa: E402
from safe_py_runner import _native  # noqa: E402
from run import machine, replace_section  # noqa: E402  (bench/run.py's helpers)


def interleaved(methods, n):
    """Median ms per method; the methods take turns run by run (in alternating
    order), each after a 50 ms pause (its engine's next sandbox ready)."""
    for one in methods.values():  # warm-up: the pool's server, the first sandboxes
        for _ in range(3):
            one()
    times = {k: [] for k in methods}
    order = list(methods.items())
    for i in range(n):
        for k, one in (order if i % 2 else order[::-1]):  # ABBA: no method always first
            time.sleep(PAUSE)
            t0 = time.perf_counter()
            one()
            times[k].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def package_run(engine):
    def one():
        r = spr.run_code(CODE, engine)
        assert r.ok and r.result == 2, r
    return one


def split_run(engine, own):
    """What run_code(CODE, engine) does, step by step (engine.run: the
    request, the in-flight count, spr_run_json, the RunnerResult), with the
    time outside the C call appended to `own` (ms): the package's own code
    as it runs after a pause, caches cold, not as a tight loop would."""
    from safe_py_runner.execution._base import request_json
    from safe_py_runner.policy import RunnerResult

    def one():
        t0 = time.perf_counter()
        req = request_json(CODE)
        engine._h.enter()
        try:
            ptr = engine._engine_ptr()
            t1 = time.perf_counter()
            doc = engine._call_run(ptr, req)  # spr_run_json, the result text decoded
            t2 = time.perf_counter()
        finally:
            engine._h.leave()
        r = RunnerResult.from_dict(doc)
        t3 = time.perf_counter()
        assert r.ok and r.result == 2, r
        own.append((t1 - t0 + t3 - t2) * 1000)
    return one


def ctypes_run(engine_ptr):
    request = json.dumps({"code": CODE}).encode()

    def one():
        out = ctypes.c_void_p()
        err = ctypes.POINTER(_native.Error)()
        if _native.lib.spr_run_json(engine_ptr, request, len(request), ctypes.byref(out),
                                    ctypes.byref(err)) < 0:
            raise _native.take_error(err)
        assert b'"ok":true' in ctypes.string_at(out.value)
        _native.lib.spr_free(out)
    return one


def package_code_us(engine):
    """The package's own work per run, timed without the run: encoding the
    request, the engine's in-flight bookkeeping, decoding the RunnerResult."""
    import timeit
    from safe_py_runner.execution._base import request_json
    from safe_py_runner.policy import RunnerResult
    text = spr.run_code(CODE, engine).to_json()
    h = engine._h

    def work():
        request_json(CODE)
        h.enter()
        h.leave()
        RunnerResult.from_dict(json.loads(text))
    n = 20000
    return min(timeit.repeat(work, number=n, repeat=3)) / n * 1e6


def run_latency_round(n, python):
    exe = os.path.join(BUILD, "bench", "run_latency")
    p = subprocess.run([exe, str(n), python, "ready"], capture_output=True, text=True, check=True,
                       env=dict(os.environ,
                                SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr")))
    return json.loads(p.stdout)["sandboxed_median_ms"]


def ensure_run_latency():
    exe = os.path.join(BUILD, "bench", "run_latency")
    if not os.path.exists(exe):
        subprocess.run(["make", "-s", "--no-print-directory", f"B={BUILD}", exe], cwd=REPO,
                       check=False, capture_output=True)
    return os.path.exists(exe)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    python = "/usr/bin/python3"
    load = os.getloadavg()[0]
    with_c = ensure_run_latency()
    rounds = {"package": [], "ctypes": [], "c": []}
    own = []
    with spr.LocalEngine(python=python) as pkg_engine, spr.LocalEngine(python=python) as raw, \
            spr.LocalEngine(python=python) as split_engine:
        methods = {"package": package_run(pkg_engine), "ctypes": ctypes_run(raw._h.ptr),
                   "split": split_run(split_engine, own)}
        own_us = package_code_us(pkg_engine)
        for i in range(args.rounds):
            for k, ms in interleaved(methods, args.runs).items():
                if k != "split":
                    rounds[k].append(ms)
            if with_c:
                rounds["c"].append(run_latency_round(args.runs, python))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms"
                                                 for k, v in rounds.items() if v), flush=True)
    med = {k: statistics.median(v) for k, v in rounds.items() if v}
    rows = [("`spr.run_code(code, engine)`, the package", "package"),
            ("`spr_run_json` through bare ctypes, same process", "ctypes"),
            ("`spr_run`, C program (`bench/run_latency N python3 ready`)", "c")]
    lines = [f"Measured {datetime.date.today().isoformat()} on {machine()} with "
             f"`bench/python_latency.py --runs {args.runs} --rounds {args.rounds}` "
             f"(`{python}`, {sys.version.split()[0]} running the package): `{CODE}` on a "
             f"warm LocalEngine each, 50 ms before each run (the sandbox ready); the package "
             "and bare ctypes take turns run by run (ABBA), the C program runs after them in each "
             f"round; the median of the round medians. Load average {load:.1f} at the start "
             "(other work on the machine shows in every row alike).", "",
             "| how | median | round medians (ms) |", "|---|---|---|"]
    for how, key in rows:
        if key in med:
            lines.append(f"| {how} | {med[key]:.2f} ms | "
                         + ", ".join(f"{x:.2f}" for x in rounds[key]) + " |")
    lines.append(f"| the reference package (safe-py-runner 0.1.7, LocalEngine) | "
                 f"~{REFERENCE_MS} ms | not measured here (see below) |")
    own_ms = statistics.median(own)
    lines += ["", f"The package's own code (encoding the request, the engine's in-flight "
              "count, decoding the RunnerResult into the dataclass) costs "
              f"{own_ms * 1000:.0f} µs per run at the median as it runs here, after a 50 ms "
              f"pause with caches cold ({own_us:.0f} µs in a tight loop): that, and the "
              "run's noise, is the difference between the first two rows. ctypes releases "
              "the GIL for the whole run. "
              f"Against the reference: {REFERENCE_MS / med['package']:.0f}x faster. The "
              "reference cannot be installed on this machine (no package index, and its "
              "source is not here), so its figure is the one the issue's author measured "
              "side by side on this machine (issue 15), not a measurement of this script."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        text = open(RESULTS).read()
        with open(RESULTS, "w") as f:
            f.write(replace_section(text, "PYTHON", body))
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
