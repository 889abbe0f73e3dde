#!/usr/bin/env python3
"""spr benchmarks: figures, not assertions (tests never time things).

    make bench            # or: SPR_BUILD=build python3 bench/run.py [--runs N]

LocalEngine: median wall time of `result = 1 + 1` through an engine that
is created once (as a long-lived caller holds it), against the bare
interpreter `python3 -I -S -c 'result = 1 + 1'` measured in the same loop,
interleaved, so machine noise hits both alike; without the warm pool, with
it, with it and time for it to refill, and back to back (run_latency's
modes). Writes the figures to
bench/RESULTS.md (the section between the LOCAL markers); then an
environment's costs (bench/venv_latency: venv build, reuse, runs in it;
section VENV).

preload_imports (--preload; python3-numpy): warm runs of `import numpy;
...` with and without preload_imports = ["numpy"] (bench/preload_latency;
section PRELOAD).

A one-shot `spr-run FILE` (--oneshot [--oneshot-other BUILD]): the whole
process, as a CI step pays it, against `python3 -I -S FILE` (and another
build's spr-run) in interleaved rounds: wall, CPU and page faults of the
process tree (section ONESHOT).

DockerEngine (--docker; needs DOCKER_HOST, `make bench-docker` starts the
test daemon): `result = 1 + 1` three ways on the same image with the same
hardened flags: a cold `docker run --rm` per run, a `docker exec` into a
running container per run (what the reference systems do), and a warm spr
pool run through the C API (bench/docker_latency). Section DOCKER.
With --ssh (docker_latency options follow it) the warm pool is measured through
ssh:// and through the local socket in alternating rounds (section SSH).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("SPR_BUILD") or os.path.join(os.path.dirname(HERE), "build")
RESULTS = os.path.join(HERE, "RESULTS.md")


def latency(python: str, runs: int, mode: str, build: str = BUILD) -> dict:
    out = subprocess.run([os.path.join(build, "bench", "run_latency"), str(runs), python, mode],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(build, "libexec", "spr")))
    return json.loads(out.stdout)


COMPARE_ROUNDS = 5


def compare_section(other: str, runs: int, python: str) -> str:
    """This build against another (e.g. an earlier commit's), rounds
    alternating between the two so machine noise hits both alike: the
    median of the round medians per mode, and this build's change."""
    modes = [("cold", "no pool: the sandbox set up per run"),
             ("ready", "warm pool, the sandbox ready")]
    rounds = {(b, m): [] for b in ("this", "other") for m, _ in modes}
    for _ in range(COMPARE_ROUNDS):
        for mode, _ in modes:
            for which, build in (("this", BUILD), ("other", other)):
                r = latency(python, runs, mode, build)
                print(which, json.dumps(r))
                rounds[(which, mode)].append(r["sandboxed_median_ms"])
    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(other)), "rev-parse",
                             "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"Measured {datetime.date.today().isoformat()} on {machine()} with "
             f"`bench/run.py --compare {other}` ({commit or 'another build'}): "
             f"{COMPARE_ROUNDS} rounds of {runs} runs of `result = 1 + 1` per build and mode, "
             "the builds alternating round by round; the median of the round medians.", "",
             "| how | this build | the other | change | round medians, this / other (ms) |",
             "|---|---|---|---|---|"]
    for mode, how in modes:
        this, that = rounds[("this", mode)], rounds[("other", mode)]
        a, b = statistics.median(this), statistics.median(that)
        lines.append(f"| {how} | {a:.2f} ms | {b:.2f} ms | {100 * (a - b) / b:+.1f}% | "
                     + ", ".join(f"{x:.2f}" for x in this) + " / "
                     + ", ".join(f"{x:.2f}" for x in that) + " |")
    return "\n".join(lines)


def timed(argv, runs):
    """Median/p90/min wall ms of running argv `runs` times (after one warm-up)."""
    samples = []
    for i in range(runs + 1):
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True)
        t1 = time.monotonic()
        if p.returncode != 0 or p.stdout.strip() != "2":
            raise SystemExit(f"{argv[:3]} failed ({p.returncode}): {p.stderr.strip()}")
        if i:
            samples.append((t1 - t0) * 1e3)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p90_ms": samples[(len(samples) * 9) // 10],
            "min_ms": samples[0], "runs": runs}


