"""Output as it is produced (SPEC §3 "Streaming"): spr-run without --json
writes the code's stdout and stderr as they come, on both engines
(SPR_TEST_ENGINE), up to the output cap; the result is unchanged."""
import json
import os
import subprocess
import tempfile
import time

from integration.common import (DEGRADED_ARGS, DEGRADED_PREFIX, ENGINE, PERMISSIVE, SPR_RUN,
                                SprTestCase, write_policy)


class Streaming(SprTestCase):
    def start(self, code, *args, policy=None):
        tmp = tempfile.mkdtemp(prefix="spr-it-stream-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", tmp], check=False))
        path = os.path.join(tmp, "code.py")
        with open(path, "w") as f:
            f.write(code)
        pol = write_policy(dict(PERMISSIVE, **(policy or {})), tmp)
        proc = subprocess.Popen([*DEGRADED_PREFIX, SPR_RUN, "--engine", ENGINE, *DEGRADED_ARGS,
                                 "--policy", pol, *args, path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                                 proc.stdout.close(), proc.stderr.close()))
        return proc

    def test_a_line_arrives_while_the_run_still_runs(self):
        """Before: nothing until the run ended, 2 s after the first print."""
        proc = self.start("import sys, time\n"
                          "print('first')\n"
                          "sys.stderr.write('to stderr\\n')\n"
                          "time.sleep(2)\n"
                          "print('second')\n")
        first = proc.stdout.readline()
        seen_first = time.monotonic()
        self.assertEqual(first, b"first\n")
        # Streamed, not printed at the end: the run is still sleeping.
        self.assertIsNone(proc.poll(), "spr-run had already ended: nothing was streamed")
        self.assertEqual(proc.stderr.readline(), b"to stderr\n")
        rest = proc.stdout.read()
        proc.wait(timeout=60)
        ended = time.monotonic()
        self.assertEqual(rest, b"second\n")
        self.assertEqual(proc.stderr.read(), b"")
        self.assertEqual(proc.returncode, 0)
        # The first line came before the 2 s sleep, not with the second.
        self.assertGreater(ended - seen_first, 1.0)

    def test_the_cap_holds_for_what_is_streamed(self):
        proc = self.start("import sys\n"
                          "sys.stdout.write('x' * 3000)\n"
                          "sys.stdout.flush()\n"
                          "sys.stderr.write('e' * 5000)\n", "--max-output", "1")
        out, err = proc.communicate(timeout=60)
        self.assertEqual(out, b"x" * 1024)
        self.assertEqual(err, b"e" * 1024)
        self.assertEqual(proc.returncode, 0)

    def test_json_mode_streams_nothing_and_keeps_the_result(self):
        """--json prints one document: the streams are in it, not before it."""
        proc = self.start("import time\nprint('a')\ntime.sleep(0.5)\nprint('b')\n", "--json")
        out, err = proc.communicate(timeout=60)
        doc = json.loads(out)
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["stdout"], "a\nb\n")
        self.assertEqual(err, b"")

    def test_output_of_a_timed_out_run_was_already_shown(self):
        """What a run printed before its timeout is not lost with it."""
        proc = self.start("import time\nprint('before', flush=True)\ntime.sleep(30)\n",
                          "--timeout", "1")
        out, err = proc.communicate(timeout=60)
        self.assertEqual(out, b"before\n")
        self.assertIn(b"timed out", err.lower())
        self.assertNotEqual(proc.returncode, 0)
