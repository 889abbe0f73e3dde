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

Serve mode (`--serve`, the DockerEngine pool; docs/WORKER_PROTOCOL.md
"Serve mode"): one long-lived process, pid 1 of its container, reads `Q`
frames on fd 0 and writes `H`/`O`/`E`/`R`/`D` frames on fd 1 (type byte,
4-byte big-endian length, payload); fd 2 is for diagnostics. Per request it
forks a child that runs exactly the one-shot work (`report`/`run_request`)
with the one-shot fd layout. Choices made where the document leaves room:
- The child, not the serving process, reads the `Q` payload from fd 0 (the
  server validated the header) and tells the server the limits over a pipe
  ("L <timeout_ms> <output_cap>\n") before it runs anything. The server's
  memory, which every later child inherits, so never holds a request;
  output and result bytes pass through buffers it zeroes after each request.
  (What still passes through it: /tmp file names while wiping, process
  names while killing.)
- `limits` missing or null: timeout_ms 5000, output_cap 131072 (the SPEC
  defaults); a member missing: its default; a bad value (timeout_ms not a
  positive finite number, output_cap not an integer >= 0): worker_error
  (run with the defaults). Invalid JSON or UTF-8 is a worker_error too, as
  in one-shot mode: only the framing is a protocol error.
- The timeout and `duration_ms` count from the moment the child has parsed
  the request (just before the code's setup), to its exit or the kill.
- `R` carries at most 64 MiB + 64 KiB (the frame limit; the result is read
  and dropped beyond it, so the host sees "larger than 64 MiB").
- Exit status: 0 at EOF between frames or when fd 1 is broken (the host
  went away), 3 for a protocol error (unknown type, payload over the limit,
  end of input inside a frame), 4 when the worker cannot go on (/tmp cannot
  be emptied, processes survive SIGKILL, a child died before it had read
  its payload so the input position is lost, a bug in here). Everything
  is killed first.
- The hello is {"worker":1,"python":"X.Y.Z","pid":N}, plus "dumpable":true
  when PR_SET_DUMPABLE 0 could not be set (no ctypes). The child sets
  itself dumpable again (a one-shot run is) and its oom_score_adj to 1000
  (the container's OOM killer takes the code rather than pid 1).
- Not pid 1 (tests, or an init in front): the worker becomes a child
  subreaper and kills only its own descendants (plus, without prctl, the
  request's session), never other processes; $SPR_WORKER_TMP, read at
  start, replaces /tmp (as pid 1 it is ignored). Leftovers are killed and
  /tmp wiped before every request and again right after each `D`.
- sys.modules in the child is exactly the startup set plus `_json`, as in a
  one-shot run when the code starts (the server's own imports, ctypes
  included, are dropped from it); traceback/linecache/ast are preloaded and
  listed only once the error path uses them.
- Inherent to forking from one process: every request of a container shares
  its str hash seed and address-space layout.

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

# Serve mode imports traceback, linecache and ast (traceback's caret lines
# import it) once, before it forks, without leaving them in sys.modules (the
# code's view stays the one-shot one); the error paths take them from here
# instead of importing them per request, and only then list them in
# sys.modules, where one-shot's imports would have put them.
_PRELOADED = {}


def _traceback_module():
    module = _PRELOADED.get("traceback")
    if module is None:
        import traceback as module
    else:
        for name, preloaded in _PRELOADED.items():
            sys.modules.setdefault(name, preloaded)
    return module


def _linecache_module():
    module = _PRELOADED.get("linecache")
    if module is None:
        import linecache as module
    return module



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


def run_request(request):
    """Does all the work for one parsed request (no fd 3 plumbing).

    Returns (header bytes, value bytes, exit status). Raises MemoryError
    only if memory runs out outside the code (the caller then reports
    MEMORY_ERROR_HEADER).
    """
    try:
        code, input_data, policy, sys_path, prefix = check_request(request)
    except RequestError as e:
        return worker_error(e)
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


def report(get_request, worker_pid):
    """Runs the request get_request() returns, writes the result message to
    fd 3 (only from the process worker_pid) and exits. Never returns."""
    try:
        try:
            header, value, status = run_request(get_request())
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
    report(read_request, worker_pid)


# ---- serve mode (DockerEngine warm pool) -----------------------------------
#
# One long-lived process (pid 1 of its container) speaks frames on fd 0/1 and
# forks one child per request. The child reads the request's payload from
# fd 0 itself, so the serving process (whose memory every later child
# inherits) never holds a request, and relays output through buffers it
# zeroes after each request (see the module docstring, "Serve mode").

FRAME_MAX = (64 << 20) + (64 << 10)  # largest payload, either direction
DEFAULT_TIMEOUT_MS = 5000  # SPEC: timeout_seconds 5
DEFAULT_OUTPUT_CAP = 128 * 1024  # SPEC: max_output_kb 128
EXIT_PROTOCOL_ERROR = 3  # a bad frame or a short read
EXIT_WORKER_FAILURE = 4  # the worker cannot go on (state it cannot restore)
_CHUNK = 1 << 16
_ZEROS = bytes(_CHUNK)
_DRAIN_SECONDS = 1.0  # after the child ended and leftovers were killed
_SETTLE_SECONDS = 2.0  # killing leftovers: give up (and say so) after this
# Serve mode looks at pids.events this often during a run (one small read):
# cgroup v1 never signals a pids-limit hit, and one way for v1 and v2 is
# enough at this period. A fork bomb ends within it, as with the LocalEngine.
_PIDS_CHECK_SECONDS = 0.05
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_SIGKILL = 9
_O_DIR = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC


class ProtocolError(Exception):
    """A bad frame from the host: exit EXIT_PROTOCOL_ERROR."""


class HostGone(Exception):
    """The host stopped reading frames: exit 0, as for EOF."""


def _diag(text):
    """A diagnostic line on fd 2 (never part of the protocol)."""
    try:
        posix.write(2, ("spr_worker --serve: " + text + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def _read_small(path):
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        return posix.read(fd, 4096)
    except OSError:
        return None
    finally:
        posix.close(fd)


def _zero(buf, n):
    """Overwrites buf[:n] with zeros (no allocation)."""
    view = memoryview(buf)
    off = 0
    while off < n:
        k = min(_CHUNK, n - off)
        view[off : off + k] = _ZEROS[:k]
        off += k
    view.release()


def _is_number(value):
    t = type(value)
    return (t is int or t is float) and value == value and value not in (_INF, -_INF)


def serve_limits(request):
    """(timeout_ms, output_cap) from request["limits"]; missing members (or a
    missing/null `limits`) get the SPEC defaults: 5000 ms, 128 KiB. Raises
    RequestError for values of the wrong type or range."""
    limits = request.get("limits") if type(request) is dict else None
    if limits is None:
        limits = {}
    if type(limits) is not dict:
        raise RequestError("'limits' must be an object")
    timeout_ms = limits.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if not _is_number(timeout_ms) or timeout_ms <= 0:
        raise RequestError("limits.timeout_ms must be a positive number")
    output_cap = limits.get("output_cap", DEFAULT_OUTPUT_CAP)
    if type(output_cap) is not int or output_cap < 0:
        raise RequestError("limits.output_cap must be a non-negative integer")
    return float(timeout_ms), output_cap


def _mount_unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \\ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _cgroup_dirs(fstype, want, cgroup_path):
    """Candidate directories of the cgroup `cgroup_path` for a hierarchy:
    mountpoint + the path relative to the mount's root, then the mountpoint
    itself (inside a cgroup namespace or a bind-mounted container cgroup the
    mount is the process's own cgroup)."""
    data = _read_small_all("/proc/self/mountinfo") or b""
    dirs = []
    for line in data.decode("utf-8", "replace").splitlines():
        pre, sep, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] != fstype:
            continue
        if want and want not in tail[2].split(","):
            continue
        root, mnt = _mount_unescape(fields[3]), _mount_unescape(fields[4])
        rel = None
        if root == "/":
            rel = cgroup_path
        elif cgroup_path == root or cgroup_path.startswith(root + "/"):
            rel = cgroup_path[len(root) :]
        if rel is not None and not rel.startswith("/.."):
            dirs.append(mnt.rstrip("/") + rel.rstrip("/"))
        dirs.append(mnt)
    if not dirs:  # no mountinfo: the usual places
        base = "/sys/fs/cgroup" if fstype == "cgroup2" else "/sys/fs/cgroup/memory"
        dirs = [base + cgroup_path.rstrip("/"), base]
    return dirs


def _read_small_all(path):
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    chunks = []
    try:
        while True:
            chunk = posix.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        posix.close(fd)


def _own_cgroup_paths(controller):
    """(v2 path, v1 path of `controller`) of this process, from
    /proc/self/cgroup; either may be None."""
    v2_path = v1_path = None
    for line in (_read_small_all("/proc/self/cgroup") or b"").decode("utf-8", "replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif controller in parts[1].split(","):
            v1_path = parts[2]
    return v2_path, v1_path


def find_memory_files():
    """(events file, peak file) of the worker's own memory cgroup, either may
    be None: v2 memory.events/memory.peak, else v1 memory.oom_control/
    memory.max_usage_in_bytes. Both events files have an `oom_kill N` line."""
    v2_path, v1_path = _own_cgroup_paths("memory")
    for path, fstype, want, events, peak in (
        (v2_path, "cgroup2", None, "memory.events", "memory.peak"),
        (v1_path, "cgroup", "memory", "memory.oom_control", "memory.max_usage_in_bytes"),
    ):
        if path is None:
            continue
        for d in _cgroup_dirs(fstype, want, path):
            ev, pk = d + "/" + events, d + "/" + peak
            has_events = _read_small(ev) is not None
            has_peak = _read_small(pk) is not None
            if has_events or has_peak:
                return (ev if has_events else None), (pk if has_peak else None)
    return None, None


def find_pids_events():
    """The worker's own cgroup's pids.events (`max N`: forks refused by the
    pids limit), or None: v2 <cgroup>/pids.events, else the v1 pids
    hierarchy."""
    v2_path, v1_path = _own_cgroup_paths("pids")
    for path, fstype, want in ((v2_path, "cgroup2", None), (v1_path, "cgroup", "pids")):
        if path is None:
            continue
        for d in _cgroup_dirs(fstype, want, path):
            ev = d + "/pids.events"
            if _read_small(ev) is not None:
                return ev
    return None


def _proc_stats(me):
    """(pid, state, ppid, session) of every process in /proc but `me`."""
    try:
        names = posix.listdir("/proc")
    except OSError:
        return
    skip = str(me)
    for name in names:
        if not name.isdigit() or name == skip:
            continue
        data = _read_small("/proc/" + name + "/stat")
        if not data:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        try:
            yield int(name), fields[0], int(fields[1]), int(fields[3])
        except (IndexError, ValueError):
            continue


class _Server:
    def __init__(self, base_modules):
        self.base_modules = base_modules
        self.pid = posix.getpid()
        self.pid1 = self.pid == 1
        self.prctl = None
        self.ctypes = None
        self.dumpable_cleared = False
        self.subreaper = False
        self.setup_prctl()
        tmp = None
        if not self.pid1:  # for tests; pid 1 (the container) always wipes /tmp
            tmp = posix.environ.get(b"SPR_WORKER_TMP")
        self.tmp = tmp.decode("utf-8", "surrogateescape") if tmp else "/tmp"
        try:
            st = posix.lstat(self.tmp)
            self.tmp_mode = (st.st_mode & 0o170000) == 0o040000 and (
                st.st_mode & 0o7777,
                st.st_uid,
                st.st_gid,
            )
        except OSError:
            self.tmp_mode = None
        self.events_path, self.peak_path = find_memory_files()
        self.pids_events_path = find_pids_events()
        self.wake_r, self.wake_w = posix.pipe()
        posix.set_blocking(self.wake_r, False)
        posix.set_blocking(self.wake_w, False)
        self.orig_sigint = _signal.getsignal(_signal.SIGINT)
        # pid 1 gets only the signals it has handlers for: a SIGINT from the
        # code must not raise KeyboardInterrupt here.
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        _signal.signal(_signal.SIGCHLD, _on_sigchld)
        try:
            _signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        except TypeError:  # < 3.7
            _signal.set_wakeup_fd(self.wake_w)
        self.iobuf = bytearray(_CHUNK)  # output passes through here only
        self.iobuf_used = 0
        self.wake_poll = select.poll()
        self.wake_poll.register(self.wake_r, select.POLLIN)

    def show_runs(self, served):
        """The process name says how many runs this worker served, so `spr
        list containers` can read it with `docker top` (no exec, works
        remotely). prctl: with dumpable cleared /proc/self/comm is root's."""
        name = b"spr-runs-%d" % served  # the kernel keeps 15 bytes
        if self.prctl is not None:
            buf = self.ctypes.create_string_buffer(name)
            if self.prctl(_PR_SET_NAME, self.ctypes.addressof(buf), 0, 0, 0) == 0:
                return
        _set_comm(name)

    def setup_prctl(self):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            prctl = libc.prctl
            prctl.restype = ctypes.c_int
            prctl.argtypes = (ctypes.c_int,) + (ctypes.c_ulong,) * 4
        except Exception as e:  # no ctypes/libffi/libc: go on, the hello says so
            _diag(f"prctl unavailable ({describe(e)}): the worker stays dumpable")
            return
        self.prctl = prctl
        self.ctypes = ctypes
        if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) == 0:
            self.dumpable_cleared = True
        if not self.pid1:  # orphans of the code become our children
            self.subreaper = prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    # -- frames --------------------------------------------------------------

    def send(self, kind, parts):
        parts = [p for p in parts if len(p)]
        size = 0
        for p in parts:
            size += len(p)
        bufs = [kind + size.to_bytes(4, "big")] + parts
        while bufs:
            try:
                n = posix.writev(1, bufs[:1024])
            except OSError as e:
                raise HostGone(f"writing a frame: {describe(e)}") from None
            while n:
                first = bufs[0]
                if n >= len(first):
                    n -= len(first)
                    del bufs[0]
                else:
                    bufs[0] = memoryview(first)[n:]
                    n = 0

    def read_header(self):
        """The next frame's length (a Q frame), None at EOF between frames."""
        header = b""
        while len(header) < 5:
            try:
                chunk = posix.read(0, 5 - len(header))
            except OSError as e:
                raise ProtocolError(f"reading fd 0: {describe(e)}") from None
            if not chunk:
                if not header:
                    return None
                raise ProtocolError("short read: end of input inside a frame header")
            header += chunk
        kind, size = header[:1], int.from_bytes(header[1:], "big")
        if kind != b"Q":
            raise ProtocolError(f"unknown frame type {kind!r}")
        if size > FRAME_MAX:
            raise ProtocolError(f"frame payload of {size} bytes (more than {FRAME_MAX})")
        return size

    def discard_payload(self, size):
        """Consumes a payload nobody will run (fork failed); zeroes it after."""
        while size:
            n = posix.readv(0, [memoryview(self.iobuf)[: min(size, _CHUNK)]])
            if not n:
                raise ProtocolError("short read: end of input inside a frame payload")
            self.iobuf_used = max(self.iobuf_used, n)
            size -= n
        _zero(self.iobuf, self.iobuf_used)
        self.iobuf_used = 0

    # -- processes -----------------------------------------------------------

    def drain_wake(self):
        try:
            while posix.read(self.wake_r, 512):
                pass
        except OSError:  # EAGAIN: empty
            pass

    def reap(self, child=0):
        """Reaps every exited child; returns child's wait status if it was one."""
        status = None
        while True:
            try:
                pid, st = posix.waitpid(-1, posix.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child:
                status = st
        return status

    def kill_all(self, sid=0):
        """SIGKILLs, once, what the worker is responsible for: as pid 1 every
        other process; else its descendants (orphans come back to it as the
        subreaper) and, without a subreaper, the members of session `sid`.
        Returns how many live (non-zombie) processes were signalled."""
        me = self.pid
        if self.pid1:
            n = 0
            for pid, state, _ppid, _sid in _proc_stats(me):
                if state != b"Z":
                    _kill(pid)
                    n += 1
            return n
        if self.subreaper:
            try:  # fast path: no children at all means no descendants
                posix.waitid(posix.P_ALL, 0, posix.WEXITED | posix.WNOHANG | posix.WNOWAIT)
            except ChildProcessError:
                return 0
        procs = list(_proc_stats(me))
        children = {}
        for pid, _state, ppid, _sid in procs:
            children.setdefault(ppid, []).append(pid)
        targets = set()
        todo = [me]
        while todo:
            for c in children.get(todo.pop(), ()):
                if c not in targets:
                    targets.add(c)
                    todo.append(c)
        n = 0
        for pid, state, _ppid, psid in procs:
            if state == b"Z":
                continue
            if pid in targets or (sid and psid == sid and not self.subreaper):
                _kill(pid)
                n += 1
        return n

    def end_run(self, pid):
        """Kills the run's child and everything left; its wait status."""
        _killpg(pid)  # not reaped yet: its group id is still ours
        self.kill_all(pid)
        status = _wait_for(pid)
        self.settle(pid)
        return status

    def settle(self, sid=0):
        """Kills and reaps leftovers until none is left; True when done."""
        deadline = None
        while True:
            n = self.kill_all(sid)
            self.reap()
            if not n:
                return True
            now = _monotonic()
            if deadline is None:
                deadline = now + _SETTLE_SECONDS
            elif now > deadline:
                _diag(f"{n} process(es) survive SIGKILL")
                return False
            self.wake_poll.poll(5)  # a SIGCHLD, or 5 ms
            self.drain_wake()

    # -- /tmp ----------------------------------------------------------------

    def wipe_tmp(self):
        """Empties the tmp directory (it stays, with its original mode and
        owner); symlinks are removed, never followed. Returns True when empty."""
        path = self.tmp
        try:  # a symlink at start (the image's choice) is followed
            top = posix.open(path, _O_DIR if self.tmp_mode else _O_DIR & ~posix.O_NOFOLLOW)
        except FileNotFoundError:
            return self.remake_tmp()
        except OSError as e:
            if self.tmp_mode and e.errno in (20, 40):  # ENOTDIR, ELOOP: replaced
                try:
                    posix.unlink(path)
                except OSError as e2:
                    _diag(f"cannot remove {path}: {describe(e2)}")
                    return False
                return self.remake_tmp()
            _diag(f"cannot open {path}: {describe(e)}")
            return False
        try:
            ok = _wipe_tree(top)
            if self.tmp_mode:
                st = posix.fstat(top)
                mode, uid, gid = self.tmp_mode
                if (st.st_uid, st.st_gid) != (uid, gid):
                    posix.chown(top, uid, gid)
                if st.st_mode & 0o7777 != mode:
                    posix.chmod(top, mode)
        except OSError as e:
            _diag(f"wiping {path}: {describe(e)}")
            ok = False
        finally:
            posix.close(top)
        return ok

    def remake_tmp(self):
        if not self.tmp_mode:
            return True  # there was none to begin with
        mode, uid, gid = self.tmp_mode
        try:
            posix.mkdir(self.tmp, 0o700)
            posix.chown(self.tmp, uid, gid)
            posix.chmod(self.tmp, mode)
        except OSError as e:
            _diag(f"cannot recreate {self.tmp}: {describe(e)}")
            return False
        return True

    def clean_slate(self):
        """Kills leftovers and empties /tmp; a worker that cannot do both
        exits (EXIT_WORKER_FAILURE) rather than run code in a dirty state."""
        if not self.settle() or not self.wipe_tmp():
            self.settle()
            _diag("cannot restore a clean state; exiting")
            posix._exit(EXIT_WORKER_FAILURE)

    # -- cgroup --------------------------------------------------------------

    def oom_kills(self):
        return _event_count(self.events_path, b"oom_kill ")

    def pids_limit_hits(self):
        return _event_count(self.pids_events_path, b"max ")

    def memory_peak_kb(self):
        if self.peak_path is None:
            return None
        data = _read_small(self.peak_path)
        try:
            return int(data) // 1024
        except (TypeError, ValueError):
            return None

    # -- one request -----------------------------------------------------------

    def request(self, size):
        self.clean_slate()  # already done after the previous request: cheap
        oom_before = self.oom_kills()
        pids_before = self.pids_limit_hits()
        fds = []
        try:
            for _ in range(4):
                fds.extend(posix.pipe())
            pid = posix.fork()
        except OSError as e:
            for fd in fds:
                posix.close(fd)
            _diag(f"cannot start the run: {describe(e)}")
            self.discard_payload(size)
            header, value, _ = worker_error(f"cannot start the run: {describe(e)}")
            self.send(b"R", [header + b"\n" + value])
            self.send(b"D", [_done(1 << 8, False, 0, 0, 0, 0, self.memory_peak_kb())])
            return
        ctl_r, ctl_w, out_r, out_w, err_r, err_w, res_r, res_w = fds
        if pid == 0:
            _serve_child(self, size, ctl_r, ctl_w, out_w, err_w, res_w)  # never returns
        for fd in (ctl_w, out_w, err_w, res_w):
            posix.close(fd)

        # The child reads the payload and answers "L <timeout_ms> <cap>\n"
        # before it runs anything; "X ..." when the payload was cut short.
        line = b""
        while not line.endswith(b"\n"):
            chunk = posix.read(ctl_r, 256)
            if not chunk:
                break
            line += chunk
        posix.close(ctl_r)
        if not line.startswith(b"L "):
            _kill(pid)
            posix.waitpid(pid, 0)
            for fd in (out_r, err_r, res_r):
                posix.close(fd)
            if line.startswith(b"X"):
                raise ProtocolError(line[2:].decode("ascii", "replace").strip())
            _diag("the request's child ended before reading the payload; input position lost")
            self.settle()
            posix._exit(EXIT_WORKER_FAILURE)
        _, timeout_ms, output_cap = line.split()
        keep = int(output_cap) + 4
        start = _monotonic()
        deadline = start + float(timeout_ms) / 1000.0
        pids_check = start + _PIDS_CHECK_SECONDS if pids_before is not None else _INF

        poller = select.poll()
        streams = {out_r: [b"O", 0, 0], err_r: [b"E", 0, 0]}  # kind, forwarded, total
        for fd in (out_r, err_r, res_r, self.wake_r):
            poller.register(fd, select.POLLIN)
        # The host sends nothing during a request: a hangup on fd 0 means it
        # went away (its caller died). Then the run must end now, not at
        # its timeout, so the container stops with its caller.
        poller.register(0, 0)
        open_fds = 3
        result = []  # [bytearray, used] chunks of the result message
        result_kept = 0
        status = None
        timed_out = False
        end = None
        drain_until = None
        iobuf = self.iobuf
        while True:
            now = _monotonic()
            if status is None:
                # A process-count limit hit ends the run at once (SPEC §7,
                # like a memory limit hit), not at its timeout.
                limit_hit = False
                if now >= pids_check:
                    hits = self.pids_limit_hits()
                    limit_hit = hits is not None and hits > pids_before
                    pids_check = now + _PIDS_CHECK_SECONDS
                if now >= deadline or limit_hit:
                    timed_out = not limit_hit
                    end = now
                    status = self.end_run(pid)
                    drain_until = _monotonic() + _DRAIN_SECONDS
                    continue
                wait = min(deadline, pids_check) - now
            else:
                if not open_fds or now >= drain_until:
                    break
                wait = drain_until - now
            ms = int(wait * 1000.0) + 1
            for fd, _ev in poller.poll(ms if ms < 60000 else 60000):
                if fd == 0:
                    _killpg(pid)
                    self.kill_all(pid)
                    _wait_for(pid)
                    raise HostGone("hangup on stdin during a request")
                if fd == self.wake_r:
                    self.drain_wake()
                    if status is None:
                        st = self.reap(pid)
                        if st is not None:
                            status = st
                            end = _monotonic()
                            self.settle(pid)
                            drain_until = _monotonic() + _DRAIN_SECONDS
                    continue
                stream = streams.get(fd)
                if stream is None:  # the result message
                    if result_kept < FRAME_MAX:
                        if not result or result[-1][1] == len(result[-1][0]):
                            size = min(max(_CHUNK, result_kept), 16 << 20)
                            result.append([bytearray(size), 0])
                        last = result[-1]
                        room = min(len(last[0]) - last[1], FRAME_MAX - result_kept)
                        n = _readv(fd, memoryview(last[0])[last[1] : last[1] + room])
                        last[1] += n
                        result_kept += n
                    else:
                        n = _readv(fd, iobuf)
                        if n > self.iobuf_used:
                            self.iobuf_used = n
                else:
                    n = _readv(fd, iobuf)
                    if n:
                        if n > self.iobuf_used:
                            self.iobuf_used = n
                        stream[2] += n
                        room = keep - stream[1]
                        if room > 0:
                            k = n if n < room else room
                            stream[1] += k
                            self.send(stream[0], [memoryview(iobuf)[:k]])
                if not n:
                    poller.unregister(fd)
                    posix.close(fd)
                    open_fds -= 1
        for fd in (out_r, err_r, res_r):
            try:
                poller.unregister(fd)
                posix.close(fd)
            except (KeyError, OSError):
                pass
        poller.unregister(0)
        try:
            if result_kept:
                self.send(b"R", [memoryview(c)[:used] for c, used in result])
            oom_after = self.oom_kills()
            oom = oom_after - oom_before if oom_before is not None and oom_after is not None else 0
            pids_after = self.pids_limit_hits()
            pids_hit = pids_before is not None and pids_after is not None and pids_after > pids_before
            self.send(
                b"D",
                [
                    _done(
                        status,
                        timed_out,
                        streams[out_r][2],
                        streams[err_r][2],
                        int((end - start) * 1000.0 + 0.5),
                        oom,
                        self.memory_peak_kb(),
                        pids_hit,
                    )
                ],
            )
        finally:
            for c, used in result:
                _zero(c, used)
            result = None
            _zero(iobuf, self.iobuf_used)
            self.iobuf_used = 0
        self.clean_slate()  # off the next request's clock

    def exit_now(self, status):
        self.settle()
        posix._exit(status)

    def run(self):
        self.clean_slate()
        v = sys.version_info
        hello = '{"worker":1,"python":"%d.%d.%d","pid":%d%s}' % (
            v[0],
            v[1],
            v[2],
            self.pid,
            "" if self.dumpable_cleared else ',"dumpable":true',
        )
        try:
            self.send(b"H", [hello.encode("ascii")])
            served = 0
            self.show_runs(served)
            while True:
                size = self.read_header()
                if size is None:
                    self.exit_now(0)  # the host went away: stop everything
                self.request(size)
                served += 1
                self.show_runs(served)
        except ProtocolError as e:
            _diag(f"protocol error: {e}")
            self.exit_now(EXIT_PROTOCOL_ERROR)
        except HostGone as e:
            _diag(f"the host went away ({e})")
            self.exit_now(0)
        except BaseException as e:  # a bug in here: stop, leaving nothing behind
            try:
                traceback = _PRELOADED["traceback"]
                _diag("".join(traceback.format_exception(type(e), e, e.__traceback__)))
            finally:
                self.exit_now(EXIT_WORKER_FAILURE)


def _event_count(path, key):
    """The number after `key` in a cgroup events file; None if unknown."""
    if path is None:
        return None
    data = _read_small(path)
    for line in (data or b"").split(b"\n"):
        if line.startswith(key):
            try:
                return int(line[len(key):])
            except ValueError:
                return None
    return None


def _set_comm(name):
    try:
        fd = posix.open("/proc/self/comm", posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        posix.write(fd, name)
    except OSError:
        pass
    finally:
        posix.close(fd)


def _done(status, timed_out, out_total, err_total, duration_ms, oom_kills, peak_kb,
          pids_hit=False):
    return (
        b'{"status":%d,"timed_out":%s,"out_total":%d,"err_total":%d,'
        b'"duration_ms":%d,"oom_kills":%d,"memory_peak_kb":%s,"pids_limit_hit":%s}'
        % (
            status,
            b"true" if timed_out else b"false",
            out_total,
            err_total,
            duration_ms,
            oom_kills,
            b"null" if peak_kb is None else str(peak_kb).encode("ascii"),
            b"true" if pids_hit else b"false",
        )
    )


def _on_sigchld(signum, frame):
    pass  # the wakeup fd did the work


def _kill(pid):
    try:
        posix.kill(pid, _SIGKILL)
    except OSError:
        pass


def _killpg(pgid):
    try:
        posix.killpg(pgid, _SIGKILL)
    except OSError:
        pass


def _wait_for(pid):
    try:
        return posix.waitpid(pid, 0)[1]
    except ChildProcessError:  # cannot happen: nobody else reaps it
        return _SIGKILL


def _readv(fd, buf):
    """Reads into buf (the pipes are blocking; poll said readable); an error
    counts as end of file."""
    try:
        return posix.readv(fd, [buf])
    except OSError:
        return 0


def _wipe_tree(top):
    """Removes everything below the directory open as `top` without following
    symlinks, depth-first with one directory descriptor at a time (going back
    up through ".."), so any depth works. Returns True when nothing is left."""
    ok = True
    names = []  # the path from top to cur
    cur = posix.dup(top)
    try:
        subdirs, done = _wipe_entries(cur)
        ok = ok and done
        pending = [subdirs]  # subdirectories still to remove, per level
        while True:
            if pending[-1]:
                name = pending[-1].pop()
                try:
                    sub = _retry_writable(cur, lambda: posix.open(name, _O_DIR, dir_fd=cur))
                except OSError as e:
                    _diag(f"cannot open directory {name!r} in the tmp directory: {describe(e)}")
                    ok = False
                    continue
                posix.close(cur)
                cur = sub
                names.append(name)
                subdirs, done = _wipe_entries(cur)
                ok = ok and done
                pending.append(subdirs)
                continue
            pending.pop()
            if not names:
                return ok
            parent = posix.open("..", _O_DIR, dir_fd=cur)
            posix.close(cur)
            cur = parent
            name = names.pop()
            try:
                _retry_writable(cur, lambda: posix.rmdir(name, dir_fd=cur))
            except OSError as e:
                _diag(f"cannot remove directory {name!r}: {describe(e)}")
                ok = False
    finally:
        posix.close(cur)


def _retry_writable(dir_fd, action):
    """action(); after a PermissionError (a directory the code made read-only
    or unsearchable, for a worker that is not root) once more with dir_fd
    made rwx for its owner."""
    try:
        return action()
    except PermissionError:
        posix.chmod(dir_fd, 0o700)
        return action()


def _wipe_entries(dir_fd):
    """Unlinks what is not a directory in dir_fd; returns (the names of its
    subdirectories, whether every unlink worked)."""
    subdirs = []
    ok = True
    try:
        with posix.scandir(dir_fd) as it:
            entries = list(it)
    except PermissionError:
        posix.chmod(dir_fd, 0o700)
        with posix.scandir(dir_fd) as it:
            entries = list(it)
    for e in entries:
        name = e.name
        try:
            if e.is_dir(follow_symlinks=False):
                subdirs.append(name)
                continue
        except OSError:
            pass
        try:
            _retry_writable(dir_fd, lambda: posix.unlink(name, dir_fd=dir_fd))
        except FileNotFoundError:
            pass
        except OSError as err:
            _diag(f"cannot remove {name!r}: {describe(err)}")
            ok = False
    return subdirs, ok


def _serve_child(server, size, ctl_r, ctl_w, out_w, err_w, res_w):
    """The child of one request: reads the payload, answers the limits on
    ctl_w, takes the one-shot fd layout and runs the request. Never returns."""
    status = 70
    try:
        child_pid = posix.getpid()
        posix.setsid()
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, server.orig_sigint)
        base = server.base_modules
        for name in list(sys.modules):
            if name not in base:
                del sys.modules[name]
        posix.close(ctl_r)

        try:
            buf = bytearray(size)
        except MemoryError:  # consume it anyway: the stream stays in step
            buf = None
        view = memoryview(server.iobuf if buf is None else buf)
        got = 0
        while got < size:
            n = posix.readv(0, [view[got:] if buf is not None else view[: min(_CHUNK, size - got)]])
            if not n:
                write_all(ctl_w, b"X short read: end of input inside a frame payload\n")
                status = 3
                return
            got += n
        view.release()
        del view
        try:
            if buf is None:
                raise MemoryError
            request = parse_request(buf)
        except MemoryError:
            request = MemoryError()
        except RequestError as e:
            request = e
        del buf
        try:
            timeout_ms, output_cap = serve_limits(request)
        except RequestError as e:
            request = e
            timeout_ms, output_cap = DEFAULT_TIMEOUT_MS, DEFAULT_OUTPUT_CAP
        write_all(ctl_w, b"L %r %d\n" % (float(timeout_ms), output_cap))
        posix.close(ctl_w)
        # cpu_seconds: a per-process CPU-time limit here (the container has
        # no cgroup CPU-time budget): SIGXCPU at the limit, SIGKILL 1 s later.
        limits = request.get("limits") if type(request) is dict else None
        cpu = limits.get("cpu_seconds") if type(limits) is dict else None
        if _is_number(cpu) and cpu > 0:
            import resource

            soft = int(cpu) + (cpu > int(cpu))
            resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))

        # The one-shot layout: fd 0 /dev/null, 1/2 the output pipes, 3 the
        # result pipe (close-on-exec), nothing else.
        null = posix.open("/dev/null", posix.O_RDONLY)
        posix.dup2(null, 0)
        posix.dup2(out_w, 1)
        posix.dup2(err_w, 2)
        if res_w != RESULT_FD:
            posix.dup2(res_w, RESULT_FD)
        posix.set_inheritable(RESULT_FD, False)
        try:
            fds = [int(fd) for fd in posix.listdir("/proc/self/fd")]
        except OSError:
            fds = range(RESULT_FD + 1, 65536)
        for fd in fds:
            if fd > RESULT_FD:
                try:
                    posix.close(fd)
                except OSError:
                    pass
        if server.dumpable_cleared:
            server.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # as a one-shot run is
        try:  # the cgroup's OOM killer should pick the code, not pid 1
            fd = posix.open("/proc/self/oom_score_adj", posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"1000")
            finally:
                posix.close(fd)
        except OSError:
            pass

        def get_request():
            if isinstance(request, BaseException):
                raise request
            return request

        report(get_request, child_pid)
    finally:
        posix._exit(status)


def serve():
    """--serve: the DockerEngine pool's long-lived worker (the module
    docstring and docs/WORKER_PROTOCOL.md "Serve mode")."""
    global _signal, select, _monotonic
    base_modules = set(sys.modules)  # what the code may find there
    import _signal
    import select
    from time import monotonic as _monotonic

    try:  # one-shot has it loaded (the request was parsed) when the code runs
        __import__("_json")
        base_modules.add("_json")
    except ImportError:
        pass
    import traceback

    _PRELOADED["traceback"] = traceback
    _PRELOADED["linecache"] = traceback.linecache  # the one it uses
    try:
        import ast

        _PRELOADED["ast"] = ast
        _PRELOADED["_ast"] = sys.modules["_ast"]
    except (ImportError, KeyError):
        pass
    base_modules = frozenset(base_modules)

    try:
        posix.fstat(2)
    except OSError:  # keep fd 2 taken, so no pipe ends up there
        posix.open("/dev/null", posix.O_WRONLY)
    server = _Server(base_modules)
    for name in list(sys.modules):  # ctypes & co. stay loaded, not listed
        if name not in base_modules:
            del sys.modules[name]
    server.run()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
