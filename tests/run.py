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
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
