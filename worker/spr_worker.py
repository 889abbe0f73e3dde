"""spr worker: runs one piece of untrusted Python inside the sandbox.

This is the only code besides the interpreter that runs in the sandbox. It
applies the Python-level guardrails (import/builtin/globals policy, SPEC
§1-§3) and reports the outcome; it is a guardrail, not the boundary (the
kernel or the container is). The contract is docs/WORKER_PROTOCOL.md:

    <python> -I -S -B -u -X utf8 spr_worker.py
    fd 0  the request, one JSON object read to EOF
          {"code": str, "input_data": any, "policy": {...}, "sys_path": [str],
           "prefix": str (a venv's root; optional)}
    fd 1  the code's stdout, fd 2 its stderr (the real descriptors)
    fd 3  the result message, made close-on-exec before the code runs:
          {"ok":true,"exit_code":0,"error":null,"kind":"ok"}\\n<result JSON>
          (header line, then the JSON text of `result`; no trailing newline;
          kind "exception" adds "errno":n when an OSError is in the chain)
    exit status: the header's exit_code when it is in 0..255, else 1

Performance: the worker runs once per sandboxed run and the budget for all
of spr's overhead is a few milliseconds, so the happy path imports nothing
the interpreter has not already loaded under -S except the `_json` C
accelerator (no json, re, traceback, linecache, io, os, types, ...). JSON
is parsed with `_json.make_scanner` and written with `_json.make_encoder`
directly; the `json` package is only a fallback for interpreters without
them. `posix` (always loaded) stands in for `os`. traceback and linecache
are imported on the error paths only.

Run as a .py file, most of the worker's own cost (~2.5 ms on 3.11, ~4 ms on
3.13) is the interpreter compiling this file, which it does for every
script. The file also runs unchanged as precompiled bytecode, which makes
that cost disappear (`<python> -I -S -B -u -X utf8 spr_worker.pyc`; the
.pyc must come from the same interpreter version):

    <python> -I -c "import py_compile as p; p.compile('spr_worker.py',
        cfile='spr_worker.pyc', doraise=True,
        invalidation_mode=p.PycInvalidationMode.UNCHECKED_HASH)"

Formats chosen where the protocol leaves room (keep the host in step):
- `error` texts: "<Type>: <str(exc)>" exactly as the reference formats it
  (so an empty message gives "ValueError: "); "<Type>: <exception str()
  failed>" when str(exc) raises. One line (CR/LF written as the two
  characters \\n), cut at 8192 characters.
- `result_error`: "ResultError: Circular reference detected",
  "ResultError: Result nested too deeply (more than 512 levels)" (the host's
  JSON reader refuses deeper nesting), otherwise "ResultError: <Type>:
  <message>" for an exception raised while converting (a __str__ that
  raises, a dict changed by a thread, ...). A conversion failure only
  replaces an otherwise successful outcome; after sys.exit(n != 0) the
  system_exit report stands, the value is null and the ResultError line
  goes to stderr.
- `worker_error`: "WorkerError: <why>" (bad request, or a bug in here).
- A MemoryError anywhere in the chain (__cause__/__context__, exception
  groups) of the exception the code ends with is `memory_error`. A
  SystemExit is reported as system_exit even if raised while handling a
  MemoryError: the code chose its exit status.
- A request without `policy` (or with members missing) gets the SPEC §2
  defaults for what is missing.
- A leading U+FEFF (UTF-8 BOM) in `code` is dropped, as `python3 FILE`
  does (it could only ever be a SyntaxError).
- Strings in the value have lone surrogates replaced by U+FFFD (SPEC §7:
  the host accepts only valid Unicode there).
- The header's optional "errno" (kind exception): the errno of the first
  OSError in the exception's chain; the host maps EFBIG/ENOSPC to
  resource_exceeded (SPEC §7).
- On memory_error the code's globals are dropped first (room to report),
  then threads are joined and atexit handlers run.
- Tracebacks and other diagnostics are written to fd 2 directly (after
  flushing sys.stdout/sys.stderr), whatever the code made of sys.stderr.
- A process forked by the code that returns into the worker (instead of
  exiting) finishes like the interpreter would but never writes fd 3:
  only the original worker process reports.

Both engines run it the same way, one process per run in a sandbox of
its own (the DockerEngine's inside its container, docs/WORKER_PROTOCOL.md
"The container agent").

Deliberate differences from the reference worker:
- allow mode keeps `__build_class__` so `class` statements work;
- `exit()`/`quit()` exist as builtins as they would with `site` (-S drops
  them); in allow mode only when listed, in restrict mode unless blocked;
- `__name__` is "__main__" and the globals are the __dict__ of a fresh
  module registered as sys.modules["__main__"] (pickle, multiprocessing);
- extra_globals never overwrite input_data, result, __builtins__, __name__.
"""

