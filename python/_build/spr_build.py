"""The package's own PEP 517 build backend, and `make install`'s installer.

Why in-tree: `pip install ./python` must work offline, with nothing from a
package index (no setuptools, no hatchling to fetch). The package is pure
Python, so a wheel is a zip of its files plus the .dist-info metadata,
which zipfile writes. pyproject.toml names this module with
`backend-path = ["_build"]` and `requires = []`.

Hooks: build_wheel, build_sdist, build_editable (PEP 660: a .pth pointing
at this directory), prepare_metadata_for_build_{wheel,editable},
get_requires_for_build_{wheel,sdist,editable}.

`python3 _build/spr_build.py install --prefix P [--destdir D] [--libdir ..
--bindir .. --libexecdir ..] [--sitedir DIR]` writes the same files into
the prefix's site-packages directory (what `make install` runs: no pip
needed, and Debian's externally-managed marker concerns pip, not this),
with the install's directories recorded in spr/_install_paths.py so the
package finds libspr and the spr program there.
"""
import base64
import hashlib
import io
import os
import re
import sys
import sysconfig
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("safe_py_runner", "spr")
DATA_SUFFIXES = (".py", ".toml")


def _project():
    """[project] of pyproject.toml (tomllib, or the few plain lines it has)."""
    path = os.path.join(ROOT, "pyproject.toml")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        import tomllib
        return tomllib.loads(raw.decode())["project"]
    except ImportError:  # Python 3.10: the simple `key = "value"` lines
        section, project = None, {}
        for line in raw.decode().splitlines():
            m = re.match(r"^\[(.+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r'^(\w[\w-]*)\s*=\s*"(.*)"\s*$', line)
            if section == "project" and m:
                project[m.group(1)] = m.group(2)
        return project


def _names():
    p = _project()
    name, version = p["name"], p["version"]
    dist = re.sub(r"[-_.]+", "_", name)
    return p, name, version, dist


def _metadata():
    p, name, version, _ = _names()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _package_files():
    """(archive name, absolute path) of every file of the two packages."""
    out = []
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(filenames):
                if fn.endswith(DATA_SUFFIXES):
                    full = os.path.join(dirpath, fn)
                    out.append((os.path.relpath(full, ROOT).replace(os.sep, "/"), full))
    return out


def _install_paths(libdir=None, bindir=None, libexecdir=None):
    return ('"""Install locations, written by `make install` (python/_build/spr_build.py)."""\n'
            f"LIBDIR = {libdir!r}\nBINDIR = {bindir!r}\nLIBEXECDIR = {libexecdir!r}\n")


def _dist_info_files(installer=None):
    _, name, version, dist = _names()
    di = f"{dist}-{version}.dist-info"
    files = {
        f"{di}/METADATA": _metadata().encode("utf-8"),
        f"{di}/WHEEL": ("Wheel-Version: 1.0\nGenerator: spr_build\nRoot-Is-Purelib: true\n"
                        "Tag: py3-none-any\n").encode(),
        f"{di}/top_level.txt": ("\n".join(PACKAGES) + "\n").encode(),
    }
    if installer:
        files[f"{di}/INSTALLER"] = (installer + "\n").encode()
    return di, files


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _contents(config_settings=None, editable=False):
    """{archive name: bytes} of the wheel, RECORD excluded."""
    files = {}
    if editable:
        _, _, _, dist = _names()
        files[f"__editable__.{dist}.pth"] = (ROOT + "\n").encode()
    else:
        for name, full in _package_files():
            with open(full, "rb") as f:
                files[name] = f.read()
        cs = config_settings or {}
        if any(cs.get(k) for k in ("libdir", "bindir", "libexecdir")):
            files["spr/_install_paths.py"] = _install_paths(
                cs.get("libdir"), cs.get("bindir"), cs.get("libexecdir")).encode()
    di, meta = _dist_info_files()
    files.update(meta)
    return di, files


def _write_wheel(wheel_directory, config_settings, editable):
    _, _, version, dist = _names()
    di, files = _contents(config_settings, editable)
    wheel_name = f"{dist}-{version}-py3-none-any.whl"
    record = [_record_line(n, d) for n, d in files.items()] + [f"{di}/RECORD,,"]
    files[f"{di}/RECORD"] = ("\n".join(record) + "\n").encode()
    os.makedirs(wheel_directory, exist_ok=True)
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return wheel_name


# ---- PEP 517 / 660 hooks ----------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    di, files = _dist_info_files()
    for n, d in files.items():
        path = os.path.join(metadata_directory, n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(d)
    return di


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, config_settings, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, config_settings, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    _, _, version, dist = _names()
    base = f"{dist}-{version}"
    names = ["pyproject.toml", "README.md", "_build/spr_build.py"] + \
        [n for n, _ in _package_files()]
    os.makedirs(sdist_directory, exist_ok=True)
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for n in names:
            full = os.path.join(ROOT, n)
            if os.path.exists(full):
                tar.add(full, arcname=f"{base}/{n}", recursive=False)
        pkg_info = _metadata().encode("utf-8")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        info.size, info.mtime, info.mode = len(pkg_info), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(pkg_info))
    return base + ".tar.gz"


# ---- make install --------------------------------------------------------------------

def site_dir(prefix):
    """Where a module installed under `prefix` is importable by this
    interpreter: the sys.path entry under <prefix>/lib (Debian:
    /usr/local/lib/python3.N/dist-packages), else the prefix's
    lib/python3.N/site-packages (then PYTHONPATH must name it)."""
    prefix = os.path.normpath(prefix)
    for p in sys.path:
        if p.startswith(os.path.join(prefix, "lib") + os.sep) and \
                p.rstrip("/").endswith(("site-packages", "dist-packages")):
            return p
    return sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})


