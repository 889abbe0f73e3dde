"""End-to-end behaviour of a run through `spr-run --json` (SPEC §1–§3, §7).

Every test runs the real binary; the engine comes from SPR_TEST_ENGINE, so
nothing here assumes host paths inside the run. Limits (timeouts, output
caps, memory) are in test_limits.py; command-line edge cases in test_cli.py.
"""
import json
import textwrap

from integration.common import (ENGINE_KIND, PERMISSIVE, RESULT_FIELDS, SprTestCase,
                                 spr_run, strict_json_loads)

DEFAULT_BLOCKED_IMPORTS = ("os", "subprocess", "socket", "ctypes", "importlib")
DEFAULT_BLOCKED_BUILTINS = ("eval", "exec", "open", "compile", "breakpoint")


def code(text):
    return textwrap.dedent(text).lstrip("\n")


# ---------------------------------------------------------------------------
# §1: result conversion
# ---------------------------------------------------------------------------
class ResultTypes(SprTestCase):

    def test_int(self):
        self.assertOk(spr_run("result = 42"), 42)

    def test_negative_int(self):
        self.assertOk(spr_run("result = -7"), -7)

    def test_float(self):
        r = spr_run("result = 1.5")
        self.assertOk(r, 1.5)
        self.assertIsInstance(r["result"], float)

    def test_float_repr_exact(self):
        r = spr_run("result = [0.1, 1e300, 2.5e-308]")
        self.assertOk(r, [0.1, 1e300, 2.5e-308])

    def test_str(self):
        self.assertOk(spr_run("result = 'hello'"), "hello")

    def test_str_unicode_and_control(self):
        r = spr_run("result = 'é€😀\\x00\\n\"\\\\'")
        self.assertOk(r, 'é€😀\x00\n"\\')

    def test_lone_surrogate_becomes_replacement_char(self):
        # §7: strings in result are valid Unicode.
        r = spr_run("result = 'a\\ud800b'")
        self.assertOk(r, "a\ufffdb")
        strict_json_loads(r.stdout)

    def test_bool_true(self):
        r = spr_run("result = True")
        self.assertOk(r, True)
        self.assertIs(r["result"], True)

    def test_bool_false(self):
        r = spr_run("result = False")
        self.assertOk(r)
        self.assertIs(r["result"], False)

    def test_none(self):
        r = spr_run("result = None")
        self.assertOk(r, None)
        self.assertIn('"result": null', r.stdout.replace('"result":null', '"result": null'))

    def test_result_never_assigned_is_null(self):
        self.assertOk(spr_run("x = 1"), None)

    def test_list(self):
        self.assertOk(spr_run("result = [1, 'a', None, True]"), [1, "a", None, True])

    def test_dict(self):
        self.assertOk(spr_run("result = {'a': 1, 'b': 'x'}"), {"a": 1, "b": "x"})

    def test_nested(self):
        r = spr_run("result = {'a': [1, {'b': (2, [3, {'c': None}])}], 'd': {}}")
        self.assertOk(r, {"a": [1, {"b": [2, [3, {"c": None}]]}], "d": {}})

    def test_tuple_becomes_list(self):
        self.assertOk(spr_run("result = (1, (2, 3), ())"), [1, [2, 3], []])

    def test_set_becomes_str(self):
        self.assertOk(spr_run("result = {1}"), "{1}")

    def test_frozenset_becomes_str(self):
        self.assertOk(spr_run("result = frozenset()"), "frozenset()")

    def test_bytes_becomes_str(self):
        self.assertOk(spr_run("result = b'ab\\x00'"), "b'ab\\x00'")

    def test_datetime_becomes_str(self):
        r = spr_run(code("""
            import datetime
            result = [datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 3, 4, 5)]
        """))
        self.assertOk(r, ["2024-01-02", "2024-01-02 03:04:05"])

    def test_custom_object_becomes_str(self):
        r = spr_run(code("""
            class Thing:
                def __str__(self):
                    return "a thing"
            result = {"t": Thing(), "l": [Thing()]}
        """))
        self.assertOk(r, {"t": "a thing", "l": ["a thing"]})

    def test_huge_int_exact_in_json_text(self):
        r = spr_run("result = [2**200, -2**200, {'k': 2**200 + 1}]")
        big = 2 ** 200
        self.assertOk(r, [big, -big, {"k": big + 1}])
        # The host never round-trips the integer through a double (§7).
        self.assertIn(str(big), r.stdout)
        self.assertIn(str(-big), r.stdout)
        self.assertIn(str(big + 1), r.stdout)
        self.assertNotIn("e+", r.stdout.split('"stdout"')[0])

    def test_int_just_beyond_double_precision(self):
        r = spr_run("result = 2**53 + 1")
        self.assertOk(r, 2 ** 53 + 1)
        self.assertIn(str(2 ** 53 + 1), r.stdout)

    def test_nan_and_infinities_are_strings(self):
        r = spr_run("result = [float('nan'), float('inf'), -float('inf'), {'x': float('nan')}]")
        self.assertOk(r, ["NaN", "Infinity", "-Infinity", {"x": "NaN"}])
        strict_json_loads(r.stdout)  # strict JSON: no NaN literals

    def test_top_level_nan(self):
        r = spr_run("result = float('nan')")
        self.assertOk(r, "NaN")
        strict_json_loads(r.stdout)

    def test_non_string_keys(self):
        r = spr_run(code("""
            result = {"i": {1: "a"}, "f": {1.5: "b"}, "t": {True: "c"}, "fa": {False: "c2"},
                      "n": {None: "d"}, "tu": {(1, 2): "e"}}
        """))
        self.assertOk(r, {"i": {"1": "a"}, "f": {"1.5": "b"}, "t": {"true": "c"},
                          "fa": {"false": "c2"}, "n": {"null": "d"}, "tu": {"(1, 2)": "e"}})

    def test_colliding_keys_later_wins(self):
        r = spr_run("result = {1: 'int', '1': 'str'}")
        self.assertOk(r, {"1": "str"})
        r = spr_run("result = {'1': 'str', 1: 'int'}")
        self.assertOk(r, {"1": "int"})

    def test_circular_result(self):
        r = spr_run(code("""
            print("kept")
            result = []
            result.append(result)
        """))
        self.assertFailed(r, 1)
        self.assertTrue(r["error"].startswith("ResultError:"), r)
        self.assertIsNone(r["result"])
        self.assertEqual(r["stdout"], "kept\n")
        self.assertEqual(r.returncode, 1)

    def test_circular_dict_result(self):
        r = spr_run("d = {}\nd['self'] = d\nresult = {'d': d}")
        self.assertFailed(r, 1)
        self.assertTrue(r["error"].startswith("ResultError:"), r)
        self.assertIsNone(r["result"])

    def test_shared_but_not_circular_is_fine(self):
        r = spr_run("x = [1]\nresult = [x, x, {'a': x}]")
        self.assertOk(r, [[1], [1], {"a": [1]}])

    def test_result_taken_after_threads_and_atexit(self):
        r = spr_run(code("""
            import atexit, threading, time
            result = []
            def later():
                time.sleep(0.05)
                result.append("thread")
            threading.Thread(target=later).start()
            atexit.register(lambda: result.append("atexit"))
        """))
        self.assertOk(r, ["thread", "atexit"])


