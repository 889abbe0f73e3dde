"""Every Python example of the reference's documentation (seeds 000, the
backends page, and 001, its README), run as written and checked against the
output the documentation gives.

Each example's text below is copied verbatim from the seed. Three kinds of
placeholder are replaced, since they cannot exist as written: paths the
documentation marks as "/absolute/path/to/..." (a temporary file or venv),
remote hosts that do not exist (constructed only: the reference's
constructor contacts no daemon either), and PyPI (not reachable here). The
examples written with `venv_manager="uv"` run with a stand-in for uv on
PATH (uv is not packaged in Debian 12; see make_uv_standin): libspr runs it
in the install sandbox exactly as it would run uv. Without uv the same
lines raise libspr's error naming venv_manager='python'
(test_api.test_local_engine_option_errors).

The DockerEngine examples need a daemon (DOCKER_HOST) and the image the
documentation names, safe-py-runner-runtime:local (tagged from the test
daemon's runtime image here).
"""
import contextlib
import io
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import DOCKER, WHY_NO_DOCKER

needs_daemon = pytest.mark.skipif(not DOCKER, reason=WHY_NO_DOCKER)
# Placeholder paths become paths here; kept between sessions, so that the
# venvs the examples ask for are built once (spr reuses a venv_dir).
SEED_DIR = "/tmp/spr-pytest-seeds"

# ---- the examples, verbatim ----------------------------------------------------------

SEED000_API = '''
from safe_py_runner import LocalEngine, DockerEngine, run_code

local = LocalEngine(venv_dir="/tmp/safe_py_runner_local")
docker = DockerEngine(container_registry="safe-py-runner-runtime:local")

result = run_code("result = 1 + 1", engine=local)
result = run_code("result = 1 + 1", engine=docker)
'''

SEED000_CONTEXT = '''
from safe_py_runner import DockerEngine

engine = DockerEngine(docker_context="my-remote-context")
'''

SEED000_SSH = '''
from safe_py_runner import DockerEngine

engine = DockerEngine(
    ssh_host="my-server.example.com",
    ssh_user="ubuntu",
    ssh_port=22,
    ssh_key_path="/home/me/.ssh/id_ed25519",
)
'''

SEED001_BACKENDS = '''
from safe_py_runner import DockerEngine, run_code

engine = DockerEngine(container_registry="safe-py-runner-runtime:local")
result = run_code("result = 2 + 2", engine=engine)
'''

SEED001_QUICK_START = '''
from functools import partial
from safe_py_runner import LocalEngine, RunnerPolicy, run_code

# Define a policy (optional, defaults are already restrictive)
policy = RunnerPolicy(
    timeout_seconds=5,
    memory_limit_mb=128,
    blocked_imports=["os", "subprocess", "socket"],
)

# Create engine once (required)
engine = LocalEngine(venv_dir="/tmp/safe_py_runner_demo_venv", venv_manager="uv")

# Optional convenience: bind engine for repeated calls
run_with_engine = partial(run_code, engine=engine)

# Run code
result = run_code(
    code="import math\\nresult = math.sqrt(input_data['x'])",
    input_data={"x": 81},
    policy=policy,
    engine=engine,
)

if result.ok:
    print(f"Result: {result.result}")  # 9.0
else:
    print(f"Error: {result.error}")
'''

SEED001_SHARED_SETUP = '''
from functools import partial
from safe_py_runner import LocalEngine, run_code as _run_code

engine = LocalEngine(venv_dir="/absolute/path/to/your/project/.venv", venv_manager="uv")
run_code = partial(_run_code, engine=engine)
'''

SEED001_MODES = '''
policy = RunnerPolicy(
    mode="allow",
    allowed_imports=["math"],
    allowed_builtins=["len", "range", "print"],
    allowed_globals=["x"],
)
'''

SEED001_RESTRICT = '''
policy = RunnerPolicy(
    mode="restrict",
    blocked_imports=["os", "subprocess", "socket"],
    blocked_builtins=["eval", "exec", "open"],
)

result = run_code(
    code="import math\\nresult = math.factorial(5)",
    policy=policy,
)
'''

