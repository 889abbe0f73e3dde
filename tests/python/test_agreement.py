"""The package and the C CLI agree: the same request gives the same
RunnerResult JSON through `spr-run --json` and through run_code, apart from
what is measured per run (duration_ms, memory_peak_kb) and what is leased or
picked per run (isolation.host_uid; the DockerEngine's container name and
run number). Both go through spr_run_json, so this holds by construction
as long as the binding loses nothing on the way (big integers, NaN,
Unicode, truncation flags, isolation).

And `python -m spr ...` is the C `spr`: same output and exit status."""
import json
import os
import subprocess
import sys

import pytest

from conftest import BUILD, DOCKER, PACKAGE_DIR, SPR, SPR_RUN, WHY_NO_DOCKER

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from integration.common import write_policy as common_write_policy  # noqa: E402
from safe_py_runner import RunnerPolicy, run_code

CASES = [
    ("values", "print('hi')\nresult = {'sum': x + y, 'big': 2**100, 'f': 0.1, "
     "'nan': float('nan'), 'inf': float('-inf'), 't': (1, 'a'), 's': {1}, 1: None}",
     {"x": 1, "y": 2}, None),
    ("blocked import", "import os", None, None),
    ("exception", "def f():\n    return 1 / 0\nf()", None, None),
    ("syntax error", "print((1", None, None),
    ("exit and truncation", "import sys\nsys.stdout.write('é' * 3000)\n"
     "sys.stderr.write('x' * 3000)\nsys.exit(7)", None, {"max_output_kb": 1}),
    ("timeout", "print('before', flush=True)\nwhile True:\n    pass", None,
     {"timeout_seconds": 0.5}),
    ("memory", "x = bytearray(300 * 1024 * 1024)", None, {"memory_limit_mb": 64}),
    ("allow mode", "import json\nresult = 1", None,
     {"mode": "allow", "allowed_imports": ["math"], "allowed_builtins": ["print"]}),
    ("unicode", "print('é✓\\udcff')\nresult = 'ü\\ud800'", None, None),
    ("list input", "result = input_data[::-1]", [1, "two", {"3": None}], None),
    ("globals and env", "import os\nresult = (helper, os.environ['K'], __name__)", None,
     {"blocked_imports": [], "extra_globals": {"helper": [1, 2]}, "env": {"K": "v"}}),
    ("system exit text", "raise SystemExit('bye')", None, None),
]


def write_policy(policy, directory):
    """The policy as DIRECTORY/policy.toml, written as the integration
    suites write theirs (one spelling of TOML for both)."""
    return common_write_policy(policy or {}, str(directory))


def comparable(doc):
    """The RunnerResult without what differs from run to run."""
    doc = dict(doc)
    for k in ("duration_ms", "memory_peak_kb"):
        doc.pop(k)
    iso = dict(doc["isolation"])
    if "host_uid" in iso:
        assert isinstance(iso.pop("host_uid"), int)
    if "container" in iso:
        iso["container"] = {k: v for k, v in iso["container"].items() if k not in ("name", "run")}
    doc["isolation"] = iso
    return doc


@pytest.mark.parametrize("name, code, input_data, policy", CASES, ids=[c[0] for c in CASES])
def test_package_and_spr_run_give_the_same_result(tmp_path, engine_kind, request, name, code,
                                                  input_data, policy):
    engine = request.getfixturevalue(f"{engine_kind}_engine")
    code_file = tmp_path / "code.py"
    code_file.write_text(code, encoding="utf-8", errors="surrogatepass")
    policy_file = write_policy(policy, tmp_path)
    argv = [SPR_RUN, "--engine", engine_kind, "--json", "--policy", policy_file]
    if input_data is not None:
        argv += ["--input", json.dumps(input_data)]
    cli = subprocess.run(argv + [str(code_file)], capture_output=True, timeout=120)
    cli_doc = json.loads(cli.stdout)
    via_file = run_code(code, engine, input_data=input_data, policy_file=policy_file)
    via_object = run_code(code, engine, input_data=input_data, policy=RunnerPolicy(**(policy or {})))
    assert comparable(via_file.to_dict()) == comparable(cli_doc)
    assert comparable(via_object.to_dict()) == comparable(cli_doc)
    # The same text, too, once the measured fields are equal.
    for k in ("duration_ms", "memory_peak_kb", "isolation"):
        cli_doc[k] = via_file.to_dict()[k]
    assert json.loads(via_file.to_json()) == cli_doc


