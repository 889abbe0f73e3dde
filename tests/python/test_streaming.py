"""Output as it comes (SPEC §3 "Streaming"): run(on_output=...), run_code's
on_output, and astream(), on both engines."""
import asyncio
import time

import pytest
from safe_py_runner import RunnerPolicy, run_code

PERMISSIVE = RunnerPolicy(blocked_imports=[], blocked_builtins=[])
PRINT_SLEEP_PRINT = ("import sys, time\n"
                     "print('first')\n"
                     "sys.stderr.write('err\\n')\n"
                     "time.sleep(2)\n"
                     "print('second')\n"
                     "result = 42\n")


def test_chunks_arrive_while_the_run_runs(engine):
    seen = []
    result = engine.run(PRINT_SLEEP_PRINT, policy=PERMISSIVE,
                        on_output=lambda stream, data: seen.append((time.monotonic(), stream, data)))
    ended = time.monotonic()
    assert result.ok and result.result == 42, result
    assert b"".join(d for _, s, d in seen if s == "stdout") == b"first\nsecond\n"
    assert b"".join(d for _, s, d in seen if s == "stderr") == b"err\n"
    first = next(t for t, s, d in seen if s == "stdout" and d.startswith(b"first"))
    # Delivered before the 2 s sleep, not with the result.
    assert ended - first > 1.0, seen
    # The result is the same as without streaming.
    assert result.stdout == "first\nsecond\n" and result.stderr == "err\n"


def test_the_cap_holds_for_what_is_delivered(engine):
    chunks = []
    policy = RunnerPolicy(blocked_imports=[], blocked_builtins=[], max_output_kb=1)
    result = engine.run("import sys\nsys.stdout.write('x' * 5000)\n", policy=policy,
                        on_output=lambda stream, data: chunks.append(data))
    assert b"".join(chunks) == b"x" * 1024
    assert result.stdout_truncated


def test_an_exception_in_the_callback_is_raised_after_the_run(engine):
    calls = []

    def boom(stream, data):
        calls.append(data)
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        engine.run("print('a')\nprint('b')\n", on_output=boom)
    assert len(calls) == 1  # not called again after it raised


def test_on_output_must_be_callable(engine):
    with pytest.raises(TypeError, match="on_output must be callable"):
        engine.run("x = 1", on_output="print")


def test_run_code_passes_it_on(engine):
    chunks = []
    r = run_code("print('hi')", engine, on_output=lambda s, d: chunks.append((s, d)))
    # print() writes "hi" and "\n" apart (unbuffered): chunks, not lines
    assert r.ok and {s for s, _ in chunks} == {"stdout"}, chunks
    assert b"".join(d for _, d in chunks) == b"hi\n"


def test_astream_yields_chunks_then_the_result(engine):
    async def main():
        items = []
        async for kind, value in engine.astream(PRINT_SLEEP_PRINT, policy=PERMISSIVE):
            items.append((time.monotonic(), kind, value))
        return items

    items = asyncio.run(main())
    kinds = [k for _, k, _ in items]
    assert kinds[-1] == "result" and "result" not in kinds[:-1], kinds
    result = items[-1][2]
    assert result.ok and result.result == 42
    out = b"".join(v for _, k, v in items if k == "stdout")
    assert out == b"first\nsecond\n"
    first = next(t for t, k, v in items if k == "stdout" and v.startswith(b"first"))
    assert items[-1][0] - first > 1.0, items
