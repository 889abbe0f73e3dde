#!/usr/bin/env python3
"""spr benchmarks: figures, not assertions (tests never time things).

    make bench            # or: SPR_BUILD=build python3 bench/run.py [--runs N]

LocalEngine: median wall time of `result = 1 + 1` through an engine that
is created once (as a long-lived caller holds it), against the bare
interpreter `python3 -I -S -c 'result = 1 + 1'` measured in the same loop,
interleaved, so machine noise hits both alike. Writes the figures to
bench/RESULTS.md (the section between the LOCAL markers).
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("SPR_BUILD") or os.path.join(os.path.dirname(HERE), "build")
RESULTS = os.path.join(HERE, "RESULTS.md")


def latency(python: str, runs: int) -> dict:
    out = subprocess.run([os.path.join(BUILD, "bench", "run_latency"), str(runs), python],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr")))
    return json.loads(out.stdout)


def machine() -> str:
    cpus = os.cpu_count()
    kernel = platform.release()
    return f"{cpus} CPUs, Linux {kernel}"


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:BEGIN -->", f"<!-- {name}:END -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text:
        return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text.rstrip() + "\n\n" + block + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--python", action="append",
                    help="interpreters to measure (default: /usr/bin/python3)")
    args = ap.parse_args()
    pythons = args.python or ["/usr/bin/python3"]
    rows = []
    for py in pythons:
        r = latency(py, args.runs)
        rows.append(r)
        print(json.dumps(r))
    when = datetime.date.today().isoformat()
    lines = [f"Measured {when} on {machine()} with `make bench` ({args.runs} runs each, "
             "medians, engine created once; bare interpreter measured interleaved).", "",
             "| interpreter | bare `python3 -I -S -c` | through spr (LocalEngine) | overhead |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['python']}` | {r['bare_median_ms']:.2f} ms | "
                     f"{r['sandboxed_median_ms']:.2f} ms | **{r['overhead_ms']:.2f} ms** |")
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
    text = replace_section(text, "LOCAL", "\n".join(lines))
    with open(RESULTS, "w") as f:
        f.write(text)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
