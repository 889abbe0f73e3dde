"""Installing and loading: offline installs (a venv, editable, an sdist),
`make install` (the package lands where the interpreter finds it, and finds
the installed libspr, helpers and spr program with no variable set), the
clear ImportErrors for a missing or too-old libspr, and the ctypes structs
against the C compiler's layout of include/spr.h."""
import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
import tarfile
import textwrap

from conftest import BUILD, LIBRARY, PACKAGE_DIR, PYTHON_SRC, REPO, SPR

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("SPR_LIBRARY", "SPR_LIBEXEC_DIR", "SPR_BIN", "PYTHONPATH")}
RUN_ONE = ("import safe_py_runner, spr\n"
           "r = spr.run_code('result = 6 * 7', spr.LocalEngine())\n"
           "print(safe_py_runner.__file__, spr.LIBRARY, r.result, r.isolation['engine'])\n")


def py(code, env, python=sys.executable, cwd=None):
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_offline_install_into_a_target():
    # conftest installed it: pip install --no-index --target, from the tree.
    import safe_py_runner
    assert safe_py_runner.__file__.startswith(PACKAGE_DIR)
    names = sorted(os.listdir(PACKAGE_DIR))
    assert names == ["safe_py_runner", "safe_py_runner-0.1.0.dist-info", "spr"], names
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "safe_py_runner", "default_policy.toml"))


def test_offline_editable_install_in_a_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vpy = str(venv / "bin" / "python")
    p = subprocess.run([vpy, "-m", "pip", "install", "--no-index", "--quiet",
                        "--disable-pip-version-check", "-e", PYTHON_SRC],
                       capture_output=True, text=True, env=dict(CLEAN_ENV,
                                                                PIP_CONFIG_FILE=os.devnull))
    assert p.returncode == 0, p.stdout + p.stderr
    r = py(RUN_ONE, dict(CLEAN_ENV, SPR_LIBRARY=LIBRARY), python=vpy, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    pkg_file, lib, result, engine = r.stdout.split()
    assert pkg_file.startswith(PYTHON_SRC + os.sep)  # editable: the tree itself
    assert (lib, result, engine) == (LIBRARY, "42", "local")


def test_offline_sdist_round_trip(tmp_path):
    sys.path.insert(0, os.path.join(PYTHON_SRC, "_build"))
    try:
        import spr_build
    finally:
        sys.path.pop(0)
    name = spr_build.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / name) as tar:
        members = set(tar.getnames())
    assert {"safe_py_runner-0.1.0/pyproject.toml", "safe_py_runner-0.1.0/PKG-INFO",
            "safe_py_runner-0.1.0/_build/spr_build.py",
            "safe_py_runner-0.1.0/safe_py_runner/_native.py",
            "safe_py_runner-0.1.0/spr/__main__.py"} <= members
    target = tmp_path / "t"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--quiet",
                        "--disable-pip-version-check", "--target", str(target),
                        str(tmp_path / name)], capture_output=True, text=True,
                       env=dict(CLEAN_ENV, PIP_CONFIG_FILE=os.devnull))
    assert p.returncode == 0, p.stdout + p.stderr
    assert (target / "spr" / "_locate.py").is_file()


def test_make_install_installs_the_package(tmp_path):
    """make install DESTDIR=D: the package goes to the prefix's site-packages
    (Debian: /usr/local/lib/python3.N/dist-packages) and, with no variable
    set, finds D's libspr.so.4, helpers and spr program from where it is."""
    destdir = tmp_path / "root"
    # -o all: install what is built (the build directory is shared; never rebuild here).
    p = subprocess.run(["make", "-s", "--no-print-directory", "-o", "all", "install",
                        f"B={BUILD}", f"DESTDIR={destdir}", "PREFIX=/usr/local"],
                       cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    sys.path.insert(0, os.path.join(PYTHON_SRC, "_build"))
    try:
        import spr_build
    finally:
        sys.path.pop(0)
    site = spr_build.site_dir("/usr/local")
    staged = f"{destdir}{site}"
    assert os.path.isfile(os.path.join(staged, "safe_py_runner", "__init__.py")), p.stdout
    paths = open(os.path.join(staged, "spr", "_install_paths.py")).read()
    assert "LIBDIR = '/usr/local/lib'" in paths and "BINDIR = '/usr/local/bin'" in paths
    env = dict(CLEAN_ENV, PYTHONPATH=staged, PATH="/usr/bin:/bin")
    r = py(RUN_ONE, env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    pkg_file, lib, result, engine = r.stdout.split()
    assert pkg_file.startswith(staged)
    assert lib == f"{destdir}/usr/local/lib/libspr.so.4"
    assert (result, engine) == ("42", "local")
    p = subprocess.run([sys.executable, "-m", "spr", "version"], env=env, capture_output=True,
                       text=True)
    assert (p.returncode, p.stdout) == (0, subprocess.run([SPR, "version"], capture_output=True,
                                                          text=True).stdout)


# ---- a missing or too-old libspr ----------------------------------------------------------

def import_error(env_extra, tmp_path):
    env = dict(CLEAN_ENV, PYTHONPATH=PACKAGE_DIR, **env_extra)
    r = py("import safe_py_runner", env, cwd=str(tmp_path))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: spr: "), r.stderr
    return last


def shared_object(tmp_path, name, soname, source="int spr_unrelated(void) { return 0; }\n"):
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    out = tmp_path / name
    subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(out), str(c)],
                   check=True)
    return str(out)


