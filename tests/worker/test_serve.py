"""Tests of worker/spr_serve.py, serve mode (docs/WORKER_PROTOCOL.md "Serve mode").

The worker runs as the runtime image's CMD does, minus the container:
    <python> -I -S -B -u -X utf8 worker/spr_serve.py
(which loads worker/spr_worker.py from beside it) with frames on its
stdin/stdout. Outside a container it is not pid 1: it
then kills only its own descendants, and $SPR_WORKER_TMP (a private
directory per worker here) stands in for the /tmp it wipes. One test runs it
as pid 1 of a fresh pid namespace (unshare, root only) with a private tmpfs
on /tmp.

The interpreter and worker file are chosen as in test_worker.py
($SPR_TEST_WORKER_PYTHON, $SPR_TEST_WORKER); the serve file is
$SPR_TEST_SERVE, else the spr_serve.py (.pyc when the worker is a .pyc)
beside the worker, which is the worker serve mode loads.

    python3 -m unittest discover -s tests/worker -t .
"""

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

try:
    from tests.worker import test_worker as oneshot
except ImportError:  # run from tests/worker
    import test_worker as oneshot

PYTHON = oneshot.PYTHON
WORKER = oneshot.WORKER
SERVE = os.environ.get("SPR_TEST_SERVE") or os.path.join(
    os.path.dirname(WORKER), "spr_serve.pyc" if WORKER.endswith(".pyc") else "spr_serve.py"
)
SERVE_SOURCE = os.path.join(oneshot.ROOT, "worker", "spr_serve.py")
DEFAULT_POLICY = oneshot.DEFAULT_POLICY
OPEN_POLICY = oneshot.OPEN_POLICY
SERVE_ARGV = [PYTHON, "-I", "-S", "-B", "-u", "-X", "utf8", SERVE]
FRAME_MAX = (64 << 20) + (64 << 10)


def load_serve_module():
    """spr_serve.py and spr_worker.py in one namespace, as the DockerEngine's
    bootstrap puts them, made a module (main() and serve() do not run)."""
    module = type(sys)("spr_serve_under_test")
    module.__builtins__ = __builtins__
    for path in (SERVE_SOURCE, oneshot.WORKER_SOURCE):
        with open(path, "rb") as f:
            exec(compile(f.read(), path, "exec"), module.__dict__)
    return module


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 :].split()[0] != b"Z"


