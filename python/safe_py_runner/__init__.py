"""safe_py_runner on spr: the reference package's API (run_code, RunnerPolicy,
RunnerResult, LocalEngine, DockerEngine) over libspr, where every run is
contained by the kernel (LocalEngine) or by a hardened container with a
sandbox per run inside (DockerEngine). python/README.md lists what differs
from the reference and why. Importing it loads libspr.so.4 (ImportError,
naming what to install, when it is missing or too old)."""
from .policy import RunnerPolicy, RunnerResult
from .runner import run_code
from .execution.docker_engine import DockerEngine
from .execution.local_engine import LocalEngine

__all__ = ["RunnerPolicy", "RunnerResult", "run_code", "LocalEngine", "DockerEngine"]