def test_missing_library_names_what_to_install(tmp_path):
    msg = import_error({"SPR_LIBRARY": str(tmp_path / "nope.so")}, tmp_path)
    assert "nope.so does not exist" in msg and "make install" in msg
    if ctypes.util.find_library("spr") is None:  # nothing installed system-wide
        msg = import_error({}, tmp_path)
        assert "libspr (libspr.so.4) was not found" in msg and "make install" in msg


def test_an_older_library_is_refused(tmp_path):
    old = shared_object(tmp_path, "libspr.so.3", "libspr.so.3")
    msg = import_error({"SPR_LIBRARY": old}, tmp_path)
    assert "is libspr.so.3, but this package needs libspr.so.4" in msg
    hollow = shared_object(tmp_path, "libspr.so.4", "libspr.so.4")
    msg = import_error({"SPR_LIBRARY": hollow}, tmp_path)
    assert "has no spr_error_free" in msg and "older than this package needs" in msg


def test_import_spr_does_not_load_the_library(tmp_path):
    env = dict(CLEAN_ENV, PYTHONPATH=PACKAGE_DIR, SPR_LIBRARY=str(tmp_path / "nope.so"))
    r = py("import spr\nprint(spr.__version__)\n"
           "try:\n    spr.run_code\nexcept ImportError as e:\n    print('ImportError', e)\n",
           env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("0.1.0\nImportError spr: SPR_LIBRARY=")


def test_version_matches_the_c_library():
    import spr
    header = open(os.path.join(REPO, "include", "spr.h")).read()
    assert f'#define SPR_VERSION "{spr.__version__}"' in header
    pyproject = open(os.path.join(PYTHON_SRC, "pyproject.toml")).read()
    assert f'version = "{spr.__version__}"' in pyproject


# ---- the ctypes mirror of include/spr.h ------------------------------------------------------

LAYOUT_C = textwrap.dedent("""
    #include <spr.h>
    #include <stddef.h>
    #include <stdio.h>
    #define F(T, f) printf(#T " " #f " %zu %zu\\n", offsetof(T, f), sizeof(((T *)0)->f));
    #define S(T) printf(#T " sizeof %zu %zu\\n", sizeof(T), _Alignof(T));
    int main(void) {
    S(spr_pip_options) F(spr_pip_options, index_url) F(spr_pip_options, find_links)
    F(spr_pip_options, no_index)
    S(spr_local_options) @LOCAL@
    S(spr_docker_options) @DOCKER@
    S(spr_error) F(spr_error, message) F(spr_error, errnum) F(spr_error, layer)
    S(spr_cleanup_counts) F(spr_cleanup_counts, containers) F(spr_cleanup_counts, images)
    F(spr_cleanup_counts, run_cgroups) F(spr_cleanup_counts, run_dirs)
    return 0; }
""")


def test_structs_match_the_header(tmp_path):
    from safe_py_runner import _native
    structs = {"spr_pip_options": _native.PipOptions, "spr_local_options": _native.LocalOptions,
               "spr_docker_options": _native.DockerOptions, "spr_error": _native.Error,
               "spr_cleanup_counts": _native.CleanupCounts}
    src = LAYOUT_C.replace("@LOCAL@", " ".join(
        f"F(spr_local_options, {n})" for n, _ in _native.LocalOptions._fields_)).replace(
        "@DOCKER@", " ".join(f"F(spr_docker_options, {n})"
                             for n, _ in _native.DockerOptions._fields_))
    (tmp_path / "layout.c").write_text(src)
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-I", os.path.join(REPO, "include"), "-o", str(exe),
                    str(tmp_path / "layout.c")], check=True)
    seen = set()
    for line in subprocess.run([str(exe)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        struct, field, a, b = line.split()
        cls = structs[struct]
        if field == "sizeof":
            assert (ctypes.sizeof(cls), ctypes.alignment(cls)) == (int(a), int(b)), struct
        else:
            desc = getattr(cls, field)
            assert (desc.offset, desc.size) == (int(a), int(b)), (struct, field)
            seen.add((struct, field))
    assert len(seen) == sum(len(c._fields_) for c in structs.values())
    # And no field of the header is missing from the mirror: the header's
    # struct bodies name exactly these fields.
    header = open(os.path.join(REPO, "include", "spr.h")).read()
    for struct, cls in structs.items():
        body = header[header.index(f"typedef struct {struct} {{"):]
        body = re.sub(r"/\*.*?\*/", "", body[:body.index(f"}} {struct};")], flags=re.S)
        names = set()
        for decl in re.findall(r"[^;{]+;", body.split("{", 1)[1]):
            for part in decl.rstrip(";").split(","):
                names.add(re.findall(r"\w+", part)[-1])
        assert names == {n for n, _ in cls._fields_}, (struct, names)
