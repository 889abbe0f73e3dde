"""Docker settings and the admin dataclasses (safe_py_runner.execution.config).

The frozen dataclasses are the reference's, with the fields spr's admin
API adds appended (defaults, so the reference's positional construction
works). The pure helpers (validate_pinned_packages, env_hash,
default_pool_settings) are the reference's exactly; the image constants are
kept for import compatibility only: spr resolves images itself (SPEC §5)."""
from dataclasses import dataclass
import hashlib
import os
import re

DEFAULT_DOCKER_IMAGE = "ghcr.io/adarsh9780/safe-py-runner-runtime:py311"
LOCAL_RUNTIME_IMAGE = "safe-py-runner-runtime:local"
# What spr marks its containers with (SPEC §7 "spr (admin CLI) and managed
# containers"): only these are listed, stopped, killed or removed.
MANAGED_LABEL = "io.spr.managed"
MANAGED_LABEL_VALUE = "1"
MANAGED_LABELS_BASE = {MANAGED_LABEL: MANAGED_LABEL_VALUE}
_PINNED_PACKAGE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+==[^=\s]+$")


@dataclass(frozen=True, slots=True)
class DockerPoolSettings:
    pool_size: int
    max_runs: int
    ttl_seconds: int
    acquire_timeout: int


def default_pool_settings(timeout_seconds: int) -> DockerPoolSettings:
    return DockerPoolSettings(pool_size=min(os.cpu_count() or 1, 4), max_runs=25,
                              ttl_seconds=600, acquire_timeout=max(1, int(timeout_seconds)) + 2)


def validate_pinned_packages(packages: list[str] | None) -> list[str]:
    """Stripped, de-duplicated, sorted `name==version` pins; anything else is
    refused with the reference's (and SPEC §4's) message."""
    if not packages:
        return []
    normalized = sorted({pkg.strip() for pkg in packages if pkg.strip()})
    for pkg in normalized:
        if not _PINNED_PACKAGE_PATTERN.match(pkg):
            raise ValueError(
                f"Package specs must be pinned as 'name==version'. Invalid package: {pkg}")
    return normalized


def env_hash(*, python_version: str, packages: list[str], namespace: str | None) -> str:
    """The reference's environment hash (spr's image tags use their own,
    which also covers the runtime image and the pip options)."""
    text = f"{python_version}|{namespace or ''}|{'|'.join(packages)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A managed container. id is the full container id (the reference showed
    docker ps's 12 characters; every spr command takes a prefix)."""
    id: str
    name: str
    image: str
    state: str
    status: str
    created: str = ""
    runs: int | None = None          # runs served; None when not running
    pool: str = ""                   # the pool's limits key
    env: str = ""                    # the image id
    creator: str = ""                # host:boot-id:pid:start-time
    creator_alive: bool | None = None  # None: created on another host


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A managed image, one per tag (the reference's docker image ls rows)."""
    id: str
    repository: str
    tag: str
    created_since: str
    size: str
    kind: str = ""          # "runtime" or "env"
    size_bytes: int = 0
    created: str = ""       # RFC 3339
    containers: int = 0     # containers using it


@dataclass(frozen=True, slots=True)
class CleanupSummary:
    removed_containers: int
    removed_images: int
