"""DockerEngine: runs in hardened containers, a sandbox per run inside each
(SPEC §5, §7), through libspr's spr_docker_engine_new; admin methods through
spr_docker_admin_* (managed containers and images only).

As in the reference, the constructor talks to no daemon: it only checks its
options. The engine (image resolution or build, the warm pool) starts with
the first run, or with start(). If it cannot start (docker missing, the
daemon unreachable, an image build failing), that run's RunnerResult says
so with exit_code 125 (never a fallback to local execution), and the next
run tries again."""
import ctypes
import datetime
import os
import shutil
import subprocess
import threading

from .. import _native
from ._base import SprEngine
from .config import CleanupSummary, ContainerInfo, ImageInfo, validate_pinned_packages


def docker_is_available(*, docker_env=None, docker_context=None):
    """(True, None) when the docker CLI answers `docker info`, else (False,
    the SPEC §5 message). The reference's helper, kept for callers;
    spr's engine checks this itself."""
    if not shutil.which("docker"):
        return False, "Docker CLI was not found. Install Docker and ensure it is on PATH."
    cmd = ["docker"] + (["--context", docker_context] if docker_context else []) + ["info"]
    try:
        p = subprocess.run(cmd, env=dict(docker_env) if docker_env is not None else None,
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        p = None
    if p is None or p.returncode != 0:
        return False, "Docker is installed but the daemon is not running or not accessible."
    return True, None


def _human_size(n):
    # docker's own (go-units HumanSizeWithPrecision(size, 3)): "199MB".
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    size, i = float(n), 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def _created_since(created, now=None):
    # docker's "CreatedSince" (go-units HumanDuration + " ago").
    try:
        text = created.rstrip("Z")
        if "." in text:
            head, frac = text.split(".", 1)
            text = f"{head}.{frac[:6]}"
        t = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)
    except (ValueError, AttributeError):
        return ""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    s = int((now - t).total_seconds())
    if s < 1:
        d = "Less than a second"
    elif s == 1:
        d = "1 second"
    elif s < 60:
        d = f"{s} seconds"
    elif s // 60 == 1:
        d = "About a minute"
    elif s < 3600:
        d = f"{s // 60} minutes"
    elif round(s / 3600) == 1:
        d = "About an hour"
    elif s < 48 * 3600:
        d = f"{round(s / 3600)} hours"
    elif s < 7 * 24 * 3600 * 2:
        d = f"{s // (24 * 3600)} days"
    elif s < 30 * 24 * 3600 * 2:
        d = f"{s // (7 * 24 * 3600)} weeks"
    elif s < 365 * 24 * 3600 * 2:
        d = f"{s // (30 * 24 * 3600)} months"
    else:
        d = f"{s // (365 * 24 * 3600)} years"
    return d + " ago"


