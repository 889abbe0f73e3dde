"""Processes and identity: host processes, the run's own end, credentials,
inherited descriptors, the host name."""
import fcntl
import json
import os
import pwd
import secrets
import signal
import subprocess
import tempfile
import time
import unittest

from integration.common import (DEGRADED_ARGS, DEGRADED_PREFIX, PODMAN_ROOTLESS, PERMISSIVE, SPR_RUN, ENGINE,
                                write_policy)
from hostile.harness import (DEGRADED, HOST_HOSTNAME, IN_CONTAINER, IS_ROOT, HostileCase, host_processes,
                             kill_quiet, run_direct_raw, script, token, visible_when_degraded)

HOST_PROCS = r'''
import errno, os, signal
tok = input_data["token"]
target = input_data["pid"]

def argv0(p):
    try:
        with open("/proc/%d/cmdline" % p, "rb") as f:
            return f.read().split(b"\0")[0].decode("utf-8", "replace")
    except OSError:
        return None

def sig(pid, s):
    try:
        os.kill(pid, s)
        return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]

pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
result = {
    "found": [p for p in pids if argv0(p) == tok],
    "visible": os.path.exists("/proc/%d" % target),
    "kill 0": sig(target, 0),
    # signal 0 to everything the caller may signal (never a real signal:
    # on the host this would be every process of the caller)
    "kill -1 0": sig(-1, 0),
    "kill TERM": sig(target, signal.SIGTERM),
    "pids": pids if input_data["inside"] else None,
}
'''


class HostProcesses(HostileCase):
    """See host processes or signal them."""

    def test_host_processes_invisible_and_unsignalable(self):
        victim_tok, ctl_tok = token("spr-victim"), token("spr-ctl-victim")
        victim = self.sleeper(victim_tok)
        ctl_victim = self.sleeper(ctl_tok)  # the one the control may kill

        ctl = self.control(HOST_PROCS, {"token": ctl_tok, "pid": ctl_victim.pid,
                                        "inside": False})
        self.assertEqual(ctl["found"], [ctl_victim.pid])
        self.assertTrue(ctl["visible"])
        self.assertEqual([ctl["kill 0"], ctl["kill -1 0"], ctl["kill TERM"]], ["OK"] * 3)
        self.assertEqual(ctl_victim.wait(timeout=5), -signal.SIGTERM)

        inside = self.sandboxed(HOST_PROCS, {"token": victim_tok, "pid": victim.pid,
                                             "inside": True})
        if DEGRADED:
            # Without a pid namespace host processes are visible (SPEC §7,
            # isolation.visible); Landlock's scope keeps them unsignalable.
            self.assertEqual(inside["found"], [victim.pid])
            self.assertEqual((inside["kill 0"], inside["kill TERM"]), ("EPERM", "EPERM"), inside)
            time.sleep(0.1)
            self.assertIsNone(victim.poll(), "the host process was signalled")
            return
        self.assertEqual(inside, {
            "found": [],
            "visible": False,
            "kill 0": "ESRCH",
            "kill -1 0": "ESRCH",  # nothing but init and the code itself
            "kill TERM": "ESRCH",
            "pids": [1, 2],  # the sandbox's init and the worker
        })
        time.sleep(0.1)
        self.assertIsNone(victim.poll(), "the host process was signalled")


FORK_AND_LOOP = r'''
import os, time
tok = input_data["token"]
for i in range(2):
    if os.fork() == 0:
        os.execv("/bin/sleep", [tok, "300"])
# a daemon: double fork and a new session, so it is nobody's child
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", [tok, "300"])
    os._exit(0)
print("ready", flush=True)
while True:
    time.sleep(1)
'''


def _live(tok):
    return {pid: info for pid, info in host_processes().items() if info[0][:1] == [tok]}


def _start_spr_run(case, body, tok, timeout, prefix=()):
    """spr-run --json on the script body with {"token": tok}, running on
    while the test looks at it from the host (ended at cleanup)."""
    tmp = tempfile.mkdtemp(prefix="spr-hostile-")
    case.addCleanup(_rmtree_quiet, tmp)
    code = os.path.join(tmp, "code.py")
    with open(code, "w") as f:
        f.write(script(body))
    pol = write_policy(dict(PERMISSIVE, timeout_seconds=timeout), tmp)
    proc = subprocess.Popen([*prefix, *DEGRADED_PREFIX, SPR_RUN, "--engine", ENGINE, "--json",
                             *DEGRADED_ARGS, "--policy", pol,
                             "--input", json.dumps({"token": tok}), code],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    case.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                             proc.stdout.close(), proc.stderr.close()))
    return proc


