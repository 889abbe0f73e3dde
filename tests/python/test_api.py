"""The reference API as users call it (signatures, defaults, dataclasses,
semi-public modules) and the error strings and exceptions of the API
reference §4, with spr's fixes where docs/SPEC.md differs (each one listed
in python/README.md). Runs go through real sandboxes, on both engines where
the engine matters."""
import dataclasses
import errno
import inspect
import json
import os
import re
import sys
import tomllib

import pytest

import safe_py_runner
import spr
from safe_py_runner import DockerEngine, LocalEngine, RunnerPolicy, RunnerResult, run_code

REFERENCE_POLICY_REPR = (
    "RunnerPolicy(mode='restrict', timeout_seconds=5, memory_limit_mb=256, max_output_kb=128, "
    "allowed_imports=[], blocked_imports=['os', 'subprocess', 'socket', 'ctypes', 'importlib'], "
    "allowed_builtins=[], blocked_builtins=['eval', 'exec', 'open', 'compile', 'breakpoint'], "
    "allowed_globals=[], blocked_globals=[], extra_globals={}, config_path=None)")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# ---- the names and signatures --------------------------------------------------------

def test_public_names():
    assert safe_py_runner.__all__ == ["RunnerPolicy", "RunnerResult", "run_code", "LocalEngine",
                                      "DockerEngine"]
    for name in ("run_code", "arun_code", "RunnerPolicy", "RunnerResult", "LocalEngine",
                 "DockerEngine", "ContainerInfo", "ImageInfo", "CleanupSummary", "SprError"):
        assert getattr(spr, name) is not None, name
    assert spr.run_code is safe_py_runner.run_code
    assert spr.RunnerPolicy is RunnerPolicy and spr.RunnerResult is RunnerResult
    assert spr.DockerEngine is DockerEngine
    # spr's LocalEngine is the reference's with venv_dir optional.
    assert issubclass(spr.LocalEngine, LocalEngine)
    assert spr.LocalEngine.__name__ == "LocalEngine"


