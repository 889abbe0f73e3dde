#!/usr/bin/env python3
"""What a LocalEngine sandbox costs in memory (issue 17): each idle prepared
sandbox of the warm pool, and each run in flight, as PSS (the process's
share of the pages it shares, e.g. the interpreter's text with every other
sandbox: RSS would count those once per sandbox) and as the run cgroup's
charge (memory.usage_in_bytes on v1, memory.current on v2: what the kernel
bills the sandbox, page tables and kernel objects included).

    SPR_BUILD=build /usr/bin/python3 bench/memory.py [--pool 4] [--runs 4] [--no-write]

Writes section MEMORY of bench/RESULTS.md. Root's hybrid host: the run
cgroups are found under the caller's own memory cgroup (spr/run-*)."""
import argparse
import datetime
import os
import statistics
import threading
import time

from package_env import RESULTS  # first: it sets up the package for `import spr`
import spr  # noqa: E402
from run import machine, replace_section  # noqa: E402

PERMISSIVE = spr.RunnerPolicy(blocked_imports=["subprocess", "socket", "ctypes"],
                              timeout_seconds=30)


def write_section(name, body):
    """Replaces (or appends) section `name` of bench/RESULTS.md."""
    with open(RESULTS) as f:
        old = f.read()
    with open(RESULTS, "w") as f:
        f.write(replace_section(old, name, body))


def children():
    """pid -> ppid for every process."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    out[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sandboxes():
    """Each sandbox under this process's fork server: its monitor and
    every descendant (init, the worker, the code's children)."""
    tree = children()
    kids = {}
    for pid, ppid in tree.items():
        kids.setdefault(ppid, []).append(pid)
    servers = [p for p in kids.get(os.getpid(), []) if comm(p).startswith("spr-sandbox")]
    out = []
    for server in servers:
        for monitor in kids.get(server, []):
            procs, todo = [], [monitor]
            while todo:
                p = todo.pop()
                procs.append(p)
                todo.extend(kids.get(p, []))
            out.append(procs)
    return out


def run_cgroups():
    """The run cgroups' charge in KiB, under the caller's memory cgroup."""
    with open("/proc/self/cgroup") as f:
        lines = [l.rstrip("\n").split(":", 2) for l in f]
    v1 = [path for _, ctl, path in lines if "memory" in ctl.split(",")]
    if v1:
        base, name = f"/sys/fs/cgroup/memory{v1[0].rstrip('/')}/spr", "memory.usage_in_bytes"
    else:
        own = [path for hid, _, path in lines if hid == "0"][0]
        base, name = f"/sys/fs/cgroup{own.rstrip('/')}/spr", "memory.current"
    out = []
    try:
        for d in os.listdir(base):
            if d.startswith("run-"):
                try:
                    with open(f"{base}/{d}/{name}") as f:
                        out.append(int(f.read()) // 1024)
                except OSError:
                    pass
    except OSError:
        pass
    return out


def measure():
    boxes = sandboxes()
    per_box = [sum(pss_kb(p) for p in procs) for procs in boxes]
    return per_box, run_cgroups(), boxes


def wait_for(count, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        boxes = sandboxes()
        if len(boxes) >= count and all(len(b) >= 3 for b in boxes):
            time.sleep(0.5)  # the workers at their request read
            return
        time.sleep(0.1)
    raise SystemExit(f"the pool never held {count} sandboxes")


def fmt(values):
    if not values:
        return "n/a"
    return f"{statistics.median(values) / 1024:.2f} MiB (min {min(values) / 1024:.2f}, max {max(values) / 1024:.2f})"


def idle(pool, preload):
    policy = PERMISSIVE
    if preload:
        policy = spr.RunnerPolicy(blocked_imports=["subprocess", "socket"], timeout_seconds=30,
                                  preload_imports=["numpy"])
    with spr.LocalEngine(pool_size=pool) as engine:
        r = spr.run_code("result = 1", engine, policy=policy)
        assert r.ok, r
        wait_for(pool)
        return measure()


def in_flight(runs):
    """`runs` runs at once, each sleeping while measured (pool_size 1: at
    most one prepared sandbox beside them, told apart by its worker's
    idleness: a run's sandbox has the code's sleep)."""
    with spr.LocalEngine(pool_size=1) as engine:
        spr.run_code("result = 1", engine, policy=PERMISSIVE)
        threads = [threading.Thread(target=spr.run_code,
                                    args=("import time\ntime.sleep(3)\nresult = 1", engine),
                                    kwargs={"policy": PERMISSIVE}) for _ in range(runs)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        per_box, cgroups, boxes = measure()
        for t in threads:
            t.join()
        return per_box, cgroups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    rows = []
    pss, cg, _ = idle(a.pool, False)
    rows.append((f"idle prepared sandbox (pool_size {a.pool})", fmt(pss), fmt(cg)))
    try:
        pss, cg, _ = idle(a.pool, True)
        rows.append((f"idle prepared sandbox, numpy preloaded (pool_size {a.pool})",
                     fmt(pss), fmt(cg)))
    except Exception as e:  # no numpy here: say so
        rows.append(("idle prepared sandbox, numpy preloaded", f"not measured: {e}", ""))
    pss, cg = in_flight(a.runs)
    rows.append((f"run in flight ({a.runs} at once, each in time.sleep)", fmt(pss), fmt(cg)))
    lines = [
        f"Measured {datetime.date.today()} on {machine()}, /usr/bin/python3, as root "
        f"(`SPR_BUILD=build /usr/bin/python3 bench/memory.py --pool {a.pool} --runs {a.runs}`).",
        "PSS: the sandbox's processes (monitor, init, worker, the code's children) summed;",
        "cgroup: the run cgroup's charge (page tables, kernel objects and page cache included;",
        "one value per sandbox, prepared or running). Medians over the sandboxes present.",
        "",
        "| sandbox | PSS | run cgroup charge |",
        "|---|---|---|",
    ] + [f"| {a_} | {b} | {c} |" for a_, b, c in rows]
    text = "\n".join(lines)
    print(text)
    if not a.no_write:
        write_section("MEMORY", "## Memory per sandbox (PSS, cgroup)\n\n" + text)


if __name__ == "__main__":
    main()
