"""The network: listeners the test opens on the host (loopback, an address of
a host interface, an abstract unix socket) and addresses outside. The run
has a network namespace of its own with only `lo` up; policy
`network = true` shares the host's (the switch is tested too)."""
import ipaddress
import json
import os
import select
import socket
import subprocess
import tempfile

from hostile.harness import DEGRADED, IN_CONTAINER, HostileCase, refused, script, token
from integration.common import BUILD, PERMISSIVE, SPR_RUN, write_policy

CONNECT = r'''
import errno, socket

def connect(family, kind, addr):
    try:
        s = socket.socket(family, kind)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    s.settimeout(5)
    try:
        s.connect(addr)
        if kind == socket.SOCK_STREAM and family != socket.AF_UNIX:
            s.sendall(b"spr-hostile\n")
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()

families = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX}
kinds = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
result = {}
for name, fam, kind, addr in input_data["targets"]:
    if fam == "unix" and addr.startswith("@"):
        addr = "\0" + addr[1:]
    result[name] = connect(families[fam], kinds[kind], addr if fam == "unix" else tuple(addr))
'''


def host_interface_addresses():
    """IPv4 addresses of the host's own non-loopback interfaces."""
    found = []
    try:
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for prev, line in zip(lines, lines[1:]):
        if line.strip() == "/32 host LOCAL":
            addr = prev.strip().split()[-1]
            if not ipaddress.ip_address(addr).is_loopback and addr not in found:
                found.append(addr)
    return found


class Listener:
    def __init__(self, family, addr):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(addr)
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()

    def accepted(self):
        """How many connections wait in the accept queue (then drains it)."""
        n = 0
        while select.select([self.sock], [], [], 0.2)[0]:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                break
            conn.close()
            n += 1
        return n

    def close(self):
        self.sock.close()


