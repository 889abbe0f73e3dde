"""spr_run_json (include/spr.h), the entry the CLI and language bindings
share: the request's keys reach the run (input_data, policy, policy_file),
and a request that is wrong is the caller's error, with SPEC §2's texts.

Requests go through libspr.so with ctypes, as a binding sends them.
"""
import json
import os
import tempfile
import unittest

from integration.common import ENGINE, LIBSPR_PRELUDE, SprTestCase, libspr_program

# request(text) -> {"rc", "result" (the RunnerResult) or "error" and "layer"}
PRELUDE = LIBSPR_PRELUDE + r'''
class Error(ctypes.Structure):
    _fields_ = [("message", ctypes.c_char_p), ("errnum", ctypes.c_int), ("layer", ctypes.c_int)]
lib.spr_layer_name.restype = ctypes.c_char_p
lib.spr_error_free.argtypes = [P]

def request(text):
    data = text.encode()
    out, err = P(), ctypes.POINTER(Error)()
    rc = lib.spr_run_json(engine, data, len(data), ctypes.byref(out),
                          ctypes.cast(ctypes.byref(err), ctypes.POINTER(P)))
    if rc == 0:
        result = json.loads(ctypes.string_at(out).decode())
        lib.spr_free(out)
        return {"rc": rc, "result": result}
    e = err.contents
    answer = {"rc": rc, "error": e.message.decode(), "layer": lib.spr_layer_name(e.layer).decode()}
    lib.spr_error_free(err)
    return answer
'''

# Blocks an import the default policy allows, so a run shows whether the
# policy (inline or from the file) was the one applied.
IMPORT_JSON = "import json\nresult = 'imported'"
BLOCKED = "ImportError: Import 'json' is blocked by policy"


def requests(named):
    """Sends each request text through spr_run_json in one program; returns
    {name: answer}."""
    body = (f"named = json.loads({json.dumps(json.dumps(named))})\n"
            "print(json.dumps({name: request(text) for name, text in named.items()}))\n")
    return libspr_program(PRELUDE, body)


@unittest.skipIf(ENGINE != "local", "drives the LocalEngine through libspr.so")
class RunJson(SprTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="spr-it-json-")
        cls.policy_file = os.path.join(cls.tmp.name, "policy.toml")
        with open(cls.policy_file, "w") as f:
            f.write('[policy]\nblocked_imports = ["json"]\n')
        missing = os.path.join(cls.tmp.name, "missing.toml")
        pf = cls.policy_file
        cls.answers = requests({
            "plain": json.dumps({"code": IMPORT_JSON}),
            "inline policy": json.dumps({"code": IMPORT_JSON,
                                         "policy": {"blocked_imports": ["json"]}}),
            "policy_file": json.dumps({"code": IMPORT_JSON, "policy_file": pf}),
            "both": json.dumps({"code": IMPORT_JSON, "policy": {}, "policy_file": pf}),
            "missing policy_file": json.dumps({"code": "result = 1", "policy_file": missing}),
            "policy_file not a string": '{"code": "result = 1",\n "policy_file": 7}',
            "input_data": ('{"code": "result = [input_data, x, big == 2**100]", '
                           '"input_data": {"x": [1, "two"], "big": 1267650600228229401496703205376}}'),
            "no input_data": json.dumps({"code": "result = input_data"}),
            "unknown key": '{"code": "result = 1",\n  "polcy": {}}',
            "no code": '{"input_data": {}}',
            # \u0000 in the policy: its strings are C strings from there on,
            # so it would cut a name short, silently
            "NUL in preload_imports": ('{"code": "result = 1",\n'
                                       ' "policy": {"preload_imports": ["json\\u0000os"]}}'),
            "NUL in blocked_imports": ('{"code": "import os\\nresult = 1", "policy": '
                                       '{"blocked_imports": ["json", "os\\u0000x"]}}'),
            "NUL in an env key": ('{"code": "result = 1", "policy": '
                                  '{"env": {"SPR_WORKER_PRELOAD\\u0000x": "{}"}}}'),
            "NUL in extra_globals": ('{"code": "result = g", "policy": '
                                     '{"extra_globals": {"g": ["a\\u0000b"]}}}'),
            # the control: input_data keeps its NUL
            "NUL in input_data": '{"code": "result = input_data", "input_data": "a\\u0000b"}',
        })

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def answer(self, name):
        return self.answers[name]

    def result(self, name):
        a = self.answer(name)
        self.assertEqual(a["rc"], 0, a)
        return a["result"]

    def refused(self, name, message, layer="request"):
        self.assertEqual(self.answer(name), {"rc": -1, "error": message, "layer": layer})

    def test_policy_and_policy_file_apply(self):
        # the control: the default policy lets the import through
        self.assertEqual(self.result("plain")["result"], "imported")
        for name in ("inline policy", "policy_file"):
            r = self.result(name)
            self.assertFalse(r["ok"], r)
            self.assertEqual(r["error"], BLOCKED, name)

    def test_policy_and_policy_file_together_are_refused(self):
        self.refused("both", "Provide either 'policy' or 'policy_file', not both")

    def test_a_policy_file_that_is_wrong(self):
        a = self.answer("missing policy_file")
        self.assertEqual(a["rc"], -1, a)
        self.assertIn(os.path.join(self.tmp.name, "missing.toml"), a["error"])
        self.refused("policy_file not a string",
                     "request:2:17: 'policy_file' must be a string (a path)")

    def test_input_data_reaches_the_code(self):
        r = self.result("input_data")
        # a dict's keys become globals too; big integers stay exact (forwarded
        # verbatim, never through a double)
        self.assertEqual(r["result"], [{"x": [1, "two"], "big": 2**100}, [1, "two"], True], r)
        self.assertEqual(self.result("no input_data")["result"], {})

    def test_unknown_keys_and_missing_code_are_refused(self):
        # the position is that of the member's value
        self.refused("unknown key", "request:2:12: unknown request key 'polcy' "
                                    "(expected code, input_data, policy, policy_file)")
        self.refused("no code", "request:1:1: 'code' is required and must be a string")

    def test_a_nul_in_the_policy_is_refused_where_it_is(self):
        what = "\\u0000 (NUL) is not allowed in the policy's strings or keys"
        self.refused("NUL in preload_imports", f"request:2:33: {what}")
        self.refused("NUL in blocked_imports", f"request:1:74: {what}")
        self.refused("NUL in extra_globals", f"request:1:59: {what}")
        # a key's NUL: at the object that holds it
        self.refused("NUL in an env key", f"request:1:42: {what}")

    def test_a_nul_in_input_data_still_reaches_the_code(self):
        self.assertEqual(self.result("NUL in input_data")["result"], "a\u0000b")


if __name__ == "__main__":
    unittest.main()
