# CPython's own test modules, run by unittest, each test's outcome recorded.
#
# The same file runs inside spr (the code of a run: `modules` comes from the
# input data, the outcomes go back as `result`) and outside (tests/compat/
# compat.py runs it with the interpreter spr uses and the same flags, as an
# unprivileged user, `modules` from argv, the result printed as JSON), so
# the two sides differ only by where they run.
#
# Outcomes: pass, fail, error, skip, xfail (expected failure), xpass
# (unexpected success). A test with failing subtests is "fail" (or "error").
# A module that cannot be loaded is one entry, "<module>.<load>", error.
import io
import json
import sys
import time
import traceback
import unittest

OUTCOME_RANK = {"pass": 0, "skip": 1, "xfail": 2, "xpass": 3, "fail": 4, "error": 5}


class Recorder(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcomes = {}
        self.details = {}

    def _set(self, test, outcome, err=None):
        key = test.id()
        old = self.outcomes.get(key)
        if old is None or OUTCOME_RANK[outcome] > OUTCOME_RANK[old]:
            self.outcomes[key] = outcome
            if err is not None:
                # What failed, in one line: the reason a difference is listed.
                self.details[key] = "".join(
                    traceback.format_exception_only(err[0], err[1])).strip()[-300:]

    def addSuccess(self, test):
        self._set(test, "pass")

    def addFailure(self, test, err):
        self._set(test, "fail", err)

    def addError(self, test, err):
        # setUpClass/setUpModule failures come as a _ErrorHolder whose id
        # names the class or module.
        self._set(test, "error", err)

    def addSkip(self, test, reason):
        self._set(test, "skip")

    def addExpectedFailure(self, test, err):
        self._set(test, "xfail")

    def addUnexpectedSuccess(self, test):
        self._set(test, "xpass")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._set(test, "fail" if failed else "error", err)


def run_module(entry):
    # "module" or "module::pattern": the tests whose id matches the pattern
    # (unittest -k's fnmatch), for modules too long to run whole.
    name, _, pattern = entry.partition("::")
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [pattern]
    try:
        module = __import__(name, fromlist=["*"])
        if hasattr(module, "load_tests") or not hasattr(module, "__path__"):
            suite = loader.loadTestsFromModule(module)
        else:
            # A package (test_asyncio, test_sqlite3): its load_tests, or
            # discovery of its test_*.py files.
            suite = loader.loadTestsFromName(name)
    except unittest.SkipTest:
        return {name + ".<load>": "skip"}, {}
    except BaseException as e:
        return {name + ".<load>": "error"}, {name + ".<load>": repr(e)[-300:]}
    recorder = Recorder()
    out, err = sys.stdout, sys.stderr
    # Tests print: keep it out of the run's capped stdout.
    sys.stdout = sys.stderr = io.StringIO()
    try:
        suite.run(recorder)
    finally:
        sys.stdout, sys.stderr = out, err
    return recorder.outcomes, recorder.details


def run_modules(names):
    # test.support reads these; the defaults (no resources, not verbose)
    # are what `python -m test` gives without -u.
    import test.support
    test.support.verbose = 0
    outcomes, details, seconds = {}, {}, {}
    for name in names:
        start = time.monotonic()
        o, d = run_module(name)
        outcomes.update(o)
        details.update(d)
        seconds[name] = round(time.monotonic() - start, 2)
    return {"python": sys.version.split()[0], "tests": outcomes, "details": details,
            "seconds": seconds}


if "modules" in globals():
    # Inside spr (whose code also runs as __main__): the input data.
    result = run_modules(modules)  # noqa: F821
else:
    print(json.dumps(run_modules(sys.argv[1:])))
