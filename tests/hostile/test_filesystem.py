"""The filesystem view: the host's secrets, system directories, the way
out through /proc, persistence, exec from writable places, and Landlock as
the wall behind the mounts."""
import os
import secrets

from hostile.harness import (DEGRADED, HOME, HOST_PYTHON, IN_CONTAINER, IS_ROOT, HostileCase, failed_attempt,
                             namespaced_only, token, visible_when_degraded)

# what /proc/self/comm of the interpreter says (the name, cut at 15 bytes)
INTERPRETER_COMM = os.path.basename(os.path.realpath(HOST_PYTHON))[:15] + "\n"

ATTEMPT = r'''
import errno, os

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode[e.errno]}

def read(p):
    def f():
        with open(p) as fh:
            return fh.read()
    return f
'''

READ_PATHS = ATTEMPT + r'''
result = {p: attempt(read(p)) for p in input_data["read"]}
for p in input_data.get("list", []):
    result["list " + p] = attempt(lambda: sorted(os.listdir(p))[:5])
'''

WRITE_PATHS = ATTEMPT + r'''
def write(p):
    def f():
        with open(p, "x") as fh:
            fh.write(input_data["content"])
        os.unlink(p)  # the control cleans up after itself
        return "written"
    return f

def mkdir(p):
    def f():
        os.mkdir(p)
        os.rmdir(p)
        return "made"
    return f

result = {}
for p in input_data["paths"]:
    result["write " + p] = attempt(write(p))
    result["mkdir " + p] = attempt(mkdir(p + "-d"))
'''


def failed(errname):
    return failed_attempt(errname)


def ok(value):
    return {"ok": True, "value": value}


class Secrets(HostileCase):
    """Read /etc/shadow and the caller's home."""

    def test_read_shadow_and_home(self):
        secret = f"secret {secrets.token_hex(8)}\n"
        home_secret = self.make_file(HOME, secret, 0o600, prefix=".spr-hostile-")
        tmp_secret = self.make_file("/tmp", secret, 0o600)
        inp = {"read": ["/etc/shadow", home_secret, tmp_secret], "list": [HOME]}

        ctl = self.control(READ_PATHS, inp)
        # the caller's 0600 files are readable on the host, for root and others
        self.assertEqual(ctl[home_secret], ok(secret))
        self.assertEqual(ctl[tmp_secret], ok(secret))
        self.assertTrue(ctl["list " + HOME]["ok"], ctl)
        if IS_ROOT:
            self.assertTrue(ctl["/etc/shadow"]["ok"], ctl["/etc/shadow"])
            self.assertTrue(ctl["/etc/shadow"]["value"].startswith("root:"))
        else:
            # an unprivileged caller cannot read it anyway: the 0600 files
            # above are the targets that caller can reach
            self.assertEqual(ctl["/etc/shadow"], failed("EACCES"))

        inside = self.sandboxed(READ_PATHS, inp)
        self.assertEqual(inside, {
            "/etc/shadow": failed("ENOENT"),  # /etc is a tmpfs of a few files
            home_secret: failed("ENOENT"),    # no /home, no /root
            tmp_secret: failed("ENOENT"),     # /tmp is the run's own tmpfs
            "list " + HOME: failed("ENOENT"),
        })


class SystemWrites(HostileCase):
    """Write to /usr, /etc and /."""

    def test_write_usr_etc_root(self):
        tok = token()
        system = [f"/usr/{tok}", f"/etc/{tok}", f"/{tok}"]
        home = os.path.join(HOME, "." + tok)
        for p in system + [home]:
            self.addCleanup(_remove_quiet, p)
            self.addCleanup(_rmdir_quiet, p + "-d")
        inp = {"paths": system + [home], "content": tok}

        ctl = self.control(WRITE_PATHS, inp)
        for p in system:
            if IS_ROOT:
                self.assertEqual(ctl["write " + p], ok("written"), p)
                self.assertEqual(ctl["mkdir " + p], ok("made"), p)
            else:
                # unprivileged callers cannot write there on the host either;
                # their own home is the target they can write
                self.assertEqual(ctl["write " + p], failed("EACCES"), p)
        self.assertEqual(ctl["write " + home], ok("written"))
        self.assertEqual(ctl["mkdir " + home], ok("made"))

        inside = self.sandboxed(WRITE_PATHS, inp)
        want = {}
        for p in system:  # read-only binds / a read-only tmpfs root
            want["write " + p] = failed("EROFS")
            want["mkdir " + p] = failed("EROFS")
        want["write " + home] = failed("ENOENT")  # the home is not there at all
        want["mkdir " + home] = failed("ENOENT")
        self.assertEqual(inside, want)
        for p in system + [home]:
            self.assertFalse(os.path.lexists(p), p)
            self.assertFalse(os.path.lexists(p + "-d"), p)


