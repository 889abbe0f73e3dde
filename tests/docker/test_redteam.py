"""Red-team attacks on the DockerEngine's container agent (found against
6e35105, all failing there): what a hostile run could do to the runs that
come after it in the same pooled container. What closed them: a container
of a policy with `network` serves one run (its network namespace is the
container's), and the agent frees a request's memory before it measures
the container (SPEC §7 "DockerEngine").

Same method as test_crossrun.py: ONE long-lived DockerEngine (tests/tools/
batch, one thread), run A attacks, run B does normal work or holds a
secret, run C looks. Each test checks that the attack was really mounted
(run A's own report), then asserts what must hold for the runs after it.

Findings covered here (see each class):
- With `network = true` every run of a container shares the container's
  network namespace, and TCP state outlives the run that made it (TIME_WAIT
  lasts 60 s; the agent's check_clean never looks at sockets):
  1. run A squats listening ports: run B cannot bind them, not even with
     SO_REUSEADDR (http.server's default);
  2. run A squats the whole ephemeral range: run B cannot make any
     outgoing TCP connection (EADDRNOTAVAIL) nor bind a second port 0;
  3. run C reads run B's connections (its ports, its peers) in
     /proc/net/tcp and B's traffic volume in /proc/net/dev.
  A control shows the same attacks fail without `network` (each run has a
  network namespace of its own).
- 4. A run with a large request always retires its container: the agent
  keeps the request's frame buffer (its own anonymous memory, charged to
  the container) and check_clean then finds the container's charged memory
  above its baseline plus slack, says FATAL and exits. Any caller can burn a
  container per run (a container start each), and the agent keeps run A's
  input in its memory until the next request."""
import unittest

from docker.test_crossrun import (DEFAULT_POOL, POOL_SIZE_1, CrossRunCase, code, policy,
                                  secret_hex)
from docker.test_docker import READY, WHY


def net_policy(**extra):
    return policy(network=True, **extra)


# ---- 1. listening ports squatted for the next run ------------------------------

# Run A: for each port, listens on it (no SO_REUSEADDR), connects to itself,
# closes the accepted (server) side first: that side waits in TIME_WAIT for
# 60 s, bound to the port, with the listener's reuse flag (off). Reports the
# ports it sees in TIME_WAIT (state 06) in /proc/net/tcp when it ends.
SQUAT_PORTS = code("""
    import socket
    for port in input_data["ports"]:
        srv = socket.socket()
        srv.bind(("0.0.0.0", port))
        srv.listen(4)
        cli = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        conn.close()
        cli.close()
        srv.close()
    waiting = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "06":
            waiting.add(int(fields[1].split(":")[1], 16))
    result = sorted(waiting & set(input_data["ports"]))
""")

# Run B: a normal run that serves on fixed ports: a plain socket with
# SO_REUSEADDR, and http.server (which sets it too).
SERVE_ON_PORTS = code("""
    import errno, http.server, socket
    got = {}
    for port in input_data["ports"]:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            s.listen(1)
            got[str(port)] = "ok"
        except OSError as e:
            got[str(port)] = errno.errorcode.get(e.errno, str(e))
        s.close()
    try:
        h = http.server.HTTPServer(("", input_data["ports"][0]), http.server.BaseHTTPRequestHandler)
        h.server_close()
        got["http.server"] = "ok"
    except OSError as e:
        got["http.server"] = errno.errorcode.get(e.errno, str(e))
    print("B-OUT")
    result = got
""")