SEED001_ALLOW = '''
policy = RunnerPolicy(
    mode="allow",
    allowed_imports=["math"],
    allowed_builtins=["print", "len", "range"],
    allowed_globals=["x", "helper"],
    extra_globals={"helper": 10},
)

result = run_code(
    code="import math\\nresult = math.sqrt(x) + helper",
    input_data={"x": 81},
    policy=policy,
)
'''

SEED001_POLICY_TOML = '''
[policy]
mode = "restrict"
timeout_seconds = 5
memory_limit_mb = 256
max_output_kb = 128
blocked_imports = ["os", "subprocess"]
blocked_builtins = ["eval", "exec", "open"]
allowed_imports = []
allowed_builtins = []
allowed_globals = []
blocked_globals = []

[policy.extra_globals]
project_name = "safe-py-runner"
'''

SEED001_POLICY_FILE = '''
result = run_code(
    code="result = 1 + 1",
    policy_file="/absolute/path/to/policy.toml",
)
'''

SEED001_POLICY_FROM_PYTHON = '''
policy = RunnerPolicy.from_file("/absolute/path/to/policy.toml")
result = run_code(code="result = 1 + 1", policy=policy)
'''

SEED001_CONFIG_PATH = '''
policy = RunnerPolicy(config_path="/absolute/path/to/policy.toml")
result = run_code(code="result = 1 + 1", policy=policy)
'''

SEED001_TENANTS = '''
tenant_policy_map = {
    "team-a": "/policies/team-a.toml",
    "team-b": "/policies/team-b.toml",
}

tenant_id = "team-a"
result = run_code(
    code="result = len(data)",
    input_data={"data": [1, 2, 3]},
    policy_file=tenant_policy_map[tenant_id],
)
'''

SEED001_IO = '''
# 1) Flat input values become top-level variables (when allowed by mode).
result = run_code(code="result = x + y", input_data={"x": 3, "y": 4})

# 2) Nested data works too.
result = run_code(
    code="result = customer['name'].upper()",
    input_data={"customer": {"name": "ada"}},
)

# 3) Printed output is captured separately from `result`.
result = run_code(code="print('hello')\\nresult = 123")
print(result.stdout)  # hello
print(result.result)  # 123
'''

SEED001_TIMEOUT = '''
policy = RunnerPolicy(timeout_seconds=1, memory_limit_mb=64, max_output_kb=8)

result = run_code(
    code="while True:\\n    pass",
    policy=policy,
)

print(result.ok)        # False
print(result.timed_out) # True
'''

SEED001_TRUNCATION = '''
policy = RunnerPolicy(max_output_kb=4)  # 4KB output cap
result = run_code(code="print('a' * (10 * 1024))", policy=policy)
print(len(result.stdout) <= 4 * 1024)  # True
'''

SEED001_SYSTEM_EXIT = '''
ok_exit = run_code("import sys\\nsys.exit(0)")
print(ok_exit.ok, ok_exit.exit_code)  # True, 0

err_exit = run_code("import sys\\nsys.exit(2)")
print(err_exit.ok, err_exit.exit_code, err_exit.error)  # False, 2, "SystemExit: 2"
'''

SEED001_ERRORS = '''
result = run_code(code="import os")
if not result.ok:
    print("error:", result.error)
    print("stderr:", result.stderr)
    print("exit_code:", result.exit_code)
'''

SEED001_CUSTOM_ENV = '''
from safe_py_runner import LocalEngine, run_code

engine = LocalEngine(
    venv_dir="/path/to/project/.venv",
    venv_manager="uv",
    packages=["pandas==2.2.2"],
)

run_code(
    code="...",
    engine=engine,
)
'''

# ---- running them -------------------------------------------------------------------------

PLACEHOLDERS = {
    "/absolute/path/to/your/project/.venv": f"{SEED_DIR}/your/project/.venv",
    "/path/to/project/.venv": f"{SEED_DIR}/project/.venv",
    "/absolute/path/to/policy.toml": f"{SEED_DIR}/policy.toml",
    "/policies/team-a.toml": f"{SEED_DIR}/policies/team-a.toml",
    "/policies/team-b.toml": f"{SEED_DIR}/policies/team-b.toml",
}