class ProcRootEscape(HostileCase):
    """Reach the host's tree through /proc/1/root, /proc/self/root/.. and the
    root link of a host process."""

    def test_proc_root_links(self):
        content = f"marker {secrets.token_hex(8)}\n"
        tmp_marker = self.make_file("/tmp", content, 0o644)
        home_marker = self.make_file(HOME, content, 0o644, prefix=".spr-hostile-")
        me = os.getpid()  # a host process of the caller's own
        paths = {
            "pid1 tmp": f"/proc/1/root{tmp_marker}",
            "pid1 home": f"/proc/1/root{home_marker}",
            "self dotdot tmp": f"/proc/self/root/..{tmp_marker}",
            "self dotdot home": f"/proc/self/root/../..{home_marker}",
            "host pid tmp": f"/proc/{me}/root{tmp_marker}",
            "host pid home": f"/proc/{me}/root{home_marker}",
        }
        inp = {"read": list(paths.values()), "list": ["/proc/1/root"]}

        ctl = self.control(READ_PATHS, inp)
        for key in ("self dotdot tmp", "self dotdot home", "host pid tmp", "host pid home"):
            self.assertEqual(ctl[paths[key]], ok(content), key)
        if _can_list("/proc/1/root"):
            self.assertEqual(ctl[paths["pid1 tmp"]], ok(content))
            self.assertEqual(ctl[paths["pid1 home"]], ok(content))
        else:
            # the host's pid 1 is closed to this caller even on the host (an
            # unprivileged caller; here even root, whose pid 1 is a VM init
            # with more capabilities): the caller's own process above is the
            # way in that works
            self.assertEqual(ctl[paths["pid1 tmp"]], failed("EACCES"))
            self.assertEqual(ctl[paths["pid1 home"]], failed("EACCES"))

        inside = self.sandboxed(READ_PATHS, inp)
        self.assertEqual(inside, {
            # pid 1 is the sandbox's init, which keeps capabilities the code
            # lacks: its root link is closed to the code
            paths["pid1 tmp"]: failed("EACCES"),
            paths["pid1 home"]: failed("EACCES"),
            "list /proc/1/root": failed("EACCES"),
            # "/.." is "/": the sandbox root, where neither marker exists
            paths["self dotdot tmp"]: failed("ENOENT"),
            paths["self dotdot home"]: failed("ENOENT"),
            # host pids do not exist in the sandbox's pid namespace
            paths["host pid tmp"]: failed("ENOENT"),
            paths["host pid home"]: failed("ENOENT"),
        })


PERSIST = r'''
import os
tok = input_data["token"]
# Degraded, the writable place is the run's own directory ($TMPDIR).
dirs = [os.environ["TMPDIR"] if d == "$TMPDIR" else d for d in input_data["dirs"]]
if input_data["write"]:
    for d in dirs:
        with open(os.path.join(d, tok), "w") as f:
            f.write(tok)
        os.mkdir(os.path.join(d, tok + "-dir"))
        with open(os.path.join(d, tok + "-dir", "inner"), "w") as f:
            f.write(tok)
listing = {d: sorted(os.listdir(d)) for d in dirs}
result = {"mine": {d: [n for n in names if tok in n] for d, names in listing.items()},
          "all": listing if input_data["full"] else None}
'''