# ---------------------------------------------------------------------------
# §1: input_data
# ---------------------------------------------------------------------------
class InputData(SprTestCase):

    def test_identifier_keys_injected(self):
        r = spr_run("result = [x + 1, name, nested['k']]",
                    input_data={"x": 41, "name": "n", "nested": {"k": [1]}})
        self.assertOk(r, [42, "n", [1]])

    def test_input_data_global(self):
        r = spr_run("result = input_data", input_data={"x": 1, "a-b": [2]})
        self.assertOk(r, {"x": 1, "a-b": [2]})

    def test_reserved_names_not_injected(self):
        r = spr_run(code("""
            before = result
            result = {
                "before": before,
                "input_data": input_data,
                "builtins_ok": len([1, 2]),
            }
        """), input_data={"result": 5, "input_data": 7, "__builtins__": 1})
        self.assertOk(r, {"before": None,
                          "input_data": {"result": 5, "input_data": 7, "__builtins__": 1},
                          "builtins_ok": 2})

    def test_underscore_keys_not_injected(self):
        r = spr_run("result = ['_x' in globals(), '__y' in globals(), input_data['_x'], input_data['__y']]",
                    input_data={"_x": 1, "__y": 2})
        self.assertOk(r, [False, False, 1, 2])

    def test_underscore_dunder_name_not_overridden(self):
        r = spr_run("result = __name__", input_data={"__name__": "evil"})
        self.assertOk(r, "__main__")

    def test_non_identifier_keys_not_injected(self):
        keys = ["a-b", "1x", "", "with space", "é-é", "x.y"]
        r = spr_run("result = [[k in globals(), input_data[k]] for k in sorted(input_data)]",
                    input_data={k: i for i, k in enumerate(keys)})
        self.assertOk(r, [[False, {k: i for i, k in enumerate(keys)}[k]] for k in sorted(keys)])

    def test_unicode_identifier_key_injected(self):
        r = spr_run("result = café", input_data={"café": 3})
        self.assertOk(r, 3)

    def _user_globals(self):
        # Non-dunder globals the code sees (itself excluded).
        return "result = sorted(k for k in globals() if not k.startswith('__'))"

    def test_list_input_nothing_injected(self):
        r = spr_run("result = input_data", input_data=[1, "a", None])
        self.assertOk(r, [1, "a", None])
        r = spr_run(self._user_globals(), input_data=["x", "y"])
        self.assertOk(r, ["input_data", "result"])

    def test_number_input(self):
        r = spr_run("result = [input_data, type(input_data).__name__]", input_text="5")
        self.assertOk(r, [5, "int"])
        r = spr_run(self._user_globals(), input_text="5.5")
        self.assertOk(r, ["input_data", "result"])

    def test_string_input(self):
        r = spr_run("result = input_data", input_text='"x"')
        self.assertOk(r, "x")

    def test_null_input(self):
        r = spr_run("result = [input_data is None]", input_text="null")
        self.assertOk(r, [True])
        r = spr_run(self._user_globals(), input_text="null")
        self.assertOk(r, ["input_data", "result"])

    def test_omitted_input_is_empty_dict(self):
        r = spr_run("result = [input_data, type(input_data).__name__]")
        self.assertOk(r, [{}, "dict"])
        r = spr_run(self._user_globals())
        self.assertOk(r, ["input_data", "result"])

    def test_input_does_not_override_extra_globals(self):
        r = spr_run("result = [x, input_data['x']]", input_data={"x": "input"},
                    policy={"extra_globals": {"x": "extra"}})
        self.assertOk(r, ["extra", "input"])

    def test_huge_int_input_round_trips(self):
        big = 2 ** 200 + 1
        text = '{"n": %d, "m": [%d]}' % (big, -big)
        r = spr_run("result = {'n': n, 's': str(n), 'm': m, 'plus1': n + 1}", input_text=text)
        self.assertOk(r, {"n": big, "s": str(big), "m": [-big], "plus1": big + 1})
        self.assertIn(str(big), r.stdout)
        self.assertIn(str(-big), r.stdout)

    def test_strings_survive_exactly(self):
        s = "é€😀\u0000\u001f\"\\ \u2028"
        r = spr_run("result = [s, len(s)]", input_data={"s": s})
        self.assertOk(r, [s, len(s)])

    def test_float_input(self):
        r = spr_run("result = [f, type(f).__name__]", input_data={"f": 0.1})
        self.assertOk(r, [0.1, "float"])

    def test_input_keys_filtered_by_blocked_globals(self):
        r = spr_run("result = ['secret' in globals(), input_data['secret'], public]",
                    input_data={"secret": 1, "public": 2},
                    policy={"blocked_globals": ["secret"]})
        self.assertOk(r, [False, 1, 2])


