#!/usr/bin/env python3
"""How soon streamed output reaches the caller (issue 16, SPEC §3
"Streaming"): the code prints time.time() every 50 ms; the caller's
on_output notes time.time() when each line arrives. The sandbox shares the
host's clock (no time namespace), so arrival minus print is the delay
through the worker's pipe, the host (LocalEngine) or the container's agent
and the docker CLI's stdout (DockerEngine), and the callback.

    SPR_BUILD=build /usr/bin/python3 bench/streaming.py [--runs 20] [--podman] [--no-write]

--podman also measures the DockerEngine through podman (rootful, with
SPR_DOCKER_BASE_IMAGE set: make podman's environment). Writes section
STREAMING of bench/RESULTS.md."""
import argparse
import datetime
import statistics
import time

from package_env import RESULTS  # first: it sets up the package for `import spr`
import spr  # noqa: E402
from run import machine, replace_section  # noqa: E402

LINES = 20
CODE = f"""import time
for i in range({LINES}):
    print(repr(time.time()))
    time.sleep(0.05)
"""
POLICY = spr.RunnerPolicy(blocked_imports=[], timeout_seconds=30)


def delays(engine, runs):
    """Per line: arrival minus print, in ms, over `runs` runs."""
    out = []
    for _ in range(runs):
        pending = bytearray()
        arrived = []

        def on_output(stream, data):
            now = time.time()
            if stream != "stdout":
                return
            pending.extend(data)
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                arrived.append((float(line), now))

        r = engine.run(CODE, policy=POLICY, on_output=on_output)
        if not r.ok or len(arrived) != LINES:
            raise SystemExit(f"run failed or lines lost: {r!r} ({len(arrived)} lines)")
        out += [(now - printed) * 1000 for printed, now in arrived]
    return out


def row(name, values):
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (f"| {name} | {len(values)} | {statistics.median(values):.2f} ms | "
            f"{p99:.2f} ms | {values[-1]:.2f} ms |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--podman", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    with spr.LocalEngine() as engine:
        delays(engine, 2)  # warm
        rows.append(row("LocalEngine", delays(engine, args.runs)))
    if args.podman:
        with spr.DockerEngine(container_cli="podman") as engine:
            delays(engine, 2)
            rows.append(row("DockerEngine (podman, rootful)", delays(engine, args.runs)))
    cmd = "SPR_BUILD=build /usr/bin/python3 bench/streaming.py" + (" --podman" if args.podman else "")
    body = "\n".join([
        "## Streaming: print to the caller's callback (issue 16)",
        "",
        f"Measured {datetime.date.today()} on {machine()} (`{cmd}`): the code prints "
        f"time.time() {LINES} times, 50 ms apart, per run ({args.runs} runs); the delay is "
        "the caller's time.time() in on_output minus the printed one (one clock: no time "
        "namespace).",
        "",
        "| engine | lines | median | p99 | max |",
        "|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if not args.no_write:
        with open(RESULTS) as f:
            old = f.read()
        with open(RESULTS, "w") as f:
            f.write(replace_section(old, "STREAMING", body))


if __name__ == "__main__":
    main()