class Persistence(HostileCase):
    """Nothing written survives the run."""

    def test_nothing_written_survives(self):
        tok = token()
        self.addCleanup(_remove_persist_files, tok)
        mine = {"/tmp": [tok, tok + "-dir"], "/dev/shm": [tok, tok + "-dir"]}

        # on the host the files stay
        ctl = self.control(PERSIST, {"token": tok, "write": True, "full": False,
                                     "dirs": ["/tmp", "/dev/shm"]})
        self.assertEqual(ctl["mine"], mine)
        for d in ("/tmp", "/dev/shm"):
            self.assertTrue(os.path.exists(os.path.join(d, tok + "-dir", "inner")))
        _remove_persist_files(tok)

        if DEGRADED:
            # Degraded: only the run's own directory is writable, and it goes.
            first = self.sandboxed(PERSIST, {"token": tok, "write": True, "full": True,
                                             "dirs": ["$TMPDIR"]})
            self.assertEqual(list(first["mine"].values()), [[tok, tok + "-dir"]])
            where = next(iter(first["mine"]))
            self.assertFalse(os.path.exists(where), f"the run directory {where} stayed")
            # ...and the host's /tmp and /dev/shm are not writable at all.
            for d in ("/tmp", "/dev/shm"):
                run = self.sandboxed_run(PERSIST, {"token": tok, "write": True,
                                                   "full": False, "dirs": [d]})
                self.assertIn("PermissionError", run["error"] or "", run)
                self.assertEqual([n for n in os.listdir(d) if tok in n], [], d)
            return
        first = self.sandboxed(PERSIST, {"token": tok, "write": True, "full": True,
                                         "dirs": ["/tmp", "/dev/shm"]})
        self.assertEqual(first["mine"], mine)
        self.assertEqual(first["all"], mine)  # the run started with both empty
        second = self.sandboxed(PERSIST, {"token": tok, "write": False, "full": True,
                                          "dirs": ["/tmp", "/dev/shm"]})
        self.assertEqual(second["all"], {"/tmp": [], "/dev/shm": []})
        for d in ("/tmp", "/dev/shm"):
            self.assertEqual([n for n in os.listdir(d) if tok in n], [], d)


EXEC_WRITABLE = r'''
import errno, os, shutil, subprocess, tempfile
with open("/usr/bin/true", "rb") as f:
    elf = f.read()
result = {}
for base in input_data["dirs"]:
    d = tempfile.mkdtemp(dir=os.environ["TMPDIR"] if base == "$TMPDIR" else base)
    try:
        path = os.path.join(d, "true")
        with open(path, "wb") as f:
            f.write(elf)
        os.chmod(path, 0o755)
        try:
            result[base + " exec"] = subprocess.run([path]).returncode
        except OSError as e:
            result[base + " exec"] = errno.errorcode[e.errno]
        r = subprocess.run(["/lib64/ld-linux-x86-64.so.2", path], capture_output=True, text=True)
        result[base + " ld.so"] = r.returncode
        result[base + " ld.so stderr"] = r.stderr
    finally:
        shutil.rmtree(d)
'''


class ExecFromWritable(HostileCase):
    """Drop an ELF where the code can write and run it: directly and through
    the dynamic loader (which maps it instead of exec'ing it)."""

    def test_exec_dropped_binary(self):
        ctl_dirs = [d for d in ("/tmp", "/dev/shm", HOME)
                    if not os.statvfs(d).f_flag & os.ST_NOEXEC]
        self.assertTrue(ctl_dirs, "no exec-able writable directory on the host for the control")
        ctl = self.control(EXEC_WRITABLE, {"dirs": ctl_dirs})
        for d in ctl_dirs:
            self.assertEqual(ctl[d + " exec"], 0, ctl)
            self.assertEqual(ctl[d + " ld.so"], 0, ctl)

        if DEGRADED:
            # The run's directory, on the host's /tmp: Landlock refuses
            # executing what the run wrote (mapping it through the loader
            # is native code like ctypes', confined the same).
            inside = self.sandboxed(EXEC_WRITABLE, {"dirs": ["$TMPDIR"]})
            self.assertEqual(inside["$TMPDIR exec"], "EACCES", inside)
            return
        inside = self.sandboxed(EXEC_WRITABLE, {"dirs": ["/tmp", "/dev/shm"]})
        for d in ("/tmp", "/dev/shm"):
            self.assertEqual(inside[d + " exec"], "EACCES", inside)
            self.assertEqual(inside[d + " ld.so"], 127, inside)
            self.assertIn("failed to map segment from shared object",
                          inside[d + " ld.so stderr"], inside)