import builtins
import posix  # `os` is not loaded under -S; posix is built in and loaded
import sys

# What the interpreter itself loaded before this file ran (under -I -S:
# sys, builtins, encodings, codecs, io, abc, posix, time, zipimport, the
# frozen import machinery, ...): allow mode's preload check ignores them
# (see check_preloads).
STARTUP_MODULES = frozenset(sys.modules)

RESULT_FD = 3
USER_FILENAME = "<user_code>"
MAX_ERROR_CHARS = 8192
MAX_RESULT_DEPTH = 512
MEMORY_ERROR_STATUS = 137

# Written as is when memory runs out: nothing to encode, nothing to allocate.
MEMORY_ERROR_HEADER = (
    b'{"ok":false,"exit_code":137,"error":"Memory limit exceeded",'
    b'"kind":"memory_error"}'
)
NULL_VALUE = b"null"

DEFAULT_POLICY = {
    "mode": "restrict",
    "blocked_imports": ["os", "subprocess", "socket", "ctypes", "importlib"],
    "blocked_builtins": ["eval", "exec", "open", "compile", "breakpoint"],
    "allowed_imports": [],
    "allowed_builtins": [],
    "allowed_globals": [],
    "blocked_globals": [],
    "extra_globals": {},
}
POLICY_LISTS = (
    "blocked_imports",
    "blocked_builtins",
    "allowed_imports",
    "allowed_builtins",
    "allowed_globals",
    "blocked_globals",
)
# Globals the code always gets from the worker (extra_globals and
# input_data keys cannot replace them).
PROTECTED_GLOBALS = frozenset(("__builtins__", "__name__", "input_data", "result"))
# input_data keys never injected (SPEC §1).
RESERVED_GLOBALS = frozenset(("__builtins__", "input_data", "result"))


# The environment variable that carries the preloads (docs/WORKER_PROTOCOL.md
# "Preloads"); the worker removes it before any preload or code runs.
PRELOAD_ENV = "SPR_WORKER_PRELOAD"


class RequestError(Exception):
    """The request is malformed: reported as worker_error."""


class ResultError(Exception):
    """`result` cannot be converted: reported as result_error."""


# ---- JSON ----------------------------------------------------------------


class _ScannerContext:
    """The attributes _json.make_scanner reads (what json.JSONDecoder has)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # "NaN", "Infinity", "-Infinity" -> float

    def __init__(self):
        self.memo = {}


_JSON_SPACE = " \t\n\r"


def _skip_space(text, idx):
    end = len(text)
    while idx < end and text[idx] in _JSON_SPACE:
        idx += 1
    return idx


def json_loads(text):
    """Parses one JSON document in Python's json syntax (NaN allowed)."""
    try:
        from _json import make_scanner

        scan = make_scanner(_ScannerContext())
    except (ImportError, TypeError):
        import json

        return json.loads(text)
    idx = _skip_space(text, 0)
    try:
        value, idx = scan(text, idx)
    except StopIteration:
        raise ValueError(f"Expecting value: char {idx}") from None
    idx = _skip_space(text, idx)
    if idx != len(text):
        raise ValueError(f"Extra data: char {idx}")
    return value


_encoder = None


def json_dumps(value):
    """Strict ASCII JSON of a value made of dict/list/str/int/float/bool/None.

    The value must already be plain (see plain_result): the encoder has no
    circular-reference check, no `default` and refuses NaN.
    """
    global _encoder
    if _encoder is None:
        try:
            from _json import encode_basestring_ascii, make_encoder

            _encoder = make_encoder(
                None, None, encode_basestring_ascii, None, ":", ",", False, False, False
            )
        except (ImportError, TypeError):
            import json

            _encoder = json.JSONEncoder(
                separators=(",", ":"), ensure_ascii=True, allow_nan=False
            ).iterencode
    return "".join(_encoder(value, 0))


