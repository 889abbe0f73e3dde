"""RunnerPolicy and RunnerResult: the reference's dataclasses, with spr's
fields appended (so positional construction in the reference's order still
works) and spr's semantics where the reference was buggy (docs/SPEC.md §2,
§3; python/README.md lists each difference)."""
from dataclasses import dataclass, field, fields
import json
import os
from typing import Any

DEFAULT_MODE = "restrict"
DEFAULT_TIMEOUT_SECONDS = 5
DEFAULT_MEMORY_LIMIT_MB = 256
DEFAULT_MAX_OUTPUT_KB = 128
DEFAULT_BLOCKED_IMPORTS = ["os", "subprocess", "socket", "ctypes", "importlib"]
DEFAULT_BLOCKED_BUILTINS = ["eval", "exec", "open", "compile", "breakpoint"]
DEFAULT_ALLOWED_IMPORTS: list = []
DEFAULT_ALLOWED_BUILTINS: list = []
DEFAULT_ALLOWED_GLOBALS: list = []
DEFAULT_BLOCKED_GLOBALS: list = []

DEFAULT_POLICY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "default_policy.toml")

# The reference's fields, in its order; spr's follow (SPEC §2).
REFERENCE_FIELDS = ("mode", "timeout_seconds", "memory_limit_mb", "max_output_kb",
                    "allowed_imports", "blocked_imports", "allowed_builtins", "blocked_builtins",
                    "allowed_globals", "blocked_globals", "extra_globals")
SPR_FIELDS = ("network", "max_processes", "cpu_cores", "cpu_seconds", "tmp_size_mb", "env",
              "require", "preload_imports")


@dataclass(slots=True, repr=False)
class RunnerPolicy:
    """What a run may do. The reference's fields and defaults, then spr's
    (network, max_processes, cpu_cores, cpu_seconds, tmp_size_mb, env,
    require, preload_imports; SPEC §2). Values are checked by libspr when a run uses the
    policy (ValueError naming the field), except `mode`, checked here as the
    reference does.

    config_path: the policy is read from that TOML file now, by libspr (a
    missing file, unknown key or wrong type raises; fields the file leaves
    out keep the secure defaults). Fields passed together with config_path
    that differ from the defaults override the file's (the reference
    silently dropped them)."""
    mode: str = DEFAULT_MODE
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB
    max_output_kb: int = DEFAULT_MAX_OUTPUT_KB
    allowed_imports: list = field(default_factory=lambda: DEFAULT_ALLOWED_IMPORTS.copy())
    blocked_imports: list = field(default_factory=lambda: DEFAULT_BLOCKED_IMPORTS.copy())
    allowed_builtins: list = field(default_factory=lambda: DEFAULT_ALLOWED_BUILTINS.copy())
    blocked_builtins: list = field(default_factory=lambda: DEFAULT_BLOCKED_BUILTINS.copy())
    allowed_globals: list = field(default_factory=lambda: DEFAULT_ALLOWED_GLOBALS.copy())
    blocked_globals: list = field(default_factory=lambda: DEFAULT_BLOCKED_GLOBALS.copy())
    extra_globals: dict = field(default_factory=dict)
    config_path: str | None = None
    network: bool = False
    max_processes: int = 64
    cpu_cores: float = 1.0
    cpu_seconds: float | None = None
    tmp_size_mb: int = 64
    env: dict = field(default_factory=dict)
    require: list = field(default_factory=list)
    preload_imports: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.config_path is not None:
            self._merge_file(os.fspath(self.config_path))
        if self.mode not in {"allow", "restrict"}:
            raise ValueError("mode must be 'allow' or 'restrict'")

    def _merge_file(self, path):
        from . import _native
        loaded = _native.policy_file_fields(path)
        known = {f.name for f in fields(self)}
        unknown = sorted(set(loaded) - known)
        if unknown:  # a libspr newer than this package: never drop a field silently
            raise RuntimeError(f"the policy in {path} has fields this package does not know "
                               f"({', '.join(unknown)}): install the package of the same spr "
                               f"version as {_native.LIBRARY}")
        for f in fields(self):
            if f.name == "config_path" or f.name not in loaded:
                continue
            default = f.default_factory() if callable(f.default_factory) else f.default
            if getattr(self, f.name) == default:
                setattr(self, f.name, _python_value(f.name, loaded[f.name]))

    @classmethod
    def from_file(cls, config_path: str) -> "RunnerPolicy":
        """The policy in a TOML file (keys under [policy] or at top level),
        read by libspr: SPEC §2's rules, never a silent default."""
        return cls(config_path=config_path)

    def to_dict(self) -> dict:
        """The policy as the JSON object a run request carries (every field
        but config_path)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config_path"}

    def __repr__(self) -> str:
        # The reference's repr, plus spr's fields where they differ from
        # the defaults: a reference policy prints exactly as it did.
        parts = [f"{name}={getattr(self, name)!r}" for name in REFERENCE_FIELDS + ("config_path",)]
        for f in fields(self):
            if f.name in SPR_FIELDS:
                default = f.default_factory() if callable(f.default_factory) else f.default
                if getattr(self, f.name) != default:
                    parts.append(f"{f.name}={getattr(self, f.name)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _python_value(name, value):
    # libspr's canonical JSON writes every number of a float field as a
    # float (5.0); the reference's timeout is an int.
    if name == "timeout_seconds" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# RunnerResult fields in the order of SPEC §3 (and of spr-run --json).
RESULT_FIELDS = ("ok", "result", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
                 "timed_out", "resource_exceeded", "error", "exit_code", "duration_ms",
                 "memory_peak_kb", "isolation")


@dataclass(slots=True)
class RunnerResult:
    """One run's outcome (SPEC §3). The reference's fields in its order, then
    spr's: the truncation flags, the host's measurements and `isolation`
    (what enforced this run)."""
    ok: bool
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    resource_exceeded: bool = False
    error: str | None = None
    exit_code: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: int = 0
    memory_peak_kb: int = 0
    isolation: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: dict) -> "RunnerResult":
        """From the RunnerResult JSON object libspr and `spr-run --json` write."""
        return cls(**{name: doc[name] for name in RESULT_FIELDS if name in doc})

    def to_dict(self) -> dict:
        """The SPEC §3 object, in spr-run --json's key order."""
        return {name: getattr(self, name) for name in RESULT_FIELDS}

    def to_json(self, indent=None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
