"""What each backend enforces (the reference's table; both of spr's engines
enforce all four, and more: SPEC §4, §5)."""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    supports_import_blocking: bool
    supports_builtin_blocking: bool
    supports_memory_limit: bool
    supports_timeout: bool


def capabilities_for_backend(backend: str) -> BackendCapabilities:
    if backend in {"local", "localengine", "docker", "dockerengine"}:
        return BackendCapabilities(True, True, True, True)
    return BackendCapabilities(False, False, False, False)


def preflight_validate_backend_capabilities(backend: str) -> None:
    """A no-op, as in the reference (kept for code that calls it)."""
    return None
