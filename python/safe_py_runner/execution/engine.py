"""The reference's ExecutionEngine protocol."""
from typing import Protocol

from .types import ExecutionOutcome, ExecutionRequest


class ExecutionEngine(Protocol):
    def execute(self, request: ExecutionRequest) -> ExecutionOutcome: ...
