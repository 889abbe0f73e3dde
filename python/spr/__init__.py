"""spr for Python: the safe_py_runner API plus what spr adds.

    from spr import LocalEngine, run_code, arun_code, RunnerPolicy
    with LocalEngine() as engine:                 # no venv needed; a warm pool
        r = run_code("result = 1 + 1", engine)
        r.isolation, r.duration_ms, r.memory_peak_kb, r.stdout_truncated

The names load libspr on first use (PEP 562), not at `import spr`: `python
-m spr` only runs the C `spr` program and must work without loading the
library. A missing or too-old libspr raises ImportError on first use.

Beyond safe_py_runner: arun_code / engine.arun (asyncio), LocalEngine
without venv_dir and with python/allow_degraded/cgroup_parent/pool_size/
uid_range/pip options, DockerEngine's spr options and admin extras,
RunnerResult's isolation, truncation flags, duration_ms, memory_peak_kb,
RunnerPolicy's network/max_processes/cpu_cores/cpu_seconds/tmp_size_mb/
env/require/preload_imports, and SprError (every libspr error: .layer,
.errnum)."""

__version__ = "0.1.0"

_NAMES = {
    "run_code": ("safe_py_runner.runner", "run_code"),
    "arun_code": ("safe_py_runner.runner", "arun_code"),
    "RunnerPolicy": ("safe_py_runner.policy", "RunnerPolicy"),
    "RunnerResult": ("safe_py_runner.policy", "RunnerResult"),
    "LocalEngine": ("safe_py_runner.execution.local_engine", "SprLocalEngine"),
    "DockerEngine": ("safe_py_runner.execution.docker_engine", "DockerEngine"),
    "ContainerInfo": ("safe_py_runner.execution.config", "ContainerInfo"),
    "ImageInfo": ("safe_py_runner.execution.config", "ImageInfo"),
    "CleanupSummary": ("safe_py_runner.execution.config", "CleanupSummary"),
    "SprError": ("safe_py_runner._native", "SprError"),
    "NO_POOL": ("safe_py_runner.execution.local_engine", "NO_POOL"),
    "LIBRARY": ("safe_py_runner._native", "LIBRARY"),
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    try:
        module, attr = _NAMES[name]
    except KeyError:
        raise AttributeError(f"module 'spr' has no attribute {name!r}") from None
    import importlib
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