class _IntDigits:
    """Lifts the int<->str digit limit (3.11+, and 3.9.14+/3.10.7+).

    Requests and results may carry integers of any size; the code itself runs
    with the interpreter's limit.
    """

    _get = getattr(sys, "get_int_max_str_digits", None)
    _set = getattr(sys, "set_int_max_str_digits", None)

    def __enter__(self):
        self.saved = self._get() if self._get else None
        if self.saved:
            self._set(0)

    def __exit__(self, *exc):
        if self.saved:
            self._set(self.saved)


# ---- output helpers ------------------------------------------------------


def write_all(fd, data):
    """Writes all of data to fd; a closed or broken descriptor is ignored."""
    view = memoryview(data)
    while view:
        try:
            n = posix.write(fd, view)
        except OSError:  # EPIPE, EBADF: nobody to tell
            return
        view = view[n:]


def write_stderr(text):
    """Diagnostics go to fd 2 directly (whatever sys.stderr has become)."""
    for stream in (sys.stderr, sys.stdout):  # keep the code's output in order
        try:
            stream.flush()
        except BaseException:
            pass
    write_all(2, text.encode("utf-8", "backslashreplace"))


def one_line(text):
    if "\n" in text or "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return text[:MAX_ERROR_CHARS]


def describe(exc):
    """The reference's "<Type>: <message>" for an exception, one line."""
    name = type(exc).__name__
    try:
        text = f"{name}: {exc}"
    except BaseException:
        text = f"{name}: <exception str() failed>"
    return one_line(text)


def encode_message(kind, ok, exit_code, error, value_text, errno=None):
    header = {"ok": ok, "exit_code": exit_code, "error": error, "kind": kind}
    if errno is not None:
        header["errno"] = errno
    with _IntDigits():
        header_bytes = json_dumps(header).encode("ascii")
    status = exit_code if 0 <= exit_code <= 255 else 1
    return header_bytes, value_text.encode("ascii"), status


def worker_error(why):
    return encode_message("worker_error", False, 1, one_line(f"WorkerError: {why}"), "null")


# ---- tracebacks (error paths only) ---------------------------------------

def _traceback_module():
    import traceback

    return traceback


def _linecache_module():
    import linecache

    return linecache


def register_source(source):
    """Lets traceback show the code's lines for <user_code> frames."""
    linecache = _linecache_module()
    # mtime None: checkcache() leaves the entry alone.
    linecache.cache[USER_FILENAME] = (
        len(source),
        None,
        source.splitlines(True),
        USER_FILENAME,
    )


def format_user_traceback(exc, source):
    """Python's traceback text for exc, with only <user_code> frames.

    Chained exceptions (__cause__/__context__) and exception groups are
    filtered the same way.
    """
    traceback = _traceback_module()
    register_source(source)
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    seen = set()
    todo = [te]
    while todo:
        t = todo.pop()
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        t.stack[:] = [f for f in t.stack if f.filename == USER_FILENAME]
        todo.append(t.__cause__)
        todo.append(t.__context__)
        todo.extend(getattr(t, "exceptions", None) or ())
    return "".join(te.format())


def print_user_traceback(exc, source):
    try:
        text = format_user_traceback(exc, source)
    except MemoryError:
        raise
    except BaseException:  # a hostile exception object: say what we can
        text = describe(exc) + "\n"
    write_stderr(text)


def exception_chain(exc):
    """exc, then what it chains to (__cause__, __context__, exception group
    members), each once."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.append(e.__cause__)
        todo.append(e.__context__)
        members = getattr(e, "exceptions", None)
        if type(members) is tuple:
            todo.extend(m for m in members if isinstance(m, BaseException))


def involves_memory_error(exc):
    """True if exc or anything in its chain is a MemoryError."""
    return any(isinstance(e, MemoryError) for e in exception_chain(exc))


def exception_errno(exc):
    """errno of the first OSError in exc's chain, or None. The host turns
    EFBIG (file-size limit) and ENOSPC (full /tmp) into resource_exceeded."""
    for e in exception_chain(exc):
        if isinstance(e, OSError) and type(e.errno) is int:
            return e.errno
    return None


# ---- request -------------------------------------------------------------


def read_request(fd=0):
    """Reads fd to EOF and parses it; raises RequestError."""
    chunks = []
    while True:
        chunk = posix.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return parse_request(b"".join(chunks))


def parse_request(data):
    """Parses the request's bytes (bytes or bytearray); raises RequestError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(f"request is not valid UTF-8 ({e.reason} at byte {e.start})")
    try:
        with _IntDigits():
            request = json_loads(text)
    except MemoryError:
        raise
    except Exception as e:  # JSONDecodeError, ValueError, RecursionError
        raise RequestError(f"request is not valid JSON: {describe(e)}")
    return request