# ---------------------------------------------------------------------------
# §1/§2: extra_globals
# ---------------------------------------------------------------------------
class ExtraGlobals(SprTestCase):

    def test_injected(self):
        r = spr_run("result = [helper, name, lst, tbl, flag, ratio]",
                    policy={"extra_globals": {"helper": 10, "name": "n", "lst": [1, "a"],
                                              "tbl": {"a": 1}, "flag": True, "ratio": 0.5}})
        self.assertOk(r, [10, "n", [1, "a"], {"a": 1}, True, 0.5])

    def test_never_overwrite_reserved(self):
        r = spr_run(code("""
            before = result
            result = [before, input_data, len('abc')]
        """), input_data={"a": 1},
            policy={"extra_globals": {"input_data": "x", "result": "y", "__builtins__": "z"}})
        self.assertOk(r, [None, {"a": 1}, 3])

    def test_never_overwrite_input_data_when_input_omitted(self):
        r = spr_run("result = input_data", policy={"extra_globals": {"input_data": "x"}})
        self.assertOk(r, {})

    def test_restrict_mode_filtered_by_blocked_globals(self):
        r = spr_run("result = ['secret' in globals(), public]",
                    policy={"blocked_globals": ["secret"],
                            "extra_globals": {"secret": 1, "public": 2}})
        self.assertOk(r, [False, 2])

    def test_restrict_mode_ignores_allowed_globals(self):
        # restrict mode enforces only blocked_* (§2).
        r = spr_run("result = [y, helper]", input_data={"y": 1},
                    policy={"allowed_globals": ["x"], "extra_globals": {"helper": 2}})
        self.assertOk(r, [1, 2])

    def test_allow_mode_filtered_by_allowed_globals(self):
        policy = {"mode": "allow", "allowed_imports": ["math"],
                  "allowed_builtins": ["print", "len", "range"],
                  "allowed_globals": ["x", "helper"],
                  "extra_globals": {"helper": 10, "other": 5}}
        r = spr_run("import math\nresult = math.sqrt(x) + helper",
                    input_data={"x": 81, "y": 1}, policy=policy)
        self.assertOk(r, 19.0)
        r = spr_run("result = other", input_data={"x": 81}, policy=policy)
        self.assertFailed(r, 1, "NameError: name 'other' is not defined")
        r = spr_run("result = y", input_data={"x": 81, "y": 1}, policy=policy)
        self.assertFailed(r, 1, "NameError: name 'y' is not defined")
        r = spr_run("result = input_data['y']", input_data={"x": 81, "y": 1}, policy=policy)
        self.assertOk(r, 1)

    def test_allow_mode_ignores_blocked_globals(self):
        r = spr_run("result = x", input_data={"x": 3},
                    policy={"mode": "allow", "allowed_globals": ["x"], "blocked_globals": ["x"]})
        self.assertOk(r, 3)

    def test_allow_mode_nothing_injected_without_allowed_globals(self):
        r = spr_run("result = x", input_data={"x": 3}, policy={"mode": "allow"})
        self.assertFailed(r, 1, "NameError: name 'x' is not defined")


