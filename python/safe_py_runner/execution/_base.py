"""What both engines share: the libspr engine handle, runs (sync, async and
the reference's execute()), and closing.

Threads: libspr's spr_run is thread-safe on a shared engine and ctypes
releases the GIL during it, so one engine serves many threads at once. The
handle counts the runs in flight; close() refuses new runs, waits for those
in flight, then frees the engine (its warm pool: prepared sandboxes, or the
DockerEngine's containers). Freeing it under a running call would be a
use-after-free in C, which is why nothing frees it any other way.

Async: arun() runs the blocking call on the engine's own thread pool and
awaits it, so the event loop keeps running; the pool is shut down by close().
"""
import asyncio
import concurrent.futures
import ctypes
import functools
import json
import os
import threading
import weakref

from .. import _native
from ..policy import RunnerPolicy, RunnerResult
from .types import ExecutionOutcome, ExecutionRequest

BOTH_POLICIES = "Provide either 'policy' or 'policy_file', not both"
STREAM_NAMES = {1: "stdout", 2: "stderr"}


def request_json(code, input_data=None, policy=None, policy_file=None) -> bytes:
    """The spr_run_json request (include/spr.h): code, input_data, and the
    policy inline or as a file libspr reads (SPEC §2 rules, file:line:col
    errors). Non-JSON input raises TypeError/ValueError here, as the
    reference's json.dumps did."""
    if policy is not None and policy_file is not None:
        raise ValueError(BOTH_POLICIES)
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, not {type(code).__name__}")
    req = {"code": code}
    if input_data is not None:
        req["input_data"] = input_data
    if policy_file is not None:
        req["policy_file"] = os.fsdecode(os.fspath(policy_file))
    elif policy is not None:
        if not isinstance(policy, RunnerPolicy):
            raise TypeError(f"policy must be a RunnerPolicy, not {type(policy).__name__}")
        req["policy"] = policy.to_dict()
    return json.dumps(req, allow_nan=False).encode("utf-8")


class _Handle:
    """The spr_engine* and the bookkeeping that keeps it alive while used.
    Separate from the engine object so that a weakref finalizer can free it
    (garbage collection, interpreter exit) without holding the engine."""

    def __init__(self, what):
        self.what = what
        self.ptr = ctypes.c_void_p()
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.active = 0
        self.closed = False

    def enter(self):
        with self.cond:
            if self.closed:
                raise RuntimeError(f"this {self.what} is closed")
            if os.getpid() != self.pid:
                raise RuntimeError(f"this {self.what} was created in process {self.pid}, "
                                   "before a fork: create a new engine in this process")
            self.active += 1

    def leave(self):
        with self.cond:
            self.active -= 1
            if not self.active:
                self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            while self.active:
                self.cond.wait()
            ptr, self.ptr = self.ptr, ctypes.c_void_p()
        # A forked child must not free its parent's engine (a DockerEngine's
        # free stops the parent's containers).
        if ptr.value and os.getpid() == self.pid and _native.lib is not None:
            _native.lib.spr_engine_free(ptr)


