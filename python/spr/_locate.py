"""Where libspr, its helpers and the C `spr` program are.

Kept free of ctypes and of the rest of the package: `python -m spr` only
needs to find the C program, and must work even where libspr itself would
not load.

Search order for the library (the first that exists wins; a path given
through the environment must work, it is never silently skipped):
  1. $SPR_LIBRARY (a file, or a directory holding libspr.so.4 / libspr.so);
  2. beside the package (a libspr.so.4 copied next to it);
  3. the prefix the package is installed under (<prefix>/lib/python3.N/
     site-packages -> <prefix>/lib);
  4. the LIBDIR `make install` wrote into the package (_install_paths);
  5. the dynamic loader's own search (libspr.so.4 in ld.so's cache).
"""
import os
import re
import shutil
import struct

SONAME = "libspr.so.4"
LIB_NAMES = (SONAME, "libspr.so")
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SITE_DIR = os.path.dirname(PACKAGE_DIR)

try:  # written by `make install` (python/_build/spr_build.py); None when pip-installed
    from . import _install_paths as _installed
except ImportError:  # pragma: no cover - the file ships with the package
    _installed = None

INSTALL_HINT = ("build and install spr first (`make && make install` in the spr "
                "checkout installs libspr.so.4 into PREFIX/lib), or point SPR_LIBRARY at a "
                "libspr.so.4 (a build tree's build/libspr.so)")


class NotFound(Exception):
    """What was looked for and where; the caller turns it into an ImportError."""


def _installed_dir(name):
    value = getattr(_installed, name, None) if _installed else None
    return value or None


def install_prefix():
    """The prefix this package is installed under, from its own path:
    <prefix>/lib/python3.N/{site,dist}-packages or <prefix>/lib/python3/dist-packages.
    None for a checkout or a --target directory."""
    m = re.match(r"^(.*)/lib(?:64)?/python3(?:\.\d+)?/(?:site|dist)-packages$", SITE_DIR)
    return m.group(1) or "/" if m else None


def _candidates_beside():
    for d in (PACKAGE_DIR, SITE_DIR):
        for name in LIB_NAMES:
            yield os.path.join(d, name), f"beside the package ({d})"


def find_library():
    """(path or None, how it was found). None means: let the dynamic loader
    search for libspr.so.4. Raises NotFound only for a bad $SPR_LIBRARY."""
    env = os.environ.get("SPR_LIBRARY")
    if env:
        if os.path.isdir(env):
            for name in LIB_NAMES:
                p = os.path.join(env, name)
                if os.path.isfile(p):
                    return os.path.abspath(p), "$SPR_LIBRARY"
            raise NotFound(f"SPR_LIBRARY={env} is a directory without libspr.so.4 or libspr.so")
        if not os.path.isfile(env):
            raise NotFound(f"SPR_LIBRARY={env} does not exist")
        return os.path.abspath(env), "$SPR_LIBRARY"
    for p, how in _candidates_beside():
        if os.path.isfile(p):
            return p, how
    # Where the package is first (a DESTDIR staging of `make install` finds
    # its own library, not an older one at the final LIBDIR), then LIBDIR.
    libdirs = []
    prefix = install_prefix()
    if prefix:
        libdirs += [(os.path.join(prefix, "lib"), f"the install prefix {prefix}"),
                    (os.path.join(prefix, "lib64"), f"the install prefix {prefix}")]
    if _installed_dir("LIBDIR"):
        libdirs.append((_installed_dir("LIBDIR"), "make install's LIBDIR"))
    for d, how in libdirs:
        p = os.path.join(d, SONAME)
        if os.path.isfile(p):
            return p, how
    return None, "the dynamic loader's search path"


def libexec_dir(library_path):
    """spr-sandbox and the worker for a library found at library_path: a
    build tree's <build>/libexec/spr, an install's <prefix>/libexec/spr or
    make install's LIBEXECDIR. None: the library's compiled-in default."""
    if not library_path:
        return None
    d = os.path.dirname(os.path.realpath(library_path))
    dirs = [os.path.join(d, "libexec", "spr"), os.path.join(os.path.dirname(d), "libexec", "spr")]
    if _installed_dir("LIBEXECDIR"):
        dirs.append(os.path.join(_installed_dir("LIBEXECDIR"), "spr"))
    for c in dirs:
        if os.path.isfile(os.path.join(c, "spr-sandbox")):
            return c
    return None


def elf_soname(path):
    """DT_SONAME of an ELF64 little-endian shared object, or None. Read from
    the file (no loading): a library with another soname has another struct
    layout, and loading it to find out would already be too late."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    e_phoff, = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    if not dynamic:
        return None

    def file_offset(vaddr):
        for v, o, size in loads:
            if v <= vaddr < v + size:
                return vaddr - v + o
        return None

    strtab = soname = None
    off, end = dynamic[0], dynamic[0] + dynamic[1]
    while off + 16 <= end:
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 5:  # DT_STRTAB
            strtab = val
        elif tag == 14:  # DT_SONAME
            soname = val
        off += 16
    if strtab is None or soname is None:
        return None
    start = file_offset(strtab)
    if start is None:
        return None
    start += soname
    return data[start:data.index(b"\0", start)].decode("ascii", "replace")


def _is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_spr_program():
    """The C `spr` admin program, which `python -m spr` runs: $SPR_BIN; next
    to the library (a build tree); <prefix>/bin for an installed library;
    the package's install prefix's bin; make install's BINDIR; then PATH. Only an ELF
    binary counts: the reference package's console script `spr` (Python)
    is not it."""
    seen = []
    env = os.environ.get("SPR_BIN")
    if env:
        if _is_elf(env) and os.access(env, os.X_OK):
            return env
        raise NotFound(f"SPR_BIN={env} is not an executable spr program")
    try:
        lib, _ = find_library()
    except NotFound:
        lib = None
    dirs = []
    if lib:
        d = os.path.dirname(os.path.realpath(lib))
        dirs += [d, os.path.join(os.path.dirname(d), "bin")]
    prefix = install_prefix()
    if prefix:
        dirs.append(os.path.join(prefix, "bin"))
    if _installed_dir("BINDIR"):
        dirs.append(_installed_dir("BINDIR"))
    for d in dirs:
        p = os.path.join(d, "spr")
        seen.append(p)
        if _is_elf(p) and os.access(p, os.X_OK):
            return p
    found = shutil.which("spr")
    if found and _is_elf(found):
        return found
    raise NotFound("the spr program (spr's C admin CLI) was not found (looked in: "
                   + ", ".join(seen + ["PATH"]) + "): " + INSTALL_HINT
                   + ", or set SPR_BIN to the spr program")
