"""ctypes over libspr.so.4 (include/spr.h): the structs, the functions, and
libspr's errors turned into Python exceptions.

Why ctypes: nothing to compile at install time, and ctypes.CDLL releases
the GIL for the duration of every call, so a run blocks only its own
thread (threads and asyncio's thread pool run in parallel).

The option structs mirror spr.h field by field. The library reads the
whole struct, so a shorter Python mirror would be read past its end:
that is why the soname is checked (libspr.so.4: fields are only ever
appended, and appending bumps the soname) and tests/python compares these
layouts with the C compiler's.
"""
import ctypes
import errno as _errno
import json
import os

from spr import _locate

c_char_p, c_void_p, c_int, c_bool, c_size_t = (ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                                               ctypes.c_bool, ctypes.c_size_t)

# enum spr_layer
LAYER_API, LAYER_POLICY, LAYER_REQUEST, LAYER_CORE, LAYER_SANDBOX, LAYER_NAMESPACE, \
    LAYER_CGROUP, LAYER_SECCOMP, LAYER_DOCKER, LAYER_WORKER = range(10)
LAYER_NAMES = ("api", "policy", "request", "core", "sandbox", "namespace", "cgroup", "seccomp",
               "docker", "worker")
LOCAL_NO_POOL = -1  # SPR_LOCAL_NO_POOL


class PipOptions(ctypes.Structure):
    _fields_ = [("index_url", c_char_p),
                ("find_links", c_char_p),
                ("no_index", c_bool)]


class LocalOptions(ctypes.Structure):
    _fields_ = [("python", c_char_p),
                ("libexec_dir", c_char_p),
                ("allow_degraded", c_bool),
                ("cgroup_parent", c_char_p),
                ("pool_size", c_int),
                ("uid_range", c_char_p),
                ("venv_dir", c_char_p),
                ("venv_manager", c_char_p),
                ("packages", ctypes.POINTER(c_char_p)),
                ("pip", PipOptions),
                ("install_policy", c_void_p),
                ("install_timeout_seconds", c_int),
                ("show_progress", c_bool)]


class DockerOptions(ctypes.Structure):
    _fields_ = [("image", c_char_p),
                ("packages", ctypes.POINTER(c_char_p)),
                ("pool_size", c_int),
                ("max_runs", c_int),
                ("ttl_seconds", c_int),
                ("base_image", c_char_p),
                ("wheel_dir", c_char_p),
                ("show_build_progress", c_bool),
                ("docker_context", c_char_p),
                ("docker_host", c_char_p),
                ("ssh_host", c_char_p),
                ("ssh_user", c_char_p),
                ("ssh_key_path", c_char_p),
                ("ssh_port", c_int),
                ("acquire_timeout_seconds", c_int),
                ("uid_range", c_char_p),
                ("container_cli", c_char_p),
                ("allow_degraded", c_bool),
                ("pip", PipOptions)]


class Error(ctypes.Structure):
    _fields_ = [("message", c_char_p), ("errnum", c_int), ("layer", c_int)]


class CleanupCounts(ctypes.Structure):
    _fields_ = [("containers", c_int), ("images", c_int), ("run_cgroups", c_int),
                ("run_dirs", c_int)]


# spr_output_fn and spr_run_options (streaming, SPEC §3 "Streaming").
OutputFn = ctypes.CFUNCTYPE(None, c_void_p, c_int, ctypes.POINTER(ctypes.c_char), c_size_t)


class RunOptions(ctypes.Structure):
    _fields_ = [("on_output", OutputFn), ("user", c_void_p)]


ErrorPP = ctypes.POINTER(ctypes.POINTER(Error))
VoidPP = ctypes.POINTER(c_void_p)