LANDLOCK = ATTEMPT + r'''
def write(p, data):
    def f():
        fd = os.open(p, os.O_WRONLY)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
        return "written"
    return f

def create(p):
    def f():
        with open(p, "w") as fh:
            fh.write("x")
        os.unlink(p)
        return "created"
    return f

result = {
    "write /proc/self/comm": attempt(write("/proc/self/comm", "spr-hostile")),
    "comm": open("/proc/self/comm").read(),
    "list /": attempt(lambda: bool(os.listdir("/"))),
    "create in /dev/shm": attempt(create("/dev/shm/spr-hostile-" + str(os.getpid()))),
    "write /dev/null": attempt(write("/dev/null", "x")),
}
if input_data["inside"]:
    st = os.stat("/")
    result["root dir"] = [oct(st.st_mode), st.st_uid == os.getuid()]
    result["write /proc/self/attr/current"] = attempt(write("/proc/self/attr/current", "x"))
'''


class LandlockWall(HostileCase):
    """Landlock behind the mounts: what the mode bits allow, Landlock still
    refuses outside the layout's lists (read: the mounted paths, write:
    /tmp, /dev/shm and the device nodes)."""

    @namespaced_only("the sandbox's own root directory and /dev/shm")
    def test_landlock_refuses_what_mode_bits_allow(self):
        ctl = self.control(LANDLOCK, {"inside": False})
        self.assertEqual(ctl["write /proc/self/comm"], ok("written"))
        self.assertEqual(ctl["comm"], "spr-hostile\n")
        self.assertEqual(ctl["list /"], ok(True))
        self.assertEqual(ctl["create in /dev/shm"], ok("created"))

        run = self.sandboxed_run(LANDLOCK, {"inside": True})
        self.assertTrue(run["ok"], run)
        self.assertGreaterEqual(run["isolation"]["landlock_abi"], 1, run)
        inside = run["result"]
        # "/" is the sandbox user's own 0755 directory: only Landlock says no
        self.assertEqual(inside["root dir"], ["0o40755", True])
        self.assertEqual(inside["list /"], failed("EACCES"))
        # /proc/self/comm is the code's own 0644 file on a writable proc
        self.assertEqual(inside["write /proc/self/comm"], failed("EACCES"))
        # (in a container the agent runs the image's python3 by that name)
        self.assertEqual(inside["comm"], "python3\n" if IN_CONTAINER else INTERPRETER_COMM)
        self.assertEqual(inside["write /proc/self/attr/current"], failed("EACCES"))
        # the documented writable places
        self.assertEqual(inside["create in /dev/shm"], ok("created"))
        self.assertEqual(inside["write /dev/null"], ok("written"))


MOUNT_TABLE = ATTEMPT + r"""
import re

def unescape(field):  # mountinfo writes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)

def open_for_writing(p):
    def f():
        # O_TRUNC asks the mount first (EROFS), before the file's permission
        # (EACCES: the code is not root); a sysctl ignores the truncation and
        # nothing is written, even where it opens
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
        return "opened"
    return f

def read_one(p):
    def f():
        with open(p, "rb") as fh:
            return len(fh.read(1))
    return f

mounts = []
with open("/proc/self/mountinfo") as fh:
    for line in fh:
        pre, post = line.split(" - ", 1)
        a, b = pre.split(), post.split()
        mounts.append({"dev": a[2], "root": unescape(a[3]), "at": unescape(a[4]),
                       "options": a[5].split(","), "fstype": b[0]})
result = {
    "mounts": mounts,
    "dev": sorted(os.listdir("/dev")),
    "exists": {p: os.path.lexists(p) for p in ("/sys", "/var")},
    "proc/sys read-only": bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY),
    "write proc/sys": attempt(open_for_writing("/proc/sys/kernel/hostname")),
    "read kallsyms": attempt(read_one("/proc/kallsyms")),
}
"""