def test_semi_public_modules():
    from safe_py_runner.execution import ExecutionEngine, ExecutionOutcome, ExecutionRequest
    from safe_py_runner.execution.capabilities import (BackendCapabilities,
                                                       capabilities_for_backend,
                                                       preflight_validate_backend_capabilities)
    from safe_py_runner.execution.config import (CleanupSummary, ContainerInfo,
                                                 DockerPoolSettings, ImageInfo,
                                                 default_pool_settings, env_hash,
                                                 validate_pinned_packages)
    from safe_py_runner.execution.docker_engine import docker_is_available
    from safe_py_runner.execution.docker_pool import ContainerLease, should_rotate
    from safe_py_runner.policy import (DEFAULT_BLOCKED_BUILTINS, DEFAULT_BLOCKED_IMPORTS,
                                       DEFAULT_MAX_OUTPUT_KB, DEFAULT_MEMORY_LIMIT_MB,
                                       DEFAULT_MODE, DEFAULT_TIMEOUT_SECONDS)
    import spr.cli
    assert callable(spr.cli.main) and callable(spr.cli.build_parser)
    assert spr.cli.DockerEngine is DockerEngine
    assert ExecutionEngine and ExecutionOutcome and ExecutionRequest and docker_is_available
    assert capabilities_for_backend("localengine") == BackendCapabilities(True, True, True, True)
    assert capabilities_for_backend("docker") == BackendCapabilities(True, True, True, True)
    assert capabilities_for_backend("other") == BackendCapabilities(False, False, False, False)
    assert preflight_validate_backend_capabilities("x") is None
    # The reference's test vectors.
    assert env_hash(python_version="3.11", packages=[], namespace=None) == "e4c854fa572ecf94"
    assert env_hash(python_version="3.11", packages=["packaging==24.1"],
                    namespace="itest") == "97062ee1ea27327e"
    assert env_hash(python_version="3.11", packages=["a==1"], namespace="n") == \
        "1ea4a7099c9b8876"
    assert validate_pinned_packages([" b==2", "a==1", "b==2", " "]) == ["a==1", "b==2"]
    assert validate_pinned_packages(None) == []
    for bad in ("pkg[x]==1.0", "pkg>=1.0", "pandas"):
        with pytest.raises(ValueError, match=r"^Package specs must be pinned as "
                                             r"'name==version'\. Invalid package: "):
            validate_pinned_packages([bad])
    s = default_pool_settings(7)
    assert (s.pool_size, s.max_runs, s.ttl_seconds, s.acquire_timeout) == \
        (min(os.cpu_count() or 1, 4), 25, 600, 9)
    assert should_rotate(ContainerLease("c", 0.0, 0.0, 25), s, 1.0)
    assert should_rotate(ContainerLease("c", 0.0, 0.0, 1), s, 600.0)
    assert not should_rotate(ContainerLease("c", 0.0, 0.0, 1), s, 599.0)
    assert isinstance(DockerPoolSettings(1, 2, 3, 4), DockerPoolSettings)
    for cls in (ContainerInfo, ImageInfo, CleanupSummary):
        params = getattr(cls, "__dataclass_params__")
        assert params.frozen, cls
    with pytest.raises(dataclasses.FrozenInstanceError):
        CleanupSummary(1, 2).removed_images = 3
    assert ContainerInfo("i", "n", "img", "running", "Up").state == "running"
    assert ImageInfo("i", "r", "t", "1 hour ago", "1MB").size == "1MB"
    assert (DEFAULT_MODE, DEFAULT_TIMEOUT_SECONDS, DEFAULT_MEMORY_LIMIT_MB,
            DEFAULT_MAX_OUTPUT_KB) == ("restrict", 5, 256, 128)
    assert DEFAULT_BLOCKED_IMPORTS == ["os", "subprocess", "socket", "ctypes", "importlib"]
    assert DEFAULT_BLOCKED_BUILTINS == ["eval", "exec", "open", "compile", "breakpoint"]


def test_signatures_are_the_references():
    sig = inspect.signature(run_code)
    assert [(p.name, p.kind.name, p.default) for p in sig.parameters.values()] == [
        ("code", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("engine", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty),
        ("input_data", "POSITIONAL_OR_KEYWORD", None),
        ("policy", "POSITIONAL_OR_KEYWORD", None),
        ("policy_file", "POSITIONAL_OR_KEYWORD", None),
        # spr's addition, after the reference's (SPEC §3 "Streaming")
        ("on_output", "POSITIONAL_OR_KEYWORD", None)]
    local = inspect.signature(LocalEngine).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in local.values())
    assert local["venv_dir"].default is inspect.Parameter.empty
    assert local["packages"].default is None
    assert inspect.signature(spr.LocalEngine).parameters["venv_dir"].default is None
    docker = inspect.signature(DockerEngine).parameters
    for name in ("packages", "container_registry", "name", "pool_size", "max_runs",
                 "ttl_seconds", "acquire_timeout_seconds", "docker_host", "docker_context",
                 "ssh_host", "ssh_user", "ssh_port", "ssh_key_path"):
        assert docker[name].kind is inspect.Parameter.KEYWORD_ONLY and \
            docker[name].default is None, name
    admin = inspect.signature(DockerEngine.stop_container).parameters
    assert admin["timeout_seconds"].default == 10
    assert inspect.signature(DockerEngine.list_containers).parameters["all_states"].default \
        is False


# ---- RunnerPolicy ---------------------------------------------------------------------

