"""The Python package's tests (make check-python; the docker part: make docker).

Before any test module is imported, the package is installed the way a
user without network would: `pip install --no-index --target TMP ./python`
(the in-tree build backend: nothing from an index), and imported from TMP
with SPR_LIBRARY=<build>/libspr.so. Nothing of libspr is mocked: every run
is a real sandbox (LocalEngine) or a real container (DockerEngine).

DockerEngine tests (their ids contain "docker", so `-k docker` selects
them) run when DOCKER_HOST is set (make docker's test daemon, with
SPR_DOCKER_BASE_IMAGE=spr-base:bookworm); otherwise they are skipped.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("SPR_BUILD") or os.path.join(REPO, "build"))
PYTHON_SRC = os.path.join(REPO, "python")
LIBRARY = os.path.join(BUILD, "libspr.so")
SPR_RUN = os.path.join(BUILD, "spr-run")
SPR = os.path.join(BUILD, "spr")
DOCKER = bool(os.environ.get("DOCKER_HOST"))
WHY_NO_DOCKER = "DockerEngine tests need DOCKER_HOST (make docker starts a test daemon)"


def _install_package():
    target = tempfile.mkdtemp(prefix="spr-pytest-pkg-")
    atexit.register(shutil.rmtree, target, True)
    build_tmp = tempfile.mkdtemp(prefix="spr-pytest-build-")
    atexit.register(shutil.rmtree, build_tmp, True)
    # A copy of the source: pip builds in the tree, and the tree stays clean.
    src = os.path.join(build_tmp, "python")
    shutil.copytree(PYTHON_SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
                        "--disable-pip-version-check", "--no-cache-dir", "--quiet",
                        "--target", target, src],
                       capture_output=True, text=True,
                       env=dict(os.environ, PIP_CONFIG_FILE=os.devnull))
    if p.returncode:
        raise RuntimeError(f"offline pip install of {PYTHON_SRC} failed:\n{p.stdout}{p.stderr}")
    return target


if not os.path.isfile(LIBRARY):
    raise RuntimeError(f"{LIBRARY} is missing: build spr first (make)")
os.environ["SPR_LIBRARY"] = LIBRARY
PACKAGE_DIR = _install_package()
sys.path.insert(0, PACKAGE_DIR)

import safe_py_runner  # noqa: E402
import spr  # noqa: E402

assert safe_py_runner.__file__.startswith(PACKAGE_DIR + os.sep), safe_py_runner.__file__
assert spr.LIBRARY == LIBRARY, spr.LIBRARY


def pytest_report_header(config):
    return [f"safe_py_runner from {PACKAGE_DIR} (pip install --no-index --target)",
            f"libspr: {LIBRARY}; DockerEngine tests: {'on' if DOCKER else 'off'}"]


@pytest.fixture(scope="session")
def local_engine():
    """One warm spr LocalEngine shared by the tests (as a long-lived caller
    keeps one); closed at the end."""
    with spr.LocalEngine() as engine:
        yield engine


@pytest.fixture(scope="session")
def docker_engine():
    if not DOCKER:
        pytest.skip(WHY_NO_DOCKER)
    with spr.DockerEngine() as engine:
        yield engine


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.skipif(
    not DOCKER, reason=WHY_NO_DOCKER))])
def engine(request):
    """Each test using it runs on both engines (ids [local], [docker])."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.skipif(
    not DOCKER, reason=WHY_NO_DOCKER))])
def engine_kind(request):
    return request.param