def test_engine_failure_result_agrees(tmp_path):
    # No docker CLI: spr-run --engine docker --json prints a RunnerResult
    # (exit 125); the package returns the same one.
    env = dict(os.environ, PATH=str(tmp_path))
    code = tmp_path / "c.py"
    code.write_text("result = 1")
    cli = subprocess.run([SPR_RUN, "--engine", "docker", "--json", str(code)], env=env,
                         capture_output=True, text=True)
    assert cli.returncode == 125
    probe = ("import json, spr\n"
             "print(spr.run_code('result = 1', spr.DockerEngine()).to_json())\n")
    mine = subprocess.run([sys.executable, "-c", probe], env=dict(env, PYTHONPATH=PACKAGE_DIR),
                          capture_output=True, text=True)
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout) == json.loads(cli.stdout)


# ---- python -m spr is the C spr -----------------------------------------------------------

def python_m_spr(args, env=None):
    env = dict(os.environ if env is None else env, PYTHONPATH=PACKAGE_DIR)
    return subprocess.run([sys.executable, "-m", "spr", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def c_spr(args, env=None):
    return subprocess.run([SPR, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ if env is None else env))


SAME_ARGS = [
    ["--help"], ["help"], ["version"], ["list", "--help"], ["stop", "--help"],
    ["container", "--help"], ["bogus-command"], ["list"], ["stop", "container"],
    ["--ssh-port", "0", "list", "images"],
    ["--docker-context", "c", "--docker-host", "tcp://h:1", "list", "containers"],
    # The reference's documented remote examples (seed 000): no such hosts here.
    ["--docker-context", "my-remote-context", "list", "containers"],
    ["--ssh-host", "server", "--ssh-user", "ubuntu", "--ssh-port", "22", "list", "containers"],
]


@pytest.mark.parametrize("args", SAME_ARGS, ids=[" ".join(a) for a in SAME_ARGS])
def test_python_m_spr_is_the_c_spr(args):
    mine, theirs = python_m_spr(args), c_spr(args)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.skipif(not DOCKER, reason=WHY_NO_DOCKER)
@pytest.mark.parametrize("args", [["--json", "list", "images"], ["container", "spr-none-such"],
                                  ["kill", "container", "spr-none-such"]])
def test_python_m_spr_is_the_c_spr_on_docker(args):
    mine, theirs = python_m_spr(args), c_spr(args)
    assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr)
    if args[0] == "--json":
        assert json.loads(mine.stdout).keys() == json.loads(theirs.stdout).keys()
    else:
        assert mine.stdout == theirs.stdout


def test_spr_cli_main_returns_the_exit_status(capfd):
    import spr.cli
    assert spr.cli.main(["version"]) == 0
    assert capfd.readouterr().out == c_spr(["version"]).stdout
    assert spr.cli.main(["bogus-command"]) == 2
    ns = spr.cli.build_parser().parse_args(["--docker-host", "tcp://h:1", "stop", "container",
                                            "abc", "--timeout-seconds", "3"])
    assert (ns.command, ns.resource, ns.container_id, ns.timeout_seconds) == \
        ("stop", "container", "abc", 3)
    engine = spr.cli.build_engine(ns)
    assert engine._docker_env()["DOCKER_HOST"] == "tcp://h:1"


def test_python_m_spr_without_libspr_and_without_the_program(tmp_path):
    # `python -m spr` never loads libspr: a broken SPR_LIBRARY does not stop it
    # when SPR_BIN names the program...
    env = dict(os.environ, SPR_LIBRARY=str(tmp_path / "none.so"), SPR_BIN=SPR)
    p = python_m_spr(["version"], env)
    assert (p.returncode, p.stdout) == (0, c_spr(["version"]).stdout)
    # ...and without any spr program it says what to install (exit 127).
    env = dict(os.environ, SPR_LIBRARY=str(tmp_path / "none.so"), PATH=str(tmp_path))
    env.pop("SPR_BIN", None)
    p = python_m_spr(["version"], env)
    assert p.returncode == 127
    assert "the spr program" in p.stderr and "make install" in p.stderr


def test_no_console_script_shadows_the_c_spr():
    dist_info = [d for d in os.listdir(PACKAGE_DIR) if d.endswith(".dist-info")]
    assert len(dist_info) == 1
    assert not os.path.exists(os.path.join(PACKAGE_DIR, dist_info[0], "entry_points.txt"))
    assert not os.path.exists(os.path.join(PACKAGE_DIR, "bin"))
    assert os.path.samefile(os.path.dirname(SPR), BUILD)