def test_policy_is_the_references_dataclass():
    p = RunnerPolicy()
    assert repr(p) == REFERENCE_POLICY_REPR
    assert RunnerPolicy() == RunnerPolicy()
    with pytest.raises(TypeError):
        hash(p)
    positional = RunnerPolicy("allow", 3, 64, 8, ["math"])
    assert (positional.mode, positional.timeout_seconds, positional.memory_limit_mb,
            positional.max_output_kb, positional.allowed_imports) == ("allow", 3, 64, 8, ["math"])
    with pytest.raises(ValueError, match=r"^mode must be 'allow' or 'restrict'$"):
        RunnerPolicy(mode="deny")
    # spr's fields are shown only where they differ from the defaults.
    assert repr(RunnerPolicy(network=True)).endswith("config_path=None, network=True)")
    # Each default list is a copy.
    a, b = RunnerPolicy(), RunnerPolicy()
    a.blocked_imports.append("math")
    assert "math" not in b.blocked_imports


def test_defaults_agree_with_libspr_and_the_toml():
    from safe_py_runner import _native
    from safe_py_runner.policy import DEFAULT_POLICY_FILE
    lib = _native.policy_defaults()
    mine = RunnerPolicy().to_dict()
    assert set(lib) == set(mine)
    for k, v in lib.items():
        assert mine[k] == v, k
    with open(DEFAULT_POLICY_FILE, "rb") as f:
        toml = tomllib.load(f)["policy"]
    for k, v in toml.items():
        assert mine[k] == v, k


def test_policy_file_omitted_lists_keep_the_secure_defaults(tmp_path, local_engine):
    # The reference turned omitted lists into []: a file with only `mode`
    # dropped every block (its bug 8). SPEC §2: omitted fields keep defaults.
    path = write(tmp_path / "p.toml", '[policy]\nmode = "restrict"\n')
    p = RunnerPolicy.from_file(path)
    assert p.blocked_imports == ["os", "subprocess", "socket", "ctypes", "importlib"]
    assert p.blocked_builtins == ["eval", "exec", "open", "compile", "breakpoint"]
    assert p.config_path == path
    r = run_code("import os", local_engine, policy_file=path)
    assert r.error == "ImportError: Import 'os' is blocked by policy"


def test_policy_file_keys_at_top_level(tmp_path):
    path = write(tmp_path / "p.toml", 'timeout_seconds = 2\nblocked_imports = ["json"]\n'
                 '[extra_globals]\nproject = "x"\n')
    p = RunnerPolicy.from_file(path)
    assert (p.timeout_seconds, p.blocked_imports, p.extra_globals) == (2, ["json"],
                                                                      {"project": "x"})
    assert isinstance(p.timeout_seconds, int)


def test_missing_policy_file_is_an_error(tmp_path, local_engine):
    # The reference silently used the defaults; SPEC §2: an error naming it.
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(FileNotFoundError) as info:
        RunnerPolicy.from_file(missing)
    assert missing in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        RunnerPolicy(config_path=missing)
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        run_code("result = 1", local_engine, policy_file=missing)


@pytest.mark.parametrize("text, field", [
    ("[policy]\nblocked_imports = \"os\"\n", "blocked_imports"),
    ("[policy]\nallowed_builtins = [1]\n", "allowed_builtins"),
    ("[policy]\nextra_globals = 3\n", "extra_globals"),
    ("policy = 3\n", "policy"),
    ("[policy]\nmode = \"restrict\"\nunknown_key = 1\n", "unknown_key"),
    ("[policy]\nmode = \n", None),
])
def test_bad_policy_files_raise_valueerror_naming_file_and_line(tmp_path, text, field):
    # The reference's messages for these ("'x' must be a list of strings",
    # "Policy config must be a TOML table", ...) become libspr's, which name
    # the file, line and column (SPEC §2).
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ValueError) as info:
        RunnerPolicy.from_file(path)
    msg = str(info.value)
    assert msg.startswith(path + ":"), msg
    if field:
        assert field in msg, msg
    assert isinstance(info.value, spr.SprError) and info.value.layer == "policy"