@unittest.skipUnless(READY, WHY)
class RedTeam1PortSquat(CrossRunCase):
    """With `network`, run A leaves its listening ports in TIME_WAIT (the
    container's network namespace is every run's): for 60 s run B cannot
    listen on them, even with SO_REUSEADDR, because A's sockets did not set
    it. Nothing of A runs any more; check_clean (agent.c) does not look at
    sockets, so the container serves B.

    Must hold: B binds every port and starts http.server (a run never fails
    because of an earlier run). Failed at 6e35105 with network = true (EADDRINUSE);
    the control without `network` passes."""

    PORTS = [8000, 8765, 5000]

    def attack(self, pool_args, pol):
        ports = {"ports": self.PORTS}
        a, b = self.sequence([
            {"code": SQUAT_PORTS, "input_data": ports, "policy": pol},
            {"code": SERVE_ON_PORTS, "input_data": ports, "policy": pol},
        ], pool_args)
        # The attack was mounted: A saw its ports waiting.
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["result"], sorted(self.PORTS), a)
        expected = {str(p): "ok" for p in self.PORTS}
        expected["http.server"] = "ok"
        self.assertRunIs(b, expected, "B-OUT\n", "run B (right after A)")

    def test_network_default_pool(self):
        self.attack(DEFAULT_POOL, net_policy())

    def test_network_pool_size_1(self):
        self.attack(POOL_SIZE_1, net_policy())

    def test_control_without_network(self):
        # A run's own network namespace: A's TIME_WAITs go with it.
        self.attack(POOL_SIZE_1, policy())


# ---- 2. the whole ephemeral range squatted ------------------------------------

# Run A: the same squat on every port of ip_local_port_range (28k ports in
# about 5 s); reports how many it squatted.
SQUAT_EPHEMERAL = code("""
    import socket, time
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    left, t0 = list(range(lo, hi + 1)), time.monotonic()
    for _ in range(3):  # a port busy as a client's end at the time: again
        missed = []
        for port in left:
            if time.monotonic() - t0 > 40:
                break
            try:
                srv = socket.socket()
                srv.bind(("0.0.0.0", port))
                srv.listen(1)
                cli = socket.create_connection(("127.0.0.1", port))
                conn, _ = srv.accept()
                conn.close()
                cli.close()
                srv.close()
            except OSError:
                missed.append(port)
        left = missed
    result = {"ports": hi - lo + 1, "squatted": hi - lo + 1 - len(left)}
""")

# Run B: a local server on a port the kernel picks (what a test server,
# asyncio's start_server(port=0), multiprocessing's listeners... do) and a
# client connection to it (an outgoing connection needs an ephemeral port
# too, whatever its peer).
ANY_PORT = code("""
    import errno, socket
    def name(e):
        return errno.errorcode.get(e.errno, str(e))
    got = {}
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        got["server"] = "ok"
        try:
            cli = socket.create_connection(srv.getsockname(), timeout=5)
            got["client"] = "ok"
        except OSError as e:
            got["client"] = name(e)
    except OSError as e:
        got["server"] = name(e)
    print("B-OUT")
    result = got
""")


@unittest.skipUnless(READY, WHY)
class RedTeam2EphemeralPortsExhausted(CrossRunCase):
    """With `network`, run A squats every port of the ephemeral range in
    TIME_WAIT (about 5 s of work, lasting 60 s; all but the last, whose
    client end has no port left). Run B then gets that last port for a
    server, and no port for any outgoing connection (EADDRNOTAVAIL): for
    60 s no run of the container can connect anywhere over TCP, nor listen
    on a second kernel-chosen port. (The test daemon has no route out, so
    B connects over loopback; a remote peer needs an ephemeral port the
    same way.)

    Must hold: B's server and client both work. Failed at 6e35105 with
    network = true."""

    def attack(self, pool_args, pol):
        a, b = self.sequence([
            {"code": SQUAT_EPHEMERAL, "policy": {**pol, "timeout_seconds": 60}},
            {"code": ANY_PORT, "policy": {**pol, "timeout_seconds": 60}},
        ], pool_args)
        self.assertTrue(a["ok"], a)
        self.assertGreaterEqual(a["result"]["squatted"], a["result"]["ports"] - 1, a)
        self.assertRunIs(b, {"server": "ok", "client": "ok"}, "B-OUT\n", "run B (right after A)")

    def test_network_pool_size_1(self):
        self.attack(POOL_SIZE_1, net_policy())

    def test_control_without_network(self):
        self.attack(POOL_SIZE_1, policy())


# ---- 3. run B's connections seen by run C --------------------------------------