# ---------------------------------------------------------------------------
# §2: restrict / allow mode guardrails
# ---------------------------------------------------------------------------
class RestrictMode(SprTestCase):

    def test_default_blocked_imports(self):
        for mod in DEFAULT_BLOCKED_IMPORTS:
            with self.subTest(mod=mod):
                r = spr_run(f"print('before')\nimport {mod}\nresult = 1")
                self.assertFailed(r, 1, f"ImportError: Import '{mod}' is blocked by policy")
                self.assertIsNone(r["result"])
                self.assertEqual(r["stdout"], "before\n")
                self.assertEqual(r.returncode, 1)
                self.assertIn(f"ImportError: Import '{mod}' is blocked by policy", r["stderr"])

    def test_dotted_import_message_uses_full_name(self):
        r = spr_run("import os.path")
        self.assertFailed(r, 1, "ImportError: Import 'os.path' is blocked by policy")

    def test_from_import_message_uses_module(self):
        r = spr_run("from os import path")
        self.assertFailed(r, 1, "ImportError: Import 'os' is blocked by policy")

    def test_import_as(self):
        r = spr_run("import subprocess as sp")
        self.assertFailed(r, 1, "ImportError: Import 'subprocess' is blocked by policy")

    def test_dunder_import_call(self):
        r = spr_run("__import__('socket')")
        self.assertFailed(r, 1, "ImportError: Import 'socket' is blocked by policy")

    def test_unblocked_import_works(self):
        self.assertOk(spr_run("import math, json\nresult = math.floor(json.loads('2.5'))"), 2)

    def test_default_blocked_builtins(self):
        for name in DEFAULT_BLOCKED_BUILTINS:
            with self.subTest(name=name):
                r = spr_run(f"result = {name}")
                self.assertFailed(r, 1, f"NameError: name '{name}' is not defined")

    def test_blocked_builtin_call(self):
        r = spr_run("result = eval('1 + 1')")
        self.assertFailed(r, 1, "NameError: name 'eval' is not defined")

    def test_custom_policy_replaces_defaults(self):
        policy = {"blocked_imports": ["json"], "blocked_builtins": ["len"]}
        r = spr_run("import json", policy=policy)
        self.assertFailed(r, 1, "ImportError: Import 'json' is blocked by policy")
        r = spr_run("import json.decoder", policy=policy)
        self.assertFailed(r, 1, "ImportError: Import 'json.decoder' is blocked by policy")
        # The given lists replace the defaults: os and eval are allowed now.
        r = spr_run("import os\nresult = [os.sep, eval('1 + 1')]", policy=policy)
        self.assertOk(r, ["/", 2])
        r = spr_run("result = len([1])", policy=policy)
        self.assertFailed(r, 1, "NameError: name 'len' is not defined")

    def test_omitted_fields_keep_defaults(self):
        # A policy file that sets only one field keeps the default lists (§2).
        r = spr_run("import os", policy={"timeout_seconds": 5})
        self.assertFailed(r, 1, "ImportError: Import 'os' is blocked by policy")
        r = spr_run("result = eval", policy={"blocked_imports": []})
        self.assertFailed(r, 1, "NameError: name 'eval' is not defined")

    def test_restrict_mode_ignores_allowed_lists(self):
        r = spr_run("import json\nresult = len(json.dumps(1))",
                    policy={"allowed_imports": ["math"], "allowed_builtins": ["print"]})
        self.assertOk(r, 1)