def test_config_path_loads_the_file_and_passed_fields_override(tmp_path, local_engine):
    path = write(tmp_path / "p.toml", "[policy]\ntimeout_seconds = 3\nmax_output_kb = 16\n"
                 'blocked_imports = ["json"]\n')
    p = RunnerPolicy(config_path=path)
    assert (p.timeout_seconds, p.max_output_kb, p.blocked_imports) == (3, 16, ["json"])
    assert p == RunnerPolicy.from_file(path)
    # The reference dropped every other argument silently; spr keeps those
    # that differ from the defaults, over the file's.
    q = RunnerPolicy(config_path=path, max_output_kb=1)
    assert (q.timeout_seconds, q.max_output_kb) == (3, 1)
    assert dataclasses.replace(p, timeout_seconds=1).timeout_seconds == 1
    r = run_code("import json", local_engine, policy=p)
    assert r.error == "ImportError: Import 'json' is blocked by policy"


def test_invalid_policy_values_are_refused_at_run_time(engine):
    for policy, field in [(RunnerPolicy(memory_limit_mb=0), "memory_limit_mb"),
                          (RunnerPolicy(timeout_seconds=-1), "timeout_seconds"),
                          (RunnerPolicy(max_processes=1), "max_processes"),
                          (RunnerPolicy(blocked_imports="os"), "blocked_imports")]:
        with pytest.raises(ValueError, match=field):
            run_code("result = 1", engine, policy=policy)


# ---- run_code's errors (API reference §4.1) ----------------------------------------------

def test_engine_is_required():
    with pytest.raises(TypeError, match=r"^run_code\(\) missing 1 required positional "
                                        r"argument: 'engine'$"):
        run_code("result = 1")  # noqa
    with pytest.raises(TypeError, match="needs an engine"):
        run_code("result = 1", None)
    with pytest.raises(TypeError, match="execute"):
        run_code("result = 1", object())


def test_policy_and_policy_file_together(tmp_path, engine):
    path = write(tmp_path / "p.toml", "[policy]\n")
    with pytest.raises(ValueError, match=r"^Provide either 'policy' or 'policy_file', "
                                         r"not both$"):
        run_code("result = 1", engine, policy=RunnerPolicy(), policy_file=path)


