"""Engines and the reference's execution protocol."""
from .engine import ExecutionEngine
from .types import ExecutionOutcome, ExecutionRequest

__all__ = ["ExecutionEngine", "ExecutionOutcome", "ExecutionRequest"]