# name: (restype, argtypes). Every one must be there: a library without one
# is older than this package and refused at import.
_FUNCTIONS = {
    "spr_error_free": (None, [ctypes.POINTER(Error)]),
    "spr_free": (None, [c_void_p]),
    "spr_policy_new": (c_int, [VoidPP, ErrorPP]),
    "spr_policy_load_file": (c_int, [c_char_p, VoidPP, ErrorPP]),
    "spr_policy_from_json": (c_int, [c_char_p, c_size_t, VoidPP, ErrorPP]),
    "spr_policy_to_json": (c_int, [c_void_p, VoidPP, ErrorPP]),
    "spr_policy_free": (None, [c_void_p]),
    "spr_local_engine_new": (c_int, [ctypes.POINTER(LocalOptions), VoidPP, ErrorPP]),
    "spr_docker_engine_new": (c_int, [ctypes.POINTER(DockerOptions), VoidPP, ErrorPP]),
    "spr_engine_free": (None, [c_void_p]),
    "spr_run_json": (c_int, [c_void_p, c_char_p, c_size_t, VoidPP, ErrorPP]),
    "spr_run_json_with": (c_int, [c_void_p, c_char_p, c_size_t, ctypes.POINTER(RunOptions),
                                  VoidPP, ErrorPP]),
    "spr_result_from_error": (c_int, [ctypes.POINTER(Error), VoidPP, ErrorPP]),
    "spr_result_to_json": (c_int, [c_void_p, c_int, VoidPP, ErrorPP]),
    "spr_result_free": (None, [c_void_p]),
    "spr_docker_admin_new": (c_int, [ctypes.POINTER(DockerOptions), VoidPP, ErrorPP]),
    "spr_docker_admin_free": (None, [c_void_p]),
    "spr_docker_list_containers": (c_int, [c_void_p, c_bool, VoidPP, ErrorPP]),
    "spr_docker_list_images": (c_int, [c_void_p, VoidPP, ErrorPP]),
    "spr_docker_inspect_container": (c_int, [c_void_p, c_char_p, VoidPP, ErrorPP]),
    "spr_docker_stop_container": (c_int, [c_void_p, c_char_p, c_int, VoidPP, ErrorPP]),
    "spr_docker_kill_container": (c_int, [c_void_p, c_char_p, VoidPP, ErrorPP]),
    "spr_docker_describe": (c_int, [c_void_p, VoidPP, ErrorPP]),
    "spr_docker_stop_all": (c_int, [c_void_p, c_int, VoidPP, ErrorPP]),
    "spr_docker_cleanup_stale": (c_int, [c_void_p, ctypes.POINTER(CleanupCounts), ErrorPP]),
    "spr_local_doctor": (c_int, [ctypes.POINTER(LocalOptions), VoidPP, ErrorPP]),
    "spr_local_cleanup": (c_int, [ctypes.POINTER(LocalOptions), ctypes.POINTER(c_int), ErrorPP]),
}


def _load():
    try:
        path, how = _locate.find_library()
    except _locate.NotFound as e:
        raise ImportError(f"spr: {e}: {_locate.INSTALL_HINT}") from None
    if path:
        soname = _locate.elf_soname(path)
        if soname != _locate.SONAME:
            raise ImportError(
                f"spr: {path} (found through {how}) is {soname or 'not a libspr shared object'}, "
                f"but this package needs {_locate.SONAME} (spr's C library with "
                f"environments); {_locate.INSTALL_HINT}")
    try:
        lib = ctypes.CDLL(path or _locate.SONAME)
    except OSError as e:
        if path:
            raise ImportError(f"spr: cannot load {path} (found through {how}): {e}") from None
        raise ImportError(f"spr: libspr ({_locate.SONAME}) was not found beside the package, "
                          f"in its install prefix or by the dynamic loader: "
                          f"{_locate.INSTALL_HINT}") from None
    where = path or _locate.SONAME
    for name, (restype, argtypes) in _FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"spr: {where} has no {name}: that libspr is older than this "
                              f"package needs; {_locate.INSTALL_HINT}") from None
        fn.restype, fn.argtypes = restype, argtypes
    # A build tree's (or a staged install's) library does not know where its
    # helpers are: its compiled-in default is the installed libexec/spr.
    helpers = _locate.libexec_dir(path)
    if helpers and not os.environ.get("SPR_LIBEXEC_DIR"):
        os.environ["SPR_LIBEXEC_DIR"] = helpers
    return lib, where


lib, LIBRARY = _load()


# ---- errors ------------------------------------------------------------------

class SprError(Exception):
    """Base of every exception raised from a libspr error: `layer` names the
    part of spr that failed (api, policy, request, core, sandbox, ..., docker),
    `errnum` the errno (0 when no system call failed)."""
    layer = "api"
    errnum = 0


class SprValueError(SprError, ValueError):
    """A bad option, policy or request (what the reference raises ValueError for)."""


class SprRuntimeError(SprError, RuntimeError):
    """spr could not do it (a venv build failed, docker unreachable, ...)."""


class SprFileNotFoundError(SprError, FileNotFoundError):
    """A program or file spr needs is missing (uv, the docker CLI)."""


class PolicyFileNotFoundError(SprFileNotFoundError, ValueError):
    """A missing policy file: also a ValueError, since a missing policy file
    is a bad policy (SPEC §2), never a silent default."""


