"""spr serve mode: the DockerEngine pool's long-lived worker.

Serve mode runs spr_worker.py's one-shot work once per request, in a child
forked from one long-lived process per container; this file is that
long-lived process. It is kept apart from spr_worker.py so that the one-shot
path, which starts for every LocalEngine run, never loads or compiles it.

It is not a module of its own: it runs in one namespace with the one-shot
worker and uses the worker's names (report, parse_request, worker_error,
describe, write_all, RequestError, _PRELOADED, RESULT_FD, ...), as when both
were one file. Not `import spr_worker`: -I leaves this file's directory off
sys.path, the DockerEngine relies on no file in the image (any image with
python3 works: its bootstrap gets the sources on stdin), and an imported
module would stay in sys.modules, where the code must find only what a
one-shot run has. Two ways in, the same namespace:

- The DockerEngine (src/docker/pool.c, bootstrap_source()) sends both
  sources on the container's stdin to a `python3 -c` bootstrap, which execs
  this file, then spr_worker.py, into one dict whose __name__ is not
  "__main__" (so the worker's main() does not run), and calls serve().
- Run as a program (the runtime image's CMD, tests/worker/test_serve.py):

      <python> -I -S -B -u -X utf8 spr_serve.py

  it execs spr_worker.py from beside it into its own namespace, then calls
  serve(); as spr_serve.pyc, the spr_worker.pyc beside it (the image
  precompiles both with its own interpreter).

What it does (docs/WORKER_PROTOCOL.md "Serve mode"): one long-lived process,
pid 1 of its container, reads `Q` frames on fd 0 and writes
`H`/`O`/`E`/`R`/`D` frames on fd 1 (type byte, 4-byte big-endian length,
payload); fd 2 is for diagnostics. Per request it forks a child that runs
exactly the one-shot work (`report`/`run_request`) with the one-shot fd
layout. Choices made where the document leaves room:
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
"""

import posix
import sys

# ---- serve mode (DockerEngine warm pool) -----------------------------------
#
# One long-lived process (pid 1 of its container) speaks frames on fd 0/1 and
# forks one child per request. The child reads the request's payload from
# fd 0 itself, so the serving process (whose memory every later child
# inherits) never holds a request, and relays output through buffers it
# zeroes after each request (see the module docstring).

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
        posix.write(2, ("spr_serve: " + text + "\n").encode("utf-8", "backslashreplace"))
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
    """The DockerEngine pool's long-lived worker (the module docstring and
    docs/WORKER_PROTOCOL.md "Serve mode"). Never returns."""
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


def _load_worker(namespace):
    """Execs the one-shot worker found beside namespace["__file__"] into
    namespace: spr_worker.pyc when that file is a .pyc, else spr_worker.py."""
    here = namespace["__file__"]
    directory = here[: here.rfind("/") + 1]
    if here.endswith(".pyc"):
        path = directory + "spr_worker.pyc"
        # The interpreter's own loader checks the .pyc's header (a .pyc of
        # another Python version is refused), reached through sys.modules:
        # `import importlib` would leave modules there that serve() counts
        # as the code's.
        bootstrap = sys.modules["_frozen_importlib_external"]
        code = bootstrap.SourcelessFileLoader("spr_worker", path).get_code("spr_worker")
    else:
        path = directory + "spr_worker.py"
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
    exec(code, namespace)


if __name__ == "__main__":
    # Renamed first: the worker's `if __name__ == "__main__": main()` reads
    # this namespace's name when it runs in it.
    __name__ = "spr_serve"
    _load_worker(globals())
    serve()