def _string_list(value, what):
    if type(value) is not list or any(type(v) is not str for v in value):
        raise RequestError(f"{what} must be a list of strings")
    return value


def check_request(request):
    """Validates a parsed request; returns (code, input_data, policy, sys_path, prefix)."""
    if type(request) is not dict:
        raise RequestError("request must be a JSON object")
    if "code" not in request:
        raise RequestError("request has no 'code'")
    code = request["code"]
    if type(code) is not str:
        raise RequestError("'code' must be a string")
    input_data = request.get("input_data", {})
    sys_path = _string_list(request.get("sys_path", []), "'sys_path'")
    prefix = request.get("prefix")
    if prefix is not None and type(prefix) is not str:
        raise RequestError("'prefix' must be a string")

    given = request.get("policy", {})
    if type(given) is not dict:
        raise RequestError("'policy' must be an object")
    policy = dict(DEFAULT_POLICY)
    policy.update(given)  # unknown members are ignored below
    if policy["mode"] not in ("restrict", "allow"):
        raise RequestError("policy.mode must be 'restrict' or 'allow'")
    for name in POLICY_LISTS:
        _string_list(policy[name], f"policy.{name}")
    if type(policy["extra_globals"]) is not dict:
        raise RequestError("policy.extra_globals must be an object")
    return code, input_data, policy, sys_path, prefix


def enter_venv(prefix):
    """What site.venv() does, which -S skips: the venv's root becomes
    sys.prefix, so the code sees the environment it runs in (its
    site-packages come with sys_path)."""
    if prefix is not None:
        sys.prefix = sys.exec_prefix = prefix


def extend_sys_path(dirs):
    for d in dirs:
        try:
            is_dir = (posix.stat(d).st_mode & 0o170000) == 0o040000
        except (OSError, ValueError):
            continue
        if is_dir and d not in sys.path:
            sys.path.append(d)


# ---- preloads (policy preload_imports) -----------------------------------


class Preloads:
    """What importing the preloads did, kept for the request's check.

    names: the preloads in order; pulled: module root -> the first preload
    that pulled it in (in the order they came); failure: (preload, the
    exception) for the first preload that failed (the rest are not tried);
    problem: why the preload configuration itself was unusable.
    """

    def __init__(self, names=()):
        self.names = list(names)
        self.pulled = {}
        self.failure = None
        self.problem = None


def take_preload_config(environ=None):
    """Removes PRELOAD_ENV from the environment (neither the preloads, nor
    the code, nor its subprocesses see it) and returns its parsed value:
    None without one, else a Preloads with problem set or a dict
    {"imports": [str], "sys_path": [str], "prefix": str|None}."""
    if environ is None:
        environ = posix.environ  # os.environ wraps this very dict
    key = PRELOAD_ENV.encode("ascii")
    raw = environ.pop(key, None)
    if raw is None:
        return None
    try:
        posix.unsetenv(key)
    except (OSError, ValueError):
        pass
    try:
        config = json_loads(raw.decode("utf-8"))
        if type(config) is not dict:
            raise ValueError("not a JSON object")
        imports = _string_list(config.get("imports"), "'imports'")
        sys_path = _string_list(config.get("sys_path", []), "'sys_path'")
        prefix = config.get("prefix")
        if prefix is not None and type(prefix) is not str:
            raise ValueError("'prefix' must be a string")
    except MemoryError:
        raise
    except Exception as e:
        bad = Preloads()
        bad.problem = f"{PRELOAD_ENV} is malformed ({describe(e)})"
        return bad
    return {"imports": imports, "sys_path": sys_path, "prefix": prefix}


