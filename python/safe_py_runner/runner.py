"""run_code and arun_code.

spr's engines run the request through libspr (spr_run_json: the same entry
spr-run uses, so the package and the CLI give the same RunnerResult). Any
other object with the reference's `execute(ExecutionRequest)` method is
still accepted and mapped the way the reference mapped it (§2.2 of the API
reference), so engines written for the reference keep working."""
import asyncio
import functools
import json
from typing import Any

from .execution._base import BOTH_POLICIES, SprEngine
from .execution.engine import ExecutionEngine
from .execution.types import ExecutionRequest
from .policy import REFERENCE_FIELDS, RunnerPolicy, RunnerResult


def _check(engine, policy, policy_file):
    if policy is not None and policy_file is not None:
        raise ValueError(BOTH_POLICIES)
    if engine is None:
        raise TypeError("run_code() needs an engine: run_code(code, engine=LocalEngine(...)) "
                        "or DockerEngine(...)")


def run_code(
    code: str,
    engine: ExecutionEngine,
    input_data: dict[str, Any] | None = None,
    policy: RunnerPolicy | None = None,
    policy_file: str | None = None,
    on_output=None,
) -> RunnerResult:
    """Runs `code` with `input_data` under `policy` (or the TOML `policy_file`,
    not both) on `engine`. Every outcome of the code, including timeouts,
    limits and an engine that cannot start (exit_code 125), is a
    RunnerResult; bad arguments raise (ValueError, TypeError).
    on_output(stream, data): the output as it comes (spr's engines only;
    see LocalEngine.run)."""
    _check(engine, policy, policy_file)
    if isinstance(engine, SprEngine):
        return engine.run(code, input_data, policy, policy_file, on_output)
    if on_output is not None:
        raise TypeError("on_output needs one of spr's engines (LocalEngine, DockerEngine)")
    if not callable(getattr(engine, "execute", None)):
        raise TypeError(f"engine must be a LocalEngine, a DockerEngine or have an execute() "
                        f"method, not {type(engine).__name__}")
    return _run_foreign(code, engine, input_data, policy, policy_file)


async def arun_code(
    code: str,
    engine: ExecutionEngine,
    input_data: dict[str, Any] | None = None,
    policy: RunnerPolicy | None = None,
    policy_file: str | None = None,
    on_output=None,
) -> RunnerResult:
    """run_code without blocking the event loop: the run happens on the
    engine's thread pool (libspr releases the GIL), the caller awaits it."""
    _check(engine, policy, policy_file)
    if isinstance(engine, SprEngine):
        return await engine.arun(code, input_data, policy, policy_file, on_output)
    if on_output is not None:
        raise TypeError("on_output needs one of spr's engines (LocalEngine, DockerEngine)")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(
        run_code, code, engine, input_data, policy, policy_file))


def _run_foreign(code, engine, input_data, policy, policy_file):
    """The reference's run_code for an engine that is not spr's."""
    if policy_file is not None:
        resolved = RunnerPolicy.from_file(policy_file)
    elif policy is not None:
        resolved = policy
    else:
        resolved = RunnerPolicy()
    payload = {"code": code, "input_data": input_data or {},
               "policy": {name: getattr(resolved, name) for name in REFERENCE_FIELDS}}
    outcome = engine.execute(ExecutionRequest(
        payload=payload, timeout_seconds=max(1, int(resolved.timeout_seconds))))
    if outcome.timed_out:
        return RunnerResult(ok=False, timed_out=True, exit_code=124, error=outcome.error or
                            f"Execution timed out after {resolved.timeout_seconds}s")
    if outcome.error and not outcome.stdout.strip():
        return RunnerResult(ok=False, error=outcome.error, stderr=outcome.stderr,
                            exit_code=outcome.returncode)
    try:
        parsed = json.loads(outcome.stdout.strip() or "{}")
    except (json.JSONDecodeError, RecursionError):
        parsed = None
    # The engine's stdout is whatever its worker (and the code in it)
    # printed: valid JSON that is not an object is as invalid as no JSON
    # (the reference raised AttributeError on it; tests/fuzz/
    # fuzz_python_decode.py found it).
    if not isinstance(parsed, dict):
        return RunnerResult(ok=False, error="Runner returned invalid JSON", stderr=outcome.stderr,
                            exit_code=outcome.returncode)
    error = parsed.get("error") or outcome.error
    return RunnerResult(
        ok=bool(parsed.get("ok")), result=parsed.get("result"),
        stdout=str(parsed.get("stdout", "")),
        stderr=str(parsed.get("stderr", "")) or outcome.stderr,
        timed_out=bool(parsed.get("timed_out", False)),
        resource_exceeded=bool(parsed.get("resource_exceeded", False)),
        error=error if error is None or isinstance(error, str) else json.dumps(error),
        exit_code=outcome.returncode)