def _wait_for(case, tok, count, proc, what):
    """The host processes named tok once there are count of them (proc, the
    command that starts them, must not end first)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        live = _live(tok)
        if len(live) >= count:
            return live
        if proc.poll() is not None:
            case.fail(f"{what} ended early: rc={proc.returncode} "
                      f"stdout={proc.stdout.read()!r} stderr={proc.stderr.read()!r}")
        time.sleep(0.02)
    case.fail(f"{what}: {count} processes named {tok} did not appear: {_live(tok)}")


def _descendants(root_pid):
    procs = host_processes()
    found = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, info in procs.items():
            if pid not in found and info[3] in found:
                found.add(pid)
                changed = True
    return {pid: procs[pid][2] for pid in found if pid in procs}  # pid -> starttime


def _still_alive(snapshot):
    procs = host_processes()
    return sorted(pid for pid, start in snapshot.items()
                  if pid in procs and procs[pid][2] == start)


@unittest.skipIf(IN_CONTAINER, "the LocalEngine's process tree (a container's runs end with "
                                "it: tests/docker/test_crossrun.py)")
class KillSprRun(HostileCase):
    """SIGKILL to spr-run leaves no process behind (PDEATHSIG chain and the pid
    namespace); on the host the same code's processes outlive its killer."""

    def wait_for(self, tok, count, proc, what):
        return _wait_for(self, tok, count, proc, what)

    def cleanup_token(self, tok):
        for pid in _live(tok):
            kill_quiet(pid)

    def test_control_orphans_survive_on_the_host(self):
        tok = token("spr-orphan")
        self.addCleanup(self.cleanup_token, tok)
        proc, tmp = run_direct_raw(FORK_AND_LOOP, {"token": tok}, popen=True)
        self.addCleanup(_rmtree_quiet, tmp)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                                 proc.stdout.close(), proc.stderr.close()))
        self.wait_for(tok, 3, proc, "the control")
        proc.kill()
        proc.wait(timeout=10)
        time.sleep(1.0)
        self.assertEqual(len(_live(tok)), 3, "on the host, killing the parent leaves "
                                             "its children running")

    def kill_round(self, stop_monitor):
        """Starts spr-run on FORK_AND_LOOP, SIGKILLs it once the code's three
        processes run; returns what is left 1.5 s later (8 s without
        namespaces) (and ends it)."""
        tok = token("spr-orphan")
        self.addCleanup(self.cleanup_token, tok)
        proc = _start_spr_run(self, FORK_AND_LOOP, tok, 120)
        self.wait_for(tok, 3, proc, "spr-run")
        tree = _descendants(proc.pid)
        del tree[proc.pid]
        # should the run survive, end what this test started
        self.addCleanup(lambda: [kill_quiet(p) for p in _still_alive(tree)])
        procs = host_processes()
        server = [pid for pid, info in procs.items()
                  if _is_run_sandbox(info, proc.pid) and info[3] == proc.pid]
        self.assertEqual(len(server), 1, "no spr-sandbox server child names spr-run's pid")
        monitor = [pid for pid, info in procs.items()
                   if _is_run_sandbox(info, proc.pid) and info[3] == server[0]]
        self.assertEqual(len(monitor), 1, "the server has no monitor child")
        if stop_monitor:
            # the monitor gets no CPU before the kill reaches it (a loaded host):
            # only the PDEATHSIG chain and the pid namespace may end the run
            os.kill(monitor[0], signal.SIGSTOP)

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # Without namespaces the helper is given up to 5 s to end the run
        # once its caller is gone (SPEC §7 "Degraded mode"); on a loaded
        # host (a CI machine running other suites) that takes longer than
        # the usual instant. The loop ends as soon as nothing is left.
        deadline = time.monotonic() + (8.0 if DEGRADED else 1.5)
        while time.monotonic() < deadline:
            if not _live(tok) and not _still_alive(tree):
                break
            time.sleep(0.02)
        procs = host_processes()
        left = {pid: " ".join(procs[pid][0]) for pid in _still_alive(tree)}
        sandboxes = sorted(pid for pid, info in procs.items() if _is_run_sandbox(info, proc.pid))
        code_procs = sorted(_live(tok))
        for pid in _still_alive(tree):
            kill_quiet(pid)
        return {"code processes": code_procs, "run's tree": left, "spr-sandbox": sandboxes}

    def test_sigkill_spr_run_leaves_no_process(self):
        # the end of spr-run races with its monitor's own clean-up: several rounds
        for i in range(5):
            self.assertEqual(self.kill_round(stop_monitor=False),
                             {"code processes": [], "run's tree": {}, "spr-sandbox": []},
                             f"round {i + 1}: processes outlived spr-run's SIGKILL")

    def test_sigkill_spr_run_while_its_monitor_waits_for_cpu(self):
        self.assertEqual(self.kill_round(stop_monitor=True),
                         {"code processes": [], "run's tree": {}, "spr-sandbox": []},
                         "processes outlived spr-run's SIGKILL")


