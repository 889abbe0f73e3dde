"""preload_imports runs package code before the request (SPEC §2): code
from a venv counts as untrusted, and it runs inside the sandbox with the
same containment as the run, before any request exists.

The hostile package's import reads a secret in the caller's home (mode
0600), writes under /etc and /usr (as root; another user: its home and
/var/tmp) and into its own venv, and connects to a listener on the host. The control imports it with the host's interpreter
and every attempt succeeds; preloaded through spr-run, every attempt
fails, the host is untouched and the run reports cleanly.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from hostile.harness import HOME, HOST_PYTHON, IS_ROOT, HostileCase, token
from integration.common import ENGINE, SPR_RUN, write_policy

EVIL = r'''
import errno, json, os, socket

def _attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}

def _read(path):
    with open(path) as f:
        return f.read()

def _write(path):
    with open(path, "x") as f:
        f.write("written by a preload")
    return "written"

def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b"preload was here")
    s.close()
    return "connected"

_cfg = json.loads(open(os.path.join(os.path.dirname(__file__), "targets.json")).read())
findings = {
    "secret": _attempt(lambda: _read(_cfg["secret"])),
    "etc": _attempt(lambda: _write(_cfg["etc"])),
    "usr": _attempt(lambda: _write(_cfg["usr"])),
    "venv": _attempt(lambda: _write(_cfg["venv"])),
    "connect": _attempt(lambda: _connect(_cfg["port"])),
}
'''


@unittest.skipIf(ENGINE != "local", "--python (a venv's interpreter) is the LocalEngine's")
class HostilePreload(HostileCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="spr-hostile-preload-")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        venv = os.path.join(self.dir, "venv")
        made = subprocess.run([HOST_PYTHON, "-m", "venv", "--without-pip", venv],
                              capture_output=True, text=True)
        if made.returncode != 0:
            self.skipTest(f"no venv module: {made.stderr}")
        self.python = os.path.join(venv, "bin", "python")
        site = subprocess.run([self.python, "-I", "-c",
                               "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
        package = os.path.join(site, "spr_evil_preload")
        os.mkdir(package)
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write(EVIL)
        tok = token("spr-hostile-preload")
        self.secret_text = "secret " + tok
        self.secret = self.make_file(HOME, self.secret_text, mode=0o600)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.addCleanup(self.listener.close)
        self.targets = {
            "secret": self.secret,
            # System directories for root; for another user, places it
            # may write on the host that its sandbox does not show.
            "etc": os.path.join("/etc" if IS_ROOT else HOME, tok),
            "usr": os.path.join("/usr/lib" if IS_ROOT else "/var/tmp", tok),
            "venv": os.path.join(package, "written-" + tok),
            "port": self.listener.getsockname()[1],
        }
        for key in ("etc", "usr", "venv"):
            self.addCleanup(lambda p=self.targets[key]: os.path.exists(p) and os.unlink(p))
        with open(os.path.join(package, "targets.json"), "w") as f:
            json.dump(self.targets, f)

    def connections(self):
        """What reached the listener since the last call."""
        got = []
        while True:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                return got
            conn.settimeout(2)
            try:
                got.append(conn.recv(100))
            finally:
                conn.close()

    def host_writes(self):
        return {k: os.path.exists(self.targets[k]) for k in ("etc", "usr", "venv")}

    def spr_run(self, policy, code):
        with tempfile.TemporaryDirectory(prefix="spr-hostile-") as tmp:
            path = os.path.join(tmp, "code.py")
            with open(path, "w") as f:
                f.write(code)
            proc = subprocess.run([SPR_RUN, "--json", "--python", self.python,
                                   "--policy", write_policy(policy, tmp), path],
                                  capture_output=True, text=True, timeout=120)
        self.assertIn(proc.returncode, (0, 1), proc.stderr)
        return json.loads(proc.stdout)

    def test_the_control_succeeds_on_the_host(self):
        proc = subprocess.run([self.python, "-I", "-S", "-c",
                               "import sys, json\n"
                               f"sys.path.append({os.path.dirname(os.path.dirname(self.targets['venv']))!r})\n"
                               "import spr_evil_preload as m\nprint(json.dumps(m.findings))"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        findings = json.loads(proc.stdout)
        self.assertEqual(findings["secret"], {"ok": True, "value": self.secret_text}, findings)
        for key in ("etc", "usr", "venv"):
            self.assertEqual(findings[key], {"ok": True, "value": "written"}, findings)
        self.assertEqual(findings["connect"], {"ok": True, "value": "connected"}, findings)
        self.assertEqual(self.host_writes(), {"etc": True, "usr": True, "venv": True})
        self.assertEqual(self.connections(), [b"preload was here"])

    def test_preloaded_it_is_contained(self):
        policy = {"blocked_imports": [], "blocked_builtins": [],
                  "preload_imports": ["spr_evil_preload"]}
        code = ("import sys\nloaded = 'spr_evil_preload' in sys.modules\n"
                "import spr_evil_preload as m\nresult = dict(m.findings, loaded=loaded)\n")
        r = self.spr_run(policy, code)
        self.assertTrue(r["ok"], r)
        findings = r["result"]
        self.assertTrue(findings["loaded"], findings)  # it was a preload, not the code's import
        self.assertFalse(findings["secret"]["ok"], findings)
        for key in ("etc", "usr", "venv"):
            self.assertFalse(findings[key]["ok"], findings)
            self.assertIn(findings[key]["errno"], ("EROFS", "EACCES", "EPERM", "ENOENT"),
                          findings)
        self.assertFalse(findings["connect"]["ok"], findings)
        self.assertEqual(r["isolation"]["network"], "loopback", r)
        self.assertEqual(self.host_writes(), {"etc": False, "usr": False, "venv": False})
        self.assertEqual(self.connections(), [])

    def test_refused_by_the_policy_it_still_ran_contained(self):
        # The default policy blocks os and socket: the run is refused
        # cleanly, and what the import did meanwhile stayed in the sandbox.
        r = self.spr_run({"preload_imports": ["spr_evil_preload"]}, "print('the code ran')")
        self.assertFalse(r["ok"], r)
        self.assertEqual(r["exit_code"], 1, r)
        self.assertEqual(r["stdout"], "", r)
        self.assertEqual(r["error"],
                         "preload_imports: 'spr_evil_preload' imports 'os' and 'socket', which "
                         "blocked_imports blocks: remove them from blocked_imports or "
                         "'spr_evil_preload' from preload_imports", r)
        self.assertEqual(self.host_writes(), {"etc": False, "usr": False, "venv": False})
        self.assertEqual(self.connections(), [])


if __name__ == "__main__":
    unittest.main()
