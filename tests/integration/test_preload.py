"""preload_imports (SPEC §2): modules the worker imports before it reads
its request, so that a run from the LocalEngine's warm pool finds them
imported; what they pull in is checked against the run's policy before
any code runs.

Runs go through spr-run and tests/tools/batch (one engine, many runs, a
pause between them so the pool refills). Whether a run got a prepared
sandbox is seen from inside, as in test_pool.py: its worker is older than
the request.
"""
import os
import unittest

from .common import ENGINE, PERMISSIVE, SprTestCase, run_cli, spr_run, write_policy
from .test_pool import AGE, PREPARED_AGE, batch, pause

# Debian's python3-numpy under /usr/lib/python3/dist-packages, which the
# interpreter probe puts on sys_path for /usr/bin/python3.
NUMPY_DIR = "/usr/lib/python3/dist-packages/numpy"
HAVE_NUMPY = os.path.isdir(NUMPY_DIR)
NUMPY = dict(PERMISSIVE, preload_imports=["numpy"])
NUMPY_SUM = "import numpy\nresult = float(numpy.arange(10).sum())\n"

# Before anything of the code's own: is it imported already?
LOADED = "import sys as _sys\n_loaded = sorted(m for m in ('numpy', 'tomllib') if m in _sys.modules)\n"


def request(code, **policy):
    return {"code": LOADED + AGE + code, "policy": dict(PERMISSIVE, **policy)}


@unittest.skipUnless(ENGINE == "local", "the LocalEngine's pool")
@unittest.skipUnless(HAVE_NUMPY, "python3-numpy is not installed")
class PreloadPool(SprTestCase):
    def assertAllOk(self, proc, results):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for r in results:
            self.assertTrue(r.get("ok"), r)

    def test_a_prepared_sandbox_has_numpy_imported(self):
        code = NUMPY_SUM + "result = [result, _loaded, worker_age]"
        proc, results = batch([request(code, preload_imports=["numpy"]), pause(),
                               request(code, preload_imports=["numpy"])])
        self.assertAllOk(proc, results)
        cold, warm = (r["result"] for r in results)
        # A sandbox set up for the run imports first too (on its path).
        self.assertEqual(cold[:2], [45.0, ["numpy"]], cold)
        self.assertEqual(warm[:2], [45.0, ["numpy"]], warm)
        self.assertGreater(warm[2], PREPARED_AGE, warm)
        # The control: the same runs without the preload import it themselves.
        proc, results = batch([request(code), pause(), request(code)])
        self.assertAllOk(proc, results)
        self.assertEqual(results[1]["result"][:2], [45.0, []], results[1])
        self.assertGreater(results[1]["result"][2], PREPARED_AGE, results[1])

    def test_state_left_in_a_preloaded_module_does_not_reach_the_next_run(self):
        first = r"""
import numpy
numpy.spr_secret = 'from run A'
numpy.pi = 3
numpy.core.multiarray.spr_mark = True
_sys.modules['numpy'].__dict__['spr_other'] = 1
result = {'age': worker_age, 'pi': numpy.pi, 'secret': numpy.spr_secret}
"""
        second = r"""
import numpy
result = {
    'age': worker_age,
    'secret': getattr(numpy, 'spr_secret', None),
    'other': hasattr(numpy, 'spr_other'),
    'mark': hasattr(numpy.core.multiarray, 'spr_mark'),
    'pi': numpy.pi,
    'loaded': _loaded,
}
"""
        # A warm-up first: A then runs on a prepared sandbox, and B on one
        # prepared while A ran (same policy, same key).
        proc, results = batch([request("result = 0", preload_imports=["numpy"]), pause(),
                               request(first, preload_imports=["numpy"]), pause(),
                               request(second, preload_imports=["numpy"])])
        self.assertAllOk(proc, results)
        a, b = results[1]["result"], results[2]["result"]
        self.assertEqual((a["pi"], a["secret"]), (3, "from run A"), a)  # real inside A
        self.assertGreater(a["age"], PREPARED_AGE, a)
        self.assertGreater(b["age"], PREPARED_AGE, b)
        self.assertEqual(b["secret"], None, b)
        self.assertFalse(b["other"] or b["mark"], b)
        self.assertEqual(b["pi"], 3.141592653589793, b)
        self.assertEqual(b["loaded"], ["numpy"], b)

    def test_a_sandbox_prepared_with_other_preloads_is_never_handed_out(self):
        probe = "result = {'loaded': _loaded, 'age': worker_age}"
        proc, results = batch([
            request(probe, preload_imports=["numpy"]), pause(),
            request(probe), pause(),                          # no preloads
            request(probe), pause(),                          # prepared for the last
            request(probe, preload_imports=["tomllib"]), pause(),  # other
            request(probe, preload_imports=["tomllib", "numpy"]),  # a superset
        ])
        self.assertAllOk(proc, results)
        got = [r["result"] for r in results]
        self.assertEqual(got[0]["loaded"], ["numpy"], got)
        # The pool held a sandbox with numpy: not this run's.
        self.assertEqual(got[1]["loaded"], [], got)
        self.assertLess(got[1]["age"], PREPARED_AGE, got)
        self.assertEqual(got[2]["loaded"], [], got)
        self.assertGreater(got[2]["age"], PREPARED_AGE, got)  # the pool works here
        self.assertEqual(got[3]["loaded"], ["tomllib"], got)
        self.assertLess(got[3]["age"], PREPARED_AGE, got)
        self.assertEqual(got[4]["loaded"], ["numpy", "tomllib"], got)
        self.assertLess(got[4]["age"], PREPARED_AGE, got)

    def test_a_refused_preload_refuses_every_run_of_the_policy(self):
        # The default blocked_imports: numpy pulls in os, ctypes, importlib.
        policy = {"preload_imports": ["numpy"]}
        code = "print('the code ran')\nresult = 1"
        proc, results = batch([{"code": code, "policy": policy}, pause(),
                               {"code": code, "policy": policy}])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for r in results:
            self.assertFalse(r["ok"], r)
            self.assertEqual(r["exit_code"], 1, r)
            self.assertEqual(r["stdout"], "", r)
            self.assertEqual(r["error"],
                             "preload_imports: 'numpy' imports 'ctypes', 'importlib' and "
                             "'os', which blocked_imports blocks: remove them from "
                             "blocked_imports or 'numpy' from preload_imports", r)


