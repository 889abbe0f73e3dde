"""The reference's pool bookkeeping types. spr's pool lives in libspr (one
per DockerEngine, keyed by the run's limits, a sandbox per run inside each
container: SPEC §5, §7); the reference's process-global DockerPool and
GLOBAL_DOCKER_POOL have no counterpart here (python/README.md)."""
from dataclasses import dataclass

from .config import DockerPoolSettings


@dataclass(slots=True)
class ContainerLease:
    container_name: str
    created_at: float
    last_used_at: float
    run_count: int


def should_rotate(lease: ContainerLease, settings: DockerPoolSettings, now: float) -> bool:
    """Whether a container is due for replacement: it served max_runs runs
    or lived ttl_seconds (the rule spr's pool applies too)."""
    if lease.run_count >= settings.max_runs:
        return True
    return (now - lease.created_at) >= settings.ttl_seconds
