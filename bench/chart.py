#!/usr/bin/env python3
"""The latency chart of README (issue 17): the distributions, as CDFs on a
log scale, of
  - bare Python: `/usr/bin/python3 -I -S FILE` (a whole process);
  - one-shot: `spr-run FILE` (a whole process: engine, sandbox, run, exit);
  - warm: a run on a prepared sandbox of one engine, 50 ms between runs
    (the Python package, in-process: run_code("result = 1 + 1"));
  - `import numpy; ...` on a warm run, without and with
    preload_imports = ["numpy"];
and the reference's warm LocalEngine run (62 ms, measured by its author:
one figure, drawn as a line). The template-forked run of issue 17 is not
built, so it is not drawn.

    SPR_BUILD=build /usr/bin/python3 bench/chart.py [--runs 60]

Writes bench/latency.png (gnuplot, from Debian: scripts/deps.sh bench) and
section CHART of bench/RESULTS.md (the medians and p90 behind it)."""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("SPR_BUILD") or os.path.join(REPO, "build"))
PNG = os.path.join(HERE, "latency.png")
PAUSE = 0.050
REFERENCE_MS = 62  # the reference's warm LocalEngine run (issue 15)
PYTHON = "/usr/bin/python3"

os.environ.setdefault("SPR_LIBRARY", os.path.join(BUILD, "libspr.so"))
os.environ.setdefault("SPR_LIBEXEC_DIR", os.path.join(BUILD, "libexec", "spr"))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)
import spr  # noqa: E402
from memory import write_section  # noqa: E402
from run import machine  # noqa: E402

NUMPY_CODE = "import numpy\nresult = float(numpy.arange(10).sum())\n"
# numpy pulls in os, ctypes and importlib (SPEC §7 "Preloaded imports").
NUMPY_POLICY = dict(blocked_imports=["subprocess", "socket"], timeout_seconds=30)


def timed(fn, n, pause=PAUSE):
    for _ in range(3):
        fn()
    out = []
    for _ in range(n):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def process(argv):
    def one():
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert p.returncode == 0, argv
    return one


def warm(engine, code, policy):
    def one():
        r = spr.run_code(code, engine, policy=policy)
        assert r.ok, r
    return one


def collect(n):
    series = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "hello.py")
        with open(script, "w") as f:
            f.write("print(1 + 1)\n")
        bare = process([PYTHON, "-I", "-S", script])
        oneshot = process([os.path.join(BUILD, "spr-run"), "--python", PYTHON, script])
        # interleaved: the two processes take turns, as the load comes and goes
        a, b = [], []
        for _ in range(3):
            bare(), oneshot()
        for i in range(n):
            for fn, out in ((bare, a), (oneshot, b)) if i % 2 else ((oneshot, b), (bare, a)):
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
        series["bare python3 -I -S FILE"] = a
        series["spr-run FILE (one-shot)"] = b
    with spr.LocalEngine(pool_size=1) as engine:
        series["warm run (prepared sandbox)"] = timed(
            warm(engine, "result = 1 + 1", spr.RunnerPolicy()), n)
        series["warm run, import numpy"] = timed(
            warm(engine, NUMPY_CODE, spr.RunnerPolicy(**NUMPY_POLICY)), max(10, n // 3), 0.4)
        series["warm run, numpy preloaded"] = timed(
            warm(engine, NUMPY_CODE,
                 spr.RunnerPolicy(preload_imports=["numpy"], **NUMPY_POLICY)), n, 0.4)
    return series


GNUPLOT = """
set terminal pngcairo size 1000,560 noenhanced font ",11"
set output '{png}'
set title 'spr run latency (CDF; {when}, {machine})'
set logscale x
set xrange [1:400]
set xlabel 'latency (ms, log scale)'
set ylabel 'fraction of runs'
set yrange [0:1]
set key right bottom
set grid
set arrow from {ref},0 to {ref},1 nohead dashtype 2 lw 2 lc rgb '#888888'
set label 'reference LocalEngine warm run (median, {ref} ms)' at {ref}/1.05,0.95 right tc rgb '#555555'
plot {plots}
"""


def draw(series):
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for i, (name, values) in enumerate(series.items()):
            path = os.path.join(tmp, f"s{i}.dat")
            v = sorted(values)
            with open(path, "w") as f:
                for k, x in enumerate(v):
                    f.write(f"{x:.3f} {(k + 1) / len(v):.4f}\n")
            plots.append(f"'{path}' using 1:2 with steps lw 2 title '{name}'")
        script = GNUPLOT.format(png=PNG, when=datetime.date.today(), machine=machine(),
                                ref=REFERENCE_MS, plots=", ".join(plots))
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def p90(v):
    return sorted(v)[int(0.9 * (len(v) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    series = collect(a.runs)
    rows = [f"| {k} | {len(v)} | {statistics.median(v):.2f} | {p90(v):.2f} |"
            for k, v in series.items()]
    rows.append(f"| reference LocalEngine warm run (its author's figure) | | {REFERENCE_MS} | |")
    text = "\n".join([
        f"Measured {datetime.date.today()} on {machine()} "
        f"(`SPR_BUILD=build /usr/bin/python3 bench/chart.py --runs {a.runs}`; load: "
        f"{os.getloadavg()[0]:.2f}). The chart: [latency.png](latency.png).",
        "Whole processes for bare Python and spr-run (interleaved); warm runs in-process",
        "through the Python package, one engine, a pause between runs.",
        "",
        "| series | runs | median ms | p90 ms |",
        "|---|---|---|---|",
        *rows,
    ])
    print(text)
    if not a.no_write:
        draw(series)
        write_section("CHART", "## Latency chart\n\n" + text)


if __name__ == "__main__":
    main()