def make_error(message, errnum=0, layer=LAYER_API):
    layer_name = LAYER_NAMES[layer] if 0 <= layer < len(LAYER_NAMES) else str(layer)
    if errnum == _errno.ENOENT and layer in (LAYER_POLICY, LAYER_REQUEST):
        exc = PolicyFileNotFoundError(message)
        exc.errno = errnum
    elif errnum == _errno.ENOENT and layer in (LAYER_API, LAYER_DOCKER):
        exc = SprFileNotFoundError(message)
        exc.errno = errnum
    elif layer in (LAYER_API, LAYER_POLICY, LAYER_REQUEST) or errnum == _errno.EINVAL or (
            layer == LAYER_DOCKER and errnum in (_errno.EPERM, _errno.ESRCH, _errno.ENOTUNIQ)):
        # A bad argument, option or policy (EINVAL, whichever layer checked
        # it), or a container the admin API refuses to touch.
        exc = SprValueError(message)
    else:
        exc = SprRuntimeError(message)
    exc.layer, exc.errnum = layer_name, errnum
    return exc


def take_error(err):
    """The exception for a filled spr_error** (and frees it)."""
    if not err:
        return SprRuntimeError("libspr failed without saying why")
    e = err.contents
    message = (e.message or b"").decode("utf-8", "replace")
    exc = make_error(message, e.errnum, e.layer)
    lib.spr_error_free(err)
    return exc


def take_string(ptr):
    """Copies and frees a string the library returned (spr_free)."""
    if not ptr.value:
        return ""
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.spr_free(ptr)


def call(fn, *args):
    """Calls a fallible libspr function whose last argument is spr_error**;
    raises its error."""
    err = ctypes.POINTER(Error)()
    if fn(*args, ctypes.byref(err)) < 0:
        raise take_error(err)


def call_json(fn, *args):
    """As call() for functions that return JSON text through char**."""
    out = c_void_p()
    call(fn, *args, ctypes.byref(out))
    return json.loads(take_string(out))


# ---- conversions ---------------------------------------------------------------

def cstr(value):
    """bytes for a char* option: None stays NULL; paths go through the file
    system encoding (surrogateescape), like os functions."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return os.fsencode(value)


class CStrings:
    """A NULL-terminated char*[] that stays alive as long as this object."""

    def __init__(self, values):
        self.items = [cstr(v) for v in values]
        self.array = (c_char_p * (len(self.items) + 1))(*self.items, None)

    @property
    def pointer(self):
        return ctypes.cast(self.array, ctypes.POINTER(c_char_p))


class Policy:
    """An spr_policy*, freed with this object. Built from the policy JSON of a
    RunnerPolicy (used as a LocalEngine's install_policy)."""

    def __init__(self, fields):
        text = json.dumps(fields, allow_nan=False).encode()
        self.ptr = c_void_p()
        call(lib.spr_policy_from_json, text, len(text), ctypes.byref(self.ptr))

    def __del__(self):
        ptr, self.ptr = getattr(self, "ptr", None), None
        if ptr and ptr.value and lib is not None:
            lib.spr_policy_free(ptr)


def policy_defaults():
    """The SPEC §2 defaults as libspr has them (canonical JSON, every field)."""
    ptr = c_void_p()
    call(lib.spr_policy_new, ctypes.byref(ptr))
    try:
        return call_json(lib.spr_policy_to_json, ptr)
    finally:
        lib.spr_policy_free(ptr)


def policy_file_fields(path):
    """A TOML policy file read by libspr (SPEC §2: errors name file:line:col;
    a missing file, unknown key or wrong type is an error; omitted fields keep
    their defaults), as the canonical JSON fields."""
    ptr = c_void_p()
    call(lib.spr_policy_load_file, cstr(path), ctypes.byref(ptr))
    try:
        return call_json(lib.spr_policy_to_json, ptr)
    finally:
        lib.spr_policy_free(ptr)


def result_from_error(exc):
    """The RunnerResult JSON (exit_code 125) for an engine that could not
    start, as spr-run prints it (spr_result_from_error)."""
    message = str(exc).encode("utf-8", "replace")
    layer = LAYER_NAMES.index(exc.layer) if getattr(exc, "layer", None) in LAYER_NAMES \
        else LAYER_CORE
    cause = Error(message, getattr(exc, "errnum", 0) or 0, layer)
    res = c_void_p()
    call(lib.spr_result_from_error, ctypes.byref(cause), ctypes.byref(res))
    try:
        return call_json(lib.spr_result_to_json, res, 0)
    finally:
        lib.spr_result_free(res)