class DockerEngine(SprEngine):
    """The reference's DockerEngine (same keyword options and meanings;
    `container_registry` is an explicit image), plus spr's: `base_image`
    (what the runtime image is built from), `wheel_dir` and the pip options
    for `packages`, `uid_range`, `container_cli` ("docker" or "podman"),
    `allow_degraded`, `show_build_progress`.

    `name` was only the namespace of the reference's image hash; spr names
    env images by what they contain, so it is kept (`self.name`) but changes
    nothing."""

    _what = "DockerEngine"

    def __init__(self, *, packages: list[str] | None = None,
                 container_registry: str | None = None, name: str | None = None,
                 pool_size: int | None = None, max_runs: int | None = None,
                 ttl_seconds: int | None = None, acquire_timeout_seconds: int | None = None,
                 docker_host: str | None = None, docker_context: str | None = None,
                 ssh_host: str | None = None, ssh_user: str | None = None,
                 ssh_port: int | None = None, ssh_key_path: str | None = None,
                 base_image: str | None = None, wheel_dir: str | None = None,
                 pip_index_url: str | None = None, pip_find_links: str | None = None,
                 pip_no_index: bool = False, uid_range: str | None = None,
                 container_cli: str | None = None, allow_degraded: bool = False,
                 show_build_progress: bool = False) -> None:
        self._packages = validate_pinned_packages(packages)
        self.name = name
        self._docker_host = docker_host
        self._docker_context = docker_context
        self._ssh_host = ssh_host
        self._ssh_user = ssh_user
        self._ssh_port = ssh_port
        self._ssh_key_path = ssh_key_path
        self._validate_connection_options()
        super().__init__()
        self._keep = []
        o = _native.DockerOptions()
        o.image = self._cstr(container_registry)
        if self._packages:
            arr = _native.CStrings(self._packages)
            self._keep.append(arr)
            o.packages = arr.pointer
        o.pool_size = int(pool_size or 0)
        o.max_runs = int(max_runs or 0)
        o.ttl_seconds = int(ttl_seconds or 0)
        o.base_image = self._cstr(base_image)
        o.wheel_dir = self._cstr(wheel_dir)
        o.show_build_progress = bool(show_build_progress)
        o.docker_context = self._cstr(docker_context or None)
        o.docker_host = self._cstr(docker_host or None)
        o.ssh_host = self._cstr(ssh_host or None)
        o.ssh_user = self._cstr(ssh_user or None)
        o.ssh_key_path = self._cstr(ssh_key_path or None)
        o.ssh_port = int(ssh_port or 0)
        o.acquire_timeout_seconds = int(acquire_timeout_seconds or 0)
        o.uid_range = self._cstr(uid_range)
        o.container_cli = self._cstr(container_cli)
        o.allow_degraded = bool(allow_degraded)
        o.pip.index_url = self._cstr(pip_index_url)
        o.pip.find_links = self._cstr(pip_find_links)
        o.pip.no_index = bool(pip_no_index)
        self._options = o
        self._start_lock = threading.Lock()

    def _cstr(self, value):
        b = _native.cstr(value)
        if b is not None:
            self._keep.append(b)
        return b

    def _validate_connection_options(self):
        """The reference's rules and messages, in its order (SPEC §5), then
        spr's (SPEC §7): checked before any daemon is contacted."""
        ssh_any = self._ssh_user or self._ssh_port or self._ssh_key_path
        if self._docker_context and (self._docker_host or self._ssh_host or ssh_any):
            raise ValueError("Use either docker_context or docker_host/ssh settings, not both")
        if self._ssh_user and not self._ssh_host:
            raise ValueError("ssh_user requires ssh_host")
        if self._ssh_port and not self._ssh_host:
            raise ValueError("ssh_port requires ssh_host")
        if self._ssh_key_path and not self._ssh_host:
            raise ValueError("ssh_key_path requires ssh_host")
        if self._docker_host and self._ssh_host:
            raise ValueError("Use either docker_host or ssh_host, not both (ssh_host makes the "
                             "ssh:// URL itself)")
        if self._ssh_port is not None and not 0 <= int(self._ssh_port) <= 65535:
            raise ValueError(f"ssh_port must be from 1 to 65535 (got {self._ssh_port})")
        if self._docker_host and "://" not in self._docker_host:
            raise ValueError("docker_host must be a URL: unix://PATH, tcp://HOST:PORT or "
                             f"ssh://[USER@]HOST[:PORT] (got '{self._docker_host}')")

    def _docker_env(self) -> dict:
        """The environment a docker CLI would get for these options (the
        reference's private helper, which its tests read). spr puts ssh_port
        into the URL, where the docker CLI reads it (the reference's
        DOCKER_SSH_COMMAND is kept for code that looks at it)."""
        env = dict(os.environ)
        if self._ssh_host:
            user = f"{self._ssh_user}@" if self._ssh_user else ""
            port = f":{self._ssh_port}" if self._ssh_port else ""
            env["DOCKER_HOST"] = f"ssh://{user}{self._ssh_host}{port}"
            cmd = ["ssh"]
            if self._ssh_port:
                cmd += ["-p", str(self._ssh_port)]
            if self._ssh_key_path:
                cmd += ["-i", self._ssh_key_path]
            env["DOCKER_SSH_COMMAND"] = " ".join(cmd)
        elif self._docker_host:
            env["DOCKER_HOST"] = self._docker_host
        return env

    # -- the engine ----------------------------------------------------------------

    def _engine_ptr(self):
        if self._h.ptr.value:
            return self._h.ptr
        with self._start_lock:
            if not self._h.ptr.value:
                ptr = ctypes.c_void_p()
                _native.call(_native.lib.spr_docker_engine_new, ctypes.byref(self._options),
                             ctypes.byref(ptr))
                self._h.ptr = ptr
        return self._h.ptr

    def start(self) -> None:
        """Starts the engine now (image resolved or built, pool started)
        instead of at the first run; raises RuntimeError (or
        FileNotFoundError: no docker CLI) when it cannot."""
        self._h.enter()
        try:
            self._engine_ptr()
        finally:
            self._h.leave()

    # -- admin (SPEC §5, §7: managed containers and images only) -----------------

    def _admin_json(self, fn, *args):
        admin = ctypes.c_void_p()
        _native.call(_native.lib.spr_docker_admin_new, ctypes.byref(self._options),
                     ctypes.byref(admin))
        try:
            if fn is None:
                return None
            return fn(admin, *args)
        finally:
            _native.lib.spr_docker_admin_free(admin)

    def list_containers(self, all_states: bool = False) -> list[ContainerInfo]:
        """Managed containers (running ones unless all_states)."""
        doc = self._admin_json(lambda a: _native.call_json(
            _native.lib.spr_docker_list_containers, a, bool(all_states)))
        out = []
        for c in doc["containers"]:
            out.append(ContainerInfo(
                id=c.get("id", ""), name=c.get("name", ""), image=c.get("image", ""),
                state=c.get("state", ""), status=c.get("status", ""),
                created=c.get("created") or "", runs=c.get("runs"), pool=c.get("pool") or "",
                env=c.get("env") or "", creator=c.get("creator") or "",
                creator_alive=c.get("creator_alive")))
        return out

    def list_images(self) -> list[ImageInfo]:
        """Managed images (spr's runtime and env images), one row per tag."""
        doc = self._admin_json(lambda a: _native.call_json(_native.lib.spr_docker_list_images, a))
        out = []
        for img in doc["images"]:
            tags = img.get("tags") or ["<none>:<none>"]
            for tag in tags:
                repository, _, t = tag.rpartition(":")
                if not repository:
                    repository, t = tag, ""
                out.append(ImageInfo(
                    id=img.get("id", ""), repository=repository, tag=t,
                    created_since=_created_since(img.get("created", "")),
                    size=_human_size(img.get("size_bytes") or 0), kind=img.get("kind", ""),
                    size_bytes=img.get("size_bytes") or 0, created=img.get("created", ""),
                    containers=img.get("containers") or 0))
        return out

    def inspect_container(self, container_id: str) -> dict:
        """One managed container in detail (labels, limits, security): spr's
        `spr container ID --json`."""
        doc = self._admin_json(lambda a: _native.call_json(
            _native.lib.spr_docker_inspect_container, a, _native.cstr(container_id)))
        return doc["container"]

    def stop_container(self, container_id: str, timeout_seconds: int = 10) -> None:
        """SIGTERM, then SIGKILL after timeout_seconds. An unmanaged, unknown or
        ambiguous id raises ValueError and nothing is touched."""
        def stop(a):
            out = ctypes.c_void_p()
            _native.call(_native.lib.spr_docker_stop_container, a, _native.cstr(container_id),
                         int(timeout_seconds), ctypes.byref(out))
            _native.take_string(out)
        self._admin_json(stop)

    def kill_container(self, container_id: str) -> None:
        """SIGKILL to one managed container (ValueError as stop_container)."""
        def kill(a):
            out = ctypes.c_void_p()
            _native.call(_native.lib.spr_docker_kill_container, a, _native.cstr(container_id),
                         ctypes.byref(out))
            _native.take_string(out)
        self._admin_json(kill)

    def stop_all(self, timeout_seconds: int = 10) -> list[str]:
        """Stops every running managed container; their full ids."""
        doc = self._admin_json(lambda a: _native.call_json(
            _native.lib.spr_docker_stop_all, a, int(timeout_seconds)))
        return list(doc["stopped"])

    def cleanup_stale(self) -> CleanupSummary:
        """Removes managed containers that are not running (or whose creator
        on this host is gone) and env images no container uses: never the
        runtime image, never an image in use (the reference removed every
        managed image)."""
        counts = _native.CleanupCounts()
        self._admin_json(lambda a: _native.call(_native.lib.spr_docker_cleanup_stale, a,
                                                ctypes.byref(counts)))
        return CleanupSummary(removed_containers=counts.containers,
                              removed_images=counts.images)

    def describe(self) -> dict:
        """What the container CLI runs on (cli, version, remote, limits
        enforced...): `spr doctor --engine`'s facts."""
        return self._admin_json(lambda a: _native.call_json(_native.lib.spr_docker_describe, a))

    def __repr__(self):
        return f"DockerEngine(packages={self._packages!r})"