class AllowMode(SprTestCase):
    POLICY = {"mode": "allow", "allowed_imports": ["math", "json"],
              "allowed_builtins": ["len", "print"]}

    def test_allowed_import_and_builtin(self):
        r = spr_run("import math\nresult = len([math.floor(1.5)])", policy=self.POLICY)
        self.assertOk(r, 1)

    def test_allowed_dotted_import(self):
        r = spr_run("import json.decoder\nfrom json import dumps\nresult = dumps([1])",
                    policy=self.POLICY)
        self.assertOk(r, "[1]")

    def test_not_allowed_import(self):
        r = spr_run("import re", policy=self.POLICY)
        self.assertFailed(r, 1, "ImportError: Import 're' is not allowed by policy")

    def test_not_allowed_dotted_import(self):
        r = spr_run("import os.path", policy=self.POLICY)
        self.assertFailed(r, 1, "ImportError: Import 'os.path' is not allowed by policy")

    def test_not_allowed_from_import(self):
        r = spr_run("from collections import OrderedDict", policy=self.POLICY)
        self.assertFailed(r, 1, "ImportError: Import 'collections' is not allowed by policy")

    def test_builtin_not_listed(self):
        r = spr_run("result = sorted([2, 1])", policy=self.POLICY)
        self.assertFailed(r, 1, "NameError: name 'sorted' is not defined")

    def test_print_not_listed(self):
        r = spr_run("print('x')", policy={"mode": "allow"})
        self.assertFailed(r, 1, "NameError: name 'print' is not defined")

    def test_listed_builtin_works(self):
        r = spr_run("print('hi')\nresult = len('abc')", policy=self.POLICY)
        self.assertOk(r, 3)
        self.assertEqual(r["stdout"], "hi\n")

    def test_allow_mode_ignores_blocked_lists(self):
        r = spr_run("import json\nresult = len(json.dumps(1))",
                    policy=dict(self.POLICY, blocked_imports=["json"], blocked_builtins=["len"]))
        self.assertOk(r, 1)

    def test_class_statement_works(self):
        r = spr_run(code("""
            class A:
                v = 3
                def get(self):
                    return self.v
            result = A().get()
        """), policy={"mode": "allow"})
        self.assertOk(r, 3)

    def test_allowed_eval(self):
        r = spr_run("result = eval('2 * 3')",
                    policy={"mode": "allow", "allowed_builtins": ["eval"]})
        self.assertOk(r, 6)


class ImportlibAlwaysBlocked(SprTestCase):
    MSG = "ImportError: Import 'importlib' is blocked by policy"

    def test_restrict_default(self):
        self.assertFailed(spr_run("import importlib"), 1, self.MSG)

    def test_restrict_empty_blocked_list(self):
        for src in ("import importlib", "import importlib.util",
                    "from importlib import util", "__import__('importlib')",
                    "from importlib.util import find_spec"):
            with self.subTest(src=src):
                self.assertFailed(spr_run(src, policy=PERMISSIVE), 1, self.MSG)

    def test_allow_mode_even_when_listed(self):
        policy = {"mode": "allow", "allowed_imports": ["importlib", "math"]}
        for src in ("import importlib", "import importlib.util", "from importlib import util"):
            with self.subTest(src=src):
                self.assertFailed(spr_run(src, policy=policy), 1, self.MSG)
        self.assertOk(spr_run("import math\nresult = math.pi > 3", policy=policy), True)