def run_example(text, namespace=None):
    """Runs an example (placeholders replaced); returns (namespace, what it printed)."""
    for placeholder, path in PLACEHOLDERS.items():
        text = text.replace(placeholder, path)
    ns = {} if namespace is None else namespace
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(textwrap.dedent(text), "<seed example>", "exec"), ns)
    return ns, out.getvalue()


def make_wheel(directory, name, version, source):
    """A pure-Python wheel (for the stand-in PyPI of the pandas example)."""
    dist = f"{name}-{version}.dist-info"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", source)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: spr-tests\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path


UV_STANDIN = '''#!{python}
"""A stand-in for uv (not packaged in Debian 12), for the examples written
with venv_manager="uv". It does what the two uv commands libspr runs do
(`uv venv --seed --python PY DIR`, `uv pip install --python PY ARGS...`) with
the interpreter's venv module and pip, and takes packages from the wheels
beside it: PyPI is not reachable here. libspr runs it inside the install
sandbox, where it can write only the new venv."""
import os, subprocess, sys
here = os.path.dirname(os.path.realpath(__file__))
args = sys.argv[1:]
if args[:1] == ["venv"]:
    python = args[args.index("--python") + 1]
    sys.exit(subprocess.call([python, "-m", "venv", args[-1]]))
if args[:2] == ["pip", "install"]:
    rest = args[2:]
    i = rest.index("--python")
    python, rest = rest[i + 1], rest[:i] + rest[i + 2:]
    sys.exit(subprocess.call([python, "-m", "pip", "install", "--no-index",
                              "--find-links", here] + rest))
sys.exit("uv stand-in: unsupported command: " + " ".join(args))
'''


@pytest.fixture(scope="module")
def uv_on_path():
    d = os.path.join(SEED_DIR, "uv-standin")
    os.makedirs(d, exist_ok=True)
    uv = os.path.join(d, "uv")
    with open(uv + ".tmp", "w") as f:
        f.write(UV_STANDIN.format(python=os.path.realpath(sys.executable)))
    os.chmod(uv + ".tmp", 0o755)
    os.replace(uv + ".tmp", uv)
    make_wheel(d, "pandas", "2.2.2", "__version__ = '2.2.2'\n")
    old = os.environ["PATH"]
    os.environ["PATH"] = d + os.pathsep + old
    yield d
    os.environ["PATH"] = old


@pytest.fixture(scope="module")
def policy_files():
    os.makedirs(os.path.join(SEED_DIR, "policies"), exist_ok=True)
    for path in (PLACEHOLDERS["/absolute/path/to/policy.toml"],
                 PLACEHOLDERS["/policies/team-a.toml"], PLACEHOLDERS["/policies/team-b.toml"]):
        with open(path, "w") as f:
            f.write(SEED001_POLICY_TOML)


@pytest.fixture(scope="module")
def runtime_image_tag():
    """The image the documentation names, on the test daemon."""
    if not DOCKER:
        pytest.skip(WHY_NO_DOCKER)
    import spr
    image = "safe-py-runner-runtime:local"
    with spr.DockerEngine() as engine:
        runtime = engine.run("result = 1").isolation["image"]
    subprocess.run(["docker", "tag", runtime, image], check=True)
    yield image
    subprocess.run(["docker", "rmi", image], capture_output=True)


def close_engines(ns):
    from safe_py_runner.execution._base import SprEngine
    for v in list(ns.values()):
        if isinstance(v, SprEngine):
            v.close()


# ---- seed 000 (the backends page) ------------------------------------------------------

def test_seed000_api_local_lines():
    lines = [ln for ln in SEED000_API.splitlines() if "docker" not in ln.lower()
             or ln.startswith("from")]
    ns, _ = run_example("\n".join(lines))
    assert ns["result"].ok and ns["result"].result == 2, ns["result"]
    close_engines(ns)


@needs_daemon
def test_seed000_api_docker(runtime_image_tag):
    ns, _ = run_example(SEED000_API)
    assert ns["result"].ok and ns["result"].result == 2, ns["result"]
    assert ns["result"].isolation["image"] == runtime_image_tag
    close_engines(ns)


def test_seed000_remote_examples_construct():
    ns, _ = run_example(SEED000_CONTEXT)
    assert ns["engine"]._docker_context == "my-remote-context"
    ns, _ = run_example(SEED000_SSH)
    assert ns["engine"]._docker_env()["DOCKER_HOST"] == "ssh://ubuntu@my-server.example.com:22"