# Run B: talks to itself over loopback on a port that is its secret, 100000
# bytes, and closes the client side first (as an HTTP client does): its end
# waits in TIME_WAIT, naming the secret port as its peer.
SECRET_CONNECTION = code("""
    import socket
    port = input_data["port"]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.sendall(b"s" * 100000)
    got = 0
    while got < 100000:
        got += len(cli.recv(65536))
    cli.close()
    conn.close()
    srv.close()
    print("B-OUT")
    result = got
""")

# Run C: every port in /proc/net/tcp (local and peer) and the bytes lo has
# received (/proc/net/dev).
LOOK_AT_NETWORK = code("""
    ports = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        for end in line.split()[1:3]:
            ports.add(int(end.split(":")[1], 16))
    lo = [l.split() for l in open("/proc/net/dev").read().splitlines()
          if l.strip().startswith("lo:")]
    result = {"ports": sorted(ports), "lo_rx_bytes": int(lo[0][1]) if lo else None}
""")


@unittest.skipUnless(READY, WHY)
class RedTeam3ConnectionsSeenByNextRun(CrossRunCase):
    """With `network`, run C reads in /proc/net/tcp the connections run B
    made (B's end waits in TIME_WAIT for 60 s, with B's local and peer
    address and port) and in /proc/net/dev how many bytes B moved: the
    container's network namespace, and its counters, are every run's.

    Must hold: C's view holds nothing of B's (not B's secret port, not its
    traffic). Failed at 6e35105 with network = true; the control passes."""

    def attack(self, pool_args, pol):
        port = 20000 + int(secret_hex()[:4], 16) % 10000
        b, c = self.sequence([
            {"code": SECRET_CONNECTION, "input_data": {"port": port}, "policy": pol},
            {"code": LOOK_AT_NETWORK, "policy": pol},
        ], pool_args)
        self.assertRunIs(b, 100000, "B-OUT\n", "run B")
        self.assertTrue(c["ok"], c)
        outcome = {"B's port seen by C": port in c["result"]["ports"],
                   "B's traffic seen by C": (c["result"]["lo_rx_bytes"] or 0) >= 100000}
        self.assertEqual(outcome, dict.fromkeys(outcome, False), f"run C: {c['result']}")

    def test_network_default_pool(self):
        self.attack(DEFAULT_POOL, net_policy())

    def test_network_pool_size_1(self):
        self.attack(POOL_SIZE_1, net_policy())

    def test_control_without_network(self):
        self.attack(POOL_SIZE_1, policy())


# ---- 4. a large request burns its container --------------------------------------

@unittest.skipUnless(READY, WHY)
class RedTeam4LargeRequestRetiresContainer(CrossRunCase):
    """A request of 40 MiB (input_data) retires its container, every time:
    agent.c's serve() reads each request into one spr_buf (`frame`) that it
    keeps for the next request, so the request's bytes stay in the agent's
    memory, charged to the container; check_clean() then sees the charged
    memory above the baseline (measured before the first request) plus the
    slack (at most 16 MiB) for its 2 s, says FATAL and exits. The next run
    still gets its result (another container), but any caller can make
    every one of its runs cost a container start, and the agent holds run
    A's input until another request overwrites it.

    Must hold: the run after A runs in A's container (run number A's + 1),
    and both are ok. Failed at 6e35105 (B runs as run 1 of a fresh container)."""

    def test_pool_size_1(self):
        blob = "x" * (40 << 20)
        a, b = self.sequence([
            {"code": "result = len(input_data['blob'])", "input_data": {"blob": blob},
             "policy": policy()},
            {"code": "print('B-OUT')\nresult = 1", "policy": policy()},
        ], POOL_SIZE_1)
        self.assertRunIs(a, len(blob), "", "run A")
        self.assertRunIs(b, 1, "B-OUT\n", "run B")
        ca, cb = a["isolation"]["container"], b["isolation"]["container"]
        self.assertEqual((cb["name"], cb["run"]), (ca["name"], ca["run"] + 1),
                         "the container of a run with a large request was retired")