def _is_run_sandbox(info, spr_run_pid):
    """spr-run's fork server or one of its monitors (forks: the same argv)."""
    argv = info[0]
    return bool(argv) and os.path.basename(argv[0]) == "spr-sandbox" and \
        argv[1:] == ["--serve", str(spr_run_pid)]


STATUS = r'''
keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
        "Seccomp_filters")
result = {}
with open("/proc/self/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in keys:
            result[k] = v.strip()
'''


def _own_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                     "Seccomp", "Seccomp_filters"):
                out[k] = v.strip()
    return out


class Credentials(HostileCase):
    """/proc/self/status: no capability in any set, no_new_privs, a filter."""

    def test_proc_self_status(self):
        ctl = self.control(STATUS)
        own = _own_status()
        if own["CapEff"] != "0000000000000000":
            # exec without file capabilities: root keeps what its bounding set allows
            own["CapPrm"] = own["CapEff"] = own["CapBnd"]
        self.assertEqual(ctl, own, "the control reads this process's own state")

        inside = self.sandboxed(STATUS)
        filters = inside.pop("Seccomp_filters")
        self.assertEqual(inside, {"CapInh": "0000000000000000", "CapPrm": "0000000000000000",
                                  "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
                                  "CapAmb": "0000000000000000", "NoNewPrivs": "1",
                                  "Seccomp": "2"})
        self.assertGreaterEqual(int(filters), 1)
        ctl.pop("Seccomp_filters")
        self.assertNotEqual(ctl, inside, "the control shows what the sandbox takes away")


IDENTITY = r"""
import errno, os, subprocess

def lines(name):
    with open("/proc/self/" + name) as f:
        return [" ".join(line.split()) for line in f.read().splitlines()]

groups = sorted(os.getgroups())
# a process the host can find by its name and read the credentials of; it
# sleeps until the host has read them and kills it
sleeper = subprocess.Popen([input_data["token"], "60"], executable="/bin/sleep")
try:
    os.setgroups([])  # on the host: this control's own groups, nothing else
    drop = "OK"
except OSError as e:
    drop = errno.errorcode[e.errno]
result = {
    "setgroups": lines("setgroups"),
    "uid_map": lines("uid_map"),
    "gid_map": lines("gid_map"),
    "groups before": groups,
    "drop groups": drop,
}
result["sleeper"] = sleeper.wait()
"""

# As root the run is started with supplementary groups (root's usually
# include 0): they must not reach the code.
ROOT_GROUPS = [0, 4]


