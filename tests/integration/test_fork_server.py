"""The LocalEngine's fork server (spr-sandbox --serve, DESIGN.md): one per
engine and process, started at the first run; every monitor is its fork.

Each case runs a small program against libspr.so through ctypes (as a
language binding would), in its own process: it uses threads and fork,
and it reads its own children from /proc.
"""
import os
import socket
import json
import struct
import subprocess
import tempfile
import unittest

from integration.common import (sanitized, BUILD, ENGINE, LIBSPR_PRELUDE, SPR_RUN, SprTestCase,
                                libspr_program)

PRELUDE = LIBSPR_PRELUDE + r'''
def run(code):
    req = json.dumps({"code": code}).encode()
    out = P()
    assert lib.spr_run_json(engine, req, len(req), ctypes.byref(out), ctypes.byref(P())) == 0
    text = ctypes.string_at(out).decode()
    lib.spr_free(out)
    return json.loads(text)

def outcome(r):
    return [r["ok"], r["result"], r["error"]]

def servers():
    """This process's spr-sandbox --serve children (live ones)."""
    kids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except OSError:
            pass  # a thread that just ended
    found = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv[0].endswith(b"spr-sandbox") and argv[1:2] == [b"--serve"] and state != "Z":
            found.append(pid)
    return sorted(found)
'''


def program(body):
    """Runs PRELUDE + body in a fresh interpreter; returns what it printed (JSON)."""
    return libspr_program(PRELUDE, body)