def test_unserialisable_input_is_a_typeerror(engine):
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_code("result = 1", engine, input_data={"x": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        run_code("result = 1", engine, policy=RunnerPolicy(extra_globals={"x": object()}))


# ---- results: the strings of the API reference §4.2, per SPEC §3 ---------------------

def test_results_are_real_python_values(engine):
    r = run_code("print('hi')\nresult = {'n': 2**80, 't': (1, 2.5), 's': {3}, 'none': None, "
                 "'u': 'é'}", engine)
    assert isinstance(r, RunnerResult)
    assert r.ok and r.exit_code == 0 and r.error is None
    assert r.result == {"n": 2**80, "t": [1, 2.5], "s": "{3}", "none": None, "u": "é"}
    assert r.stdout == "hi\n" and r.stderr == ""
    assert r.stdout_truncated is False and r.timed_out is False
    assert isinstance(r.duration_ms, int) and isinstance(r.memory_peak_kb, int)
    assert r.isolation["engine"] == ("docker" if isinstance(engine, DockerEngine) else "local")
    assert [f.name for f in dataclasses.fields(RunnerResult)][:8] == [
        "ok", "result", "stdout", "stderr", "timed_out", "resource_exceeded", "error",
        "exit_code"]


@pytest.mark.parametrize("code, error, exit_code", [
    ("import os", "ImportError: Import 'os' is blocked by policy", 1),
    ("import os.path", "ImportError: Import 'os.path' is blocked by policy", 1),
    ("from os import path", "ImportError: Import 'os' is blocked by policy", 1),
    ("import importlib", "ImportError: Import 'importlib' is blocked by policy", 1),
    ("eval('1')", "NameError: name 'eval' is not defined", 1),
    ("1/0", "ZeroDivisionError: division by zero", 1),
    ("import sys\nsys.exit(3)", "SystemExit: 3", 3),
    # The reference's exit status was cut to 8 bits (44); spr keeps n (SPEC §3;
    # spr-run exits 1 for it).
    ("import sys\nsys.exit(300)", "SystemExit: 300", 300),
])
def test_error_strings(engine, code, error, exit_code):
    r = run_code(code, engine)
    assert (r.ok, r.error, r.exit_code) == (False, error, exit_code), r
    if not code.startswith("import sys"):
        assert "Traceback" in r.stderr, r


def test_syntax_error(engine):
    r = run_code("print((1, 2)", engine)
    assert (r.ok, r.exit_code) == (False, 1)
    assert r.error == "SyntaxError: '(' was never closed (<user_code>, line 1)"


def test_system_exit_with_a_message(engine):
    r = run_code("import sys\nsys.exit('bye')", engine)
    assert (r.ok, r.exit_code, r.error) == (False, 1, "SystemExit: bye")
    assert "bye\n" in r.stderr


def test_allow_mode(engine):
    policy = RunnerPolicy(mode="allow", allowed_imports=["math", "importlib"],
                          allowed_builtins=["print"])
    r = run_code("import json", engine, policy=policy)
    assert r.error == "ImportError: Import 'json' is not allowed by policy"
    r = run_code("import importlib", engine, policy=policy)
    assert r.error == "ImportError: Import 'importlib' is blocked by policy"
    r = run_code("len([])", engine, policy=policy)
    assert r.error == "NameError: name 'len' is not defined"


def test_timeout_formats_the_policys_value(engine):
    # The reference rounded 0.5 s up to a 1 s timeout ("after 1s"); spr
    # honours fractions and says so (SPEC §7).
    r = run_code("while True:\n    pass", engine, policy=RunnerPolicy(timeout_seconds=0.5))
    assert (r.ok, r.timed_out, r.exit_code) == (False, True, 124)
    assert r.error == "Execution timed out after 0.5s"


def test_memory_limit_sets_resource_exceeded(engine):
    # The reference reported "MemoryError: " with resource_exceeded False.
    r = run_code("x = bytearray(200 * 1024 * 1024)", engine,
                 policy=RunnerPolicy(memory_limit_mb=64))
    assert (r.ok, r.resource_exceeded, r.exit_code, r.error) == \
        (False, True, 137, "Memory limit exceeded"), r


def test_output_cap_counts_bytes_and_says_so(engine):
    r = run_code("print('é' * 5000)", engine, policy=RunnerPolicy(max_output_kb=1))
    assert r.ok and r.stdout_truncated
    assert len(r.stdout.encode()) <= 1024 and set(r.stdout) == {"é"}


def test_input_data_and_extra_globals(engine):
    policy = RunnerPolicy(extra_globals={"helper": 10}, blocked_globals=["secret"])
    r = run_code("result = (x + helper, 'secret' in globals(), input_data['secret'], __name__)",
                 engine, input_data={"x": 5, "secret": 1}, policy=policy)
    assert r.result == [15, False, 1, "__main__"]


def test_spr_policy_fields(engine):
    r = run_code("import socket\ns = socket.socket()\ntry:\n    s.connect(('1.1.1.1', 53))\n"
                 "    result = 'connected'\nexcept OSError as e:\n    result = 'refused'",
                 engine, policy=RunnerPolicy(blocked_imports=[], env={"GREETING": "hi"}))
    assert r.result == "refused", r
    r = run_code("import os\nresult = os.environ['GREETING']", engine,
                 policy=RunnerPolicy(blocked_imports=[], env={"GREETING": "hi"}))
    assert r.result == "hi", r


def test_preload_imports(engine):
    # Imported before the request; refused with the fix when the policy
    # blocks what it pulls in; a bad name is the policy's ValueError.
    r = run_code("import sys\nresult = 'tomllib' in sys.modules", engine,
                 policy=RunnerPolicy(blocked_imports=[], preload_imports=["tomllib"]))
    assert r.ok and r.result is True, r
    r = run_code("import sys\nresult = 'tomllib' in sys.modules", engine,
                 policy=RunnerPolicy(blocked_imports=[]))
    assert r.ok and r.result is False, r
    r = run_code("print('ran')", engine, policy=RunnerPolicy(preload_imports=["os"]))
    assert (r.ok, r.exit_code, r.stdout) == (False, 1, ""), r
    assert r.error == ("preload_imports: 'os' is blocked by blocked_imports: remove 'os' from "
                       "blocked_imports or 'os' from preload_imports"), r
    assert "preload_imports=['os']" in repr(RunnerPolicy(preload_imports=["os"]))
    with pytest.raises(ValueError, match=r"'preload_imports': 'a\.\.b' is not a module name"):
        run_code("result = 1", engine, policy=RunnerPolicy(preload_imports=["a..b"]))


# ---- LocalEngine options ---------------------------------------------------------------

def test_local_engine_option_errors(tmp_path, monkeypatch):
    for empty in ("", "   "):
        with pytest.raises(ValueError, match=r"^LocalEngine requires a non-empty 'venv_dir'$"):
            LocalEngine(venv_dir=empty)
    with pytest.raises(TypeError):
        LocalEngine()  # the reference's required keyword
    with pytest.raises(ValueError, match=r"^Package specs must be pinned as 'name==version'\. "
                                         r"Invalid package: pandas$"):
        LocalEngine(venv_dir=str(tmp_path / "v"), packages=["pandas"])
    assert not (tmp_path / "v").exists()  # checked before anything is made
    with pytest.raises(ValueError, match=r"^venv_manager must be either 'uv' or 'python'"):
        LocalEngine(venv_dir=str(tmp_path / "v"), venv_manager="conda")
    with pytest.raises(ValueError, match="pool_size must be between -1"):
        spr.LocalEngine(pool_size=9)
    # Explicitly "uv" without uv: libspr's message (the reference raised a bare
    # FileNotFoundError for 'uv'); still a FileNotFoundError.
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with pytest.raises(FileNotFoundError, match="venv_manager='python'"):
        LocalEngine(venv_dir=str(tmp_path / "v"), venv_manager="uv")


def test_spr_local_engine_options():
    with spr.LocalEngine(pool_size=spr.NO_POOL, allow_degraded=True,
                         uid_range="1879048192:65536", python=sys.executable) as engine:
        r = run_code("import sys\nresult = sys.version_info[:2]", engine)
        assert r.ok and r.result == list(sys.version_info[:2]), r
        assert isinstance(engine.doctor()["problems"], list)
    for kwargs, exc, text in [
            ({"uid_range": "bogus"}, ValueError, "uid_range"),
            ({"cgroup_parent": "../x"}, ValueError, "cgroup_parent '../x' must be a relative"),
            ({"python": "/nonexistent/python3"}, RuntimeError, "/nonexistent/python3")]:
        with pytest.raises(exc, match=re.escape(text)) as info:
            spr.LocalEngine(**kwargs)
        assert isinstance(info.value, spr.SprError)


def test_venv_manager_defaults_to_python_without_uv(tmp_path, monkeypatch):
    from safe_py_runner.execution.local_engine import default_venv_manager
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    assert default_venv_manager() == "python"
    (empty_bin / "uv").write_text("#!/bin/sh\n")
    (empty_bin / "uv").chmod(0o755)
    assert default_venv_manager() == "uv"


def test_a_failed_venv_build_raises_runtimeerror(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    venv = tmp_path / "env"
    with pytest.raises(RuntimeError, match="building the venv") as info:
        LocalEngine(venv_dir=str(venv), venv_manager="python", packages=["absent-pkg==1.0"],
                    pip_find_links=str(wheels), pip_no_index=True)
    assert "absent-pkg" in str(info.value)
    assert not venv.exists()  # left as it was


def test_engine_lifecycle(tmp_path):
    def sandbox_children():
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                if int(fields[1]) == os.getpid() and comm.startswith("spr-sandbox"):
                    found.append(int(pid))
        return found

    before = sandbox_children()
    with spr.LocalEngine() as engine:
        assert run_code("result = 1", engine).result == 1
        assert set(sandbox_children()) - set(before), "the warm pool's server"
    assert engine.closed
    assert set(sandbox_children()) - set(before) == set(), "close() frees the pool"
    with pytest.raises(RuntimeError, match="closed"):
        run_code("result = 1", engine)
    engine.close()  # idempotent


# ---- engines the reference's way --------------------------------------------------------

def test_foreign_engine_is_mapped_as_the_reference_did():
    from safe_py_runner.execution import ExecutionOutcome

    class Echo:
        def __init__(self, outcome):
            self.outcome, self.requests = outcome, []

        def execute(self, request):
            self.requests.append(request)
            return self.outcome

    e = Echo(ExecutionOutcome(stdout=json.dumps({"ok": True, "result": 7, "stdout": "o"}),
                              stderr="", returncode=0, timed_out=False))
    r = run_code("result = 7", e, input_data={"a": 1}, policy=RunnerPolicy(timeout_seconds=0.5))
    assert (r.ok, r.result, r.stdout, r.exit_code) == (True, 7, "o", 0)
    req = e.requests[0]
    assert req.timeout_seconds == 1 and req.payload["input_data"] == {"a": 1}
    assert set(req.payload["policy"]) == {"mode", "timeout_seconds", "memory_limit_mb",
                                          "max_output_kb", "allowed_imports", "blocked_imports",
                                          "allowed_builtins", "blocked_builtins",
                                          "allowed_globals", "blocked_globals", "extra_globals"}
    bad = run_code("x", Echo(ExecutionOutcome("not json", "err", 1, False)))
    assert (bad.ok, bad.error, bad.stderr) == (False, "Runner returned invalid JSON", "err")
    # What the code may print instead (tests/fuzz/fuzz_python_decode.py):
    # JSON that is not an object, an error that is not a string.
    for text in ("6", "[1, {\"ok\": true}]", "null", "\"ok\"", "[" * 5000):
        bad = run_code("x", Echo(ExecutionOutcome(text, "err", 1, False)))
        assert (bad.ok, bad.error) == (False, "Runner returned invalid JSON"), text[:20]
    odd = run_code("x", Echo(ExecutionOutcome('{"ok": true, "error": {"e": [1]}, "stdout": 5}',
                                              "", 0, False)))
    assert (odd.ok, odd.error, odd.stdout) == (True, '{"e": [1]}', "5")
    slow = run_code("x", Echo(ExecutionOutcome("", "", 124, True)),
                    policy=RunnerPolicy(timeout_seconds=2))
    assert (slow.timed_out, slow.exit_code, slow.error) == \
        (True, 124, "Execution timed out after 2s")


def test_execute_speaks_the_reference_protocol(engine):
    from safe_py_runner.execution import ExecutionOutcome, ExecutionRequest
    out = engine.execute(ExecutionRequest(
        payload={"code": "print('x')\nresult = y * 2", "input_data": {"y": 21},
                 "policy": {"mode": "restrict", "timeout_seconds": 5}}, timeout_seconds=5))
    assert isinstance(out, ExecutionOutcome)
    assert (out.returncode, out.timed_out) == (0, False)
    worker = json.loads(out.stdout)
    assert worker == {"ok": True, "result": 42, "stdout": "x\n", "stderr": "",
                      "timed_out": False, "resource_exceeded": False, "error": None}