def descendants(pid):
    """Live descendants of pid, from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            found.append(c)
            todo.append(c)
    return found


class Reply:
    """The frames of one request, up to and including D."""

    def __init__(self, frames):
        self.frames = frames
        self.kinds = [k for k, _ in frames]
        self.out = b"".join(p for k, p in frames if k == b"O")
        self.err = b"".join(p for k, p in frames if k == b"E")
        results = [p for k, p in frames if k == b"R"]
        self.message = results[0] if results else None
        self.header = self.value = None
        if self.message is not None:
            header, _, value = self.message.partition(b"\n")
            self.header = oneshot.strict_json(header)
            self.value = oneshot.strict_json(value)
        self.done = json.loads(frames[-1][1])

    @property
    def status(self):
        return self.done["status"]

    def __repr__(self):
        return f"Reply(kinds={self.kinds}, header={self.header}, value={self.value!r:.200}, out={self.out[:300]!r}, err={self.err[:1500]!r}, done={self.done})"


class ServeWorker:
    """A worker in serve mode and a small frame client for it."""

    def __init__(self, argv=None, env=None, tmpdir=None, preexec_fn=None):
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="spr-serve-tmp-")
        self.own_tmpdir = tmpdir is None
        environ = dict(os.environ, SPR_WORKER_TMP=self.tmpdir)
        environ.update(env or {})
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv or SERVE_ARGV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=environ,
            preexec_fn=preexec_fn,
        )
        self.inbuf = b""

    # -- raw I/O ---------------------------------------------------------------

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.proc.stdin.fileno(), view) :]

    def read_exact(self, n, deadline):
        fd = self.proc.stdout.fileno()
        while len(self.inbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no frame within the time limit; stderr: {self.stderr_text()}")
            chunk = os.read(fd, max(1 << 16, n - len(self.inbuf)))
            if not chunk:
                return None
            self.inbuf += chunk
        data, self.inbuf = self.inbuf[:n], self.inbuf[n:]
        return data

    def frame(self, timeout=30):
        """(type, payload), or None at EOF."""
        deadline = time.monotonic() + timeout
        header = self.read_exact(5, deadline)
        if header is None:
            return None
        payload = self.read_exact(int.from_bytes(header[1:], "big"), deadline)
        if payload is None:
            raise AssertionError("EOF inside a frame")
        return header[:1], payload

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    # -- protocol --------------------------------------------------------------

    def hello(self):
        kind, payload = self.frame()
        assert kind == b"H", (kind, payload)
        return json.loads(payload)

    def send_request(self, request):
        data = request if isinstance(request, bytes) else json.dumps(request).encode("utf-8")
        self.write(b"Q" + len(data).to_bytes(4, "big") + data)

    def reply(self, timeout=30):
        frames = []
        while True:
            f = self.frame(timeout)
            if f is None:
                raise AssertionError(f"EOF before D; frames {frames}; stderr: {self.stderr_text()}")
            frames.append(f)
            if f[0] == b"D":
                return Reply(frames)

    def run(self, code, policy=None, limits=None, timeout=30, **extra):
        request = {"code": code, "policy": DEFAULT_POLICY if policy is None else policy}
        if limits is not None:
            request["limits"] = limits
        request.update(extra)
        self.send_request(request)
        return self.reply(timeout)

    def wait(self, timeout=10):
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.stderr.close()
        if self.own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class ServeTestCase(unittest.TestCase):
    maxDiff = None

    def start(self, **kw):
        worker = ServeWorker(**kw)
        self.addCleanup(worker.close)
        self.hello = worker.hello()
        return worker

    def assertOk(self, reply, value=oneshot._ABSENT):
        self.assertEqual(reply.header, {"ok": True, "exit_code": 0, "error": None, "kind": "ok"}, reply)
        self.assertEqual(reply.status, 0, reply)
        self.assertFalse(reply.done["timed_out"], reply)
        if value is not oneshot._ABSENT:
            self.assertEqual(reply.value, value, reply)


# The code's signal dispositions, by name (SIGINT, SIGCHLD, SIGPIPE, SIGXFSZ).
SIGNALS = (
    "def signals():\n"
    "    import signal\n"
    "    def name(h):\n"
    "        if h is signal.default_int_handler:\n"
    "            return 'python'\n"
    "        return {signal.SIG_DFL: 'dfl', signal.SIG_IGN: 'ign'}.get(h, repr(h))\n"
    "    return [name(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ)]\n"
)


class SharedWorkerTest(ServeTestCase):
    """Requests that leave the worker usable share one worker, in order."""

    @classmethod
    def setUpClass(cls):
        cls.worker = ServeWorker()
        cls.hello_frame = cls.worker.hello()

    @classmethod
    def tearDownClass(cls):
        cls.worker.close()

    def run_code(self, code, **kw):
        return self.worker.run(code, **kw)

    def test_hello(self):
        h = self.hello_frame
        self.assertEqual(h["worker"], 1)
        self.assertEqual(h["pid"], self.worker.proc.pid)
        version = "%d.%d" % oneshot.PYTHON_VERSION
        self.assertTrue(h["python"].startswith(version + "."), h)
        self.assertNotIn("dumpable", h)  # ctypes is there: PR_SET_DUMPABLE worked

    def test_normal_request(self):
        code = (
            "import sys\n"
            "print('out 1')\n"
            "sys.stdout.flush()\n"
            "print('err 1', file=sys.stderr)\n"
            "sys.stdout.write('out 2 \\u00e9')\n"
            "result = {'answer': x + 1}\n"
        )
        reply = self.run_code(code, input_data={"x": 41})
        self.assertOk(reply, {"answer": 42})
        self.assertEqual(reply.message, b'{"ok":true,"exit_code":0,"error":null,"kind":"ok"}\n{"answer":42}')
        self.assertEqual(reply.out, "out 1\nout 2 \u00e9".encode("utf-8"))
        self.assertEqual(reply.err, b"err 1\n")
        self.assertEqual(reply.kinds[-2:], [b"R", b"D"])
        self.assertTrue(set(reply.kinds[:-2]) <= {b"O", b"E"}, reply)
        self.assertLess(reply.kinds.index(b"O"), reply.kinds.index(b"E"))  # in order
        d = reply.done
        self.assertEqual(
            set(d), {"status", "timed_out", "out_total", "err_total", "duration_ms", "oom_kills", "memory_peak_kb",
             "pids_limit_hit"}
        )
        self.assertEqual((d["out_total"], d["err_total"]), (len(reply.out), len(reply.err)))
        self.assertIsInstance(d["duration_ms"], int)
        self.assertLess(d["duration_ms"], 5000)
        self.assertEqual(d["oom_kills"], 0)
        self.assertTrue(d["memory_peak_kb"] is None or d["memory_peak_kb"] > 0, d)

    def test_fresh_state_between_requests(self):
        first = (
            "import sys, json, os\n"
            "leaked = 'global'\n"
            "json.dumps = None\n"
            "os.environ['SPR_LEAK'] = '1'\n"
            "sys.modules['__main__'].marker = 1\n"
            "sys.path.append('/spr-leak')\n"
            "sys.setrecursionlimit(123)\n"
            "import builtins\n"
            "builtins.spr_leak = 1\n"
            "result = sorted(sys.modules)\n"
        )
        second = (
            "import sys, json, os, builtins\n"
            "result = ['leaked' in globals(), json.dumps is None, 'SPR_LEAK' in os.environ,\n"
            "          hasattr(sys.modules['__main__'], 'marker'), '/spr-leak' in sys.path,\n"
            "          sys.getrecursionlimit() == 123, hasattr(builtins, 'spr_leak'),\n"
            "          sys.modules['__main__'].__dict__ is globals()]\n"
        )
        self.assertOk(self.run_code(first, policy=OPEN_POLICY))
        self.assertOk(self.run_code(second, policy=OPEN_POLICY), [False] * 7 + [True])

    def test_modules_as_in_one_shot(self):
        code = "import sys\nresult = sorted(sys.modules)"
        served = self.run_code(code)
        self.assertOk(served)
        self.assertEqual(served.value, oneshot.run_worker(code).value)
        self.assertNotIn("ctypes", served.value)
        # and again after an error path (traceback preloaded) ran
        self.run_code("1/0")
        self.assertEqual(self.run_code(code).value, served.value)

    def test_many_sequential_requests(self):
        for i in range(40):
            reply = self.run_code("result = [n * 2, len(globals())]", input_data={"n": i})
            self.assertOk(reply, [i * 2, reply.value[1]])
        self.assertEqual(len({self.run_code("result = len(globals())").value for _ in range(3)}), 1)

    def test_child_environment(self):
        code = (
            SIGNALS
            + "import os, sys, signal, io\n"
            "fds = sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
            "result = {\n"
            "  'fds': fds[:4], 'extra': len(fds),\n"
            "  'fd3_cloexec': not os.get_inheritable(3),\n"
            "  'stdin': os.readlink('/proc/self/fd/0'),\n"
            "  'sid': os.getsid(0) == os.getpid(), 'ppid': os.getppid(),\n"
            "  'signals': signals(),\n"
            "  'wakeup': signal.set_wakeup_fd(-1),\n"
            "  'stdout': [sys.stdout.fileno(), sys.stdout.write_through, type(sys.stdout.buffer).__name__,\n"
            "             sys.stdout.encoding, sys.stderr.fileno(), sys.stderr.write_through],\n"
            "  'stdin_read': sys.stdin.read(),\n"
            "  'argv': sys.argv, 'name': __name__,\n"
            "}\n"
            "import ctypes\n"
            "result['dumpable'] = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE\n"
        )
        reply = self.run_code(code, policy=OPEN_POLICY)
        self.assertOk(reply)
        v = reply.value
        # 0-3, plus the descriptor listdir itself used
        self.assertEqual(v["fds"], [0, 1, 2, 3])
        self.assertEqual(v["extra"], 5)
        self.assertTrue(v["fd3_cloexec"])
        self.assertEqual(v["stdin"], "/dev/null")
        self.assertTrue(v["sid"])
        self.assertEqual(v["ppid"], self.worker.proc.pid)
        # SIGINT: Python's handler, or SIG_IGN when the worker started with
        # it ignored (a background job): whatever one-shot mode has
        self.assertEqual(v["signals"], oneshot.run_worker(SIGNALS + "result = signals()").value)
        self.assertEqual(v["signals"][1:], ["dfl", "ign", "ign"])
        self.assertEqual(v["wakeup"], -1)
        self.assertEqual(v["stdout"], [1, True, "FileIO", "utf-8", 2, True])
        self.assertEqual(v["stdin_read"], "")
        self.assertEqual(v["argv"], ["<user_code>"])
        self.assertEqual(v["name"], "__main__")
        self.assertEqual(v["dumpable"], 1)  # as in one-shot; the worker itself is 0
        reply = self.run_code("input()")
        self.assertEqual(reply.header["error"], "EOFError: EOF when reading a line")

    def test_output_cap_and_totals(self):
        code = "import os\nos.write(1, b'a' * 10000)\nos.write(2, b'b' * 5000)\nprint('c' * 3000)\nresult = 1"
        reply = self.run_code(code, policy=OPEN_POLICY, limits={"timeout_ms": 5000, "output_cap": 100})
        self.assertOk(reply, 1)
        self.assertEqual(reply.out, b"a" * 104)
        self.assertEqual(reply.err, b"b" * 104)
        self.assertEqual((reply.done["out_total"], reply.done["err_total"]), (13001, 5000))
        reply = self.run_code("print('x' * 50)\nresult = 2", limits={"timeout_ms": 5000, "output_cap": 0})
        self.assertEqual((reply.out, reply.done["out_total"]), (b"xxxx", 51))
        # large output streams through (the code is not blocked on a full pipe)
        reply = self.run_code("import sys\nsys.stdout.write('y' * 3000000)\nresult = 3", limits={"output_cap": 1 << 20})
        self.assertOk(reply, 3)
        self.assertEqual((len(reply.out), reply.done["out_total"]), ((1 << 20) + 4, 3000000))

    def test_limits_defaults(self):
        code = "import time\ntime.sleep(0.2)\nprint('z' * 200000)\nresult = 'slept'"
        reply = self.run_code(code, policy=OPEN_POLICY)  # no limits: 5000 ms, 128 KiB
        self.assertOk(reply, "slept")
        self.assertEqual((len(reply.out), reply.done["out_total"]), (131072 + 4, 200001))
        reply = self.run_code("print('p')\nresult = 4", limits={"output_cap": 1})  # timeout_ms default
        self.assertOk(reply, 4)
        self.assertEqual(reply.out, b"p\n")
        for bad, why in (
            ({"timeout_ms": 0}, "limits.timeout_ms must be a positive number"),
            ({"timeout_ms": "1"}, "limits.timeout_ms must be a positive number"),
            ({"output_cap": -1}, "limits.output_cap must be a non-negative integer"),
            ({"output_cap": True}, "limits.output_cap must be a non-negative integer"),
            ([], "'limits' must be an object"),
        ):
            reply = self.run_code("print('never')", limits=bad)
            self.assertEqual(reply.header["kind"], "worker_error", reply)
            self.assertEqual(reply.header["error"], "WorkerError: " + why)
            self.assertEqual(reply.out, b"")
            self.assertEqual(reply.status, 1 << 8)
        self.assertOk(self.run_code("result = 5", limits=None), 5)  # null: the defaults

    def test_invalid_json_is_worker_error(self):
        self.worker.send_request(b'{"code": ')
        reply = self.worker.reply()
        self.assertEqual(reply.header["kind"], "worker_error", reply)
        self.assertTrue(reply.header["error"].startswith("WorkerError: request is not valid JSON"), reply)
        self.worker.send_request(b"\xff")
        self.assertEqual(self.worker.reply().header["kind"], "worker_error")
        self.assertOk(self.run_code("result = 6"), 6)

    def test_killed_by_signal(self):
        reply = self.run_code("import os\nprint('before')\nos.kill(os.getpid(), 9)", policy=OPEN_POLICY)
        self.assertIsNone(reply.message, reply)
        self.assertEqual(set(reply.kinds), {b"O", b"D"})
        self.assertEqual(reply.out, b"before\n")
        self.assertEqual(reply.status, signal.SIGKILL)  # a wait status: killed by 9
        self.assertFalse(reply.done["timed_out"])
        reply = self.run_code("import os\nos._exit(7)", policy=OPEN_POLICY)
        self.assertIsNone(reply.message)
        self.assertEqual(reply.status, 7 << 8)
        self.assertOk(self.run_code("result = 'still here'"), "still here")

    def test_outcomes_match_one_shot(self):
        cases = [
            ("result = 1", {}),
            ("import sys\nsys.exit(3)", {}),
            ("import sys\nsys.exit('bye')", {}),
            ("raise SystemExit(None)", {}),
            ("exit(4)", {}),
            ("def f():\n    raise ValueError('bad\\nvalue')\nf()", {}),
            ("x = (", {}),
            ("  x = 1", {}),
            ("d = {}\nd['d'] = d\nresult = d", {}),
            ("raise MemoryError", {}),
            ("open('/nonexistent/x')", {"policy": OPEN_POLICY}),
            ("import os", {}),
            ("import sys\nprint('o')\nprint('e', file=sys.stderr)\nresult = float('nan')", {}),
            ("result = input_data", {"input_data": [1, "\ud800", {"k": None}]}),
            ("import atexit\natexit.register(print, 'at exit')\nresult = 2", {}),
        ]
        for code, kw in cases:
            with self.subTest(code=code):
                served = self.run_code(code, **kw)
                one = oneshot.run_worker(code, **kw)
                self.assertEqual(served.message, one.message, served)
                self.assertEqual(served.out.decode(), one.stdout)
                self.assertEqual(served.err.decode(), one.stderr)
                self.assertEqual(served.status, one.status << 8)
        # a request the one-shot checks refuse
        self.worker.send_request({"policy": DEFAULT_POLICY})
        served = self.worker.reply()
        one = oneshot.run_worker_raw(json.dumps({"policy": DEFAULT_POLICY}).encode())
        self.assertEqual(served.message, one.message)

    def test_huge_request(self):
        code = "result = [len(input_data['s']), 7]\n#" + "x" * 10_000_000
        reply = self.run_code(code, input_data={"s": "y" * 1_000_000})
        self.assertOk(reply, [1_000_000, 7])
        self.assertOk(self.run_code("result = 8"), 8)

    def test_large_result(self):
        reply = self.run_code("result = 'r' * 3000000")
        self.assertOk(reply)
        self.assertEqual(len(reply.value), 3000000)

    def test_sigint_to_worker_is_harmless(self):
        reply = self.run_code("import os, signal\nos.kill(os.getppid(), signal.SIGINT)\nresult = 1", policy=OPEN_POLICY)
        self.assertOk(reply, 1)
        self.assertOk(self.run_code("result = 2"), 2)


class TmpWipeTest(ServeTestCase):
    def test_tmp_wiped_between_requests(self):
        tmp = tempfile.mkdtemp(prefix="spr-serve-tmp-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o1777)  # recorded at start, restored after each wipe
        worker = self.start(tmpdir=tmp)
        outside = tempfile.mkdtemp(prefix="spr-serve-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        sentinel = os.path.join(outside, "keep")
        with open(sentinel, "w") as f:
            f.write("keep")
        code = (
            "import os\n"
            "t = input_data['tmp']\n"
            "open(os.path.join(t, 'file'), 'w').write('data')\n"
            "os.makedirs(os.path.join(t, 'a/b/c'))\n"
            "open(os.path.join(t, 'a/b/c/deep'), 'w').write('x')\n"
            "os.symlink(input_data['outside'], os.path.join(t, 'link'))\n"
            "os.symlink(input_data['sentinel'], os.path.join(t, 'a/filelink'))\n"
            "os.mkfifo(os.path.join(t, 'fifo'))\n"
            "os.makedirs(os.path.join(t, 'ro/sub'))\n"
            "open(os.path.join(t, 'ro/sub/f'), 'w').close()\n"
            "os.chmod(os.path.join(t, 'ro/sub'), 0o500)\n"
            "os.chmod(os.path.join(t, 'ro'), 0)\n"
            # deeper than PATH_MAX: only descriptor-relative walking removes it
            "fd = os.open(t, os.O_RDONLY)\n"
            "for i in range(700):\n"
            "    os.mkdir('d' * 10, dir_fd=fd)\n"
            "    nfd = os.open('d' * 10, os.O_RDONLY, dir_fd=fd)\n"
            "    os.close(fd)\n"
            "    fd = nfd\n"
            "os.close(fd)\n"
            "os.chmod(t, 0o700)\n"
            "result = sorted(os.listdir(t))\n"
        )
        input_data = {"tmp": tmp, "outside": outside, "sentinel": sentinel}
        reply = worker.run(code, policy=OPEN_POLICY, input_data=input_data)
        self.assertOk(reply, ["a", "d" * 10, "fifo", "file", "link", "ro"])
        reply = worker.run("import os\nresult = os.listdir(input_data['tmp'])", policy=OPEN_POLICY, input_data=input_data)
        self.assertOk(reply, [])
        self.assertEqual(stat.S_IMODE(os.stat(tmp).st_mode), 0o1777)  # restored
        self.assertEqual(os.listdir(outside), ["keep"])
        with open(sentinel) as f:
            self.assertEqual(f.read(), "keep")

    def test_tmp_replaced_by_symlink(self):
        worker = self.start()
        outside = tempfile.mkdtemp(prefix="spr-serve-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        open(os.path.join(outside, "keep"), "w").close()
        code = "import os\nt = input_data['tmp']\nos.rmdir(t)\nos.symlink(input_data['outside'], t)\nresult = 1"
        self.assertOk(worker.run(code, policy=OPEN_POLICY, input_data={"tmp": worker.tmpdir, "outside": outside}), 1)
        reply = worker.run("import os\nresult = os.path.islink(input_data['tmp'])", policy=OPEN_POLICY, input_data={"tmp": worker.tmpdir})
        self.assertOk(reply, False)
        self.assertTrue(os.path.isdir(worker.tmpdir))
        self.assertEqual(os.listdir(outside), ["keep"])


class ProcessTest(ServeTestCase):
    BACKGROUND = (
        "import os, subprocess, time\n"
        "plain = subprocess.Popen(['sleep', '60'])\n"
        "session = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode())\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "daemon = int(os.read(r, 100))\n"
        "result = [plain.pid, session.pid, daemon]\n"
    )

    def test_background_processes_killed(self):
        worker = self.start()
        reply = worker.run(self.BACKGROUND, policy=OPEN_POLICY)
        self.assertOk(reply)
        for pid in reply.value:
            self.assertFalse(pid_alive(pid), pid)
        self.assertEqual(descendants(worker.proc.pid), [])
        self.assertOk(worker.run("result = 1"), 1)

    def test_timeout(self):
        worker = self.start()
        code = (
            "import os, sys\n"
            "sys.stdout.write('partial')\n"
            "os.write(2, b'err partial')\n"
            "import subprocess, time\n"
            "bg = subprocess.Popen(['sleep', '60'])\n"
            "while True:\n"
            "    time.sleep(0.01)\n"
        )
        t0 = time.monotonic()
        reply = worker.run(code, policy=OPEN_POLICY, limits={"timeout_ms": 600, "output_cap": 1000})
        elapsed = time.monotonic() - t0
        self.assertTrue(reply.done["timed_out"], reply)
        self.assertEqual(reply.status, signal.SIGKILL)
        self.assertIsNone(reply.message)
        self.assertEqual((reply.out, reply.err), (b"partial", b"err partial"))
        self.assertGreaterEqual(reply.done["duration_ms"], 600)
        self.assertLess(elapsed, 5)
        self.assertEqual(descendants(worker.proc.pid), [])
        self.assertOk(worker.run("result = 'next'"), "next")

    def test_timeout_with_closed_output_and_busy_loop(self):
        worker = self.start()
        code = "import os\nos.close(1)\nos.close(2)\nos.close(3)\nwhile True:\n    pass\n"
        reply = worker.run(code, policy=OPEN_POLICY, limits={"timeout_ms": 200})
        self.assertTrue(reply.done["timed_out"], reply)
        self.assertOk(worker.run("result = 1"), 1)

    def test_eof_exits_and_kills(self):
        worker = self.start()
        marker_dir = tempfile.mkdtemp(prefix="spr-serve-pids-")
        self.addCleanup(shutil.rmtree, marker_dir, True)
        code = (
            "import os, subprocess, time\n"
            "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
            "open(os.path.join(input_data['dir'], 'pids'), 'w').write('%d %d' % (os.getpid(), p.pid))\n"
            "time.sleep(0.5)\n"
            "result = 'done'\n"
        )
        worker.run("result = 0")
        worker.send_request({"code": code, "policy": OPEN_POLICY, "input_data": {"dir": marker_dir}})
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(marker_dir, "pids")) and time.monotonic() < deadline:
            time.sleep(0.01)
        # EOF while the request runs: the host (and its caller) went away,
        # so the run is killed now, not at its end or timeout.
        worker.proc.stdin.close()
        self.assertIsNone(worker.frame())
        self.assertEqual(worker.wait(), 0)
        with open(os.path.join(marker_dir, "pids")) as f:
            for pid in map(int, f.read().split()):
                self.assertFalse(pid_alive(pid), pid)

    def test_host_gone_kills_running_code(self):
        worker = self.start()
        marker_dir = tempfile.mkdtemp(prefix="spr-serve-pids-")
        self.addCleanup(shutil.rmtree, marker_dir, True)
        code = (
            "import os, subprocess, time\n"
            "p = subprocess.Popen(['sleep', '60'])\n"
            "open(os.path.join(input_data['dir'], 'pids'), 'w').write('%d %d' % (os.getpid(), p.pid))\n"
            "while True:\n"
            "    print('x' * 1000)\n"
            "    time.sleep(0.01)\n"
        )
        worker.send_request({"code": code, "policy": OPEN_POLICY, "input_data": {"dir": marker_dir}, "limits": {"timeout_ms": 20000}})
        self.assertEqual(worker.frame()[0], b"O")
        worker.proc.stdout.close()  # the next O frame fails with EPIPE
        self.assertEqual(worker.wait(), 0)
        with open(os.path.join(marker_dir, "pids")) as f:
            for pid in map(int, f.read().split()):
                self.assertFalse(pid_alive(pid), pid)


class ProtocolErrorTest(ServeTestCase):
    def check_exit(self, data, close=True):
        worker = self.start()
        worker.write(data)
        if close:
            worker.proc.stdin.close()
        self.assertIsNone(worker.frame())
        self.assertEqual(worker.wait(), 3, worker.stderr_text())
        self.assertIn("protocol error", worker.stderr_text())
        return worker

    def test_unknown_frame_type(self):
        self.check_exit(b"Z\0\0\0\0", close=False)

    def test_host_frame_type_from_worker_side(self):
        self.check_exit(b"R\0\0\0\2{}", close=False)

    def test_payload_too_large(self):
        self.check_exit(b"Q" + (FRAME_MAX + 1).to_bytes(4, "big"), close=False)

    def test_short_header(self):
        self.check_exit(b"Q\0\0")

    def test_short_payload(self):
        self.check_exit(b"Q\0\0\0\x20" + b'{"code": "result = 1"')

    def test_eof_between_frames_is_clean(self):
        worker = self.start()
        self.assertOk(worker.run("result = 1"), 1)
        worker.proc.stdin.close()
        self.assertIsNone(worker.frame())
        self.assertEqual(worker.wait(), 0)
        self.assertEqual(worker.stderr_text(), "")


class NotDumpableTest(ServeTestCase):
    @unittest.skipUnless(os.geteuid() == 0, "needs root (runs the worker as nobody)")
    def test_code_cannot_read_worker_proc(self):
        tmp = tempfile.mkdtemp(prefix="spr-serve-tmp-")
        os.chmod(tmp, 0o777)
        self.addCleanup(shutil.rmtree, tmp, True)

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

        try:  # pyenv interpreters under /root are not
            probe = subprocess.run(
                [PYTHON, "-I", "-S", "-c", "open(%r).close(); open(%r).close()" % (WORKER, SERVE)],
                preexec_fn=as_nobody,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).returncode
        except OSError:
            probe = None
        if probe != 0:
            self.skipTest("the interpreter or the worker is not accessible to nobody")
        worker = self.start(tmpdir=tmp, preexec_fn=as_nobody)
        code = (
            "import os\n"
            "def readable(path):\n"
            "    try:\n"
            "        open(path, 'rb').read(1)\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False\n"
            "result = [os.getuid(), readable('/proc/%d/environ' % os.getppid()),\n"
            "          readable('/proc/self/environ'), os.path.exists('/proc/%d/fd/0' % os.getppid()) and\n"
            "          readable('/proc/%d/fd/0' % os.getppid())]\n"
        )
        self.assertOk(worker.run(code, policy=OPEN_POLICY), [65534, False, True, False])


class WithoutCtypesTest(ServeTestCase):
    """No ctypes: no PR_SET_DUMPABLE (the hello says so), no subreaper (the
    request's session is killed instead)."""

    def test_without_ctypes(self):
        if SERVE.endswith(".pyc"):
            self.skipTest("runs the serve source")
        launcher = (
            "import sys\n"
            "sys.modules['ctypes'] = None\n"
            "path = %r\n"
            "code = compile(open(path).read(), path, 'exec')\n"
            "exec(code, {'__name__': '__main__', '__file__': path, '__builtins__': __builtins__})\n" % SERVE
        )
        worker = self.start(argv=[PYTHON, "-I", "-S", "-B", "-u", "-X", "utf8", "-c", launcher])
        self.assertIs(self.hello["dumpable"], True)
        self.assertIn("prctl unavailable", worker.stderr_text())
        code = (
            "import subprocess\n"
            "a = subprocess.Popen(['sleep', '60'])\n"
            "b = subprocess.Popen(['sh', '-c', 'sleep 60 & echo $!'], stdout=subprocess.PIPE)\n"
            "result = [a.pid, int(b.stdout.readline())]\n"
        )
        reply = worker.run(code, policy=OPEN_POLICY)
        self.assertOk(reply)
        for pid in reply.value:
            self.assertFalse(pid_alive(pid), pid)
        reply = worker.run("import subprocess\nsubprocess.Popen(['sleep', '60'])\nwhile True:\n    pass", policy=OPEN_POLICY, limits={"timeout_ms": 300})
        self.assertTrue(reply.done["timed_out"])
        self.assertEqual(descendants(worker.proc.pid), [])
        self.assertOk(worker.run("result = 1"), 1)


class CgroupOomTest(ServeTestCase):
    """A real OOM kill in a memory-limited cgroup made for the worker."""

    def make_cgroup(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        w = load_serve_module()
        events, _ = w.find_memory_files()
        if events is None:
            self.skipTest("no memory cgroup found")
        v2 = events.endswith("memory.events")
        parent = os.path.dirname(events)
        path = os.path.join(parent, "spr-serve-test-%d" % os.getpid())
        try:
            os.mkdir(path)
        except OSError as e:
            self.skipTest(f"cannot create a cgroup: {e}")
        self.addCleanup(self.remove_cgroup, path)
        limit = str(96 << 20)
        try:
            if v2:
                with open(os.path.join(path, "memory.max"), "w") as f:
                    f.write(limit)
                if os.path.exists(os.path.join(path, "memory.swap.max")):
                    with open(os.path.join(path, "memory.swap.max"), "w") as f:
                        f.write("0")
            else:
                with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
                    f.write(limit)
                memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw):
                    with open(memsw, "w") as f:
                        f.write(limit)
        except OSError as e:
            self.skipTest(f"cannot limit the cgroup's memory: {e}")
        return path

    @staticmethod
    def remove_cgroup(path):
        for _ in range(100):
            try:
                os.rmdir(path)
                return
            except OSError:
                time.sleep(0.05)

    def test_oom_kill_counted(self):
        path = self.make_cgroup()
        procs = os.path.join(path, "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        worker = self.start(preexec_fn=enter)
        reply = worker.run("result = 1")
        self.assertOk(reply, 1)
        self.assertEqual(reply.done["oom_kills"], 0)
        self.assertIsInstance(reply.done["memory_peak_kb"], int)
        code = "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n"
        reply = worker.run(code, limits={"timeout_ms": 20000})
        if reply.header is not None and reply.header["kind"] == "memory_error":
            self.skipTest("the allocation failed before the OOM killer ran")
        self.assertEqual(reply.status, signal.SIGKILL, reply)
        self.assertEqual(reply.done["oom_kills"], 1, reply)
        self.assertGreater(reply.done["memory_peak_kb"], 80 << 10)
        self.assertOk(worker.run("result = 2"), 2)  # the worker survived
        self.assertEqual(worker.run("result = 3").done["oom_kills"], 0)


class Pid1Test(ServeTestCase):
    """As pid 1 of a pid namespace (what a container gives the worker)."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            raise unittest.SkipTest("needs root and unshare")
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if probe.returncode != 0:
            raise unittest.SkipTest("unshare --pid does not work here")

    def start_pid1(self):
        if any(os.path.realpath(f).startswith("/tmp/") for f in (WORKER, SERVE)):
            self.skipTest("the worker file is under /tmp, which the private tmpfs hides")
        # A private tmpfs on /tmp in the new mount namespace: that /tmp is
        # what pid 1 wipes ($SPR_WORKER_TMP is ignored as pid 1).
        argv = [
            "unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
            "sh", "-ec", 'mount -t tmpfs -o size=16m spr-test /tmp && exec "$@"', "sh",
        ] + SERVE_ARGV
        return self.start(argv=argv)

    def test_pid1(self):
        worker = self.start_pid1()
        self.assertEqual(self.hello["pid"], 1)
        self.assertNotIn("dumpable", self.hello)
        code = (
            "import os, subprocess, signal, time\n"
            "open('/tmp/f', 'w').write('x')\n"
            "os.makedirs('/tmp/d/e')\n"
            "subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n"
            "for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1):\n"
            "    os.kill(1, sig)\n"
            "time.sleep(0.1)\n"
            "result = [os.getppid(), sorted(os.listdir('/tmp'))]\n"
        )
        self.assertOk(worker.run(code, policy=OPEN_POLICY), [1, ["d", "f"]])
        code = (
            "import os\n"
            "procs = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            "result = [procs, os.getpid(), os.listdir('/tmp')]\n"
        )
        reply = worker.run(code, policy=OPEN_POLICY)
        self.assertOk(reply)
        procs, me, tmp = reply.value
        self.assertEqual(procs, [1, me])
        self.assertEqual(tmp, [])
        reply = worker.run("while True:\n    pass", limits={"timeout_ms": 200})
        self.assertTrue(reply.done["timed_out"])
        worker.proc.stdin.close()
        self.assertIsNone(worker.frame())
        self.assertEqual(worker.wait(), 0)


class MemoryCgroupTest(unittest.TestCase):
    """find_memory_files() on made-up /proc/self/cgroup and mountinfo."""

    @classmethod
    def setUpClass(cls):
        cls.w = load_serve_module()

    def layout(self, cgroup, mountinfo, files):
        root = tempfile.mkdtemp(prefix="spr-serve-cg-")
        self.addCleanup(shutil.rmtree, root, True)
        for path, text in files.items():
            full = root + path
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        paths = {}
        for name, text in (("cgroup", cgroup), ("mountinfo", mountinfo.replace("@", root))):
            paths[name] = os.path.join(root, name)
            with open(paths[name], "w") as f:
                f.write(text)
        w = self.w
        saved = w._read_small_all

        def fake(path):
            return saved({"/proc/self/cgroup": paths["cgroup"], "/proc/self/mountinfo": paths["mountinfo"]}.get(path, path))

        w._read_small_all = fake
        try:
            events, peak = w.find_memory_files()
        finally:
            w._read_small_all = saved
        strip = lambda p: p and p[len(root) :]  # noqa: E731
        return strip(events), strip(peak)

    V2_MOUNT = "30 23 0:26 / @/sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"

    def test_v2_namespace_root(self):
        files = {"/sys/fs/cgroup/memory.events": "low 0\noom_kill 2\n", "/sys/fs/cgroup/memory.peak": "4096\n"}
        self.assertEqual(self.layout("0::/\n", self.V2_MOUNT, files), ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory.peak"))

    def test_v2_nested(self):
        files = {"/sys/fs/cgroup/a/b/memory.events": "oom_kill 0\n", "/sys/fs/cgroup/a/b/memory.peak": "1\n"}
        self.assertEqual(self.layout("0::/a/b\n", self.V2_MOUNT, files), ("/sys/fs/cgroup/a/b/memory.events", "/sys/fs/cgroup/a/b/memory.peak"))

    def test_v2_without_peak(self):
        files = {"/sys/fs/cgroup/memory.events": "oom_kill 0\n"}
        self.assertEqual(self.layout("0::/x\n", self.V2_MOUNT, files), ("/sys/fs/cgroup/memory.events", None))

    def test_v1_bind_mounted_container_cgroup(self):
        mountinfo = "40 31 0:32 /docker/abc @/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
        files = {"/sys/fs/cgroup/memory/memory.oom_control": "oom_kill 1\n", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes": "8192\n"}
        self.assertEqual(
            self.layout("4:memory:/docker/abc\n0::/\n", mountinfo, files),
            ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"),
        )

    def test_hybrid_prefers_v1_memory(self):
        mountinfo = self.V2_MOUNT.replace("@/sys/fs/cgroup", "@/sys/fs/cgroup/unified") + (
            "35 31 0:32 / @/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        )
        files = {"/sys/fs/cgroup/unified/cgroup.procs": "", "/sys/fs/cgroup/memory/x/memory.oom_control": "oom_kill 0\n"}
        self.assertEqual(self.layout("4:memory:/x\n0::/\n", mountinfo, files), ("/sys/fs/cgroup/memory/x/memory.oom_control", None))

    def test_nothing_readable(self):
        self.assertEqual(self.layout("0::/\n", self.V2_MOUNT, {}), (None, None))

    def test_limits_parsing(self):
        w = self.w
        self.assertEqual(w.serve_limits({}), (5000.0, 131072))
        self.assertEqual(w.serve_limits({"limits": {"timeout_ms": 1.5, "output_cap": 0}}), (1.5, 0))
        for bad in ({"timeout_ms": float("inf")}, {"timeout_ms": float("nan")}, {"timeout_ms": -1}, {"output_cap": 1.0}):
            with self.assertRaises(w.RequestError):
                w.serve_limits({"limits": bad})


class SplitTest(ServeTestCase):
    """Serve mode is spr_serve.py run in one namespace with spr_worker.py."""

    def test_names_disjoint(self):
        # The bootstrap and a run as a program exec the two files in the same
        # order, but no name may depend on it: the files share only modules.
        spaces = []
        for path in (SERVE_SOURCE, oneshot.WORKER_SOURCE):
            g = {"__name__": "spr_split_test"}
            with open(path, "rb") as f:
                exec(compile(f.read(), path, "exec"), g)
            spaces.append(g)
        serve, worker = spaces
        shared = {n for n in serve if n in worker and not n.startswith("__")}
        self.assertEqual(shared, {"posix", "sys"})
        for name in shared:
            self.assertIs(serve[name], worker[name])

    def test_precompiled_pair(self):
        # The runtime image's CMD: spr_serve.pyc loads the spr_worker.pyc
        # beside it, and the code's view stays the one-shot one.
        d = tempfile.mkdtemp(prefix="spr-serve-pyc-")
        self.addCleanup(shutil.rmtree, d, True)
        compile_both = (
            "import py_compile as p, sys\n"
            "for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):\n"
            "    p.compile(src, cfile=dst, doraise=True,"
            " invalidation_mode=p.PycInvalidationMode.UNCHECKED_HASH)\n"
        )
        argv = [PYTHON, "-I", "-c", compile_both]
        for name, source in (("spr_worker", oneshot.WORKER_SOURCE), ("spr_serve", SERVE_SOURCE)):
            argv += [source, os.path.join(d, name + ".pyc")]
        subprocess.run(argv, check=True)
        worker = self.start(argv=[PYTHON, "-I", "-S", "-B", "-u", "-X", "utf8", os.path.join(d, "spr_serve.pyc")])
        self.assertEqual(self.hello["worker"], 1)
        code = "import sys\nresult = sorted(sys.modules)"
        self.assertOk(worker.run(code), oneshot.run_worker(code).value)


if __name__ == "__main__":
    unittest.main()