def _host_credentials(pid):
    """Uid, Gid (each real, effective, saved, fs) and Groups of a host pid."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


class Identity(HostileCase):
    """Who the code is, inside and on the host: a single mapped id, setgroups
    denied, the run's own uid (from the range no account uses, SPEC §4
    "Identity") on the host when the caller is root (the caller itself
    rootless), and none of root's supplementary groups."""

    def credentials_of(self, proc, tok, what):
        """Reads the sleeper's host credentials, then lets the run go on."""
        pid = next(iter(_wait_for(self, tok, 1, proc, what)))
        creds = _host_credentials(pid)
        kill_quiet(pid)
        return creds

    def test_ids_and_groups(self):
        prefix = ["setpriv", "--groups", ",".join(map(str, ROOT_GROUPS))] if IS_ROOT else []
        groups = ROOT_GROUPS if IS_ROOT else sorted(os.getgroups())
        uid, gid = os.geteuid(), os.getegid()

        tok = token("spr-identity")
        self.addCleanup(lambda: [kill_quiet(p) for p in _live(tok)])
        proc, tmp = run_direct_raw(IDENTITY, {"token": tok}, popen=True, prefix=prefix)
        self.addCleanup(_rmtree_quiet, tmp)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(),
                                 proc.stdout.close(), proc.stderr.close()))
        host = self.credentials_of(proc, tok, "the control")
        self.assertEqual(proc.wait(timeout=30), 0, proc.stderr.read())
        with open(os.path.join(tmp, "result.json")) as f:
            ctl = json.load(f)
        # the host: every id mapped, groups settable, the caller's ids and groups
        self.assertEqual(ctl, {"setgroups": ["allow"], "uid_map": ["0 0 4294967295"],
                               "gid_map": ["0 0 4294967295"], "groups before": groups,
                               "drop groups": "OK" if IS_ROOT else "EPERM",
                               "sleeper": -signal.SIGKILL})
        self.assertEqual(host, {"Uid": [uid] * 4, "Gid": [gid] * 4, "Groups": groups})

        tok = token("spr-identity")
        self.addCleanup(lambda: [kill_quiet(p) for p in _live(tok)])
        proc = _start_spr_run(self, IDENTITY, tok, 60, prefix)
        host = self.credentials_of(proc, tok, "spr-run")
        out, err = proc.communicate(timeout=60)
        run = json.loads(out)
        self.assertTrue(run["ok"], run)
        if DEGRADED:
            # No user namespace: the ids are the host's (its maps are the
            # host's, visible); as root the run's own uid, no groups.
            want = run["isolation"]["host_uid"]
            if IS_ROOT:
                self.assertTrue(1879048192 <= want < 1879048192 + 65536, run)
                self.assertEqual(host, {"Uid": [want] * 4, "Gid": [want] * 4, "Groups": []})
            else:
                self.assertEqual(host["Uid"], [uid] * 4)
            return
        host_uid = host_gid = None
        if PODMAN_ROOTLESS:
            # The run's own id of the container's user namespace, which
            # maps it into the user's subordinate ranges: host_uid is that.
            host_uid = run["isolation"]["host_uid"]
            sub_uid, sub_gid = subordinate_start("/etc/subuid"), subordinate_start("/etc/subgid")
            outside_uid = outside_gid = host_uid - sub_uid + 1
            self.assertTrue(0 < outside_uid < 65536, run)
            host_gid = sub_gid + outside_gid - 1
        elif IS_ROOT:  # the run's own, reported in isolation, no account's
            outside_uid = outside_gid = run["isolation"]["host_uid"]
            self.assertTrue(1879048192 <= outside_uid < 1879048192 + 65536, run)
            self.assertNotIn(outside_uid, {p.pw_uid for p in pwd.getpwall()})
        else:
            outside_uid, outside_gid = uid, gid
        with open("/proc/sys/kernel/overflowgid") as f:
            overflow = int(f.read())
        # inside, an unmapped group shows as the overflow gid
        # (a container's process carries its own gid as a supplementary
        # group: inside, the run's own gid 1000, nothing else)
        seen = [1000] if IN_CONTAINER else [] if IS_ROOT else sorted(
            1000 if g == gid else overflow for g in groups)
        self.assertEqual(run["result"], {
            "setgroups": ["deny"],
            "uid_map": [f"1000 {outside_uid} 1"],
            "gid_map": [f"1000 {outside_gid} 1"],
            "groups before": seen,
            "drop groups": "EPERM",
            "sleeper": -signal.SIGKILL,
        })
        # rootless, the caller's own groups stay: it cannot drop them, and
        # they give the code nothing the caller lacks
        if PODMAN_ROOTLESS:
            self.assertEqual(host, {"Uid": [host_uid] * 4, "Gid": [host_gid] * 4,
                                    "Groups": [host_gid]})
            return
        self.assertEqual(host, {"Uid": [outside_uid] * 4, "Gid": [outside_gid] * 4,
                                "Groups": [outside_gid] if IN_CONTAINER else [] if IS_ROOT
                                else groups})


def subordinate_start(path):
    """The first id of the caller's range in /etc/subuid or /etc/subgid."""
    name = pwd.getpwuid(os.geteuid()).pw_name
    with open(path) as f:
        for line in f:
            fields = line.strip().split(":")
            if fields[0] == name:
                return int(fields[1])
    raise AssertionError(f"{name} has no range in {path}")


ENVIRONMENT = r"""
import os
def readable(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
secret = input_data["secret"]
result = {
    "environ": dict(os.environ),
    # the variable's value anywhere this process or pid 1 shows an environment
    "secret seen": any(secret in readable(p) for p in ("/proc/self/environ", "/proc/1/environ")),
}
"""