def _import_root(name, globals, level):
    """The top-level package an __import__ call names (a relative import:
    the importing module's)."""
    if level:
        package = globals.get("__package__") or globals.get("__name__") or ""
        return package.partition(".")[0] if type(package) is str else ""
    return name.partition(".")[0]


def run_preloads(config):
    """Imports config's modules with the real import machinery, recording
    every module root they pull in: each name passed to __import__ while
    they load (this sees `import os` even when os is loaded already) and
    each module new in sys.modules (importlib.import_module does not pass
    through __import__; modules an extension registers without an import,
    such as Cython's cython_runtime, have no __spec__ and are left out).
    A preload that raises is recorded, not propagated; the ones after it
    are not tried. Runs in the sandbox, before the request is read."""
    preloads = Preloads(config["imports"])
    enter_venv(config["prefix"])
    extend_sys_path(config["sys_path"])
    real_import = builtins.__import__
    pulled = preloads.pulled
    current = None

    def note(root):
        if type(root) is str and root and root not in pulled:
            pulled[root] = current

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        module = real_import(name, globals, locals, fromlist, level)
        try:
            note(_import_root(str.__str__(name), globals, level))
        except Exception:
            pass  # a name __import__ accepted but we cannot read: sys.modules has it
        return module

    for name in preloads.names:
        current = name
        before = set(sys.modules)
        builtins.__import__ = recording_import
        try:
            recording_import(name, None, None, ("__name__",), 0)
        except BaseException as e:  # SystemExit, KeyboardInterrupt: a failure too
            preloads.failure = (name, e)
        finally:
            builtins.__import__ = real_import
        for module_name in [m for m in list(sys.modules) if m not in before]:
            try:
                has_spec = getattr(sys.modules.get(module_name), "__spec__", None) is not None
            except Exception:
                has_spec = True
            if has_spec and type(module_name) is str:
                note(module_name.partition(".")[0])
        if preloads.failure is not None:
            break
    return preloads


def _quoted_list(names):
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def check_preloads(preloads, policy, startup=STARTUP_MODULES):
    """None when the preloads may serve a run under policy, else the result
    message that refuses the run (before any code runs).

    The module roots they pulled in meet the code's import rules (SPEC §2):
    restrict mode refuses a root in blocked_imports, allow mode a root not
    in allowed_imports, except what the interpreter had loaded at start-up
    (the code reaches those anyway). importlib counts only as the lists
    say: the code's own `import importlib` stays refused in every mode, but
    a policy that unblocks it may preload what imports it (numpy does)."""
    if preloads is None:
        return None
    if preloads.problem is not None:
        return worker_error(preloads.problem)
    if preloads.failure is not None:
        name, exc = preloads.failure
        if involves_memory_error(exc):
            return MEMORY_ERROR_HEADER, NULL_VALUE, MEMORY_ERROR_STATUS
        return encode_message(
            "preload_error", False, 1,
            one_line(f"preload_imports: importing '{name}' failed: {describe(exc)}"), "null",
        )
    if policy["mode"] == "allow":
        allowed = frozenset(policy["allowed_imports"])
        started = frozenset(m.partition(".")[0] for m in startup)

        def refused(root):
            return root not in allowed and root not in started

    else:
        blocked = frozenset(policy["blocked_imports"])

        def refused(root):
            return root in blocked

    by_preload = {}
    for root, first in preloads.pulled.items():
        if refused(root):
            by_preload.setdefault(first, []).append(root)
    for name in preloads.names:
        roots = by_preload.get(name)
        if not roots:
            continue
        own = name.partition(".")[0]
        roots.sort()
        them = f"'{roots[0]}'" if len(roots) == 1 else "them"
        if policy["mode"] == "allow":
            if own in roots:
                why = (f"'{name}' is not in allowed_imports: add '{own}' to allowed_imports "
                       f"or remove '{name}' from preload_imports")
            else:
                why = (f"'{name}' imports {_quoted_list(roots)}, which allowed_imports does "
                       f"not list: add {them} to allowed_imports or remove '{name}' from "
                       "preload_imports")
        elif own in roots:
            why = (f"'{name}' is blocked by blocked_imports: remove '{own}' from "
                   f"blocked_imports or '{name}' from preload_imports")
        else:
            why = (f"'{name}' imports {_quoted_list(roots)}, which blocked_imports blocks: "
                   f"remove {them} from blocked_imports or '{name}' from preload_imports")
        return encode_message("preload_error", False, 1, one_line("preload_imports: " + why),
                              "null")
    return None


