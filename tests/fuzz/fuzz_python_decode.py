#!/usr/bin/env python3
"""Fuzzes the Python package's decoding of bytes spr does not control.

    SPR_LIBRARY=build/libspr.so python3 tests/fuzz/fuzz_python_decode.py \
        [--seconds N] [--corpus DIR] [--seeds DIR] [--runs N]

Targets (both must return a RunnerResult with the SPEC §3 field types, and
never raise):
- foreign: run_code with an engine that is not spr's (the reference's
  protocol): its ExecutionOutcome's stdout is whatever that engine's worker
  printed, and the code in it can print anything;
- result: RunnerResult.from_dict of any JSON object libspr could hand
  back, and to_dict giving the same object back.

libFuzzer has no Python front end here (atheris is not packaged in
Debian), so this is a small coverage-guided loop of its own: line coverage
of the package's files through sys.settrace; an input that reaches a new
line joins the corpus; mutations are byte flips, inserts, deletes, splices
and JSON-aware replacements (other types, huge and non-finite numbers,
lone surrogates, deep nesting). A failing input is written to the corpus
directory as crash-<sha1> and the run exits 1.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "python"))
if not os.environ.get("SPR_LIBRARY"):
    os.environ["SPR_LIBRARY"] = os.path.join(ROOT, "build", "libspr.so")

from safe_py_runner.execution.types import ExecutionOutcome  # noqa: E402
from safe_py_runner.policy import RESULT_FIELDS, RunnerResult  # noqa: E402
from safe_py_runner.runner import run_code  # noqa: E402

PACKAGE_DIR = os.path.join(ROOT, "python", "safe_py_runner")
FIELD_TYPES = {"ok": bool, "stdout": str, "stderr": str, "timed_out": bool,
               "resource_exceeded": bool, "exit_code": int}


class ForeignEngine:
    def __init__(self, outcome):
        self.outcome = outcome

    def execute(self, request):
        return self.outcome


def check_result(r):
    assert isinstance(r, RunnerResult), type(r)
    for name, kind in FIELD_TYPES.items():
        value = getattr(r, name)
        assert isinstance(value, kind), f"{name} is {type(value).__name__}: {value!r}"
    assert r.error is None or isinstance(r.error, str), f"error is {r.error!r}"
    json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=True)


def target_foreign(data: bytes):
    # The first byte picks the outcome's other fields; the rest is stdout.
    flags, text = (data[0] if data else 0), data[1:].decode("utf-8", "surrogateescape")
    outcome = ExecutionOutcome(stdout=text, stderr="e" if flags & 1 else "",
                               returncode=(flags >> 1) & 3, timed_out=False,
                               error="engine error" if flags & 8 else None)
    check_result(run_code("pass", ForeignEngine(outcome)))


def target_result(data: bytes):
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        return  # libspr always writes an object with a boolean ok
    r = RunnerResult.from_dict(doc)
    back = r.to_dict()
    for name in RESULT_FIELDS:
        if name in doc:
            assert back[name] is doc[name] or back[name] == doc[name], name


TARGETS = {"foreign": target_foreign, "result": target_result}

SEEDS = [
    b"\x00" + json.dumps({"ok": True, "result": 7, "stdout": "o", "stderr": "",
                          "timed_out": False, "resource_exceeded": False,
                          "error": None}).encode(),
    b"\x03" + json.dumps({"ok": False, "error": "ValueError: x", "stderr": "tb"}).encode(),
    b"\x08not json",
    b"\x00",
    json.dumps({"ok": True, "result": {"a": [1, 2.5, None]}, "stdout": "", "stderr": "",
                "stdout_truncated": False, "stderr_truncated": False, "timed_out": False,
                "resource_exceeded": False, "error": None, "exit_code": 0,
                "duration_ms": 3, "memory_peak_kb": 9000,
                "isolation": {"engine": "local", "userns": True}}).encode(),
]

ODD_VALUES = [None, True, False, 0, -1, 2 ** 64, 1e308, float("inf"), float("nan"), "",
              "\ud800", "é" * 3, [], {}, [[[[[]]]]], {"ok": True}, "0" * 50]


def mutate_json(data: bytes, rnd: random.Random) -> bytes:
    try:
        doc = json.loads(data[1:] if data[:1] < b" " else data)
    except (ValueError, RecursionError):
        return data
    if isinstance(doc, dict) and doc:
        key = rnd.choice(list(doc) + ["ok", "stdout", "error", "result", "exit_code"])
        doc[key] = rnd.choice(ODD_VALUES)
    else:
        doc = rnd.choice(ODD_VALUES)
    prefix = data[:1] if data[:1] < b" " else b""
    text = json.dumps(doc, ensure_ascii=rnd.random() < 0.5, allow_nan=True)
    return prefix + text.encode("utf-8", "surrogatepass")


def mutate(data: bytes, corpus, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        if op == 0 and b:
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        elif op == 1:
            b.insert(rnd.randint(0, len(b)), rnd.randrange(256))
        elif op == 2 and b:
            del b[rnd.randrange(len(b)):rnd.randrange(len(b)) + rnd.randint(1, 8)]
        elif op == 3:
            other = rnd.choice(corpus)
            cut = rnd.randint(0, len(b))
            b = b[:cut] + other[rnd.randint(0, len(other)):]
        elif op == 4:
            b = bytearray(mutate_json(bytes(b), rnd))
        elif op == 5:
            token = rnd.choice([b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\u", b"\\ud800",
                                b"null", b"1e999", b"NaN", b"-", b"\xff", b"\xc3"])
            b[rnd.randint(0, len(b)):0] = token
        elif op == 6 and b:
            i = rnd.randrange(len(b))
            b[i:i] = b[i:i + rnd.randint(1, 16)]
    return bytes(b[:65536])


class Coverage:
    def __init__(self):
        self.seen = set()
        self.new = False

    def tracer(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(PACKAGE_DIR):
            return None
        return self.local

    def local(self, frame, event, arg):
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            if key not in self.seen:
                self.seen.add(key)
                self.new = True
        return self.local


def run_one(target, data, cov):
    cov.new = False
    sys.settrace(cov.tracer)
    try:
        target(data)
    finally:
        sys.settrace(None)
    return cov.new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runs", type=int, default=0, help="stop after N inputs per target")
    ap.add_argument("--corpus", default=os.path.join(ROOT, "build", "fuzz", "corpus-python"))
    ap.add_argument("--seeds", default=os.path.join(HERE, "seeds", "python_decode"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    os.makedirs(args.corpus, exist_ok=True)
    start_corpus = list(SEEDS)
    for d in (args.seeds, args.corpus):
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
                    start_corpus.append(f.read())
    sys.setrecursionlimit(2000)
    status = 0
    per_target = args.seconds / len(TARGETS)
    cpu_start = time.process_time()
    for name, target in TARGETS.items():
        cov, corpus, execs, added = Coverage(), [], 0, 0
        deadline = time.monotonic() + per_target
        queue = list(start_corpus)
        while True:
            if queue:
                data = queue.pop()
            else:
                if time.monotonic() >= deadline or (args.runs and execs >= args.runs):
                    break
                data = mutate(rnd.choice(corpus or start_corpus), corpus or start_corpus, rnd)
            execs += 1
            try:
                if run_one(target, data, cov):
                    corpus.append(data)
                    added += 1
                    digest = hashlib.sha1(data).hexdigest()
                    path = os.path.join(args.corpus, f"{name}-{digest}")
                    if not os.path.exists(path):
                        with open(path, "wb") as f:
                            f.write(data)
            except Exception as exc:  # noqa: BLE001 - any exception is the finding
                digest = hashlib.sha1(data).hexdigest()
                path = os.path.join(args.corpus, f"crash-{name}-{digest}")
                with open(path, "wb") as f:
                    f.write(data)
                print(f"fuzz_python_decode: {name}: {type(exc).__name__}: {exc} "
                      f"(input {path}: {data[:200]!r})", file=sys.stderr)
                status = 1
                break
        print(f"fuzz_python_decode: {name}: {execs} executions, {len(corpus)} corpus inputs, "
              f"{len(cov.seen)} package lines covered")
    print(f"fuzz_python_decode: {time.process_time() - cpu_start:.1f} CPU s")
    return status


if __name__ == "__main__":
    sys.exit(main())