# What the LocalEngine gives every run (local_run.c): a fixed minimal
# environment, HOME and TMPDIR the run's directory, plus the policy's env.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "HOME": "/tmp", "TMPDIR": "/tmp"}


class Environment(HostileCase):
    """The caller's environment (tokens, keys) does not reach the code; the
    policy's env does, but cannot move HOME or TMPDIR."""

    def test_environment_is_scrubbed(self):
        name, secret = "SPR_HOSTILE_SECRET", token("spr-secret")
        os.environ[name] = secret  # spr-run and the control inherit it
        self.addCleanup(os.environ.pop, name, None)
        inp = {"secret": secret}

        ctl = self.control(ENVIRONMENT, inp)
        self.assertEqual(ctl["environ"].get(name), secret)
        self.assertTrue(ctl["secret seen"])

        inside = self.sandboxed(ENVIRONMENT, inp, policy={"env": {"FOO": "bar",
                                                                  "HOME": "/root"}})
        env = dict(BASE_ENV, FOO="bar")
        if DEGRADED:  # the run's private directory on the host
            run_dir = inside["environ"].get("HOME", "")
            self.assertRegex(run_dir, r"/spr-run-[0-9]+\.[0-9]+\.[0-9]+-[A-Za-z0-9]{6}/work$")
            env.update(HOME=run_dir, TMPDIR=run_dir)
        self.assertEqual(inside, {"environ": env, "secret seen": False})


FDS = r'''
import errno, os
fds = []
for name in os.listdir("/proc/self/fd"):
    try:
        os.fstat(int(name))  # the directory listing's own descriptor is closed by now
        fds.append(int(name))
    except OSError:
        pass
try:
    leaked = os.pread(input_data["leaked"], 100, 0).decode()
except OSError as e:
    leaked = errno.errorcode[e.errno]
result = {"fds": sorted(fds), "leaked": leaked}
'''


class Descriptors(HostileCase):
    """Only fds 0-3 are open; a descriptor leaked to spr-run does not reach the
    code (on the host it would: the control reads the file through it)."""

    def test_only_fds_0_to_3(self):
        secret = f"leaked {secrets.token_hex(8)}"
        path = self.make_file("/tmp", secret, 0o600)
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 20)
        self.addCleanup(os.close, high)
        os.set_inheritable(high, True)

        ctl = self.control(FDS, {"leaked": high}, pass_fds=(high,))
        self.assertIn(high, ctl["fds"])
        self.assertEqual(ctl["leaked"], secret)

        inside = self.sandboxed(FDS, {"leaked": high}, pass_fds=(high,))
        self.assertEqual(inside, {"fds": [0, 1, 2, 3], "leaked": "EBADF"})


HOSTNAME = r'''
import errno, os, socket
result = {"gethostname": socket.gethostname(), "nodename": os.uname().nodename}
if input_data["inside"]:
    with open("/etc/hostname") as f:
        result["/etc/hostname"] = f.read()
    # never tried in the host's UTS namespace: as root it would rename the
    # machine (were the sandbox ever to run without its namespaces)
    try:
        if os.readlink("/proc/self/ns/uts") == input_data["host_uts"]:
            raise OSError(errno.EEXIST, "in the host's UTS namespace: not trying")
        socket.sethostname("spr-hostile")
        result["sethostname"] = "OK"
    except OSError as e:
        result["sethostname"] = errno.errorcode[e.errno]
    result["after"] = socket.gethostname()
'''


class Hostname(HostileCase):
    @visible_when_degraded("hostname")
    def test_hostname_differs(self):
        host_uts = os.readlink("/proc/self/ns/uts")
        ctl = self.control(HOSTNAME, {"inside": False, "host_uts": host_uts})
        self.assertEqual(ctl, {"gethostname": HOST_HOSTNAME, "nodename": HOST_HOSTNAME})
        self.assertNotEqual(HOST_HOSTNAME, "sandbox", "the host is named like the sandbox")

        inside = self.sandboxed(HOSTNAME, {"inside": True, "host_uts": host_uts})
        self.assertEqual(inside, {"gethostname": "sandbox", "nodename": "sandbox",
                                  "/etc/hostname": "sandbox\n", "sethostname": "EPERM",
                                  "after": "sandbox"})
        self.assertEqual(os.uname().nodename, HOST_HOSTNAME)


def _rmtree_quiet(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