# ---- policy --------------------------------------------------------------


def make_import_hook(policy, real_import=builtins.__import__):
    """The reference's guarded __import__: checks the root of the name."""
    allow_mode = policy["mode"] == "allow"
    allowed = frozenset(policy["allowed_imports"])
    blocked = frozenset(policy["blocked_imports"])

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if type(name) is not str and isinstance(name, str):
            name = str.__str__(name)  # no overridden str methods below
        if type(name) is str:
            if name == "importlib" or name.startswith("importlib."):
                raise ImportError("Import 'importlib' is blocked by policy")
            root = name.partition(".")[0]
            if allow_mode:
                if root not in allowed:
                    raise ImportError(f"Import '{name}' is not allowed by policy")
            elif root in blocked:
                raise ImportError(f"Import '{name}' is blocked by policy")
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


class _Quitter:
    """exit()/quit() as `site` defines them (absent under -S)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code=None):
        try:
            sys.stdin.close()
        except BaseException:
            pass
        raise SystemExit(code)


def make_builtins(policy):
    """The code's __builtins__: restrict drops the blocked names, allow keeps
    only the listed ones (plus __build_class__ for `class`)."""
    available = dict(builtins.__dict__)
    available["exit"] = _Quitter("exit")
    available["quit"] = _Quitter("quit")
    if policy["mode"] == "allow":
        safe = {n: available[n] for n in policy["allowed_builtins"] if n in available}
        safe["__build_class__"] = available["__build_class__"]
    else:
        safe = available
        for name in policy["blocked_builtins"]:
            safe.pop(name, None)
    safe["__import__"] = make_import_hook(policy)
    return safe


def make_globals(user_builtins, input_data, policy):
    """A fresh __main__ module for the code; returns (module, its __dict__)."""
    module = type(sys)("__main__")  # types.ModuleType without importing types
    g = module.__dict__
    g["__builtins__"] = user_builtins
    g["input_data"] = input_data
    g["result"] = None

    if policy["mode"] == "allow":
        allowed = frozenset(policy["allowed_globals"])

        def passes(key):
            return key in allowed

    else:
        blocked = frozenset(policy["blocked_globals"])

        def passes(key):
            return key not in blocked

    for key, value in policy["extra_globals"].items():
        if key not in PROTECTED_GLOBALS and passes(key):
            g[key] = value
    if type(input_data) is dict:
        for key, value in input_data.items():
            if (
                key.isidentifier()
                and not key.startswith("_")
                and key not in RESERVED_GLOBALS
                and passes(key)
                and key not in g
            ):
                g[key] = value
    return module, g


# ---- result conversion ---------------------------------------------------


class _Circular(Exception):
    pass


class _TooDeep(Exception):
    pass


_INF = float("inf")


def _plain_str(s):
    """s with lone surrogates replaced by U+FFFD: the host accepts only
    valid Unicode (SPEC §7). A high+low pair becomes the character it
    encodes, as the host would read the two escapes."""
    if s.isascii():  # O(1)
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return s


def _plain_float(value):
    """A finite float as a plain float; NaN/Infinity as json.dumps spells them."""
    f = value if type(value) is float else float.__float__(value)
    if f != f:
        return "NaN"
    if f == _INF:
        return "Infinity"
    if f == -_INF:
        return "-Infinity"
    return f


def _plain_key(key):
    """A dict key stringified as json.dumps does; other keys become str(key)."""
    if isinstance(key, str):
        return _plain_str(key if type(key) is str else str.__str__(key))
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        f = _plain_float(key)
        return f if type(f) is str else float.__repr__(f)
    return _plain_str(str(key))


def _plain(value, active, depth):
    """value as dict(str keys)/list/str/int/float/bool/None (SPEC §1)."""
    t = type(value)
    if t is int or t is bool or value is None:
        return value
    if t is str:
        return _plain_str(value)
    if t is float:
        return _plain_float(value)
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_RESULT_DEPTH:
            raise _TooDeep
        key = id(value)
        if key in active:
            raise _Circular
        active.add(key)
        depth += 1
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                k = _plain_key(k)
                t = type(v)
                if t is int or t is bool or v is None or (t is str and v.isascii()):
                    out[k] = v
                else:
                    out[k] = _plain(v, active, depth)
        else:
            out = []
            append = out.append
            for v in value:
                t = type(v)
                if t is int or t is bool or v is None or (t is str and v.isascii()):
                    append(v)
                else:
                    append(_plain(v, active, depth))
        active.discard(key)
        return out
    # Subclasses: their value as json.dumps would write it, whatever
    # __str__/__int__/__repr__ they override.
    if isinstance(value, str):
        return _plain_str(str.__str__(value))
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return _plain_float(value)
    return _plain_str(str(value))


def convert_result(value):
    """JSON text of `result`; raises ResultError or MemoryError."""
    try:
        with _IntDigits():
            return json_dumps(_plain(value, set(), 0))
    except _Circular:
        raise ResultError("Circular reference detected") from None
    except _TooDeep:
        raise ResultError(
            f"Result nested too deeply (more than {MAX_RESULT_DEPTH} levels)"
        ) from None
    except BaseException as e:
        if involves_memory_error(e):
            raise MemoryError from None
        raise ResultError(describe(e)) from e


# ---- running the code ----------------------------------------------------


def finish_like_interpreter():
    """What Py_FinalizeEx would do before exiting: join non-daemon threads,
    run atexit handlers, flush stdio. Nothing here changes the outcome."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            shutdown = getattr(threading, "_shutdown", None)
            if shutdown is not None:
                shutdown()
        except BaseException as e:
            write_stderr(f"Exception ignored while joining threads: {describe(e)}\n")
    atexit = sys.modules.get("atexit")  # handlers need `import atexit`
    if atexit is not None:
        try:
            atexit._run_exitfuncs()
        except BaseException:
            pass  # atexit printed it (3.9/3.10 also re-raise it)
    for name in ("stdout", "stderr", "__stdout__", "__stderr__"):
        stream = getattr(sys, name, None)
        try:
            if stream is not None and not getattr(stream, "closed", False):
                stream.flush()
        except BaseException as e:
            write_stderr(f"Exception ignored while flushing sys.{name}: {describe(e)}\n")


