"""Tests of worker/spr_worker.py, run directly (no sandbox).

Each test spawns the worker as the engines do:
    <python> -I -S -B -u -X utf8 worker/spr_worker.py
with the request on stdin and fd 3 a pipe, and checks the result message
(docs/WORKER_PROTOCOL.md), stdout, stderr and the exit status.

The interpreter under test: $SPR_TEST_WORKER_PYTHON, else /usr/bin/python3
when it exists, else the one running the tests. $SPR_TEST_WORKER names
another worker file to run (e.g. a precompiled spr_worker.pyc).

    python3 -m unittest discover -s tests/worker -t .
"""

import errno
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_SOURCE = os.path.join(ROOT, "worker", "spr_worker.py")
WORKER = os.environ.get("SPR_TEST_WORKER") or WORKER_SOURCE


def worker_python():
    python = os.environ.get("SPR_TEST_WORKER_PYTHON")
    if python:
        return python
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    return sys.executable


# Results may hold integers of any size (10 ** 5000 round-trips).
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)

PYTHON = worker_python()
PYTHON_VERSION = tuple(
    int(x)
    for x in subprocess.run(
        [PYTHON, "-I", "-S", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
        stdout=subprocess.PIPE,
        check=True,
    ).stdout.split()
)

DEFAULT_POLICY = {
    "mode": "restrict",
    "blocked_imports": ["os", "subprocess", "socket", "ctypes", "importlib"],
    "blocked_builtins": ["eval", "exec", "open", "compile", "breakpoint"],
    "allowed_imports": [],
    "allowed_builtins": [],
    "allowed_globals": [],
    "blocked_globals": [],
    "extra_globals": {},
}
# Boundary-style tests need os/subprocess: a permissive restrict policy.
OPEN_POLICY = dict(DEFAULT_POLICY, blocked_imports=[], blocked_builtins=[])

_ABSENT = object()


def allow_policy(**fields):
    policy = dict(DEFAULT_POLICY, mode="allow")
    policy.update(fields)
    return policy


def strict_json(text):
    """json.loads that refuses NaN/Infinity literals (the value must be strict)."""

    def refuse(name):
        raise ValueError(f"non-strict literal {name}")

    return json.loads(text, parse_constant=refuse)


class Run:
    """What one worker run produced."""

    def __init__(self, message, stdout, stderr, status):
        self.message = message
        header, sep, value = message.partition(b"\n")
        if not sep:
            raise AssertionError(f"no header line in fd 3 message {message!r}")
        header.decode("ascii")  # must be ASCII
        value.decode("ascii")
        self.header = strict_json(header)
        self.value_text = value.decode("ascii")
        self.value = strict_json(self.value_text)
        self.stdout = stdout.decode("utf-8", "replace")
        self.stderr = stderr.decode("utf-8", "replace")
        self.status = status

    @property
    def kind(self):
        return self.header["kind"]

    @property
    def error(self):
        return self.header["error"]

    def __repr__(self):
        return (
            f"Run(header={self.header!r}, value={self.value_text[:200]!r}, "
            f"stdout={self.stdout[:500]!r}, stderr={self.stderr[:2000]!r}, "
            f"status={self.status})"
        )


def run_worker_raw(request_bytes, merge_stderr=False, timeout=120, argv=None, env=None):
    """Runs the worker (or argv) on raw request bytes; returns a Run."""
    rfd, wfd = os.pipe()

    def put_result_fd_on_3():
        if wfd == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(wfd, 3)  # the new fd 3 is inheritable

    try:
        proc = subprocess.Popen(
            argv or [PYTHON, "-I", "-S", "-B", "-u", "-X", "utf8", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            preexec_fn=put_result_fd_on_3,
            close_fds=False,  # os.pipe() fds are close-on-exec; fd 3 is not
            env=env,
        )
    finally:
        os.close(wfd)
    chunks = []

    def drain():
        while True:
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        stdout, stderr = proc.communicate(request_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        reader.join()
        os.close(rfd)
    return Run(b"".join(chunks), stdout, stderr or b"", proc.returncode)


def make_request(code, input_data=_ABSENT, policy=None, sys_path=None, **extra):
    request = {"code": code, "policy": DEFAULT_POLICY if policy is None else policy}
    if input_data is not _ABSENT:
        request["input_data"] = input_data
    if sys_path is not None:
        request["sys_path"] = sys_path
    request.update(extra)
    return request


def run_worker(code, input_data=_ABSENT, policy=None, merge_stderr=False, **extra):
    request = make_request(code, input_data, policy, **extra)
    return run_worker_raw(json.dumps(request).encode("utf-8"), merge_stderr=merge_stderr)


class WorkerTestCase(unittest.TestCase):
    maxDiff = None

    def assertOk(self, run, value=_ABSENT):
        self.assertEqual(
            run.header,
            {"ok": True, "exit_code": 0, "error": None, "kind": "ok"},
            run,
        )
        self.assertEqual(run.status, 0, run)
        if value is not _ABSENT:
            self.assertEqual(run.value, value, run)

    def assertOutcome(self, run, kind, ok, exit_code, error, status=None):
        self.assertEqual(
            run.header,
            {"ok": ok, "exit_code": exit_code, "error": error, "kind": kind},
            run,
        )
        if status is None:
            status = exit_code if 0 <= exit_code <= 255 else 1
        self.assertEqual(run.status, status, run)

    def assertFailed(self, run, kind, error):
        self.assertOutcome(run, kind, False, 1, error)
        self.assertIsNone(run.value, run)

    def result_of(self, code, **kw):
        run = run_worker(code, **kw)
        self.assertOk(run)
        return run.value


# ---- protocol table ---------------------------------------------------------


class ProtocolTableTest(WorkerTestCase):
    def test_ok(self):
        run = run_worker("result = 1 + 1")
        self.assertOk(run, 2)
        self.assertEqual(run.message, b'{"ok":true,"exit_code":0,"error":null,"kind":"ok"}\n2')
        self.assertEqual(run.stdout, "")
        self.assertEqual(run.stderr, "")

    def test_result_defaults_to_null(self):
        run = run_worker("x = 1")
        self.assertOk(run, None)
        self.assertEqual(run.value_text, "null")

    def test_deleted_result_is_null(self):
        self.assertIsNone(self.result_of("del result"))

    def test_system_exit_none(self):
        run = run_worker("import sys\nresult = 5\nsys.exit()")
        self.assertOutcome(run, "system_exit", True, 0, None)
        self.assertEqual(run.value, 5)

    def test_system_exit_zero(self):
        run = run_worker("import sys\nresult = 'kept'\nsys.exit(0)")
        self.assertOutcome(run, "system_exit", True, 0, None)
        self.assertEqual(run.value, "kept")

    def test_system_exit_false(self):
        run = run_worker("import sys\nsys.exit(False)")
        self.assertOutcome(run, "system_exit", True, 0, None)

    def test_system_exit_int(self):
        run = run_worker("import sys\nresult = {'a': 1}\nprint('out')\nsys.exit(2)")
        self.assertOutcome(run, "system_exit", False, 2, "SystemExit: 2")
        self.assertEqual(run.value, {"a": 1})  # result kept on SystemExit
        self.assertEqual(run.stdout, "out\n")
        self.assertEqual(run.stderr, "")

    def test_system_exit_true(self):
        run = run_worker("import sys\nsys.exit(True)")
        self.assertOutcome(run, "system_exit", False, 1, "SystemExit: True")

    def test_system_exit_string(self):
        run = run_worker("import sys\nresult = 3\nsys.exit('bye now')")
        self.assertOutcome(run, "system_exit", False, 1, "SystemExit: bye now")
        self.assertEqual(run.stderr, "bye now\n")
        self.assertEqual(run.value, 3)

    def test_system_exit_other_value(self):
        run = run_worker("raise SystemExit([1, 2])")
        self.assertOutcome(run, "system_exit", False, 1, "SystemExit: [1, 2]")
        self.assertEqual(run.stderr, "[1, 2]\n")

    def test_system_exit_out_of_range(self):
        run = run_worker("import sys\nsys.exit(300)")
        self.assertOutcome(run, "system_exit", False, 300, "SystemExit: 300", status=1)
        run = run_worker("import sys\nsys.exit(-1)")
        self.assertOutcome(run, "system_exit", False, -1, "SystemExit: -1", status=1)

    def test_system_exit_int_subclass(self):
        code = "import enum, sys\nclass Code(enum.IntEnum):\n    BAD = 3\nsys.exit(Code.BAD)"
        run = run_worker(code)
        self.assertEqual(run.header["exit_code"], 3, run)
        self.assertEqual(run.status, 3, run)
        self.assertTrue(run.error.startswith("SystemExit: "), run)

    def test_system_exit_255(self):
        run = run_worker("raise SystemExit(255)")
        self.assertOutcome(run, "system_exit", False, 255, "SystemExit: 255")

    def test_system_exit_from_function(self):
        run = run_worker("def f():\n    raise SystemExit(3)\nf()")
        self.assertOutcome(run, "system_exit", False, 3, "SystemExit: 3")

    def test_exit_builtin(self):
        run = run_worker("result = 1\nexit(4)")
        self.assertOutcome(run, "system_exit", False, 4, "SystemExit: 4")
        self.assertEqual(run.value, 1)
        run = run_worker("quit()")
        self.assertOutcome(run, "system_exit", True, 0, None)

    def test_exception(self):
        run = run_worker("print('before')\nraise ValueError('bad value')")
        self.assertFailed(run, "exception", "ValueError: bad value")
        self.assertEqual(run.stdout, "before\n")
        self.assertIn("Traceback (most recent call last):", run.stderr)
        self.assertIn('File "<user_code>", line 2, in <module>', run.stderr)
        self.assertIn("raise ValueError('bad value')", run.stderr)
        self.assertTrue(run.stderr.endswith("ValueError: bad value\n"), run)

    def test_exception_result_is_null(self):
        run = run_worker("result = 5\nraise RuntimeError('x')")
        self.assertFailed(run, "exception", "RuntimeError: x")

    def test_syntax_error(self):
        run = run_worker("result = = 1")
        self.assertFailed(run, "syntax_error", "SyntaxError: invalid syntax (<user_code>, line 1)")
        self.assertIn('File "<user_code>", line 1', run.stderr)
        self.assertIn("result = = 1", run.stderr)
        self.assertTrue(run.stderr.endswith("SyntaxError: invalid syntax\n"), run)
        self.assertEqual(run.stdout, "")

    def test_syntax_error_line_number(self):
        run = run_worker("x = 1\ny = 2\nz = = 3\n")
        self.assertFailed(run, "syntax_error", "SyntaxError: invalid syntax (<user_code>, line 3)")

    def test_memory_error_raised(self):
        run = run_worker("print('partial')\nraise MemoryError")
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")
        self.assertIsNone(run.value)
        self.assertEqual(run.stdout, "partial\n")
        self.assertIn("MemoryError", run.stderr)

    def test_memory_error_real(self):
        run = run_worker("result = 1\nb = bytearray(1 << 60)")
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")
        self.assertIsNone(run.value)
        self.assertIn("bytearray(1 << 60)", run.stderr)

    def test_result_error(self):
        run = run_worker("print('kept')\nresult = []\nresult.append(result)")
        self.assertFailed(run, "result_error", "ResultError: Circular reference detected")
        self.assertEqual(run.stdout, "kept\n")

    def test_worker_error(self):
        run = run_worker_raw(b"{not json")
        self.assertFailed(run, "worker_error", run.error)
        self.assertTrue(run.error.startswith("WorkerError: request is not valid JSON"), run)


# ---- result conversion (SPEC §1) --------------------------------------------------


class ResultConversionTest(WorkerTestCase):
    def test_scalars(self):
        self.assertEqual(self.result_of("result = 42"), 42)
        self.assertEqual(self.result_of("result = -1.5"), -1.5)
        self.assertEqual(self.result_of("result = 'hello'"), "hello")
        self.assertIs(self.result_of("result = True"), True)
        self.assertIs(self.result_of("result = False"), False)
        self.assertIsNone(self.result_of("result = None"))

    def test_float_repr_exact(self):
        run = run_worker("result = 0.1 + 0.2")
        self.assertEqual(run.value_text, "0.30000000000000004")

    def test_unicode_is_escaped(self):
        run = run_worker("result = 'h\\u00e9llo \\u20ac \\U0001F600'")
        self.assertOk(run, "h\u00e9llo \u20ac \U0001F600")
        self.assertEqual(run.value_text, '"h\\u00e9llo \\u20ac \\ud83d\\ude00"')

    def test_lone_surrogate_becomes_replacement_char(self):
        # SPEC §7: the host accepts only valid Unicode in the value.
        run = run_worker("result = 'a\\ud800b'")
        self.assertOk(run, "a\ufffdb")
        self.assertEqual(run.value_text, '"a\\ufffdb"')
        code = (
            "class P:\n    def __str__(self):\n        return '\\udc80x'\n"
            "result = {'k\\udfff': ['\\ud800', P(), '\\u00e9\\udbff'], P(): 1}"
        )
        run = run_worker(code)
        self.assertOk(run, {"k\ufffd": ["\ufffd", "\ufffdx", "\u00e9\ufffd"], "\ufffdx": 1})

    def test_surrogate_pair_code_points_join(self):
        run = run_worker("result = '\\ud83d\\ude00' + chr(0xd83d) + chr(0xde00)")
        self.assertOk(run, "\U0001F600\U0001F600")

    def test_containers(self):
        self.assertEqual(self.result_of("result = [1, 'a', None]"), [1, "a", None])
        self.assertEqual(self.result_of("result = {'a': [1, {'b': 2}]}"), {"a": [1, {"b": 2}]})
        self.assertEqual(self.result_of("result = (1, (2, 3))"), [1, [2, 3]])
        self.assertEqual(self.result_of("result = []"), [])
        self.assertEqual(self.result_of("result = {}"), {})

    def test_dict_order_kept(self):
        run = run_worker("result = {'b': 1, 'a': 2}")
        self.assertEqual(run.value_text, '{"b":1,"a":2}')

    def test_set_and_bytes_become_str(self):
        self.assertEqual(self.result_of("result = {1}"), "{1}")
        self.assertEqual(self.result_of("result = frozenset()"), "frozenset()")
        self.assertEqual(self.result_of("result = b'ab'"), "b'ab'")
        self.assertEqual(self.result_of("result = bytearray(b'x')"), "bytearray(b'x')")

    def test_date_becomes_str(self):
        code = "import datetime\nresult = [datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5)]"
        self.assertEqual(self.result_of(code), ["2024-01-02", "2024-01-02 03:04:05"])

    def test_objects_become_str(self):
        code = "class P:\n    def __str__(self):\n        return 'P!'\nresult = {'p': P(), 'l': [P()]}"
        self.assertEqual(self.result_of(code), {"p": "P!", "l": ["P!"]})
        value = self.result_of("result = (x for x in [])")
        self.assertTrue(value.startswith("<generator object"), value)
        self.assertEqual(self.result_of("result = 1j"), "1j")
        self.assertEqual(self.result_of("result = range(3)"), "range(0, 3)")

    def test_subclasses(self):
        code = (
            "import collections, enum\n"
            "class S(str): pass\n"
            "class I(int): pass\n"
            "class F(float): pass\n"
            "class E(enum.IntEnum):\n    A = 7\n"
            "class L(list): pass\n"
            "result = [S('s'), I(3), F(1.5), E.A, L([1]), collections.OrderedDict(a=1),"
            " collections.defaultdict(int, b=2), collections.namedtuple('T', 'x y')(1, 2)]"
        )
        run = run_worker(code)
        self.assertOk(run, ["s", 3, 1.5, 7, [1], {"a": 1}, {"b": 2}, [1, 2]])
        self.assertEqual(run.value_text, '["s",3,1.5,7,[1],{"a":1},{"b":2},[1,2]]')

    def test_subclass_overrides_ignored(self):
        # As json.dumps: the value, not what __str__/__int__/__float__ say.
        code = (
            "class S(str):\n    def __str__(self):\n        return 'other'\n"
            "class I(int):\n    def __int__(self):\n        return 0\n    def __repr__(self):\n        return 'x'\n"
            "class F(float):\n    def __float__(self):\n        return 0.0\n"
            "result = {S('k'): [S('s'), I(5), F(2.5), F('nan')], I(3): 1}"
        )
        self.assertEqual(self.result_of(code), {"k": ["s", 5, 2.5, "NaN"], "3": 1})

    def test_big_int_exact(self):
        run = run_worker("result = 2 ** 100")
        self.assertOk(run, 2**100)
        self.assertEqual(run.value_text, str(2**100))

    def test_huge_int_result(self):
        run = run_worker("result = 10 ** 5000")
        self.assertOk(run)
        self.assertEqual(run.value_text, "1" + "0" * 5000)

    def test_non_finite_floats(self):
        run = run_worker("result = [float('nan'), float('inf'), -float('inf'), {'x': float('nan')}]")
        self.assertOk(run, ["NaN", "Infinity", "-Infinity", {"x": "NaN"}])
        run = run_worker("result = float('inf')")
        self.assertOk(run, "Infinity")

    def test_non_string_keys(self):
        code = "result = {True: 1, False: 2, None: 3, 1.5: 4, 2: 5, (1, 2): 6, float('nan'): 7, float('inf'): 8}"
        self.assertEqual(
            self.result_of(code),
            {"true": 1, "false": 2, "null": 3, "1.5": 4, "2": 5, "(1, 2)": 6, "NaN": 7, "Infinity": 8},
        )

    def test_int_enum_key_like_json(self):
        code = "import enum\nclass E(enum.IntEnum):\n    A = 7\nresult = {E.A: 1}"
        self.assertEqual(self.result_of(code), {"7": 1})

    def test_key_collision_later_wins(self):
        run = run_worker("result = {1: 'int', '1': 'str'}")
        self.assertOk(run, {"1": "str"})
        self.assertEqual(run.value_text, '{"1":"str"}')
        self.assertEqual(self.result_of("result = {'true': 'a', True: 'b'}"), {"true": "b"})
        run = run_worker("result = {1.5: 'float', '1.5': 'str', 2: 'int', 2.0: 'x'}")
        self.assertEqual(run.value_text, '{"1.5":"str","2":"x"}')
        run = run_worker("result = {float('nan'): 1, 'NaN': 2, (1,): 3, '(1,)': 4}")
        self.assertEqual(run.value_text, '{"NaN":2,"(1,)":4}')

    def test_nested(self):
        code = "result = {'a': [(1, {2}), {'b': {None: [1.0, b'x']}}]}"
        self.assertEqual(self.result_of(code), {"a": [[1, "{2}"], {"b": {"null": [1.0, "b'x'"]}}]})

    def test_shared_reference_is_not_circular(self):
        self.assertEqual(self.result_of("a = [1]\nresult = [a, a, {'k': a}]"), [[1], [1], {"k": [1]}])

    def test_circular_dict(self):
        run = run_worker("result = {}\nresult['self'] = [result]")
        self.assertFailed(run, "result_error", "ResultError: Circular reference detected")

    def test_conversion_exception(self):
        code = (
            "class Bad:\n"
            "    def __str__(self):\n"
            "        raise RuntimeError('no str for you')\n"
            "result = [Bad()]"
        )
        run = run_worker(code)
        self.assertFailed(run, "result_error", "ResultError: RuntimeError: no str for you")
        self.assertIn('File "<user_code>", line 3, in __str__', run.stderr)

    def test_conversion_memory_error(self):
        code = "class Bad:\n    def __str__(self):\n        raise MemoryError\nresult = Bad()"
        run = run_worker(code)
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")
        self.assertIsNone(run.value)

    def test_too_deep(self):
        run = run_worker("result = 0\nfor _ in range(513):\n    result = [result]")
        self.assertFailed(run, "result_error", "ResultError: Result nested too deeply (more than 512 levels)")
        run = run_worker("result = 0\nfor _ in range(513):\n    result = {'k': (result,)}")
        self.assertFailed(run, "result_error", "ResultError: Result nested too deeply (more than 512 levels)")

    def test_deep_but_allowed(self):
        run = run_worker("result = 0\nfor _ in range(512):\n    result = [result]")
        self.assertOk(run)
        self.assertEqual(run.value_text, "[" * 512 + "0" + "]" * 512)

    def test_result_error_after_nonzero_exit(self):
        run = run_worker("import sys\nresult = []\nresult.append(result)\nsys.exit(3)")
        self.assertOutcome(run, "system_exit", False, 3, "SystemExit: 3")
        self.assertIsNone(run.value)
        self.assertIn("ResultError: Circular reference detected", run.stderr)

    def test_result_error_after_zero_exit(self):
        run = run_worker("import sys\nresult = []\nresult.append(result)\nsys.exit(0)")
        self.assertFailed(run, "result_error", "ResultError: Circular reference detected")

    def test_large_result(self):
        run = run_worker("result = list(range(200000))")
        self.assertOk(run)
        self.assertEqual(run.value, list(range(200000)))


# ---- globals (SPEC §1) ----------------------------------------------------------


class GlobalsTest(WorkerTestCase):
    def test_input_data_injected(self):
        self.assertEqual(self.result_of("result = x + 1", input_data={"x": 41}), 42)
        self.assertEqual(
            self.result_of("result = input_data", input_data={"x": 1, "y": [2]}),
            {"x": 1, "y": [2]},
        )

    def test_absent_input_data(self):
        self.assertEqual(self.result_of("result = input_data"), {})

    def test_null_input_data(self):
        self.assertIsNone(self.result_of("result = input_data", input_data=None))

    def test_non_dict_input_data(self):
        code = "result = [input_data, sorted(k for k in globals() if not k.startswith('__'))]"
        self.assertEqual(self.result_of(code, input_data=[1, 2]), [[1, 2], ["input_data", "result"]])
        self.assertEqual(self.result_of("result = input_data", input_data="s"), "s")

    def test_reserved_names_not_injected(self):
        code = "r0 = result\nresult = [r0, input_data['result'], type(input_data).__name__, print is not None]"
        data = {"result": 5, "input_data": 6, "__builtins__": 7}
        self.assertEqual(self.result_of(code, input_data=data), [None, 5, "dict", True])

    def test_underscore_and_non_identifier_keys(self):
        code = "result = sorted(k for k in globals() if k not in ('__builtins__', '__name__', '__doc__', '__package__', '__loader__', '__spec__'))"
        data = {"_x": 1, "__y": 2, "a-b": 3, "1a": 4, "ok": 5, "": 6, "\u00e9t\u00e9": 7}
        self.assertEqual(self.result_of(code, input_data=data), ["input_data", "ok", "result", "\u00e9t\u00e9"])

    def test_blocked_globals_restrict(self):
        policy = dict(DEFAULT_POLICY, blocked_globals=["x"])
        code = "result = ['x' in globals(), y, input_data['x']]"
        self.assertEqual(self.result_of(code, input_data={"x": 1, "y": 2}, policy=policy), [False, 2, 1])

    def test_allowed_globals_allow(self):
        policy = allow_policy(allowed_globals=["x"], allowed_builtins=["globals"])
        code = "result = ['x' in globals(), 'y' in globals(), input_data]"
        self.assertEqual(
            self.result_of(code, input_data={"x": 1, "y": 2}, policy=policy),
            [True, False, {"x": 1, "y": 2}],
        )

    def test_extra_globals(self):
        policy = dict(DEFAULT_POLICY, extra_globals={"limit": 10, "names": ["a"]})
        self.assertEqual(self.result_of("result = [limit, names]", policy=policy), [10, ["a"]])

    def test_extra_globals_never_overwrite_reserved(self):
        extra = {"input_data": "bad", "result": "bad", "__builtins__": {}, "__name__": "bad", "z": 1}
        policy = dict(DEFAULT_POLICY, extra_globals=extra)
        code = "r0 = result\nresult = [r0, input_data, __name__, len([1, 2]), z]"
        self.assertEqual(self.result_of(code, input_data={"q": 1}, policy=policy), [None, {"q": 1}, "__main__", 2, 1])

    def test_extra_globals_win_over_input_keys(self):
        policy = dict(DEFAULT_POLICY, extra_globals={"x": "extra"})
        self.assertEqual(self.result_of("result = [x, y]", input_data={"x": "input", "y": 2}, policy=policy), ["extra", 2])

    def test_extra_globals_filtered_restrict(self):
        policy = dict(DEFAULT_POLICY, extra_globals={"a": 1, "b": 2}, blocked_globals=["a"])
        self.assertEqual(self.result_of("result = ['a' in globals(), b]", policy=policy), [False, 2])

    def test_extra_globals_filtered_allow(self):
        policy = allow_policy(extra_globals={"a": 1, "b": 2}, allowed_globals=["b"], allowed_builtins=["globals"])
        self.assertEqual(self.result_of("result = ['a' in globals(), b]", policy=policy), [False, 2])

    def test_name_is_main(self):
        self.assertEqual(self.result_of("result = __name__"), "__main__")

    def test_main_module_is_globals(self):
        code = "import sys\nm = sys.modules['__main__']\nresult = [m.__dict__ is globals(), m.__name__, m.result is None]"
        self.assertEqual(self.result_of(code), [True, "__main__", True])

    def test_pickle_user_function(self):
        code = (
            "import pickle\n"
            "def double(x):\n    return 2 * x\n"
            "class Point:\n    def __init__(self, x):\n        self.x = x\n"
            "f = pickle.loads(pickle.dumps(double))\n"
            "p = pickle.loads(pickle.dumps(Point(3)))\n"
            "result = [f is double, f(21), p.x]"
        )
        self.assertEqual(self.result_of(code), [True, 42, 3])

    def test_sys_argv(self):
        self.assertEqual(self.result_of("import sys\nresult = sys.argv"), ["<user_code>"])

    def test_unknown_members_ignored(self):
        run = run_worker("result = 1", future_field={"x": 1})
        self.assertOk(run, 1)

    def test_sys_path(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "spr_test_mod.py"), "w") as f:
                f.write("VALUE = 'from sys_path'\n")
            missing = os.path.join(d, "missing")
            code = f"import sys, spr_test_mod\nresult = [spr_test_mod.VALUE, {d!r} in sys.path, {missing!r} in sys.path]"
            self.assertEqual(self.result_of(code, sys_path=[d, missing]), ["from sys_path", True, False])

    def test_prefix(self):
        """A venv's root from the host becomes sys.prefix (the worker runs
        with -S, so site.venv() does not set it)."""
        code = "import sys\nresult = [sys.prefix, sys.exec_prefix, sys.base_prefix == sys.prefix]"
        self.assertEqual(self.result_of(code, prefix="/opt/venv"), ["/opt/venv", "/opt/venv", False])
        code = "import sys\nresult = sys.prefix == sys.base_prefix"
        self.assertEqual(self.result_of(code), True)

    def test_huge_int_input_round_trips(self):
        digits = "1" + "0" * 5000
        request = json.dumps(make_request("result = [n, n // 10 ** 4999]", input_data={"n": 0}))
        request = request.replace('"n": 0', '"n": ' + digits)
        run = run_worker_raw(request.encode())
        self.assertOk(run)
        self.assertEqual(run.value_text, "[" + digits + ",10]")

    def test_code_still_has_int_digit_limit(self):
        if PYTHON_VERSION < (3, 11):
            self.skipTest("int digit limit is optional before 3.11")
        run = run_worker("result = str(10 ** 5000)")
        self.assertEqual(run.kind, "exception", run)
        self.assertTrue(run.error.startswith("ValueError: Exceeds the limit"), run)

    def test_non_finite_input(self):
        request = json.dumps(make_request("result = [x, y, z, x != x]", input_data={"x": float("nan"), "y": float("inf"), "z": -float("inf")}))
        self.assertIn("NaN", request)
        run = run_worker_raw(request.encode())
        self.assertOk(run, ["NaN", "Infinity", "-Infinity", True])

    def test_unicode_code_and_input(self):
        run = run_worker("result = ['\u00e9\u20ac', s]\nprint('\u00e9\u20ac \U0001F600')", input_data={"s": "\u00fc\U0001F600"})
        self.assertOk(run, ["\u00e9\u20ac", "\u00fc\U0001F600"])
        self.assertEqual(run.stdout, "\u00e9\u20ac \U0001F600\n")

    def test_utf8_bom_dropped(self):
        self.assertEqual(self.result_of("\ufeffresult = '\u00e9'"), "\u00e9")
        run = run_worker("\ufeffx = 1\nraise ValueError('line 2')")
        self.assertIn('File "<user_code>", line 2, in <module>', run.stderr)
        self.assertIn("raise ValueError('line 2')", run.stderr)

    def test_big_code_of_comments(self):
        line = "# " + "x" * 97 + "\n"
        code = line * (10 * 1024 * 1024 // len(line)) + "result = 7\n"
        self.assertGreater(len(code), 10_000_000)
        self.assertEqual(self.result_of(code), 7)


# ---- policy (SPEC §2) -----------------------------------------------------------


class ImportPolicyTest(WorkerTestCase):
    def assertImportError(self, code, message, policy=None):
        run = run_worker(code, policy=policy)
        self.assertFailed(run, "exception", "ImportError: " + message)

    def test_restrict_blocked(self):
        self.assertImportError("import os", "Import 'os' is blocked by policy")
        self.assertImportError("import os.path", "Import 'os.path' is blocked by policy")
        self.assertImportError("from os import path", "Import 'os' is blocked by policy")
        self.assertImportError("import subprocess", "Import 'subprocess' is blocked by policy")
        self.assertImportError("__import__('socket')", "Import 'socket' is blocked by policy")

    def test_restrict_importlib(self):
        self.assertImportError("import importlib", "Import 'importlib' is blocked by policy")
        self.assertImportError("import importlib.util", "Import 'importlib' is blocked by policy")
        self.assertImportError("from importlib import util", "Import 'importlib' is blocked by policy")

    def test_importlib_blocked_even_when_not_listed(self):
        self.assertImportError("import importlib.util", "Import 'importlib' is blocked by policy", policy=OPEN_POLICY)

    def test_restrict_allows_others(self):
        self.assertEqual(self.result_of("import json, math\nresult = json.dumps([math.floor(1.5)])"), "[1]")

    def test_restrict_import_error_traceback(self):
        run = run_worker("x = 1\nimport socket")
        self.assertIn('File "<user_code>", line 2, in <module>', run.stderr)
        self.assertNotIn("spr_worker", run.stderr)
        self.assertTrue(run.stderr.endswith("ImportError: Import 'socket' is blocked by policy\n"), run)

    def test_library_imports_are_not_checked(self):
        # Only the code's own imports go through the hook (as the reference).
        self.assertEqual(self.result_of("import tempfile\nresult = tempfile.__name__"), "tempfile")

    def test_allow_mode(self):
        policy = allow_policy(allowed_imports=["math", "importlib"], allowed_builtins=["len"])
        self.assertEqual(self.result_of("import math\nresult = math.floor(2.5)", policy=policy), 2)
        self.assertImportError("import json", "Import 'json' is not allowed by policy", policy=policy)
        self.assertImportError("import os.path", "Import 'os.path' is not allowed by policy", policy=policy)
        self.assertImportError("from os import path", "Import 'os' is not allowed by policy", policy=policy)
        self.assertImportError("import importlib", "Import 'importlib' is blocked by policy", policy=policy)
        self.assertImportError("import importlib.util", "Import 'importlib' is blocked by policy", policy=policy)

    def test_allow_mode_submodule_of_allowed_root(self):
        policy = allow_policy(allowed_imports=["xml"])
        self.assertEqual(self.result_of("import xml.dom\nresult = 1", policy=policy), 1)

    def test_allow_mode_ignores_blocked_lists(self):
        policy = allow_policy(allowed_imports=["os"], allowed_builtins=["eval"], blocked_imports=["os"], blocked_builtins=["eval"])
        self.assertEqual(self.result_of("import os\nresult = eval('1 + 1')", policy=policy), 2)

    def test_restrict_ignores_allowed_lists(self):
        policy = dict(DEFAULT_POLICY, allowed_imports=["json"])
        self.assertEqual(self.result_of("import math\nresult = 1", policy=policy), 1)

    def test_policy_absent_uses_defaults(self):
        request = json.dumps({"code": "import os"}).encode()
        run = run_worker_raw(request)
        self.assertFailed(run, "exception", "ImportError: Import 'os' is blocked by policy")
        request = json.dumps({"code": "eval('1')", "policy": {"blocked_imports": []}}).encode()
        run = run_worker_raw(request)
        self.assertFailed(run, "exception", "NameError: name 'eval' is not defined")


class BuiltinPolicyTest(WorkerTestCase):
    def test_restrict_blocked_builtins(self):
        for name in ("eval", "exec", "open", "compile", "breakpoint"):
            run = run_worker(f"{name}('1')")
            self.assertFailed(run, "exception", f"NameError: name '{name}' is not defined")

    def test_restrict_other_builtins_present(self):
        self.assertEqual(self.result_of("result = [len('ab'), sorted([2, 1]), repr(None)]"), [2, [1, 2], "None"])

    def test_restrict_custom_block(self):
        policy = dict(DEFAULT_POLICY, blocked_builtins=["print", "exit"])
        run = run_worker("print(1)", policy=policy)
        self.assertFailed(run, "exception", "NameError: name 'print' is not defined")
        run = run_worker("exit(1)", policy=policy)
        self.assertFailed(run, "exception", "NameError: name 'exit' is not defined")
        self.assertEqual(self.result_of("result = eval('1 + 2')", policy=policy), 3)

    def test_allow_mode_missing_builtin(self):
        policy = allow_policy(allowed_builtins=["len"])
        run = run_worker("print('hi')", policy=policy)
        self.assertFailed(run, "exception", "NameError: name 'print' is not defined")
        self.assertEqual(self.result_of("result = len([1, 2])", policy=policy), 2)

    def test_allow_mode_class_statement(self):
        policy = allow_policy(allowed_builtins=[])
        code = "class A:\n    x = 3\n    def f(self):\n        return self.x * 2\nresult = A().f()"
        self.assertEqual(self.result_of(code, policy=policy), 6)

    def test_allow_mode_exit_only_when_listed(self):
        run = run_worker("exit(3)", policy=allow_policy())
        self.assertFailed(run, "exception", "NameError: name 'exit' is not defined")
        run = run_worker("exit(3)", policy=allow_policy(allowed_builtins=["exit"]))
        self.assertOutcome(run, "system_exit", False, 3, "SystemExit: 3")

    def test_allow_mode_import_statement_still_works(self):
        policy = allow_policy(allowed_imports=["math"])
        self.assertEqual(self.result_of("from math import floor\nresult = floor(1.5)", policy=policy), 1)

    def test_builtins_module_untouched_for_libraries(self):
        # Libraries see the real builtins (json uses its own imports).
        policy = allow_policy(allowed_imports=["json"])
        self.assertEqual(self.result_of("import json\nresult = json.loads('[1]')", policy=policy), [1])


# ---- errors ----------------------------------------------------------------


class ErrorTest(WorkerTestCase):
    def test_exception_texts(self):
        self.assertFailed(run_worker("{}['x']"), "exception", "KeyError: 'x'")
        self.assertFailed(run_worker("raise ValueError()"), "exception", "ValueError: ")
        self.assertFailed(run_worker("1 / 0"), "exception", "ZeroDivisionError: division by zero")
        self.assertFailed(run_worker("undefined_name"), "exception", "NameError: name 'undefined_name' is not defined")

    def test_custom_exception_type_name(self):
        code = "class MyError(Exception):\n    pass\nraise MyError('mine')"
        self.assertFailed(run_worker(code), "exception", "MyError: mine")

    def test_multiline_message_is_one_line(self):
        run = run_worker("raise ValueError('a\\nb\\r\\nc\\rd')")
        self.assertFailed(run, "exception", "ValueError: a\\nb\\nc\\nd")
        self.assertIn("ValueError: a\nb\r\nc\rd", run.stderr)

    def test_long_message_cut(self):
        run = run_worker("raise ValueError('x' * 10000)")
        self.assertEqual(len(run.error), 8192, run.header)
        self.assertTrue(run.error.startswith("ValueError: xxx"))
        self.assertIn("x" * 10000, run.stderr)

    def test_str_failing(self):
        code = "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\nraise E()"
        run = run_worker(code)
        self.assertFailed(run, "exception", "E: <exception str() failed>")

    def test_non_ascii_message(self):
        run = run_worker("raise ValueError('\u00e9t\u00e9 \\ud800')")
        self.assertFailed(run, "exception", "ValueError: \u00e9t\u00e9 \ud800")
        self.assertIn("ValueError: \u00e9t\u00e9 \\ud800", run.stderr)  # backslashreplace

    def test_lone_surrogate_in_source(self):
        # Not encodable source: a compile failure other than SyntaxError.
        run = run_worker("x = '\ud800'")
        self.assertEqual(run.kind, "syntax_error", run)
        self.assertTrue(run.error.startswith("UnicodeEncodeError: "), run)
        self.assertOutcome(run, "syntax_error", False, 1, run.error)

    def test_os_error_errno_in_header(self):
        run = run_worker("open('/nonexistent/spr/x')", policy=OPEN_POLICY)
        self.assertEqual(
            run.header,
            {
                "ok": False,
                "exit_code": 1,
                "error": "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/spr/x'",
                "kind": "exception",
                "errno": errno.ENOENT,
            },
            run,
        )
        code = "try:\n    open('/nonexistent/spr/x')\nexcept OSError:\n    raise RuntimeError('wrapped')"
        run = run_worker(code, policy=OPEN_POLICY)
        self.assertEqual(run.error, "RuntimeError: wrapped")
        self.assertEqual(run.header["errno"], errno.ENOENT)
        self.assertNotIn("errno", run_worker("raise ValueError(1)").header)
        self.assertNotIn("errno", run_worker("raise OSError('no errno')").header)

    def test_file_size_limit_errno(self):
        with tempfile.TemporaryDirectory() as d:
            code = (
                "import resource\n"
                "resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))\n"
                f"with open({os.path.join(d, 'big')!r}, 'wb', buffering=0) as f:\n"
                "    f.write(b'x' * 100)\n"
                "    f.write(b'x' * 100)\n"
            )
            run = run_worker(code, policy=OPEN_POLICY)
        self.assertEqual(run.kind, "exception", run)
        self.assertTrue(run.error.startswith("OSError: [Errno 27] File too large"), run)
        self.assertEqual(run.header["errno"], errno.EFBIG)

    def test_keyboard_interrupt_and_generator_exit(self):
        self.assertFailed(run_worker("raise KeyboardInterrupt"), "exception", "KeyboardInterrupt: ")
        self.assertFailed(run_worker("raise GeneratorExit('g')"), "exception", "GeneratorExit: g")

    def test_traceback_only_user_frames(self):
        code = "import json\n\ndef parse(text):\n    return json.loads(text)\n\nparse('{bad')\n"
        run = run_worker(code)
        self.assertEqual(run.kind, "exception", run)
        self.assertTrue(run.error.startswith("JSONDecodeError: Expecting property name"), run)
        self.assertIn('File "<user_code>", line 6, in <module>', run.stderr)
        self.assertIn("parse('{bad')", run.stderr)
        self.assertIn('File "<user_code>", line 4, in parse', run.stderr)
        self.assertIn("return json.loads(text)", run.stderr)
        for unwanted in ("decoder.py", "__init__.py", "spr_worker", "File \"/"):
            self.assertNotIn(unwanted, run.stderr)
        self.assertEqual(run.stderr.count("File "), 2, run.stderr)

    def test_user_frames_called_back_from_library(self):
        code = (
            "import json\n"
            "def hook(d):\n"
            "    raise KeyError('from hook')\n"
            "json.loads('{}', object_hook=hook)\n"
        )
        run = run_worker(code)
        self.assertFailed(run, "exception", "KeyError: 'from hook'")
        self.assertIn("in hook", run.stderr)
        self.assertIn("raise KeyError('from hook')", run.stderr)
        self.assertNotIn("decoder.py", run.stderr)

    def test_chained_cause(self):
        code = (
            "def inner():\n"
            "    raise KeyError('k')\n"
            "try:\n"
            "    inner()\n"
            "except KeyError as e:\n"
            "    raise ValueError('outer') from e\n"
        )
        run = run_worker(code)
        self.assertFailed(run, "exception", "ValueError: outer")
        self.assertIn("KeyError: 'k'", run.stderr)
        self.assertIn("The above exception was the direct cause of the following exception:", run.stderr)
        self.assertIn("raise KeyError('k')", run.stderr)
        self.assertIn("raise ValueError('outer') from e", run.stderr)
        self.assertLess(run.stderr.index("KeyError"), run.stderr.index("ValueError: outer"))

    def test_chained_context_through_library(self):
        code = "import json\ntry:\n    json.loads('[')\nexcept ValueError:\n    raise RuntimeError('while handling')\n"
        run = run_worker(code)
        self.assertFailed(run, "exception", "RuntimeError: while handling")
        self.assertIn("During handling of the above exception, another exception occurred:", run.stderr)
        self.assertIn("json.loads('[')", run.stderr)
        self.assertNotIn("decoder.py", run.stderr)

    def test_exception_group(self):
        if PYTHON_VERSION < (3, 11):
            self.skipTest("exception groups need 3.11")
        code = "import json\ndef f():\n    json.loads('x')\ntry:\n    f()\nexcept ValueError as e:\n    raise ExceptionGroup('many', [e, KeyError(1)])\n"
        run = run_worker(code)
        self.assertEqual(run.error, "ExceptionGroup: many (2 sub-exceptions)")
        self.assertIn("in f", run.stderr)
        self.assertNotIn("decoder.py", run.stderr)

    def test_memory_error_in_group(self):
        if PYTHON_VERSION < (3, 11):
            self.skipTest("exception groups need 3.11")
        run = run_worker("raise ExceptionGroup('g', [ValueError(1), MemoryError()])")
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")

    def test_syntax_error_in_user_called_compile_is_exception(self):
        policy = dict(DEFAULT_POLICY, blocked_builtins=[])
        run = run_worker("compile('x x', 'inner', 'exec')", policy=policy)
        self.assertEqual(run.kind, "exception", run)
        self.assertTrue(run.error.startswith("SyntaxError: "), run)

    def test_indentation_error(self):
        run = run_worker("if True:\nx = 1\n")
        self.assertEqual(run.kind, "syntax_error", run)
        self.assertTrue(run.error.startswith("IndentationError: expected an indented block"), run)
        self.assertTrue(run.error.endswith("(<user_code>, line 2)"), run)
        self.assertOutcome(run, "syntax_error", False, 1, run.error)
        self.assertIn("IndentationError", run.stderr)

    def test_tab_error(self):
        run = run_worker("if True:\n\tx = 1\n        y = 2\n")
        self.assertFailed(
            run, "syntax_error", "TabError: inconsistent use of tabs and spaces in indentation (<user_code>, line 3)"
        )

    def test_unexpected_eof(self):
        run = run_worker("foo(")
        self.assertEqual(run.kind, "syntax_error", run)
        self.assertTrue(run.error.startswith("SyntaxError: "), run)
        self.assertTrue(run.error.endswith("(<user_code>, line 1)"), run)

    def test_null_byte_in_code(self):
        run = run_worker("x = 1\0")
        self.assertEqual(run.kind, "syntax_error", run)
        self.assertIn(run.error.split(":")[0], ("ValueError", "SyntaxError"))
        self.assertIn("null bytes", run.error)
        self.assertOutcome(run, "syntax_error", False, 1, run.error)

    def test_memory_error_chained(self):
        code = "try:\n    bytearray(1 << 60)\nexcept MemoryError:\n    raise ValueError('converted')"
        run = run_worker(code)
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")
        self.assertIsNone(run.value)
        code = "try:\n    raise MemoryError\nexcept MemoryError as e:\n    raise RuntimeError('x') from e"
        self.assertEqual(run_worker(code).kind, "memory_error")

    def test_memory_error_in_function(self):
        code = "def f():\n    big = [0] * 1000\n    raise MemoryError('inner')\nresult = 1\nf()"
        run = run_worker(code)
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")
        self.assertIn("raise MemoryError('inner')", run.stderr)

    def test_caught_memory_error_then_ok(self):
        code = "try:\n    bytearray(1 << 60)\nexcept MemoryError:\n    result = 'recovered'"
        self.assertEqual(self.result_of(code), "recovered")

    def test_recursion_error(self):
        run = run_worker("def f():\n    return f()\nf()")
        self.assertFailed(run, "exception", run.error)
        self.assertTrue(run.error.startswith("RecursionError: maximum recursion depth exceeded"), run)
        self.assertIn("Previous line repeated", run.stderr)

    def test_lowered_recursion_limit_does_not_break_reporting(self):
        code = "import sys\nresult = [[[[1]]]]\nsys.setrecursionlimit(50)\n"
        self.assertEqual(self.result_of(code), [[[[1]]]])


# ---- malformed requests ---------------------------------------------------------


class MalformedRequestTest(WorkerTestCase):
    def assertWorkerError(self, request_bytes, error):
        run = run_worker_raw(request_bytes)
        self.assertFailed(run, "worker_error", error)
        self.assertEqual(run.stdout, "")

    def test_invalid_json(self):
        run = run_worker_raw(b'{"code": ')
        self.assertEqual(run.kind, "worker_error", run)
        self.assertTrue(run.error.startswith("WorkerError: request is not valid JSON: "), run)
        self.assertOutcome(run, "worker_error", False, 1, run.error)

    def test_empty(self):
        run = run_worker_raw(b"")
        self.assertEqual(run.kind, "worker_error", run)
        self.assertTrue(run.error.startswith("WorkerError: request is not valid JSON"), run)

    def test_trailing_data(self):
        run = run_worker_raw(b'{"code": "result = 1"} x')
        self.assertEqual(run.kind, "worker_error", run)
        self.assertTrue(run.error.startswith("WorkerError: request is not valid JSON"), run)

    def test_surrounding_whitespace_ok(self):
        self.assertOk(run_worker_raw(b' \n\t{"code": "result = 1"}\r\n '), 1)

    def test_invalid_utf8(self):
        run = run_worker_raw(b'{"code": "result = \xff"}')
        self.assertEqual(run.kind, "worker_error", run)
        self.assertTrue(run.error.startswith("WorkerError: request is not valid UTF-8"), run)

    def test_missing_code(self):
        self.assertWorkerError(b'{"input_data": {}}', "WorkerError: request has no 'code'")

    def test_code_not_string(self):
        self.assertWorkerError(b'{"code": 5}', "WorkerError: 'code' must be a string")
        self.assertWorkerError(b'{"code": null}', "WorkerError: 'code' must be a string")

    def test_not_an_object(self):
        self.assertWorkerError(b'["result = 1"]', "WorkerError: request must be a JSON object")

    def test_bad_policy(self):
        self.assertWorkerError(b'{"code": "", "policy": []}', "WorkerError: 'policy' must be an object")
        self.assertWorkerError(
            b'{"code": "", "policy": {"mode": "open"}}', "WorkerError: policy.mode must be 'restrict' or 'allow'"
        )
        self.assertWorkerError(
            b'{"code": "", "policy": {"blocked_imports": "os"}}',
            "WorkerError: policy.blocked_imports must be a list of strings",
        )
        self.assertWorkerError(
            b'{"code": "", "policy": {"allowed_globals": [1]}}',
            "WorkerError: policy.allowed_globals must be a list of strings",
        )
        self.assertWorkerError(
            b'{"code": "", "policy": {"extra_globals": []}}', "WorkerError: policy.extra_globals must be an object"
        )

    def test_bad_sys_path(self):
        self.assertWorkerError(b'{"code": "", "sys_path": "/x"}', "WorkerError: 'sys_path' must be a list of strings")

    def test_bad_prefix(self):
        self.assertWorkerError(b'{"code": "", "prefix": ["/x"]}', "WorkerError: 'prefix' must be a string")


# ---- process behaviour ---------------------------------------------------------


class ProcessTest(WorkerTestCase):
    def test_threads_joined_before_result(self):
        code = (
            "import threading, time\n"
            "def late():\n"
            "    global result\n"
            "    time.sleep(0.2)\n"
            "    result = 'set by thread'\n"
            "    print('thread done')\n"
            "threading.Thread(target=late).start()\n"
        )
        run = run_worker(code)
        self.assertOk(run, "set by thread")
        self.assertEqual(run.stdout, "thread done\n")

    def test_threads_joined_after_exception(self):
        code = (
            "import threading, time\n"
            "def late():\n"
            "    time.sleep(0.2)\n"
            "    print('thread done')\n"
            "threading.Thread(target=late).start()\n"
            "raise ValueError('main failed')\n"
        )
        run = run_worker(code)
        self.assertFailed(run, "exception", "ValueError: main failed")
        self.assertEqual(run.stdout, "thread done\n")

    def test_atexit_output(self):
        code = "import atexit\natexit.register(print, 'at exit')\nprint('main')\nresult = 1"
        run = run_worker(code)
        self.assertOk(run, 1)
        self.assertEqual(run.stdout, "main\nat exit\n")

    def test_atexit_exception_does_not_change_outcome(self):
        code = "import atexit\ndef boom():\n    raise RuntimeError('in atexit')\natexit.register(boom)\nresult = 2"
        run = run_worker(code)
        self.assertOk(run, 2)
        self.assertIn("RuntimeError: in atexit", run.stderr)

    def test_os_write_captured(self):
        run = run_worker("import os\nos.write(1, b'raw out\\n')\nos.write(2, b'raw err\\n')", policy=OPEN_POLICY)
        self.assertOk(run)
        self.assertEqual(run.stdout, "raw out\n")
        self.assertEqual(run.stderr, "raw err\n")

    def test_output_order_unbuffered(self):
        code = (
            "import os, sys\n"
            "print('1')\n"
            "print('2', file=sys.stderr)\n"
            "os.write(1, b'3\\n')\n"
            "sys.stdout.write('4\\n')\n"
            "os.write(2, b'5\\n')\n"
            "print('6', end='')\n"
            "raise ValueError('7')\n"
        )
        run = run_worker(code, policy=OPEN_POLICY, merge_stderr=True)
        self.assertEqual(run.kind, "exception", run)
        self.assertTrue(run.stdout.startswith("1\n2\n3\n4\n5\n6Traceback (most recent call last):\n"), run)
        self.assertTrue(run.stdout.endswith("ValueError: 7\n"), run)

    def test_input_raises_eof(self):
        run = run_worker("input()")
        self.assertFailed(run, "exception", "EOFError: EOF when reading a line")
        self.assertEqual(self.result_of("import sys\nresult = sys.stdin.read()"), "")

    def test_result_fd_not_inherited(self):
        code = (
            "import os, subprocess, sys\n"
            "os.fstat(3)  # open here\n"
            "child = 'import os\\ntry:\\n    os.fstat(3)\\n    print(\"open\")\\nexcept OSError:\\n    print(\"closed\")'\n"
            "out = subprocess.run([sys.executable, '-I', '-S', '-c', child], stdout=subprocess.PIPE, close_fds=False)\n"
            "ls = subprocess.run(['/bin/sh', '-c', 'ls /proc/$$/fd; true'], stdout=subprocess.PIPE, close_fds=False)\n"
            "result = [out.stdout.decode().strip(), ls.stdout.decode().split()]\n"
        )
        run = run_worker(code, policy=OPEN_POLICY)
        self.assertOk(run)
        self.assertEqual(run.value[0], "closed")
        self.assertNotIn("3", run.value[1])

    def test_fork_child_does_not_report(self):
        code = (
            "import os\n"
            "pid = os.fork()\n"
            "result = 'child' if pid == 0 else 'parent'\n"
            "if pid:\n"
            "    os.waitpid(pid, 0)\n"
        )
        run = run_worker(code, policy=OPEN_POLICY)
        self.assertOk(run, "parent")
        self.assertEqual(run.message.count(b"\n"), 1, run.message)

    def test_multiprocessing_fork(self):
        code = (
            "import multiprocessing as mp\n"
            "def square(x):\n    return x * x\n"
            "ctx = mp.get_context('fork')\n"
            "with ctx.Pool(2) as pool:\n"
            "    result = pool.map(square, [1, 2, 3])\n"
        )
        run = run_worker(code, policy=OPEN_POLICY)
        self.assertOk(run, [1, 4, 9])
        self.assertEqual(run.message.count(b"\n"), 1, run.message)

    def test_replaced_and_closed_stdio(self):
        code = "import io, sys\nsys.stdout = io.StringIO()\nprint('lost')\nsys.stderr.close()\nresult = 1"
        run = run_worker(code)
        self.assertOk(run, 1)
        self.assertEqual(run.stdout, "")

    def test_stdout_closed_fd(self):
        run = run_worker("import os\nos.close(1)\nresult = 'still reported'", policy=OPEN_POLICY)
        self.assertOk(run, "still reported")

    def test_header_is_first_line_and_ascii(self):
        run = run_worker("result = {'\u00e9': '\u20ac'}")
        self.assertOk(run, {"\u00e9": "\u20ac"})
        header, value = run.message.split(b"\n")
        self.assertEqual(value, b'{"\\u00e9":"\\u20ac"}')



# ---- preload_imports (SPR_WORKER_PRELOAD) ------------------------------------

PRELOAD_MODULES = {
    # imports json (and what json imports), sets a value the code reads
    "pl_json.py": "import json\nvalue = json.dumps([1])\nimported_at = 'preload'\n",
    "pl_os.py": "import os\n",
    "pl_os2.py": "import os\nimport sys\n",
    # socket reaches sys.modules without passing through __import__ by name
    "pl_dynamic.py": "import importlib\nimportlib.import_module('socket')\n",
    "pl_math.py": "import sys\nimport math\nimport io\nvalue = math.floor(2.5)\n",
    "pl_raises.py": "raise ValueError('boom\\nsecond line')\n",
    "pl_exit.py": "raise SystemExit(3)\n",
    "pl_memory.py": "raise MemoryError\n",
    "pl_posix.py": "import posix\n",
    "pl_noisy.py": "import posix\nposix.write(1, b'from the preload\\n')\n",
    "plpkg/__init__.py": "from . import sub\n",
    "plpkg/sub.py": "from os import path\n",
    "plpkg/inner/__init__.py": "",
    "plpkg/inner/leaf.py": "import ctypes\n",
}


class PreloadTest(WorkerTestCase):
    """The worker imports SPR_WORKER_PRELOAD's modules before reading the
    request and checks what they pulled in against the request's policy
    before any code runs."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.site = cls.tmp.name
        for name, text in PRELOAD_MODULES.items():
            path = os.path.join(cls.site, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_preloaded(self, imports, code="result = None", policy=None, config=None, **extra):
        env = dict(os.environ)
        if config is None:
            config = json.dumps({"imports": imports, "sys_path": [self.site]})
        env["SPR_WORKER_PRELOAD"] = config
        request = make_request(code, policy=policy, sys_path=[self.site], **extra)
        return run_worker_raw(json.dumps(request).encode(), env=env)

    def assertRefused(self, run, error):
        self.assertFailed(run, "preload_error", error)
        self.assertEqual(run.stdout, "", run)  # no code ran

    def test_preloaded_module_is_the_codes(self):
        code = (
            "import sys\n"
            "loaded = 'pl_json' in sys.modules\n"
            "import pl_json\n"
            "result = [loaded, pl_json.value, pl_json.imported_at]\n"
        )
        run = self.run_preloaded(["pl_json"], code, policy=OPEN_POLICY)
        self.assertOk(run, [True, "[1]", "preload"])

    def test_without_preloads_nothing_is_imported(self):
        code = "import sys\nresult = 'pl_json' in sys.modules"
        run = run_worker(code, policy=OPEN_POLICY, sys_path=[self.site])
        self.assertOk(run, False)

    def test_variable_is_gone_before_the_code(self):
        code = (
            "import os, subprocess\n"
            "out = subprocess.run(['/usr/bin/env'], stdout=subprocess.PIPE).stdout\n"
            "result = [os.environ.get('SPR_WORKER_PRELOAD'), b'SPR_WORKER' in out]\n"
        )
        run = self.run_preloaded(["pl_json"], code, policy=OPEN_POLICY)
        self.assertOk(run, [None, False])

    def test_initial_environment_block_still_holds_it(self):
        # unsetenv cannot erase the block the process started with:
        # /proc/self/environ (and a subprocess reading its parent's) still
        # shows the variable. It carries only what the code sees anyway
        # (the module names, sys_path, the venv prefix): nothing secret may
        # ever be added to it (WORKER_PROTOCOL "Preloads").
        code = (
            "import json, os\n"
            "block = open('/proc/self/environ', 'rb').read().split(b'\\0')\n"
            "raw = [e for e in block if e.startswith(b'SPR_WORKER_PRELOAD=')]\n"
            "result = [os.environ.get('SPR_WORKER_PRELOAD'),\n"
            "          [json.loads(e.partition(b'=')[2]) for e in raw]]\n"
        )
        run = self.run_preloaded(["pl_json"], code, policy=OPEN_POLICY)
        self.assertOk(run, [None, [{"imports": ["pl_json"], "sys_path": [self.site]}]])

    def test_blocked_import_is_refused_naming_both(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=["os"])
        run = self.run_preloaded(["pl_json", "pl_os"], "print('ran')", policy=policy)
        self.assertRefused(
            run,
            "preload_imports: 'pl_os' imports 'os', which blocked_imports blocks: "
            "remove 'os' from blocked_imports or 'pl_os' from preload_imports",
        )

    def test_already_loaded_module_still_counts(self):
        # pl_posix imports posix, loaded at start-up: __import__ sees the
        # name, and restrict mode counts what it blocks whatever loaded it.
        policy = dict(DEFAULT_POLICY, blocked_imports=["posix"])
        run = self.run_preloaded(["pl_json", "pl_posix"], policy=policy)
        self.assertRefused(
            run,
            "preload_imports: 'pl_posix' imports 'posix', which blocked_imports blocks: "
            "remove 'posix' from blocked_imports or 'pl_posix' from preload_imports",
        )

    def test_first_preload_that_pulled_it_in_is_named(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=["os", "ctypes"])
        run = self.run_preloaded(["pl_os", "pl_os2"], policy=policy)
        self.assertIn("'pl_os' imports 'os'", run.error, run)
        run = self.run_preloaded(["pl_os2", "pl_os"], policy=policy)
        self.assertIn("'pl_os2' imports 'os'", run.error, run)

    def test_every_blocked_module_of_the_preload_is_listed(self):
        run = self.run_preloaded(["pl_dynamic"], policy=DEFAULT_POLICY)
        self.assertRefused(
            run,
            "preload_imports: 'pl_dynamic' imports 'importlib', 'os' and 'socket', which "
            "blocked_imports blocks: remove them from blocked_imports or 'pl_dynamic' from "
            "preload_imports",
        )

    def test_import_module_is_seen_through_sys_modules(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=["socket"])
        run = self.run_preloaded(["pl_dynamic"], policy=policy)
        self.assertIn("'pl_dynamic' imports 'socket', which blocked_imports blocks", run.error)

    def test_importlib_counts_only_when_the_policy_blocks_it(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=[])
        run = self.run_preloaded(["pl_dynamic"], "import socket\nresult = 1", policy=policy)
        self.assertOk(run, 1)
        # The code's own import of importlib stays refused (SPEC §2).
        run = self.run_preloaded(["pl_dynamic"], "import importlib", policy=policy)
        self.assertFailed(run, "exception", "ImportError: Import 'importlib' is blocked by policy")

    def test_relative_imports_and_submodules(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=["os"])
        run = self.run_preloaded(["plpkg"], policy=policy)
        self.assertIn("'plpkg' imports 'os'", run.error, run)
        policy = dict(DEFAULT_POLICY, blocked_imports=["ctypes"])
        run = self.run_preloaded(["plpkg.inner.leaf"], policy=policy)
        self.assertRefused(
            run,
            "preload_imports: 'plpkg.inner.leaf' imports 'ctypes', which blocked_imports "
            "blocks: remove 'ctypes' from blocked_imports or 'plpkg.inner.leaf' from "
            "preload_imports",
        )
        run = self.run_preloaded(
            ["plpkg.inner.leaf"], "import plpkg.inner.leaf as m\nresult = m.__name__",
            policy=OPEN_POLICY,
        )
        self.assertOk(run, "plpkg.inner.leaf")

    def test_preload_that_is_itself_blocked(self):
        run = self.run_preloaded(["os"])
        self.assertRefused(
            run,
            "preload_imports: 'os' is blocked by blocked_imports: remove 'os' from "
            "blocked_imports or 'os' from preload_imports",
        )
        run = self.run_preloaded(["xml.dom"], policy=allow_policy(allowed_imports=["json"]))
        self.assertRefused(
            run,
            "preload_imports: 'xml.dom' is not in allowed_imports: add 'xml' to "
            "allowed_imports or remove 'xml.dom' from preload_imports",
        )

    def test_allow_mode_ignores_only_start_up_modules(self):
        # pl_math imports sys and io (loaded at start-up) and math (not).
        run = self.run_preloaded(["pl_math"], policy=allow_policy(allowed_imports=["pl_math"]))
        self.assertRefused(
            run,
            "preload_imports: 'pl_math' imports 'math', which allowed_imports does not "
            "list: add 'math' to allowed_imports or remove 'pl_math' from preload_imports",
        )
        policy = allow_policy(allowed_imports=["pl_math", "math"], allowed_builtins=["print"])
        run = self.run_preloaded(["pl_math"], "import pl_math\nresult = pl_math.value", policy)
        self.assertOk(run, 2)

    def test_restrict_mode_with_nothing_blocked_passes(self):
        policy = dict(DEFAULT_POLICY, blocked_imports=[])
        run = self.run_preloaded(["pl_json", "pl_os", "plpkg"], "result = 3", policy=policy)
        self.assertOk(run, 3)

    def test_missing_module(self):
        run = self.run_preloaded(["pl_json", "no_such_module_xyz", "pl_os"])
        self.assertRefused(
            run,
            "preload_imports: importing 'no_such_module_xyz' failed: ModuleNotFoundError: "
            "No module named 'no_such_module_xyz'",
        )
        self.assertEqual(run.stderr, "", run)  # no traceback

    def test_module_that_raises(self):
        run = self.run_preloaded(["pl_raises"], policy=OPEN_POLICY)
        self.assertRefused(
            run,
            "preload_imports: importing 'pl_raises' failed: ValueError: boom\\nsecond line",
        )
        run = self.run_preloaded(["pl_exit"], policy=OPEN_POLICY)
        self.assertRefused(run, "preload_imports: importing 'pl_exit' failed: SystemExit: 3")

    def test_memory_error_is_the_memory_outcome(self):
        run = self.run_preloaded(["pl_memory"], policy=OPEN_POLICY)
        self.assertOutcome(run, "memory_error", False, 137, "Memory limit exceeded")

    def test_failure_wins_over_the_check(self):
        # The import failed: what it pulled in so far is not the point.
        run = self.run_preloaded(["pl_os", "no_such_module_xyz"])
        self.assertIn("importing 'no_such_module_xyz' failed", run.error, run)

    def test_bad_request_is_still_a_worker_error(self):
        env = dict(os.environ, SPR_WORKER_PRELOAD=json.dumps({"imports": ["pl_os"],
                                                              "sys_path": [self.site]}))
        run = run_worker_raw(b"{}", env=env)
        self.assertFailed(run, "worker_error", "WorkerError: request has no 'code'")

    def test_malformed_variable(self):
        for config in ("", "[]", "{}", '{"imports": "pl_os"}', '{"imports": [1]}',
                       '{"imports": [], "prefix": 1}', "{"):
            run = self.run_preloaded(None, config=config)
            self.assertEqual(run.kind, "worker_error", (config, run))
            self.assertTrue(run.error.startswith("WorkerError: SPR_WORKER_PRELOAD is malformed"),
                            run)

    def test_preload_output_is_the_runs(self):
        run = self.run_preloaded(["pl_noisy"], "print('code')", policy=OPEN_POLICY)
        self.assertOk(run)
        self.assertEqual(run.stdout, "from the preload\ncode\n")

    def test_venv_prefix_is_set_before_the_preload(self):
        with open(os.path.join(self.site, "pl_prefix.py"), "w") as f:
            f.write("import sys\nseen = sys.prefix\n")
        config = json.dumps({"imports": ["pl_prefix"], "sys_path": [self.site],
                             "prefix": "/some/venv"})
        run = self.run_preloaded(None, "import pl_prefix\nresult = pl_prefix.seen",
                                 policy=OPEN_POLICY, config=config, prefix="/some/venv")
        self.assertOk(run, "/some/venv")


# ---- JSON helpers, in process ---------------------------------------------


def load_worker_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("spr_worker_under_test", WORKER_SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines things; main() only runs as __main__
    return module


class JsonHelpersTest(unittest.TestCase):
    """json_loads/json_dumps with the _json accelerator and without it."""

    def check(self, w):
        self.assertEqual(w.json_loads(' {"a": [1, 2.5, "x\\u00e9", null, true]} \n'), {"a": [1, 2.5, "x\u00e9", None, True]})
        nan, inf, ninf = w.json_loads("[NaN, Infinity, -Infinity]")
        self.assertNotEqual(nan, nan)
        self.assertEqual((inf, ninf), (float("inf"), -float("inf")))
        self.assertEqual(w.json_loads('"\\ud800"'), "\ud800")
        for bad in ("", "   ", "{", '{"a": 1} x', "[1,]", "{'a': 1}", '"\x01"'):
            with self.assertRaises(ValueError, msg=bad):
                w.json_loads(bad)
        self.assertEqual(
            w.json_dumps({"a": [1, 2.5, "\u00e9\ud800", None, True], "b": {}}),
            '{"a":[1,2.5,"\\u00e9\\ud800",null,true],"b":{}}',
        )
        with self.assertRaises(ValueError):
            w.json_dumps(float("nan"))

    def test_with_accelerator(self):
        self.check(load_worker_module())

    def test_without_accelerator(self):
        saved = sys.modules.get("_json", _ABSENT)
        sys.modules["_json"] = None  # import _json now raises ImportError
        try:
            w = load_worker_module()
            self.check(w)
            self.assertIsInstance(getattr(w._encoder, "__self__", None), json.JSONEncoder)
        finally:
            if saved is _ABSENT:
                del sys.modules["_json"]
            else:
                sys.modules["_json"] = saved


if __name__ == "__main__":
    unittest.main()