@unittest.skipUnless(ENGINE == "local", "the host's python3-numpy (an image has its own)")
@unittest.skipUnless(HAVE_NUMPY, "python3-numpy is not installed")
class PreloadOneShot(SprTestCase):
    def test_numpy_preloaded(self):
        run = spr_run(LOADED + NUMPY_SUM + "result = [result, _loaded]",
                      policy=dict(NUMPY, blocked_imports=["subprocess", "socket"]))
        self.assertOk(run, [45.0, ["numpy"]])

    def test_blocked_by_the_default_policy(self):
        run = spr_run("print('the code ran')", policy={"preload_imports": ["numpy"]})
        self.assertFailed(run, 1, "preload_imports: 'numpy' imports 'ctypes', 'importlib' and "
                                  "'os', which blocked_imports blocks: remove them from "
                                  "blocked_imports or 'numpy' from preload_imports")
        self.assertEqual(run["stdout"], "", run)
        self.assertEqual(run.returncode, 1, run)

    def test_importlib_alone_still_refuses(self):
        run = spr_run("result = 1", policy={"preload_imports": ["numpy"],
                                            "blocked_imports": ["importlib"]})
        self.assertFailed(run, 1, "preload_imports: 'numpy' imports 'importlib', which "
                                  "blocked_imports blocks: remove 'importlib' from "
                                  "blocked_imports or 'numpy' from preload_imports")

    def test_allow_mode_needs_what_numpy_imports(self):
        run = spr_run("result = 1", policy={"mode": "allow", "allowed_imports": ["numpy"],
                                            "preload_imports": ["numpy"]})
        self.assertFalse(run["ok"], run)
        self.assertIn("preload_imports: 'numpy' imports '__future__', ", run["error"])
        self.assertIn("'ctypes'", run["error"])
        self.assertNotIn("'sys'", run["error"])  # loaded at start-up
        self.assertTrue(run["error"].endswith(
            "which allowed_imports does not list: add them to allowed_imports or remove "
            "'numpy' from preload_imports"), run)

    def test_missing_module(self):
        run = spr_run("print('the code ran')",
                      policy={"preload_imports": ["json", "spr_no_such_module"]})
        self.assertFailed(run, 1, "preload_imports: importing 'spr_no_such_module' failed: "
                                  "ModuleNotFoundError: No module named 'spr_no_such_module'")
        self.assertEqual(run["stdout"] + run["stderr"], "", run)

    def test_bad_names_are_policy_errors(self):
        for bad in ("", "1abc", "a..b", ".x", "x.", "a b", "numpy-1"):
            run = spr_run("result = 1", policy={"preload_imports": [bad]})
            self.assertEqual(run.returncode, 2, run)
            self.assertIn("'preload_imports'", run.stderr, run)
        run = spr_run("result = 1", policy={"preload_imports": ["json", "json"]})
        self.assertEqual(run.returncode, 2, run)
        self.assertIn("'preload_imports' names 'json' twice: drop one", run.stderr)