def execute(code_obj, g):
    """Runs the code; returns the exception it ended with, or None."""
    try:
        exec(code_obj, g)
    except BaseException as e:
        return e
    return None


def system_exit_outcome(exc):
    """(kind, ok, exit_code, error) for SystemExit, as the interpreter exits."""
    code = exc.code
    if code is None:
        return "system_exit", True, 0, None
    if isinstance(code, int):
        n = int.__int__(code)  # sys.exit(True) exits 1
        if n == 0:
            return "system_exit", True, 0, None
        return "system_exit", False, n, one_line(f"SystemExit: {code}")
    try:
        text = str(code)
    except BaseException:
        text = "<exception str() failed>"
    write_stderr(text + "\n")
    return "system_exit", False, 1, one_line(f"SystemExit: {text}")


def release(module, g):
    """Drops the code's objects (memory_error path: make room to report)."""
    if sys.modules.get("__main__") is module:
        del sys.modules["__main__"]
    g.clear()


def run_request(request, preloads=None):
    """Does all the work for one parsed request (no fd 3 plumbing).

    preloads: what run_preloads recorded, checked against the request's
    policy before anything else. Returns (header bytes, value bytes, exit
    status). Raises MemoryError only if memory runs out outside the code
    (the caller then reports MEMORY_ERROR_HEADER).
    """
    try:
        code, input_data, policy, sys_path, prefix = check_request(request)
    except RequestError as e:
        return worker_error(e)
    refusal = check_preloads(preloads, policy)
    if refusal is not None:
        return refusal
    if code.startswith("\ufeff"):
        code = code[1:]  # a UTF-8 BOM, as `python3 FILE` accepts it
    enter_venv(prefix)
    extend_sys_path(sys_path)
    user_builtins = make_builtins(policy)

    try:
        code_obj = compile(code, USER_FILENAME, "exec", dont_inherit=True)
    except MemoryError:
        return MEMORY_ERROR_HEADER, NULL_VALUE, MEMORY_ERROR_STATUS
    except Exception as e:  # SyntaxError & co; ValueError for NUL bytes (<3.12)
        traceback = _traceback_module()
        write_stderr("".join(traceback.format_exception_only(type(e), e)))
        return encode_message("syntax_error", False, 1, describe(e), "null")

    module, g = make_globals(user_builtins, input_data, policy)
    del request, input_data, user_builtins
    sys.argv = [USER_FILENAME]
    sys.modules["__main__"] = module
    recursion_limit = sys.getrecursionlimit()
    errno = None

    exc = execute(code_obj, g)

    sys.setrecursionlimit(recursion_limit)  # the code may have lowered it
    if exc is None:
        kind, ok, exit_code, error = "ok", True, 0, None
    elif isinstance(exc, SystemExit):
        kind, ok, exit_code, error = system_exit_outcome(exc)
    elif involves_memory_error(exc):
        try:  # the traceback may not fit: then the report goes without it
            text = format_user_traceback(exc, code)
        except BaseException:
            text = ""
        exc = None  # the traceback holds the code's frames
        release(module, g)
        write_stderr(text)
        finish_like_interpreter()
        return MEMORY_ERROR_HEADER, NULL_VALUE, MEMORY_ERROR_STATUS
    else:
        print_user_traceback(exc, code)
        kind, ok, exit_code, error = "exception", False, 1, describe(exc)
        errno = exception_errno(exc)
    exc = None

    finish_like_interpreter()

    value_text = "null"
    if kind == "ok" or kind == "system_exit":
        try:
            value_text = convert_result(g.get("result"))
        except MemoryError:
            release(module, g)
            return MEMORY_ERROR_HEADER, NULL_VALUE, MEMORY_ERROR_STATUS
        except ResultError as e:
            cause = e.__cause__
            if cause is not None:
                print_user_traceback(cause, code)
            message = f"ResultError: {e}"
            if ok:
                kind, ok, exit_code, error = "result_error", False, 1, one_line(message)
            else:
                write_stderr(one_line(message) + "\n")
    return encode_message(kind, ok, exit_code, error, value_text, errno)