class Globals(SprTestCase):

    def test_name_is_main(self):
        self.assertOk(spr_run("result = __name__"), "__main__")

    def test_name_is_main_in_allow_mode(self):
        self.assertOk(spr_run("result = __name__", policy={"mode": "allow"}), "__main__")

    def test_if_name_main_block_runs(self):
        self.assertOk(spr_run("result = 0\nif __name__ == '__main__':\n    result = 1"), 1)

    def test_functions_see_globals(self):
        r = spr_run("def f():\n    return x * 2\nresult = f()", input_data={"x": 21})
        self.assertOk(r, 42)

    def test_stdin_is_at_eof(self):
        r = spr_run(code("""
            try:
                input()
                result = "read something"
            except EOFError:
                result = "eof"
        """))
        self.assertOk(r, "eof")


# ---------------------------------------------------------------------------
# §3: errors
# ---------------------------------------------------------------------------
class Errors(SprTestCase):

    def test_syntax_error(self):
        r = spr_run("x = 1\nx = = 1\n")
        self.assertFailed(r, 1, "SyntaxError: invalid syntax (<user_code>, line 2)")
        self.assertIsNone(r["result"])
        self.assertEqual(r.returncode, 1)
        self.assertIn('File "<user_code>", line 2', r["stderr"])
        self.assertIn("x = = 1", r["stderr"])
        self.assertIn("^", r["stderr"])
        self.assertIn("SyntaxError: invalid syntax", r["stderr"])

    def test_syntax_error_nothing_runs(self):
        r = spr_run("print('never')\ndef f(:\n    pass\n")
        self.assertFailed(r, 1, "SyntaxError: invalid syntax (<user_code>, line 2)")
        self.assertEqual(r["stdout"], "")

    def test_indentation_error_keeps_name(self):
        r = spr_run("if True:\nx = 1\n")
        self.assertFailed(r, 1, "IndentationError: expected an indented block after 'if' "
                                "statement on line 1 (<user_code>, line 2)")
        self.assertIn("IndentationError", r["stderr"])

    def test_exception(self):
        r = spr_run("print('before')\nresult = 5\n1 / 0\n")
        self.assertFailed(r, 1, "ZeroDivisionError: division by zero")
        self.assertIsNone(r["result"])
        self.assertEqual(r["stdout"], "before\n")
        self.assertEqual(r.returncode, 1)
        self.assertFalse(r["timed_out"])
        self.assertFalse(r["resource_exceeded"])
        self.assertIn("Traceback (most recent call last):", r["stderr"])
        self.assertIn('File "<user_code>", line 3', r["stderr"])
        self.assertIn("ZeroDivisionError: division by zero", r["stderr"])

    def test_traceback_has_only_user_frames(self):
        r = spr_run(code("""
            import json
            def parse(s):
                return json.loads(s)
            parse("{bad")
        """))
        self.assertFailed(r, 1)
        self.assertTrue(r["error"].startswith(
            "JSONDecodeError: Expecting property name enclosed in double quotes"), r)
        err = r["stderr"]
        self.assertIn('File "<user_code>", line 4', err)
        self.assertIn('File "<user_code>", line 3, in parse', err)
        self.assertIn('parse("{bad")', err)
        self.assertIn("return json.loads(s)", err)
        self.assertNotIn("json/decoder.py", err)
        self.assertNotIn("json/__init__.py", err)
        self.assertNotIn("spr_worker", err)
        self.assertEqual(err.count('File "'), err.count('File "<user_code>"'), err)

    def test_custom_exception(self):
        r = spr_run("class Oops(Exception):\n    pass\nraise Oops('bad thing')")
        self.assertFailed(r, 1, "Oops: bad thing")

    def test_exception_without_message(self):
        # SPEC leaves the empty-message form open: "ValueError: " (the
        # reference's f"{type}: {e}") or "ValueError" are both accepted.
        r = spr_run("raise ValueError")
        self.assertFailed(r, 1)
        self.assertIn(r["error"], ("ValueError: ", "ValueError"), r)

    def test_multiline_message_is_one_line(self):
        r = spr_run("raise ValueError('first\\nsecond\\nthird')")
        self.assertFailed(r, 1, "ValueError: first\\nsecond\\nthird")
        self.assertNotIn("\n", r["error"])
        self.assertIn("ValueError: first\nsecond\nthird", r["stderr"])

    def test_long_message_is_cut(self):
        r = spr_run("raise ValueError('x' * 20000)")
        self.assertFailed(r, 1)
        self.assertTrue(r["error"].startswith("ValueError: " + "x" * 8000), r["error"][:100])
        self.assertLessEqual(len(r["error"]), 8192)
        self.assertIn("ValueError: " + "x" * 20000, r["stderr"])

    def test_keyboard_interrupt(self):
        r = spr_run("raise KeyboardInterrupt('stop')")
        self.assertFailed(r, 1, "KeyboardInterrupt: stop")