class HostListeners(HostileCase):
    def listener(self, family, addr):
        lst = Listener(family, addr)
        self.addCleanup(lst.close)
        return lst

    def test_loopback_listener_on_the_host(self):
        targets, listeners = [], {}
        lst = self.listener(socket.AF_INET, ("127.0.0.1", 0))
        listeners["lo"] = lst
        targets.append(["lo", "inet", "tcp", list(lst.addr)])
        if socket.has_ipv6:
            try:
                lst6 = self.listener(socket.AF_INET6, ("::1", 0))
                listeners["lo6"] = lst6
                targets.append(["lo6", "inet6", "tcp", list(lst6.addr[:2])])
            except OSError:
                pass  # no IPv6 on the host loopback: the IPv4 case stands
        inp = {"targets": targets}

        ctl = self.control(CONNECT, inp)
        self.assertEqual(ctl, {name: "OK" for name in listeners})
        for name, lst in listeners.items():
            self.assertEqual(lst.accepted(), 1, name)

        # the sandbox's own loopback has nothing listening on those ports
        inside = self.sandboxed(CONNECT, inp)
        self.assertEqual(inside, {name: refused("ECONNREFUSED") for name in listeners})
        for name, lst in listeners.items():
            self.assertEqual(lst.accepted(), 0, f"{name}: the sandbox reached the host")

        # the switch: with network = true the same connect reaches the host
        # (in a container: the container's own network, never the host's)
        shared = self.sandboxed(CONNECT, inp, network=True)
        reached = 0 if IN_CONTAINER else 1
        self.assertEqual(shared, {name: refused("ECONNREFUSED") if IN_CONTAINER else "OK"
                                  for name in listeners})
        for name, lst in listeners.items():
            self.assertEqual(lst.accepted(), reached, name)

    def test_abstract_and_path_unix_sockets_on_the_host(self):
        name = token("spr-hostile-abstract")
        lst = self.listener(socket.AF_UNIX, "\0" + name)
        path_lst = self.listener(socket.AF_UNIX, f"/tmp/{name}.sock")
        self.addCleanup(_unlink_quiet, f"/tmp/{name}.sock")
        inp = {"targets": [["abstract", "unix", "tcp", "@" + name],
                           ["path", "unix", "tcp", f"/tmp/{name}.sock"]]}

        ctl = self.control(CONNECT, inp)
        self.assertEqual(ctl, {"abstract": "OK", "path": "OK"})
        self.assertEqual(lst.accepted(), 1)
        self.assertEqual(path_lst.accepted(), 1)

        inside = self.sandboxed(CONNECT, inp)
        # abstract names belong to the network namespace; /tmp is the run's own
        self.assertEqual(inside, {"abstract": refused("ECONNREFUSED"), "path": refused("ENOENT")})
        # With the host network, the host's abstract names are in reach:
        # Landlock's abstract-socket scope (ABI >= 6) refuses the connect;
        # on older kernels the seccomp variant refuses AF_UNIX sockets.
        run = self.sandboxed_run(CONNECT, inp, network=True)
        self.assertTrue(run["ok"], run)
        if IN_CONTAINER:
            # the container's network namespace: the host's names are not there
            self.assertEqual(run["result"]["abstract"], "ECONNREFUSED", run)
        elif DEGRADED:
            # No mount namespace: the host's pathname sockets are in reach,
            # so unix sockets are refused outright.
            self.assertEqual(run["isolation"]["seccomp"], "spr-deny-v4-no-unix-socket", run)
            self.assertEqual(run["result"], {"abstract": "EPERM", "path": "EPERM"})
        elif run["isolation"]["landlock_abi"] >= 6:
            self.assertEqual(run["isolation"]["seccomp"], "spr-deny-v4", run)
            self.assertEqual(run["result"], {"abstract": "EPERM", "path": "ENOENT"})
        else:
            self.assertEqual(run["isolation"]["seccomp"], "spr-deny-v4-no-unix-socket", run)
            self.assertEqual(run["result"], {"abstract": "EPERM", "path": "EPERM"})
        self.assertEqual(lst.accepted(), 0)
        self.assertEqual(path_lst.accepted(), 0)

    def test_abstract_datagram_from_a_socketpair(self):
        """A datagram socketpair end can sendto() any abstract name."""
        name = token("spr-hostile-dgram")
        host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(host.close)
        host.bind("\0" + name)
        host.settimeout(0.5)
        code = ("import errno, socket\n"
                "a, b = socket.socketpair()\n"  # stream pairs (multiprocessing) stay usable
                "a.sendall(b'x'); assert b.recv(1) == b'x'\n"
                "try:\n"
                "    d, _ = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                "    d.sendto(b'spr-hostile', '\\0' + input_data)\n"
                "    result = 'SENT'\n"
                "except OSError as e:\n"
                "    result = errno.errorcode.get(e.errno, str(e))\n")

        def received():
            try:
                return host.recv(64)
            except (socket.timeout, BlockingIOError):
                return None

        self.assertEqual(self.control(code, name), "SENT")
        self.assertEqual(received(), b"spr-hostile")
        # own network namespace: the name does not exist there
        self.assertEqual(self.sandboxed(code, name), refused("ECONNREFUSED"))
        run = self.sandboxed_run(code, name, network=True)
        self.assertTrue(run["ok"], run)
        if IN_CONTAINER:  # the container's network namespace
            self.assertEqual(run["result"], "ECONNREFUSED")
        elif run["isolation"]["landlock_abi"] >= 6:
            self.assertEqual(run["result"], "EPERM")  # Landlock's scope
        else:
            self.assertEqual(run["result"], "EPERM")  # the datagram pair itself
            self.assertEqual(run["isolation"]["seccomp"], "spr-deny-v4-no-unix-socket")
        self.assertIsNone(received(), "the sandbox reached the host's abstract socket")

    def test_host_interface_address(self):
        addrs = host_interface_addresses()
        if not addrs:
            self.skipTest("the host has no non-loopback IPv4 address to listen on "
                          "(test_outside_address covers the sandboxed half)")
        lst = self.listener(socket.AF_INET, (addrs[0], 0))
        inp = {"targets": [["host if", "inet", "tcp", list(lst.addr)]]}

        ctl = self.control(CONNECT, inp)
        self.assertEqual(ctl, {"host if": "OK"})
        self.assertEqual(lst.accepted(), 1)

        inside = self.sandboxed(CONNECT, inp)
        self.assertEqual(inside, {"host if": refused("ENETUNREACH")})  # only lo: no route
        self.assertEqual(lst.accepted(), 0)


