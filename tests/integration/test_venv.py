"""A venv's interpreter given with --python runs the code in that venv
(LocalEngine): its site-packages are importable, sys.prefix is the venv,
the Python policy still applies, and a plain interpreter does not see it.

The venvs are made with `-m venv --without-pip` (no network here) by the
interpreters the tests use, asked rather than assumed: the one spr-run
runs by default, the one running this suite, and `python3` on PATH (a
pyenv shim answers with the real interpreter under /root, whose venvs
point outside anything else the sandbox shows)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from integration.common import ENGINE, PERMISSIVE, SprTestCase, spr_run

MODULE = "spr_venv_probe_mod"
VALUE = 4242


def ask(python, code):
    """What `python` prints for `code`, or None if it cannot answer."""
    try:
        proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                              timeout=60)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def interpreters():
    """The real paths of the interpreters the tests use, each once."""
    default = spr_run("import sys\nresult = sys.executable")
    candidates = [default.result["result"] if default.result else None, sys.executable]
    on_path = shutil.which("python3")
    if on_path:
        candidates.append(ask(on_path, "import sys; print(sys.executable)"))
    found = []
    for python in candidates:
        if python and os.access(python, os.X_OK) and os.path.realpath(python) not in found:
            found.append(os.path.realpath(python))
    return found


def make_venv(python, where):
    """A venv made by `python` with MODULE in its site-packages; returns
    its bin/python, or None when this interpreter has no venv module."""
    proc = subprocess.run([python, "-m", "venv", "--without-pip", where],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return None
    venv_python = os.path.join(where, "bin", "python")
    site = ask(venv_python, "import sysconfig; print(sysconfig.get_path('purelib'))")
    with open(os.path.join(site, MODULE + ".py"), "w") as f:
        f.write(f"VALUE = {VALUE}\n")
    return venv_python


@unittest.skipIf(ENGINE != "local", "--python is the LocalEngine's")
class VenvTest(SprTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="spr-venv-")
        # Without namespaces (degraded) the code reads host paths as nobody.
        os.chmod(cls.tmp, 0o755)
        cls.venvs = []  # (base interpreter, venv root, venv python)
        for i, python in enumerate(interpreters()):
            root = os.path.join(cls.tmp, f"venv{i}")
            venv_python = make_venv(python, root)
            if venv_python:
                cls.venvs.append((python, root, venv_python))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        if not self.venvs:
            self.skipTest("no interpreter here can make a venv (python3-venv missing)")

    def test_module_in_venv_imports(self):
        code = (f"import sys, {MODULE} as m\n"
                "result = [m.VALUE, m.__file__, sys.prefix, sys.exec_prefix, sys.base_prefix,"
                " sys.executable]\n")
        for python, root, venv_python in self.venvs:
            with self.subTest(python=python):
                r = spr_run(code, args=["--python", venv_python])
                self.assertOk(r)
                value, file, prefix, exec_prefix, base_prefix, executable = r["result"]
                self.assertEqual(value, VALUE, r)
                self.assertTrue(file.startswith(root + "/"), r)
                self.assertEqual(prefix, root, r)
                self.assertEqual(exec_prefix, root, r)
                self.assertEqual(base_prefix, ask(python, "import sys; print(sys.base_prefix)"), r)
                self.assertEqual(executable, venv_python, r)

    def test_plain_interpreter_does_not_see_it(self):
        for python, root, _ in self.venvs:
            with self.subTest(python=python):
                r = spr_run(f"import {MODULE}", args=["--python", python])
                self.assertFailed(r, 1, f"ModuleNotFoundError: No module named '{MODULE}'")
                r = spr_run("import sys\nresult = sys.prefix", args=["--python", python])
                self.assertOk(r)
                self.assertNotEqual(r["result"], root)

    def test_import_policy_still_applies(self):
        for _, _, venv_python in self.venvs:
            with self.subTest(python=venv_python):
                args = ["--python", venv_python]
                r = spr_run(f"import {MODULE}", policy={"blocked_imports": [MODULE]}, args=args)
                self.assertFailed(r, 1, f"ImportError: Import '{MODULE}' is blocked by policy")
                r = spr_run("import os", args=args)  # the default policy
                self.assertFailed(r, 1, "ImportError: Import 'os' is blocked by policy")
                r = spr_run(f"import {MODULE}", policy={"mode": "allow", "allowed_imports": ["sys"]},
                            args=args)
                self.assertFailed(r, 1, f"ImportError: Import '{MODULE}' is not allowed by policy")

    def test_child_interpreter_runs_in_the_venv(self):
        """sys.executable is the venv's own: a child Python started from it
        finds the venv by itself (site runs there)."""
        code = ("import subprocess, sys\n"
                f"out = subprocess.run([sys.executable, '-c', 'import sys, {MODULE} as m;"
                " print(m.VALUE, sys.prefix)'], capture_output=True, text=True)\n"
                "result = [out.returncode, out.stdout, out.stderr]\n")
        for _, root, venv_python in self.venvs:
            with self.subTest(python=venv_python):
                r = spr_run(code, policy=PERMISSIVE, args=["--python", venv_python])
                self.assertOk(r, [0, f"{VALUE} {root}\n", ""])

    def test_venv_through_a_link_nothing_binds(self):
        """An interpreter called through a link in a directory the sandbox
        does not show makes a venv that points at that link: the link is
        made inside too."""
        python = self.venvs[0][0]
        links = os.path.join(self.tmp, "links")
        os.mkdir(links)
        link = os.path.join(links, "python3")
        os.symlink(python, link)
        root = os.path.join(self.tmp, "linked-venv")
        venv_python = make_venv(link, root)
        target = os.readlink(os.path.join(root, "bin", "python3"))
        if target != link:
            self.skipTest(f"this Python's venv links to {target}, not to the link")
        r = spr_run(f"import sys, {MODULE} as m\nresult = [m.VALUE, sys.prefix]",
                    args=["--python", venv_python])
        self.assertOk(r, [VALUE, root])


if __name__ == "__main__":
    unittest.main()