# ---- seed 001 (the README) ----------------------------------------------------------------

@needs_daemon
def test_seed001_backends_docker(runtime_image_tag):
    ns, _ = run_example(SEED001_BACKENDS)
    assert ns["result"].ok and ns["result"].result == 4, ns["result"]
    close_engines(ns)


def test_seed001_quick_start(uv_on_path):
    ns, out = run_example(SEED001_QUICK_START)
    assert out == "Result: 9.0\n"
    close_engines(ns)


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=needs_daemon)])
def shared(request, uv_on_path, policy_files):
    """The README's "Shared Setup": as written for [local]; for [docker] the
    same partial bound to the README's DockerEngine."""
    if request.param == "local":
        ns, _ = run_example(SEED001_SHARED_SETUP)
    else:
        request.getfixturevalue("runtime_image_tag")
        ns, _ = run_example(SEED001_SHARED_SETUP.replace(
            'LocalEngine(venv_dir="/absolute/path/to/your/project/.venv", venv_manager="uv")',
            'DockerEngine(container_registry="safe-py-runner-runtime:local")').replace(
            "import LocalEngine", "import DockerEngine"))
    run_example("from safe_py_runner import RunnerPolicy", ns)
    yield ns
    close_engines(ns)


def fresh(shared):
    return dict(shared)


def test_seed001_policy_modes(shared):
    ns, _ = run_example(SEED001_MODES, fresh(shared))
    assert ns["policy"].mode == "allow"


def test_seed001_restrict_mode(shared):
    ns, _ = run_example(SEED001_RESTRICT, fresh(shared))
    assert ns["result"].ok and ns["result"].result == 120, ns["result"]


def test_seed001_allow_mode(shared):
    ns, _ = run_example(SEED001_ALLOW, fresh(shared))
    assert ns["result"].ok and ns["result"].result == 19.0, ns["result"]


def test_seed001_policy_file(shared):
    ns, _ = run_example(SEED001_POLICY_FILE, fresh(shared))
    assert ns["result"].result == 2, ns["result"]
    ns, _ = run_example(SEED001_POLICY_FROM_PYTHON, fresh(shared))
    assert ns["result"].result == 2, ns["result"]
    assert ns["policy"].extra_globals == {"project_name": "safe-py-runner"}
    assert ns["policy"].blocked_imports == ["os", "subprocess"]
    ns, _ = run_example(SEED001_CONFIG_PATH, fresh(shared))
    assert ns["result"].result == 2, ns["result"]
    ns, _ = run_example(SEED001_TENANTS, fresh(shared))
    assert ns["result"].result == 3, ns["result"]


def test_seed001_io(shared):
    ns, out = run_example(SEED001_IO, fresh(shared))
    assert out == "hello\n\n123\n"


def test_seed001_timeout(shared):
    ns, out = run_example(SEED001_TIMEOUT, fresh(shared))
    assert out == "False\nTrue\n", ns["result"]


def test_seed001_truncation(shared):
    ns, out = run_example(SEED001_TRUNCATION, fresh(shared))
    assert out == "True\n"
    assert ns["result"].stdout_truncated


def test_seed001_system_exit(shared):
    ns, out = run_example(SEED001_SYSTEM_EXIT, fresh(shared))
    assert out == "True 0\nFalse 2 SystemExit: 2\n"


def test_seed001_error_handling(shared):
    ns, out = run_example(SEED001_ERRORS, fresh(shared))
    assert out.startswith("error: ImportError: Import 'os' is blocked by policy\n"
                          "stderr: Traceback (most recent call last):\n"), out
    assert out.endswith("ImportError: Import 'os' is blocked by policy\n\nexit_code: 1\n"), out


def test_seed001_custom_environment(uv_on_path):
    # packages=["pandas==2.2.2"] from the stand-in's wheel (no PyPI here).
    ns, _ = run_example(SEED001_CUSTOM_ENV)
    r = ns["run_code"]("import pandas\nresult = pandas.__version__", ns["engine"])
    assert r.ok and r.result == "2.2.2", r
    close_engines(ns)
