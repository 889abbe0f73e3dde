#!/usr/bin/env python3
"""Runs a test directory (integration, hostile, ...) with unittest.

    SPR_BUILD=/abs/build python3 tests/run.py integration [-k PATTERN]

Tests talk to the built binaries only (spr-run, spr, libspr via ctypes
later); they never import project code.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: tests/run.py DIR [unittest args]", file=sys.stderr)
        return 2
    suite_dir = os.path.join(HERE, sys.argv[1])
    if not os.environ.get("SPR_BUILD"):
        os.environ["SPR_BUILD"] = os.path.join(os.path.dirname(HERE), "build")
    sys.path.insert(0, HERE)
    argv = [sys.argv[0], "discover", "-s", suite_dir, "-t", HERE] + sys.argv[2:]
    prog = unittest.main(module=None, argv=argv, exit=False,
                         testRunner=unittest.TextTestRunner(verbosity=2))
    if os.environ.get("SPR_TEST_DEGRADED") == "1":
        report_degraded(prog.result)
    return 0 if prog.result.wasSuccessful() else 1


def report_degraded(result):
    """The degraded suite's count (SPEC §7 "Degraded mode"): cases that
    hold, and the escapes degraded mode cannot close (skipped with the
    class of what shows)."""
    escapes = [(t.id(), why) for t, why in result.skipped if why.startswith("degraded escape")]
    others = len(result.skipped) - len(escapes)
    held = result.testsRun - len(result.skipped) - len(result.failures) - len(result.errors)
    print(f"\ndegraded mode: {held} of {result.testsRun} cases hold, {len(escapes)} escape "
          f"(what a run without namespaces cannot hide), {others} not applicable, "
          f"{len(result.failures) + len(result.errors)} failed", file=sys.stderr)
    for test_id, why in escapes:
        print(f"  {why}: {test_id}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