class SprEngine:
    """Base of LocalEngine and DockerEngine (not meant to be built directly)."""

    _what = "engine"

    def __init__(self):
        self._h = _Handle(self._what)
        self._finalizer = weakref.finalize(self, self._h.close)
        self._executor = None
        self._executor_lock = threading.Lock()
        self._executor_threads = set()

    # -- the handle --------------------------------------------------------------

    def _engine_ptr(self):
        """The spr_engine* for a run (subclasses may create it on first use)."""
        return self._h.ptr

    def _run_json(self, request: bytes, on_output=None) -> dict:
        self._h.enter()
        try:
            try:
                ptr = self._engine_ptr()
            except _native.SprError as exc:
                # The DockerEngine could not start (docker missing, daemon
                # unreachable, image build failed): the run's result says so
                # (exit 125), as spr-run's does, never a fallback.
                return _native.result_from_error(exc)
            return self._call_run(ptr, request, on_output)
        finally:
            self._h.leave()

    @staticmethod
    def _call_run(ptr, request, on_output=None):
        out = ctypes.c_void_p()
        if on_output is None:
            _native.call(_native.lib.spr_run_json, ptr, request, len(request), ctypes.byref(out))
            return json.loads(_native.take_string(out))
        # The callback runs on this thread while libspr runs the code; an
        # exception in it cannot stop the run (ctypes would only print it),
        # so the first one is kept and raised once the run is over.
        raised = []

        def deliver(_user, stream, data, length):
            if raised:
                return
            try:
                on_output(STREAM_NAMES[stream], ctypes.string_at(data, length))
            except BaseException as exc:  # noqa: BLE001 - re-raised after the run
                raised.append(exc)

        opts = _native.RunOptions(_native.OutputFn(deliver), None)
        _native.call(_native.lib.spr_run_json_with, ptr, request, len(request),
                     ctypes.byref(opts), ctypes.byref(out))
        result = json.loads(_native.take_string(out))
        if raised:
            raise raised[0]
        return result

    # -- runs --------------------------------------------------------------------------

    def run(self, code: str, input_data=None, policy: RunnerPolicy | None = None,
            policy_file: str | None = None, on_output=None) -> RunnerResult:
        """One run; blocks this thread only (the GIL is released). Same as
        run_code(code, self, ...).

        on_output(stream, data): called on this thread with each chunk the
        code writes, as it writes it ("stdout" or "stderr", bytes: a chunk
        may end inside a line or a UTF-8 character), up to the output cap
        per stream (SPEC §3 "Streaming"). The result is the same as without
        it. An exception it raises is raised when the run is over."""
        if on_output is not None and not callable(on_output):
            raise TypeError(f"on_output must be callable, not {type(on_output).__name__}")
        return RunnerResult.from_dict(self._run_json(
            request_json(code, input_data, policy, policy_file), on_output))

    async def arun(self, code: str, input_data=None, policy: RunnerPolicy | None = None,
                   policy_file: str | None = None, on_output=None) -> RunnerResult:
        """run() on the engine's thread pool, awaited: the event loop is never
        blocked. Cancelling the await does not stop the run (a sandboxed run
        ends by its own timeout); its result is dropped. on_output, if
        given, is called on that pool's thread (astream() delivers the
        chunks to the event loop instead)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._get_executor(), functools.partial(self.run, code, input_data, policy,
                                                    policy_file, on_output))

    async def astream(self, code: str, input_data=None, policy: RunnerPolicy | None = None,
                      policy_file: str | None = None):
        """An async iterator over the run as it happens: ("stdout", bytes) and
        ("stderr", bytes) items as the code writes them, then one
        ("result", RunnerResult) item, last.

            async for kind, value in engine.astream(code):
                ...
        """
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def on_output(stream, data):
            loop.call_soon_threadsafe(queue.put_nowait, (stream, data))

        task = asyncio.ensure_future(self.arun(code, input_data, policy, policy_file, on_output))
        task.add_done_callback(lambda _t: loop.call_soon_threadsafe(queue.put_nowait, None))
        while True:
            item = await queue.get()
            if item is None:
                break
            yield item
        # Chunks put before the run ended were queued before the sentinel.
        yield "result", task.result()

    def execute(self, request: ExecutionRequest) -> ExecutionOutcome:
        """The reference's engine protocol: request.payload is {"code",
        "input_data", "policy": {fields}}; the outcome's stdout is the
        reference worker's JSON. The policy's timeout is the run's (libspr
        honours fractions); request.timeout_seconds is not needed."""
        payload = request.payload
        policy = payload.get("policy")
        req = {"code": payload.get("code", "")}
        if payload.get("input_data") is not None:
            req["input_data"] = payload["input_data"]
        if policy is not None:
            req["policy"] = policy
        r = RunnerResult.from_dict(self._run_json(json.dumps(req, allow_nan=False).encode()))
        worker = {"ok": r.ok, "result": r.result, "stdout": r.stdout, "stderr": r.stderr,
                  "timed_out": r.timed_out, "resource_exceeded": r.resource_exceeded,
                  "error": r.error}
        return ExecutionOutcome(stdout=json.dumps(worker), stderr="", returncode=r.exit_code,
                                timed_out=r.timed_out, error=r.error if r.timed_out else None)

    # -- the thread pool for arun ----------------------------------------------------

    def _get_executor(self):
        with self._executor_lock:
            if self._h.closed:
                raise RuntimeError(f"this {self._what} is closed")
            if self._executor is None:
                threads = self._executor_threads
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(32, (os.cpu_count() or 1) + 4),
                    thread_name_prefix=f"spr-{self._what.replace(' ', '-')}",
                    initializer=lambda: threads.add(threading.get_ident()))
            return self._executor

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Refuses new runs, waits for the runs in flight, frees the engine
        (its warm pool of sandboxes or containers) and its thread pool.
        Idempotent. Also done when the engine is garbage-collected or at exit."""
        self._finalizer()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=threading.get_ident() not in self._executor_threads)

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
