"""The interpreter given to spr (--python) is as untrusted as the code: a
venv's .pth files run whenever site does, and the path may name any
program. spr asks it about itself (the probe) and compiles the worker
with it in a sandbox like a run's, never on the host as the caller
(issue: the probe ran every .pth of a venv as root). And what the probe
answers must lie inside what it was shown: a lying interpreter cannot
widen what later runs see.

Each case shows the attack working when the interpreter runs on the host,
then spr-run with it, after which the host must be untouched.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from hostile.harness import HOST_PYTHON, HostileCase, token
from integration.common import ENGINE, SPR_RUN

CACHE = os.environ.get("SPR_CACHE_DIR") or (
    "/var/cache/spr" if os.geteuid() == 0 else
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spr"))


def spr_run_with(python, code="result = 1"):
    return subprocess.run([SPR_RUN, "--json", "--python", python, "-"], input=code,
                          capture_output=True, text=True, timeout=120)


@unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's")
class UntrustedInterpreter(HostileCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="spr-hostile-py-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.marker = os.path.join(tempfile.gettempdir(), token("spr-hostile-wrote"))
        self.addCleanup(lambda: os.path.exists(self.marker) and os.unlink(self.marker))

    def test_a_fake_interpreter_writes_nothing_on_the_host(self):
        fake = os.path.join(self.dir, "python3")
        with open(fake, "w") as f:
            f.write(f"#!/bin/sh\necho owned > {self.marker}\necho 'owned' >&2\nexit 1\n")
        os.chmod(fake, 0o755)
        subprocess.run([fake, "-I", "-S", "-c", "pass"], capture_output=True)  # the control
        self.assertTrue(os.path.exists(self.marker), "the control must write the marker")
        os.unlink(self.marker)
        proc = spr_run_with(fake)
        self.assertEqual(proc.returncode, 125, proc.stderr)
        self.assertIn(fake, json.loads(proc.stdout)["error"])
        self.assertFalse(os.path.exists(self.marker), "the fake interpreter wrote on the host")

    def test_a_venvs_pth_file_runs_only_in_the_sandbox(self):
        venv = os.path.join(self.dir, "venv")
        made = subprocess.run([HOST_PYTHON, "-m", "venv", "--without-pip", venv],
                              capture_output=True, text=True)
        if made.returncode != 0:
            self.skipTest(f"no venv module: {made.stderr}")
        python = os.path.join(venv, "bin", "python")
        site = subprocess.run([python, "-I", "-c",
                               "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        with open(os.path.join(site, "evil.pth"), "w") as f:
            f.write(f"import os; open({self.marker!r}, 'w').write('owned')\n")
        subprocess.run([python, "-c", "pass"], capture_output=True)  # the control: site runs it
        self.assertTrue(os.path.exists(self.marker), "the control must run the .pth file")
        os.unlink(self.marker)
        proc = spr_run_with(python, "import sys\nresult = sys.prefix")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["result"], os.path.realpath(venv))
        self.assertFalse(os.path.exists(self.marker), "the .pth file ran on the host")

    def test_a_lying_probe_answer_is_refused(self):
        # Answers the probe like a Python, but claims / as its prefix: the
        # layout of every later run would then show the whole host.
        fake = os.path.join(self.dir, "python3")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nprintf '/\\n/\\n3.11.2\\n/usr/bin/python3\\n'\n")
        os.chmod(fake, 0o755)
        proc = spr_run_with(fake)
        self.assertEqual(proc.returncode, 125, proc.stderr)
        error = json.loads(proc.stdout)["error"]
        self.assertIn("outside what it was shown", error)
        # Nothing of it was cached to be believed later.
        for name in os.listdir(CACHE) if os.path.isdir(CACHE) else []:
            if name.startswith("probe-"):
                with open(os.path.join(CACHE, name)) as f:
                    self.assertNotEqual(f.read().split("\n")[:2], ["/", "/"], name)


if __name__ == "__main__":
    unittest.main()