@unittest.skipIf(ENGINE != "local", "the fork server is the LocalEngine's")
class ForkServer(SprTestCase):
    def test_one_server_serves_every_run(self):
        out = program('''
            before = servers()
            results = [outcome(run(f"result = {i} * 2")) for i in range(5)]
            during = servers()
            lib.spr_engine_free(engine)
            print(json.dumps({"before": before, "results": results,
                              "servers": len(during), "after": servers()}))
        ''')
        self.assertEqual(out["before"], [], "a server before the first run")
        self.assertEqual(out["results"], [[True, i * 2, None] for i in range(5)])
        self.assertEqual(out["servers"], 1)
        self.assertEqual(out["after"], [], "spr_engine_free left the server running")

    def test_a_one_shot_engine_starts_its_server_at_creation(self):
        # SPR_LOCAL_NO_POOL (spr-run): the server starts with the engine, so
        # that its start overlaps the engine's own work; freed without a run,
        # the engine still leaves no server behind, and a run uses that one.
        out = program('''
            lib.spr_engine_free(engine)
            def one_shot():
                opts = LocalOptions(cgroup_parent=parent.encode() if parent else None,
                                    pool_size=-1)
                e = P()
                assert lib.spr_local_engine_new(ctypes.byref(opts), ctypes.byref(e),
                                                ctypes.byref(P())) == 0
                return e
            def started():
                for _ in range(200):  # /proc may not show it while its exec completes
                    found = servers()
                    if found:
                        return found
                    time.sleep(0.01)
                return []
            unused = one_shot()
            at_creation = started()
            lib.spr_engine_free(unused)
            after_unused = servers()
            engine = one_shot()
            before = started()
            result = outcome(run("result = 6 * 7"))
            during = servers()
            lib.spr_engine_free(engine)
            print(json.dumps({"at_creation": len(at_creation), "after_unused": after_unused,
                              "same": before == during and len(before) == 1,
                              "result": result, "after": servers()}))
        ''')
        self.assertEqual(out["at_creation"], 1, "no server at the one-shot engine's creation")
        self.assertEqual(out["after_unused"], [], "an unused one-shot engine left its server")
        self.assertTrue(out["same"], "the run did not use the server started with the engine")
        self.assertEqual(out["result"], [True, 42, None])
        self.assertEqual(out["after"], [], "spr_engine_free left the server running")

    def test_runs_outlive_the_thread_that_started_the_server(self):
        # PDEATHSIG fires when the *thread* that spawned a process ends: a
        # server tied to it would take every run in flight along.
        out = program('''
            slow = {}
            def first():
                run("result = 1")               # starts the server from this thread
                t = threading.Thread(target=lambda: slow.update(r=run(
                    "import time\\ntime.sleep(1.5)\\nresult = 'slept'")))
                t.start()
                time.sleep(0.5)                 # the slow run is under way...
                slow["t"] = t                   # ...when this thread ends
            starter = threading.Thread(target=first)
            starter.start()
            starter.join()
            server = servers()
            slow["t"].join()
            print(json.dumps({"slow": outcome(slow["r"]), "after": outcome(run("result = 3")),
                              "server_kept": servers() == server and len(server) == 1}))
        ''')
        self.assertEqual(out["slow"], [True, "slept", None])
        self.assertEqual(out["after"], [True, 3, None])
        self.assertTrue(out["server_kept"])

    def test_a_killed_server_is_replaced(self):
        out = program('''
            first = outcome(run("result = 1"))
            old = servers()
            os.kill(old[0], signal.SIGKILL)
            while old[0] in servers():
                time.sleep(0.01)
            second = outcome(run("result = 2"))
            new = servers()
            print(json.dumps({"first": first, "second": second, "old": old, "new": new}))
        ''')
        self.assertEqual(out["first"], [True, 1, None])
        self.assertEqual(out["second"], [True, 2, None])
        self.assertEqual(len(out["new"]), 1)
        self.assertNotEqual(out["new"], out["old"])

    def test_a_forked_caller_gets_its_own_server(self):
        # The child inherits the engine and the parent's server socket; it
        # must neither use that server (replies would cross) nor say
        # goodbye to it when it frees its copy of the engine.
        out = program('''
            parent_first = outcome(run("result = 'parent'"))
            server = servers()
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                child = outcome(run("result = 'child'"))
                mine = servers()
                lib.spr_engine_free(engine)
                os.write(w, json.dumps({"child": child, "own_server": len(mine) == 1
                                        and mine != server}).encode())
                os._exit(0)
            os.close(w)
            with os.fdopen(r) as f:
                child = json.loads(f.read())
            os.waitpid(pid, 0)
            parent_again = outcome(run("result = 'parent again'"))
            print(json.dumps(dict(child, parent=[parent_first, parent_again],
                                  server_kept=servers() == server)))
        ''')
        self.assertEqual(out["child"], [True, "child", None])
        self.assertTrue(out["own_server"], "the forked child used its parent's server")
        self.assertEqual(out["parent"], [[True, "parent", None], [True, "parent again", None]])
        self.assertTrue(out["server_kept"], "the child's spr_engine_free ended the parent's server")

    def test_the_server_is_out_of_the_terminals_reach(self):
        # ^Z stops the foreground process group; a stopped server could not
        # see its caller die, and the runs would outlive it.
        out = program('''
            run("result = 1")
            with open(f"/proc/{servers()[0]}/stat") as f:
                server_pgrp = int(f.read().rsplit(")", 1)[1].split()[2])
            print(json.dumps({"caller": os.getpgrp(), "server": server_pgrp}))
        ''')
        self.assertNotEqual(out["server"], out["caller"])


SANDBOX = os.path.join(BUILD, "libexec", "spr", "spr-sandbox")

# The messages of src/protocol/message.h, as docs/WORKER_PROTOCOL.md
# "Messages" writes them: a 4-byte length (host order), the type byte,
# then the type's fields. An independent reading of the document: the
# helper must answer what the document says.
MSG = {"RUN": 1, "BYE": 2, "MONITOR": 3, "KILL": 4, "SETUP": 5, "STARTED": 6, "EXIT": 7,
       "ERROR": 8, "FATAL": 9}
LAYER_SANDBOX = 4


def message(kind):
    body = bytes([MSG[kind]])
    return struct.pack("=I", len(body)) + body


def read_error(sock):
    """(type name, layer, errno, text) of an ERROR or FATAL packet."""
    data = sock.recv(4096)
    (length,) = struct.unpack_from("=I", data)
    assert length == len(data) - 4, data
    kind = {v: k for k, v in MSG.items()}[data[4]]
    layer, errnum, text_len = struct.unpack_from("=BiI", data, 5)
    text = data[14:14 + text_len].decode()
    assert 14 + text_len == len(data), data
    return kind, layer, errnum, text