class PreloadAnyEngine(SprTestCase):
    """What holds on both engines (SPR_TEST_ENGINE=docker: the container
    agent's sandboxes get the same plan), with a module every image has."""

    def batch(self, requests):
        import json
        import subprocess

        from .test_pool import BATCH, ENV
        lines = "".join(json.dumps(r) + "\n" for r in requests)
        proc = subprocess.run([BATCH, "--engine", ENGINE], input=lines, capture_output=True,
                              text=True, timeout=300, env=ENV)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return [json.loads(line).get("result") for line in proc.stdout.splitlines()
                if line.strip()]

    def test_preloaded_refused_failed(self):
        probe = "import sys\nresult = sorted(m for m in ('tomllib', 'json') if m in sys.modules)"
        run = spr_run(probe, policy=dict(PERMISSIVE, preload_imports=["tomllib"]))
        self.assertOk(run)
        self.assertIn("tomllib", run["result"])
        run = spr_run(probe, policy=PERMISSIVE)
        self.assertOk(run, [])
        run = spr_run("print('ran')", policy={"preload_imports": ["os"]})
        self.assertFailed(run, 1, "preload_imports: 'os' is blocked by blocked_imports: remove "
                                  "'os' from blocked_imports or 'os' from preload_imports")
        self.assertEqual(run["stdout"], "", run)
        run = spr_run("print('ran')", policy={"preload_imports": ["spr_no_such_module"]})
        self.assertFailed(run, 1, "preload_imports: importing 'spr_no_such_module' failed: "
                                  "ModuleNotFoundError: No module named 'spr_no_such_module'")

    def test_state_left_in_a_preload_does_not_reach_the_next_run(self):
        policy = dict(PERMISSIVE, preload_imports=["tomllib"])
        first = ("import tomllib\ntomllib.spr_secret = 'from run A'\n"
                 "tomllib.loads = None\nresult = tomllib.spr_secret")
        second = ("import tomllib\nresult = [getattr(tomllib, 'spr_secret', None), "
                  "tomllib.loads('a = 1')]")
        results = self.batch([{"code": "result = 0", "policy": policy}, {"sleep_ms": 1500},
                              {"code": first, "policy": policy}, {"sleep_ms": 1500},
                              {"code": second, "policy": policy}])
        self.assertEqual(results[1]["result"], "from run A", results)
        self.assertTrue(results[2]["ok"], results)
        self.assertEqual(results[2]["result"], [None, {"a": 1}], results)


if __name__ == "__main__":
    unittest.main()