# ---- one-shot mode -------------------------------------------------------


def report(get_request, worker_pid, preloads=None):
    """Runs the request get_request() returns, writes the result message to
    fd 3 (only from the process worker_pid) and exits. Never returns."""
    try:
        try:
            header, value, status = run_request(get_request(), preloads)
        except RequestError as e:
            header, value, status = worker_error(e)
    except MemoryError:
        header, value, status = MEMORY_ERROR_HEADER, NULL_VALUE, MEMORY_ERROR_STATUS
    except BaseException as e:  # a bug in the worker
        try:
            traceback = _traceback_module()
            write_stderr("".join(traceback.format_exception(type(e), e, e.__traceback__)))
            header, value, status = worker_error(f"internal error: {describe(e)}")
        except BaseException:
            header = (
                b'{"ok":false,"exit_code":1,"error":"WorkerError: internal error",'
                b'"kind":"worker_error"}'
            )
            value, status = NULL_VALUE, 1
    # A child forked by the code that came back here exits as the
    # interpreter would; only the original process reports.
    if posix.getpid() == worker_pid:
        write_all(RESULT_FD, header + b"\n")
        write_all(RESULT_FD, value)
    posix._exit(status)


def main():
    worker_pid = posix.getpid()
    # Done now, before the request is read: in a prepared sandbox (the
    # LocalEngine's warm pool) the worker waits at the read, so this is off
    # the run's path. The code finds _json loaded either way (parsing the
    # request loads it); the first compile() of a process sets the parser
    # up (~1 ms), the code's compile() then costs only its own size.
    try:
        __import__("_json")
    except ImportError:
        pass  # json_loads falls back to the json package
    compile("result = None", USER_FILENAME, "exec", dont_inherit=True)
    try:
        posix.set_inheritable(RESULT_FD, False)  # subprocesses must not get it
    except OSError:
        pass  # no fd 3: the run still happens, the report is lost
    # The policy's preload_imports, also before the request: in a prepared
    # sandbox the run finds them imported. They run in the sandbox, as the
    # code will; what they pulled in is checked against the request's
    # policy before any code runs.
    preloads = None
    try:
        config = take_preload_config()
        preloads = config if type(config) is not dict else run_preloads(config)
    except MemoryError:
        preloads = Preloads()
        preloads.failure = ("", MemoryError())
    report(read_request, worker_pid, preloads)


if __name__ == "__main__":
    main()