def install(prefix, destdir="", libdir=None, bindir=None, libexecdir=None, sitedir=None):
    target = sitedir or site_dir(prefix)
    root = (destdir.rstrip("/") + target) if destdir else target
    # Replace an earlier install of these packages (spr's or the reference's)
    # completely: a file left from another version could be imported.
    import shutil
    for pkg in PACKAGES:
        shutil.rmtree(os.path.join(root, pkg), ignore_errors=True)
    _, _, _, dist = _names()
    if os.path.isdir(root):
        for entry in os.listdir(root):
            if re.match(rf"^{re.escape(dist)}-[^-]+\.dist-info$", entry, re.I):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
    files = {}
    for name, full in _package_files():
        with open(full, "rb") as f:
            files[name] = f.read()
    files["spr/_install_paths.py"] = _install_paths(libdir, bindir, libexecdir).encode()
    di, meta = _dist_info_files(installer="spr-make-install")
    files.update(meta)
    record = [_record_line(n, d) for n, d in files.items()] + [f"{di}/RECORD,,"]
    files[f"{di}/RECORD"] = ("\n".join(record) + "\n").encode()
    for n, d in files.items():
        path = os.path.join(root, n)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(d)
        os.chmod(path, 0o644)
    return target


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="spr_build.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("install", help="install the package under a prefix (make install)")
    i.add_argument("--prefix", required=True)
    i.add_argument("--destdir", default="")
    i.add_argument("--libdir")
    i.add_argument("--bindir")
    i.add_argument("--libexecdir")
    i.add_argument("--sitedir", help="install here instead of the prefix's site-packages")
    w = sub.add_parser("wheel", help="build the wheel into a directory")
    w.add_argument("directory")
    args = ap.parse_args(argv)
    if args.cmd == "wheel":
        print(os.path.join(args.directory, build_wheel(args.directory)))
        return 0
    target = install(args.prefix, args.destdir, args.libdir, args.bindir, args.libexecdir,
                     args.sitedir)
    print(f"installed the Python package (safe_py_runner, spr) into {args.destdir}{target}")
    if target not in sys.path:
        print(f"note: {target} is not on {sys.executable}'s sys.path; add it to PYTHONPATH")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