class Outside(HostileCase):
    def test_outside_address(self):
        targets = [["tcp 1.1.1.1:53", "inet", "tcp", ["1.1.1.1", 53]],
                   # connecting a UDP socket sends nothing: it needs a route only
                   ["udp 1.1.1.1:53", "inet", "udp", ["1.1.1.1", 53]],
                   ["udp 192.0.2.1:9", "inet", "udp", ["192.0.2.1", 9]]]
        inp = {"targets": targets}
        inside = self.sandboxed(CONNECT, inp)
        self.assertEqual(inside, {t[0]: refused("ENETUNREACH") for t in targets})

        ctl = self.control(CONNECT, {"targets": targets[1:]})
        if ctl["udp 1.1.1.1:53"] == "ENETUNREACH":
            self.skipTest("the host itself has no route outside, so the control cannot "
                          "show one (the sandboxed half above passed)")
        self.assertEqual(ctl, {"udp 1.1.1.1:53": "OK", "udp 192.0.2.1:9": "OK"})

        if IN_CONTAINER:
            # with network a run has its container's network, which is the
            # runtime's to route (the test dockerd has no bridge at all)
            return
        shared = self.sandboxed(CONNECT, {"targets": targets[1:]}, network=True)
        self.assertEqual(shared, ctl)


def _unlink_quiet(path):
    import os
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass



UNIX_ATTEMPTS = r'''
import errno, socket

def err(e):
    return errno.errorcode.get(e.errno, str(e))

target = "\0" + input_data
result = {}
attempts = {
    "socket dgram": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM),
    "socket stream": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
    "socketpair dgram": lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0],
    # AF_UNIX makes SOCK_RAW a datagram socket: it can sendto() any name
    "socketpair raw": lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_RAW)[0],
    "socketpair raw|cloexec": lambda: socket.socketpair(
        socket.AF_UNIX, socket.SOCK_RAW | socket.SOCK_CLOEXEC)[0],
}
for name, make in attempts.items():
    try:
        s = make()
    except OSError as e:
        result[name] = err(e)
        continue
    try:
        if s.type == socket.SOCK_STREAM:
            s.connect(target)
        else:
            s.sendto(b"spr-hostile " + name.encode(), target)
        result[name] = "SENT"
    except OSError as e:
        result[name] = err(e)
# stream pairs (multiprocessing) still work
a, b = socket.socketpair()
a.sendall(b"x")
result["stream pair works"] = b.recv(1) == b"x"
'''


class WithoutLandlock(HostileCase):
    """A kernel without Landlock's abstract-socket scope (ABI < 6), made
    with tests/tools/no-landlock: with the host network, unix sockets are
    refused by the seccomp variant instead."""

    def test_host_abstract_sockets_unreachable(self):
        name = token("spr-hostile-nolandlock")
        host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(host.close)
        host.bind("\0" + name)
        host.setblocking(False)

        def received():
            got = []
            while True:
                try:
                    got.append(host.recv(128))
                except BlockingIOError:
                    return got

        # the attack works without the sandbox
        ctl = self.control(UNIX_ATTEMPTS, name)
        self.assertEqual(ctl["socketpair raw"], "SENT", ctl)
        self.assertEqual(ctl["socket dgram"], "SENT", ctl)
        self.assertEqual(len(received()), 4, "the control reached the host's socket 4 times")

        no_landlock = os.path.join(BUILD, "tests", "tools", "no-landlock")
        with tempfile.TemporaryDirectory(prefix="spr-hostile-") as tmp:
            policy = write_policy(dict(PERMISSIVE, network=True), tmp)
            code = os.path.join(tmp, "code.py")
            with open(code, "w") as f:
                f.write(script(UNIX_ATTEMPTS))
            proc = subprocess.run([no_landlock, SPR_RUN, "--json", "--policy", policy,
                                   "--input", json.dumps(name), code],
                                  capture_output=True, text=True, timeout=120)
        run = json.loads(proc.stdout)
        self.assertTrue(run["ok"], run)
        iso = run["isolation"]
        self.assertEqual((iso["network"], iso["landlock"], iso["seccomp"]),
                         ("host", False, "spr-deny-v4-no-unix-socket"), iso)
        res = run["result"]
        for attempt in ("socket dgram", "socket stream", "socketpair dgram",
                        "socketpair raw", "socketpair raw|cloexec"):
            self.assertEqual(res[attempt], "EPERM", (attempt, res))
        self.assertTrue(res["stream pair works"], res)
        self.assertEqual(received(), [], "the sandbox reached the host's abstract socket")