# /dev inside: the device nodes bound from the host (layout.c dev_nodes),
# /dev/shm, and the /proc/self/fd links.
DEV_NODES = {"null", "zero", "full", "random", "urandom"}
DEV_LISTING = sorted(DEV_NODES | {"shm", "fd", "stdin", "stdout", "stderr"})


def host_root_mount():
    """(device, root) of the mount at the caller's "/": what a bind of the
    host's root would show in mountinfo, under any mount point."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a = line.split(" - ", 1)[0].split()
            if a[4] == "/":
                return a[2], a[3]
    raise AssertionError("no mount at / in /proc/self/mountinfo")


def mount_findings(result):
    """What the run's mount table breaks of the sandbox's rules (empty when
    it keeps them all)."""
    mounts = result["mounts"]
    root = host_root_mount()
    dev_binds = {"/dev/" + n for n in DEV_NODES}
    lacking = {
        "nosuid": sorted(m["at"] for m in mounts if "nosuid" not in m["options"]),
        "nodev": sorted(m["at"] for m in mounts
                        if "nodev" not in m["options"] and m["at"] not in dev_binds),
        # below /proc only the fresh proc itself may be writable
        "ro under /proc": sorted(m["at"] for m in mounts if m["at"].startswith("/proc/")
                                 and "ro" not in m["options"]),
    }
    found = {k: v for k, v in lacking.items() if v}
    host_root = sorted(m["at"] for m in mounts if (m["dev"], m["root"]) == root)
    if host_root:
        found["host root mounted at"] = host_root
    if result["dev"] != DEV_LISTING:
        found["/dev"] = result["dev"]
    present = sorted(p for p, there in result["exists"].items() if there)
    if present:
        found["present"] = present
    if not result["proc/sys read-only"]:
        found["/proc/sys"] = "writable mount"
    if result["write proc/sys"] != failed("EROFS"):
        found["write proc/sys"] = result["write proc/sys"]
    return found


class MountTable(HostileCase):
    """The sandbox's whole mount table, from /proc/self/mountinfo: nosuid on
    every mount, nodev on every mount but the device nodes in /dev, no bind
    of the host's root, /proc/sys read-only, a minimal /dev, no /sys or
    /var, /proc's host-revealing files masked."""

    @visible_when_degraded("mountinfo")
    def test_mount_table(self):
        ctl = self.control(MOUNT_TABLE)
        found = mount_findings(ctl)
        # the host keeps none of these rules (each is checked, not just one)
        self.assertTrue(found["nosuid"] and found["nodev"], found)
        self.assertIn("/", found["host root mounted at"], found)
        self.assertIn("/dev", found)
        self.assertEqual(found["present"], ["/sys", "/var"])
        self.assertEqual(found["/proc/sys"], "writable mount")
        # root may open a sysctl for writing; an unprivileged caller not at all
        self.assertEqual(ctl["write proc/sys"], ok("opened") if IS_ROOT else failed("EACCES"))
        self.assertEqual(ctl["read kallsyms"], ok(1))

        inside = self.sandboxed(MOUNT_TABLE)
        self.assertEqual(mount_findings(inside), {}, inside["mounts"])
        # the masks are /dev/null binds with nodev: nothing opens them
        self.assertEqual(inside["read kallsyms"], failed("EACCES"))
        masks = [m for m in inside["mounts"] if m["at"] == "/proc/kallsyms"]
        self.assertEqual(len(masks), 1, inside["mounts"])
        self.assertTrue({"ro", "nosuid", "nodev", "noexec"} <= set(masks[0]["options"]), masks)


def _can_list(path):
    try:
        os.listdir(path)
        return True
    except PermissionError:
        return False


def _remove_persist_files(tok):
    for d in ("/tmp", "/dev/shm"):
        _remove_quiet(os.path.join(d, tok))
        _remove_quiet(os.path.join(d, tok + "-dir", "inner"))
        _rmdir_quiet(os.path.join(d, tok + "-dir"))


def _remove_quiet(path):
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError):
        pass


def _rmdir_quiet(path):
    try:
        os.rmdir(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
