"""DockerEngine: its options, the SPEC §5 errors when docker cannot be used
(these need no daemon and run everywhere), and, against a real daemon
(DOCKER_HOST), runs and the admin methods returning the reference's frozen
dataclasses."""
import dataclasses
import os
import subprocess
import uuid

import pytest

from conftest import DOCKER, WHY_NO_DOCKER
from safe_py_runner import DockerEngine, RunnerResult, run_code
from safe_py_runner.execution.config import CleanupSummary, ContainerInfo, ImageInfo

needs_daemon = pytest.mark.skipif(not DOCKER, reason=WHY_NO_DOCKER)


# ---- options (the constructor contacts no daemon) ------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"docker_context": "c", "docker_host": "tcp://h:1"},
     "Use either docker_context or docker_host/ssh settings, not both"),
    ({"docker_context": "c", "ssh_host": "h"},
     "Use either docker_context or docker_host/ssh settings, not both"),
    ({"ssh_user": "u"}, "ssh_user requires ssh_host"),
    ({"ssh_port": 2222}, "ssh_port requires ssh_host"),
    ({"ssh_key_path": "/k"}, "ssh_key_path requires ssh_host"),
    # spr's own (SPEC §7): two hosts, a host that is no URL, a bad port.
    ({"docker_host": "tcp://h:1", "ssh_host": "h"},
     "Use either docker_host or ssh_host, not both (ssh_host makes the ssh:// URL itself)"),
    ({"docker_host": "myhost"}, "docker_host must be a URL: unix://PATH, tcp://HOST:PORT or "
                                "ssh://[USER@]HOST[:PORT] (got 'myhost')"),
    ({"ssh_host": "h", "ssh_port": 70000}, "ssh_port must be from 1 to 65535 (got 70000)"),
])
def test_docker_connection_option_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        DockerEngine(**kwargs)
    assert str(info.value) == message


def test_docker_unpinned_packages():
    with pytest.raises(ValueError, match=r"^Package specs must be pinned as 'name==version'\. "
                                         r"Invalid package: requests>=2$"):
        DockerEngine(packages=["requests>=2"])


def test_docker_env_of_the_reference():
    env = DockerEngine(ssh_host="example.com", ssh_user="alice")._docker_env()
    assert env["DOCKER_HOST"] == "ssh://alice@example.com"
    env = DockerEngine(ssh_host="h", ssh_port=2222, ssh_key_path="/k")._docker_env()
    assert "-p 2222" in env["DOCKER_SSH_COMMAND"] and "-i /k" in env["DOCKER_SSH_COMMAND"]
    assert env["DOCKER_HOST"] == "ssh://h:2222"  # the port where the docker CLI reads it
    assert DockerEngine(docker_host="tcp://x:1")._docker_env()["DOCKER_HOST"] == "tcp://x:1"


def test_docker_constructor_does_no_io():
    # An unreachable daemon is found out by the first run, not here.
    DockerEngine(docker_host="unix:///nonexistent/docker.sock").close()


# ---- docker unusable: a RunnerResult with exit 125, never a fallback -----------------

def test_docker_cli_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with DockerEngine() as engine:
        r = run_code("result = 1", engine)
        assert isinstance(r, RunnerResult)
        assert (r.ok, r.exit_code) == (False, 125)
        assert r.error == "Docker CLI was not found. Install Docker and ensure it is on PATH."
        with pytest.raises(FileNotFoundError, match="Docker CLI was not found"):
            engine.list_containers()


def test_docker_daemon_unreachable():
    with DockerEngine(docker_host="unix:///nonexistent/docker.sock") as engine:
        r = run_code("result = 1", engine)
        assert (r.ok, r.exit_code) == (False, 125)
        assert r.error.startswith(
            "Docker is installed but the daemon is not running or not accessible."), r.error
        with pytest.raises(RuntimeError, match="daemon is not running or not accessible"):
            engine.list_containers()
        with pytest.raises(RuntimeError):
            engine.start()


# ---- against the daemon -----------------------------------------------------------------

@needs_daemon
def test_docker_runs_and_reports_its_container(docker_engine):
    r = run_code("print('in a container')\nresult = 6 * 7", docker_engine)
    assert (r.ok, r.result, r.stdout) == (True, 42, "in a container\n")
    assert r.isolation["engine"] == "docker"
    assert r.isolation["container"]["name"].startswith("spr-")


@needs_daemon
def test_docker_admin_dataclasses(docker_engine):
    name = run_code("result = 1", docker_engine).isolation["container"]["name"]
    containers = docker_engine.list_containers()
    assert all(isinstance(c, ContainerInfo) for c in containers)
    mine = [c for c in containers if c.name == name]
    assert len(mine) == 1, containers
    c = mine[0]
    assert c.state == "running" and c.id and c.status.startswith("Up")
    assert c.runs >= 1 and c.creator_alive is True
    assert {f.name for f in dataclasses.fields(ContainerInfo)} >= {"id", "name", "image",
                                                                   "state", "status"}
    detail = docker_engine.inspect_container(c.id[:12])
    assert detail["name"] == name and detail["security"]["read_only_root"] is True
    images = docker_engine.list_images()
    assert images and all(isinstance(i, ImageInfo) for i in images)
    runtime = [i for i in images if i.kind == "runtime"]
    assert runtime and runtime[0].size.endswith("B") and runtime[0].created_since.endswith("ago")
    assert docker_engine.describe()["limits"]["memory"] is True
    summary = docker_engine.cleanup_stale()
    assert isinstance(summary, CleanupSummary)
    assert summary.removed_containers >= 0 and summary.removed_images >= 0
    # cleanup never touches a running container of a live engine
    assert any(x.name == name for x in docker_engine.list_containers())


@needs_daemon
def test_docker_unmanaged_and_unknown_containers_are_refused():
    name = f"spr-pytest-unmanaged-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "none",
                    os.environ.get("SPR_DOCKER_BASE_IMAGE", "spr-base:bookworm"), "sleep", "60"],
                   check=True, capture_output=True)
    try:
        engine = DockerEngine()
        for action in (lambda: engine.stop_container(name, timeout_seconds=1),
                       lambda: engine.kill_container(name)):
            with pytest.raises(ValueError) as info:
                action()
            assert str(info.value) == \
                f"Container '{name}' is not managed by spr and cannot be modified"
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                               capture_output=True, text=True).stdout.strip()
        assert state == "true", "an unmanaged container is left untouched"
        with pytest.raises(ValueError, match="No such container"):
            engine.stop_container("spr-no-such-container-at-all")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@needs_daemon
def test_docker_stop_kill_and_close():
    engine = DockerEngine(pool_size=1)
    first = run_code("result = 1", engine).isolation["container"]["name"]
    engine.stop_container(first, timeout_seconds=1)
    assert not any(c.name == first and c.state == "running" for c in engine.list_containers())
    # The engine notices and serves the next run from another container.
    r = run_code("result = 2", engine)
    assert r.result == 2, r
    second = r.isolation["container"]["name"]
    assert second != first
    engine.kill_container(second)
    r = run_code("result = 3", engine)
    assert r.result == 3, r
    third = r.isolation["container"]["name"]
    engine.close()
    # close() stops the engine's pool: its container ends (and --rm removes it).
    running = [c.name for c in DockerEngine().list_containers()]
    assert third not in running