@unittest.skipIf(ENGINE != "local", "the fork server is the LocalEngine's")
class ServerProtocol(SprTestCase):
    """spr-sandbox --serve spoken to directly, as the engine does (sandbox.h)."""

    def serve(self, *args):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen([SANDBOX, *args], stdin=theirs, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        theirs.close()
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                                 proc.stderr.close(), ours.close()))
        ours.settimeout(10)
        return ours, proc

    def test_bad_usage_is_reported_on_the_socket(self):
        sock, proc = self.serve("--serve", "0")
        self.assertEqual(read_error(sock),
                         ("FATAL", LAYER_SANDBOX, 22, "spr-sandbox --serve: usage: spr-sandbox "
                          "--serve CALLER_PID: Invalid argument"))
        self.assertEqual(proc.wait(timeout=10), 125)

    def test_a_caller_that_is_not_the_parent_is_refused(self):
        sock, proc = self.serve("--serve", str(os.getppid()))
        kind, _, errnum, text = read_error(sock)
        self.assertEqual((kind, errnum), ("FATAL", 3))
        self.assertRegex(text, r"^spr-sandbox --serve: watching the calling process")
        self.assertEqual(proc.wait(timeout=10), 125)

    def test_a_request_without_descriptors_is_refused_and_serving_goes_on(self):
        sock, proc = self.serve("--serve", str(os.getpid()))
        refused = ("ERROR", LAYER_SANDBOX, 22, "spr-sandbox --serve: not a run request")
        sock.send(message("RUN"))  # without its five descriptors
        self.assertEqual(read_error(sock), refused)
        sock.send(b"hello")  # not a message at all
        self.assertEqual(read_error(sock), refused)
        sock.send(message("KILL"))  # a message, not one for the server
        self.assertEqual(read_error(sock), refused)
        sock.send(message("BYE"))
        self.assertEqual(proc.wait(timeout=10), 0)

    def test_the_server_ends_with_its_caller(self):
        # The caller is a short-lived shell; its server must exit when it does.
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        script = (f'"{SANDBOX}" --serve $$ 0<&{fd} {fd}<&- & echo $!; '
                  f'exec sleep 30 {fd}<&-')
        shell = subprocess.Popen(["/bin/bash", "-c", script], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, text=True, pass_fds=[fd])
        theirs.close()
        self.addCleanup(ours.close)
        self.addCleanup(lambda: (shell.poll() is None and shell.kill(), shell.wait(),
                                 shell.stdout.close()))
        shell.stdout.readline()  # the server started
        ours.settimeout(10)
        ours.send(b"hello")  # serving: it answers
        self.assertEqual(read_error(ours)[3], "spr-sandbox --serve: not a run request")
        shell.kill()
        shell.wait()
        # the server holds the only other end until it exits
        self.assertEqual(ours.recv(512), b"")

@unittest.skipIf(ENGINE != "local", "spr-sandbox is the LocalEngine's")
class Descriptors(SprTestCase):
    """Close helpers reset the descriptor (crun's close_and_reset): nothing
    in a run closes a number twice, which could close a descriptor another
    open reused meanwhile. Seen with strace, as the kernel sees it."""

    @unittest.skipIf(sanitized(), "LeakSanitizer refuses to run under ptrace (strace)")
    def test_no_close_of_a_closed_descriptor(self):
        with tempfile.TemporaryDirectory() as d:
            trace = os.path.join(d, "trace")
            code = os.path.join(d, "one.py")
            with open(code, "w") as f:
                f.write("import sys\nprint('x', file=sys.stderr)\nresult = 1\n")
            proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=close,close_range",
                                   "-o", trace, SPR_RUN, "--json", code],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertTrue(json.loads(proc.stdout)["ok"], proc.stdout)
            with open(trace) as f:
                lines = f.read().splitlines()
        closes = [l for l in lines if " close(" in l or " close_range(" in l]
        self.assertGreater(len(closes), 20)  # the trace saw the sandbox's processes
        self.assertEqual([l for l in closes if "EBADF" in l], [])


if __name__ == "__main__":
    unittest.main()