class SystemExitBehaviour(SprTestCase):

    def test_exit_no_arg_ok(self):
        for src in ("import sys\nsys.exit()", "import sys\nsys.exit(0)",
                    "import sys\nsys.exit(None)", "raise SystemExit", "exit()"):
            with self.subTest(src=src):
                r = spr_run("result = 'kept'\n" + src)
                self.assertOk(r, "kept")
                self.assertIsNone(r["error"])

    def test_exit_n(self):
        r = spr_run("import sys\nprint('out')\nresult = 5\nsys.exit(3)\nresult = 6")
        self.assertFailed(r, 3, "SystemExit: 3")
        self.assertEqual(r["result"], 5)  # kept on SystemExit
        self.assertEqual(r["stdout"], "out\n")
        self.assertEqual(r.returncode, 3)

    def test_exit_string(self):
        r = spr_run("import sys\nresult = [1]\nsys.exit('msg here')")
        self.assertFailed(r, 1, "SystemExit: msg here")
        self.assertIn("msg here", r["stderr"])
        self.assertEqual(r["result"], [1])
        self.assertEqual(r.returncode, 1)

    def test_exit_256(self):
        r = spr_run("import sys\nsys.exit(256)")
        self.assertFailed(r, 256, "SystemExit: 256")
        self.assertEqual(r.returncode, 1)  # §7: a failure never exits 0

    def test_exit_negative_multiple_of_256(self):
        r = spr_run("import sys\nsys.exit(-256)")
        self.assertFailed(r, -256, "SystemExit: -256")
        self.assertEqual(r.returncode, 1)

    def test_exit_negative_never_exits_0(self):
        r = spr_run("import sys\nsys.exit(-1)")
        self.assertFailed(r, -1, "SystemExit: -1")
        self.assertNotEqual(r.returncode, 0)

    def test_exit_beyond_int64(self):
        # Any int: the RunnerResult's exit_code saturates, the error text
        # keeps the number (it once came back "malformed result message").
        for value, want in (("2**31", 2**31 - 1), ("2**63 - 1", 2**31 - 1), ("2**63", 2**31 - 1),
                            ("10**100", 2**31 - 1), ("-2**63 - 1", -(2**31 - 1))):
            with self.subTest(value=value):
                r = spr_run(f"raise SystemExit({value})")
                self.assertFailed(r, want, f"SystemExit: {eval(value)}")
                self.assertEqual(r.returncode, 1 if want % 256 == 0 or want < 0 else want % 256)

    def test_exit_255(self):
        r = spr_run("import sys\nsys.exit(255)")
        self.assertFailed(r, 255, "SystemExit: 255")
        self.assertEqual(r.returncode, 255)

    def test_exit_true(self):
        r = spr_run("import sys\nsys.exit(True)")
        self.assertFailed(r, 1, "SystemExit: True")
        self.assertEqual(r.returncode, 1)

    def test_exit_false_is_ok(self):
        self.assertOk(spr_run("import sys\nresult = 1\nsys.exit(False)"), 1)

    def test_exit_in_function(self):
        r = spr_run("import sys\ndef f():\n    sys.exit(4)\nf()")
        self.assertFailed(r, 4, "SystemExit: 4")
        self.assertEqual(r.returncode, 4)