# The DockerEngine's container flags (docs/SPEC.md §5), minus the seccomp
# profile file and labels, so the cold and exec rows pay what spr pays.
HARDENED = ["--network", "none", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", "1000:1000",
            "--pids-limit", "64", "--memory", "256m", "--memory-swap", "256m",
            "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=64m", "--ipc", "none"]
ONE_PLUS_ONE = ["python3", "-I", "-S", "-c", "result = 1 + 1; print(result)"]


def docker_warm(runs, extra=()):
    out = subprocess.run([os.path.join(BUILD, "bench", "docker_latency"), str(runs), *extra],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr")))
    return json.loads(out.stdout)


def docker_rows(runs, cold_runs, cli="docker"):
    engine = ["--engine", cli]
    warm = docker_warm(runs, ["--pause-ms", "50", *engine])
    image = warm["result"]["isolation"]["image"]
    # podman's defaults exceed the hard nofile limit here (SPEC §7 "Podman")
    ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
    cold = timed([cli, "run", "--rm", "-i", *HARDENED, *ulimits, image, *ONE_PLUS_ONE],
                 cold_runs)
    name = f"spr-bench-exec-{os.getpid()}"
    subprocess.run([cli, "run", "-d", "--rm", "--name", name, *HARDENED, *ulimits, image,
                    "sleep", "3600"], check=True, capture_output=True)
    try:
        exec_ = timed([cli, "exec", name, *ONE_PLUS_ONE], runs)
    finally:
        subprocess.run([cli, "rm", "-f", name], capture_output=True)
    return image, cold, exec_, warm


def docker_section(runs, cold_runs, ssh_args, cli="docker"):
    image, cold, exec_, warm = docker_rows(runs, cold_runs, cli)
    burst = docker_warm(runs, ["--engine", cli])
    if cli == "podman":
        version = subprocess.run(["podman", "version", "--format", "{{.Client.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        storage = subprocess.run(["podman", "info", "--format", "{{.Store.GraphDriverName}}"],
                                 capture_output=True, text=True).stdout.strip()
        what = f"podman {version} (rootful, runc, {storage}; this checkout's test storage)"
        target = "make bench-podman"
    else:
        version = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        what = f"docker {version} (the test daemon, overlay2)"
        target = "make bench-docker"
    when = datetime.date.today().isoformat()
    row = "| {} | {:.1f} ms | {:.1f} ms | {:.1f} ms | {} |"
    lines = [f"Measured {when} on {machine()}, {what}, "
             f"image `{image}`, with `{target}`. `result = 1 + 1`; medians.", "",
             "| how | median | p90 | min | runs |", "|---|---|---|---|---|",
             row.format(f"cold `{cli} run --rm` per run", cold["median_ms"], cold["p90_ms"],
                        cold["min_ms"], cold["runs"]),
             row.format(f"`{cli} exec` into a running container", exec_["median_ms"],
                        exec_["p90_ms"], exec_["min_ms"], exec_["runs"]),
             row.format("**spr warm pool**, the run's sandbox ready (50 ms between runs)",
                        warm["median_ms"], warm["p90_ms"], warm["min_ms"], warm["runs"]),
             row.format("spr warm pool, runs back to back (each waits for its sandbox)",
                        burst["median_ms"], burst["p90_ms"], burst["min_ms"], burst["runs"]),
             "",
             f"Warm pool vs `{cli} exec`: **{exec_['median_ms'] / warm['median_ms']:.0f}x** "
             f"faster; vs cold `{cli} run`: {cold['median_ms'] / warm['median_ms']:.0f}x. "
             f"The cold and exec rows time the {cli} CLI from a Python loop (about 1 ms of "
             "process spawn included) and run only the interpreter, without spr's worker, "
             "so they are lower bounds for those approaches. Every spr run has a sandbox of "
             "its own inside the container (a fresh interpreter in fresh namespaces, set up "
             "while the previous run runs): back to back, a run waits for that set-up, "
             "which the container's CPU quota (`cpu_cores`, 1) also pays."]
    sections = {"PODMAN" if cli == "podman" else "DOCKER": "\n".join(lines)}
    if ssh_args:
        sections["SSH"] = ssh_section(runs, ssh_args, when, row)
    return sections


SSH_ROUNDS = 3


def ssh_section(runs, ssh_args, when, row):
    """The warm pool through ssh:// next to the local socket, measured in
    alternating rounds (local, SSH, local, SSH, ...) so that machine noise
    hits both alike; each target's middle round (by median) is shown."""
    rounds = {"local": [], "ssh": []}
    for _ in range(SSH_ROUNDS):
        rounds["local"].append(docker_warm(runs, ["--pause-ms", "50"]))
        rounds["ssh"].append(docker_warm(runs, ["--pause-ms", "50", *ssh_args]))
    mid = {k: sorted(v, key=lambda r: r["median_ms"])[len(v) // 2] for k, v in rounds.items()}
    local, ssh = mid["local"], mid["ssh"]
    medians = {k: ", ".join(f"{r['median_ms']:.2f}" for r in v) for k, v in rounds.items()}
    return "\n".join([
        f"Measured {when} on {machine()} with `make bench-docker`: the warm pool of the "
        "DOCKER section on the same daemon, through its unix socket and through OpenSSH's "
        "sshd on 127.0.0.1 (scripts/sshd-for-tests.sh; `docker_latency "
        f"{' '.join(ssh_args)}`: an ssh:// target, the key through spr's ssh wrapper). "
        "Starting the engine and its container makes one SSH connection per docker CLI "
        "call; then the pool's pipes stay tunnelled through the container's one ssh, so "
        "a warm run opens no connection and pays only the SSH channel. "
        f"`result = 1 + 1`; {SSH_ROUNDS} alternating rounds of {runs} runs per target, "
        "the middle round shown.",
        "",
        "| target | median | p90 | min | runs | round medians (ms) |",
        "|---|---|---|---|---|---|",
        row.format("local socket (DOCKER_HOST=unix://)", local["median_ms"], local["p90_ms"],
                   local["min_ms"], local["runs"]) + f" {medians['local']} |",
        row.format("SSH (ssh://root@127.0.0.1)", ssh["median_ms"], ssh["p90_ms"],
                   ssh["min_ms"], ssh["runs"]) + f" {medians['ssh']} |",
        "",
        f"SSH adds {ssh['median_ms'] - local['median_ms']:.2f} ms per warm run at the median "
        f"({ssh['median_ms'] / local['median_ms']:.2f}x the local socket)."])


LOCAL_ROUNDS = 3
# run_latency's modes, as rows of the LOCAL section.
LOCAL_MODES = [
    ("cold", "no pool: every run sets its sandbox up"),
    ("pool", "warm pool (default), a bare run between runs"),
    ("ready", "warm pool, 50 ms between runs (the sandbox is ready)"),
    ("back-to-back", "warm pool, runs back to back (each waits for its sandbox's setup)"),
]


def run_child(argv, env) -> tuple:
    """Wall ms, CPU ms and minor page faults of one run of argv, its
    descendants included (each is reaped by its parent: spr-run reaps its
    fork server, which reaps the monitors, which reap the sandboxes)."""
    with open(os.devnull, "wb") as null:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, stdout=null)
        _, status, ru = os.wait4(p.pid, 0)
        wall = (time.monotonic() - t0) * 1e3
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{argv} failed ({p.returncode})")
    return wall, (ru.ru_utime + ru.ru_stime) * 1e3, ru.ru_minflt


def oneshot_pairs(python: str, builds: list, runs: int, pause: float) -> dict:
    """`spr-run FILE` of each build against `python -I -S FILE`, in
    interleaved rounds (ABBA: the order flips every round, so neither side
    always runs first), `pause` s apart: {label: [(wall, cpu, faults)]}."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("result = 1 + 1\n")
    cmds = [(label, [os.path.join(b, "spr-run"), "--python", python, f.name],
             dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(b, "libexec", "spr")))
            for label, b in builds]
    cmds.append(("bare", [python, "-I", "-S", f.name], dict(os.environ)))
    samples = {label: [] for label, _, _ in cmds}
    try:
        for label, argv, env in cmds:  # warm the page cache and the probe cache
            run_child(argv, env)
        for i in range(runs):
            for label, argv, env in (cmds if i % 2 == 0 else cmds[::-1]):
                time.sleep(pause)
                samples[label].append(run_child(argv, env))
    finally:
        os.unlink(f.name)
    return samples


def isolated_cli(python: str, runs: int = 40) -> dict:
    """Median wall time of one `spr-run FILE` on its own vs the interpreter
    on the same file, interleaved pairs spaced out (cold paths: nothing warm
    from a previous run)."""
    s = oneshot_pairs(python, [("spr", BUILD)], runs, 0.1)
    return {"bare_ms": statistics.median(w for w, _, _ in s["bare"]),
            "spr_run_ms": statistics.median(w for w, _, _ in s["spr"])}


def oneshot_section(python: str, runs: int, other: str) -> str:
    """A whole `spr-run FILE` (what a CI step pays) against the bare
    interpreter, and against another build of spr when given (issue 17)."""
    builds = [("this build", BUILD)] + ([("other build", other)] if other else [])
    load0 = os.getloadavg()[0]
    s = oneshot_pairs(python, builds, runs, 0.05)
    load1 = os.getloadavg()[0]
    bare = statistics.median(w for w, _, _ in s["bare"])
    cmd = f"SPR_BUILD={BUILD} {sys.executable} bench/run.py --oneshot --runs {runs}" + (
        f" --oneshot-other {other}" if other else "")
    lines = [f"Measured {datetime.date.today().isoformat()} on {machine()} with `{cmd}`: "
             f"`result = 1 + 1` in a file, {runs} interleaved rounds (one run of each row per "
             "round, the order reversed every other round, 50 ms apart), medians; CPU and "
             "page faults are the whole process tree's (rusage of the reaped child). Load "
             f"average {load0:.1f} before, {load1:.1f} after.", "",
             "| how | median | p90 | min | ratio to bare (medians) | CPU median | faults median |",
             "|---|---|---|---|---|---|---|"]
    names = {"bare": f"`{python} -I -S FILE`"}
    for label, b in builds:
        names[label] = f"`spr-run FILE`, {label} ({b})"
    for label in [l for l, _ in builds] + ["bare"]:
        walls = [w for w, _, _ in s[label]]
        lines.append(f"| {names[label]} | {statistics.median(walls):.2f} ms | "
                     f"{percentile(walls, 90):.2f} ms | {min(walls):.2f} ms | "
                     f"{statistics.median(walls) / bare:.2f} | "
                     f"{statistics.median(c for _, c, _ in s[label]):.1f} ms | "
                     f"{statistics.median(f for _, _, f in s[label]):.0f} |")
    return "\n".join(lines)


def make_wheel(directory: str, name: str, version: str, source: str) -> None:
    """A minimal pure-Python wheel (no index here)."""
    import zipfile
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(os.path.join(directory, f"{name}-{version}-py3-none-any.whl"), "w") as z:
        z.writestr(f"{name}/__init__.py", source)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: spr-bench\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")


def venv_section(python: str, runs: int) -> str:
    """An environment's costs (bench/venv_latency): building the venv in
    a sandbox, reusing it from another engine, a warm run in it."""
    import shutil
    work = tempfile.mkdtemp(prefix="spr-bench-venv-")
    try:
        wheels = os.path.join(work, "wheels")
        os.mkdir(wheels)
        make_wheel(wheels, "alpha", "1.0", "VALUE = 42\n")
        out = subprocess.run([os.path.join(BUILD, "bench", "venv_latency"), str(runs), python,
                              wheels, work], check=True, capture_output=True, text=True,
                             env=dict(os.environ,
                                      SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = json.loads(out.stdout)
    print(json.dumps(r))
    return "\n".join([
        f"Measured {datetime.date.today().isoformat()} on {machine()} with `make bench` "
        f"(bench/venv_latency, `{python}`, one pure-Python wheel from a local directory, "
        "`--pip-no-index`): medians.", "",
        "| what | time |", "|---|---|",
        f"| first build of a venv_dir (engine creation: `-m venv` with pip, pip install, "
        f"in a sandbox; 3 builds) | {r['build_median_ms'] / 1000:.2f} s "
        f"(min {r['build_min_ms'] / 1000:.2f}, max {r['build_max_ms'] / 1000:.2f}) |",
        f"| a second engine on the built venv_dir (engine creation, {r['runs']} times) | "
        f"{r['reuse_median_ms']:.2f} ms |",
        f"| an engine without a venv (engine creation) | {r['engine_median_ms']:.2f} ms |",
        f"| warm run in the venv: `import alpha` | {r['run_import_ms']:.2f} ms |",
        f"| warm run in the venv: `result = 1 + 1` | {r['run_venv_ms']:.2f} ms |",
        f"| warm run without a venv: `result = 1 + 1` | {r['run_plain_ms']:.2f} ms |",
    ])


def percentile(values, q):
    """The q-th percentile (nearest rank) of values."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]


def preload_section(python: str, runs: int, rounds: int, pause_ms: int) -> str:
    """preload_imports (issue 17): warm runs of `import numpy; ...` with and
    without preload_imports = ["numpy"] on one engine (bench/preload_latency)."""
    out = subprocess.run([os.path.join(BUILD, "bench", "preload_latency"), str(runs),
                          str(rounds), python, str(pause_ms)],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, SPR_LIBEXEC_DIR=os.path.join(BUILD, "libexec", "spr")))
    r = json.loads(out.stdout)
    load = os.getloadavg()[0]
    rows = [("warm run, `preload_imports = [\"numpy\"]`", r["preloaded"]),
            ("warm run, no preloads (the code imports numpy)", r["plain"]),
            ("warm run of `result = 1 + 1`, no preloads (the floor at the time)", r["floor"]),
            ("bare `python3 -I -S -c` (sys.path + numpy's directory, then the code)",
             r["bare"])]
    lines = [f"Measured {datetime.date.today().isoformat()} on {machine()} with "
             f"`bench/run.py --preload --runs {runs}` (bench/preload_latency {runs} {rounds} "
             f"{python} {pause_ms}; Debian's python3-numpy): `import numpy; result = "
             "float(numpy.arange(10).sum())` through one LocalEngine, both policies "
             "unblocking os, ctypes and importlib; "
             f"{rounds} rounds of {runs} runs per row, {pause_ms} ms before each run (the "
             "prepared sandbox, numpy imported, is complete when the run comes). "
             f"Load average {load:.1f} after the runs.", "",
             "| how | median | p90 | min |", "|---|---|---|---|"]
    for how, v in rows:
        lines.append(f"| {how} | {statistics.median(v):.2f} ms | {percentile(v, 90):.2f} ms | "
                     f"{min(v):.2f} ms |")
    return "\n".join(lines)


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
    ap.add_argument("--docker", action="store_true",
                    help="measure the DockerEngine instead (needs DOCKER_HOST)")
    ap.add_argument("--podman", action="store_true",
                    help="measure the DockerEngine through podman (section PODMAN)")
    ap.add_argument("--cold-runs", type=int, default=30)
    ap.add_argument("--ssh", nargs=argparse.REMAINDER, default=[],
                    help="with --docker: also through SSH; the rest are docker_latency "
                         "options (--ssh-host H --ssh-port P --ssh-user U --ssh-key-path K)")
    ap.add_argument("--compare", metavar="OTHER_BUILD",
                    help="compare this build's cold and warm runs with another build "
                         "directory's (section COMPARE)")
    ap.add_argument("--preload", action="store_true",
                    help="measure preload_imports (section PRELOAD; needs python3-numpy)")
    ap.add_argument("--oneshot", action="store_true",
                    help="a whole `spr-run FILE` against the bare interpreter (section ONESHOT)")
    ap.add_argument("--oneshot-other", metavar="OTHER_BUILD",
                    help="with --oneshot: another build's spr-run in the same rounds")
    ap.add_argument("--rounds", type=int, default=3, help="with --preload")
    ap.add_argument("--pause-ms", type=int, default=700, help="with --preload")
    args = ap.parse_args()
    if args.preload:
        body = preload_section((args.python or ["/usr/bin/python3"])[0], args.runs, args.rounds,
                               args.pause_ms)
        print(body)
        text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
        with open(RESULTS, "w") as f:
            f.write(replace_section(text, "PRELOAD", body))
        return 0
    if args.oneshot:
        body = oneshot_section((args.python or ["/usr/bin/python3"])[0], args.runs,
                               os.path.abspath(args.oneshot_other) if args.oneshot_other else None)
        print(body)
        text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
        with open(RESULTS, "w") as f:
            f.write(replace_section(text, "ONESHOT", body))
        return 0
    if args.compare:
        body = compare_section(os.path.abspath(args.compare), args.runs,
                               (args.python or ["/usr/bin/python3"])[0])
        print(body)
        text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
        with open(RESULTS, "w") as f:
            f.write(replace_section(text, "COMPARE", body))
        return 0
    if args.docker or args.podman:
        sections = docker_section(args.runs, args.cold_runs, args.ssh,
                                  "podman" if args.podman else "docker")
        text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
        for name, body in sections.items():
            print(body)
            text = replace_section(text, name, body)
        with open(RESULTS, "w") as f:
            f.write(text)
        print(f"wrote {RESULTS}")
        return 0
    pythons = args.python or ["/usr/bin/python3"]
    lines = [f"Measured {datetime.date.today().isoformat()} on {machine()} with `make bench`: "
             f"{LOCAL_ROUNDS} rounds of {args.runs} runs per row (rounds of the rows "
             "interleaved), medians, engine created once, the bare interpreter measured "
             "between the runs; the middle round is shown.", "",
             "| interpreter | how | bare `python3 -I -S -c` | through spr | overhead "
             "| overhead per round |",
             "|---|---|---|---|---|---|"]
    clis = []
    for py in pythons:
        # Rounds: one machine hiccup must not decide the figure; the round
        # with the middle overhead is shown, all rounds are listed.
        rounds = {mode: [] for mode, _ in LOCAL_MODES}
        for _ in range(LOCAL_ROUNDS):
            for mode, _ in LOCAL_MODES:
                r = latency(py, args.runs, mode)
                print(json.dumps(r))
                rounds[mode].append(r)
        for mode, how in LOCAL_MODES:
            rs = sorted(rounds[mode], key=lambda r: r["overhead_ms"])
            mid = rs[len(rs) // 2]
            if mode == "back-to-back":  # no bare runs in between: time per run only
                lines.append(f"| `{py}` | {how} | — | {mid['sandboxed_median_ms']:.2f} ms | — | "
                             + ", ".join(f"{r['sandboxed_median_ms']:.2f}" for r in rs)
                             + " (per run) |")
                continue
            overhead = f"{mid['overhead_ms']:.2f} ms"
            if mode == "pool":
                overhead = f"**{overhead}**"
            lines.append(f"| `{py}` | {how} | {mid['bare_median_ms']:.2f} ms | "
                         f"{mid['sandboxed_median_ms']:.2f} ms | {overhead} | "
                         + ", ".join(f"{r['overhead_ms']:.2f}" for r in rs) + " |")
        clis.append((py, isolated_cli(py)))
    lines += ["", "The bold row is the default engine as a long-lived caller uses it; the "
              "target (< 3 ms overhead at the median) is read there. A negative overhead "
              "means a run through spr took less than starting the bare interpreter: the "
              "sandbox and the interpreter were set up before the request.", "",
              "A whole `spr-run FILE` started on its own (as a CI step does: process "
              "start, interpreter probe, one run on a sandbox set up for it, exit; 40 "
              "interleaved pairs, 0.1 s apart, so no run benefits from the previous one; "
              "`bench/run.py --oneshot` has p90, CPU and page faults):", "",
              "| interpreter | `python3 -I -S FILE` | `spr-run FILE` |", "|---|---|---|"]
    for py, c in clis:
        lines.append(f"| `{py}` | {c['bare_ms']:.1f} ms | {c['spr_run_ms']:.1f} ms |")
    venv = venv_section(pythons[0], min(args.runs, 50))
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
    text = replace_section(text, "LOCAL", "\n".join(lines))
    text = replace_section(text, "VENV", venv)
    with open(RESULTS, "w") as f:
        f.write(text)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
