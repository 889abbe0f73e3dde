"""The reference's engine protocol types (safe_py_runner.execution.types).

spr's engines take requests in this shape too (LocalEngine.execute,
DockerEngine.execute), and run_code still accepts any object with an
`execute(ExecutionRequest) -> ExecutionOutcome` method, as the reference did."""
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class ExecutionRequest:
    payload: dict[str, Any]
    timeout_seconds: int


@dataclass(slots=True)
class ExecutionOutcome:
    stdout: str
    stderr: str
    returncode: int
    timed_out: bool
    error: str | None = None