# ---------------------------------------------------------------------------
# §3: the RunnerResult itself
# ---------------------------------------------------------------------------
class RunnerResultShape(SprTestCase):

    def check_shape(self, r):
        pairs = json.loads(r.stdout, object_pairs_hook=lambda p: p)
        self.assertEqual(tuple(k for k, _ in pairs), RESULT_FIELDS, r.stdout)
        d = r.result
        for f in ("ok", "stdout_truncated", "stderr_truncated", "timed_out", "resource_exceeded"):
            self.assertIsInstance(d[f], bool, f)
        for f in ("stdout", "stderr"):
            self.assertIsInstance(d[f], str, f)
        self.assertTrue(d["error"] is None or isinstance(d["error"], str))
        self.assertIs(type(d["exit_code"]), int)
        self.assertIs(type(d["duration_ms"]), int)
        self.assertGreaterEqual(d["duration_ms"], 0)
        self.assertTrue(d["memory_peak_kb"] is None or
                        (type(d["memory_peak_kb"]) is int and d["memory_peak_kb"] >= 0),
                        d["memory_peak_kb"])
        self.assertIsInstance(d["isolation"], dict)
        self.assertEqual(d["isolation"]["engine"], ENGINE_KIND)
        strict_json_loads(r.stdout)

    def test_shape_ok(self):
        r = spr_run("print('x')\nresult = {'a': 1}")
        self.assertOk(r, {"a": 1})
        self.check_shape(r)
        self.assertIsNone(r["error"])
        self.assertEqual(r["stdout"], "x\n")
        self.assertEqual(r["stderr"], "")
        for f in ("stdout_truncated", "stderr_truncated", "timed_out", "resource_exceeded"):
            self.assertIs(r[f], False, f)

    def test_shape_failed(self):
        r = spr_run("import sys\nsys.stderr.write('e')\nraise RuntimeError('boom')")
        self.assertFailed(r, 1, "RuntimeError: boom")
        self.check_shape(r)
        self.assertTrue(r["stderr"].startswith("e"), r)

    def test_stdout_json_is_one_document(self):
        r = spr_run("print('{not json')\nresult = 1")
        self.assertOk(r, 1)
        self.assertEqual(r["stdout"], "{not json\n")
        self.check_shape(r)

    def test_duration_reflects_run(self):
        r = spr_run("import time\ntime.sleep(0.3)\nresult = 1")
        self.assertOk(r, 1)
        self.assertGreaterEqual(r["duration_ms"], 300)
        self.assertLess(r["duration_ms"], 10000)


# ---------------------------------------------------------------------------
# §6/§7: without --json
# ---------------------------------------------------------------------------
class PlainMode(SprTestCase):

    def test_streams_and_status(self):
        r = spr_run("import sys\nprint('out')\nsys.stderr.write('err\\n')\nresult = 1",
                    json_mode=False)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "out\n")
        self.assertEqual(r.stderr, "err\n")

    def test_exit_status_is_exit_code(self):
        r = spr_run("import sys\nprint('o')\nsys.exit(7)", json_mode=False)
        self.assertEqual(r.returncode, 7)
        self.assertEqual(r.stdout, "o\n")
        self.assertNotIn("SystemExit", r.stderr)  # SystemExit adds no spr-run line

    def test_exit_string_printed_once(self):
        r = spr_run("import sys\nsys.exit('bye now')", json_mode=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("bye now"), 1, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_exception_error_not_duplicated(self):
        r = spr_run("print('o')\n1 / 0", json_mode=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "o\n")
        self.assertTrue(r.stderr.endswith("ZeroDivisionError: division by zero\n"), r.stderr)
        self.assertEqual(r.stderr.count("division by zero"), 1, r.stderr)
        self.assertIn("Traceback (most recent call last):", r.stderr)

    def test_timeout_adds_message(self):
        r = spr_run("import sys\nsys.stdout.write('partial')\nwhile True:\n    pass",
                    json_mode=False, args=["--timeout", "1"])
        self.assertEqual(r.returncode, 124)
        self.assertEqual(r.stdout, "partial")
        self.assertIn("spr-run: Execution timed out after 1s", r.stderr)
        self.assertEqual(r.stderr.count("timed out"), 1, r.stderr)

    def test_memory_error_adds_message(self):
        r = spr_run("raise MemoryError", json_mode=False)
        self.assertEqual(r.returncode, 137)
        self.assertIn("Memory limit exceeded", r.stderr)

    def test_result_error_reported(self):
        r = spr_run("result = []\nresult.append(result)", json_mode=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("spr-run: ResultError:", r.stderr)

    def test_syntax_error(self):
        r = spr_run("x = = 1", json_mode=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("SyntaxError: invalid syntax", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_result_not_printed(self):
        r = spr_run("result = 'not printed'", json_mode=False)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertEqual(r.stderr, "")
