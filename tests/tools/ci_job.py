"""A CI job that runs untrusted code with spr-run where namespaces are refused
(inside an unprivileged container, or on a host under deny-userns), with
--allow-degraded, and shows what the code could reach of the job.

    python3 ci_job.py SPR_RUN [PREFIX...]

For each attack it first mounts the attack without spr (plain python3, the
control: it must work, or the check proves nothing), then through spr-run.
Everything the job sets up (a TCP listener, a /dev/shm file, a SysV segment,
a process) is its own and removed at the end. Prints one JSON object.
Used by tests/docker/test_ci_runner.py and tests/hostile/test_degraded.py."""
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SPR_RUN = sys.argv[1]
PREFIX = sys.argv[2:]
PYTHON = "/usr/bin/python3"
SECRET = "spr-secret-" + secrets.token_hex(8)
MARK = "spr-leftover-" + secrets.token_hex(6)
POLICY = "blocked_imports = []\nblocked_builtins = []\n"

libc = ctypes.CDLL(None, use_errno=True)


def run_code(code, sandboxed):
    """The code's result (JSON) and how it ended, plain or through spr-run."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "code.py")
        with open(path, "w") as f:
            f.write(code)
        os.chmod(d, 0o755)
        os.chmod(path, 0o644)
        if not sandboxed:
            # The control: the same code, reporting through print.
            wrapped = code + "\nimport json as _j\nprint(_j.dumps(result))\n"
            with open(path, "w") as f:
                f.write(wrapped)
            p = subprocess.run([PYTHON, "-I", path], capture_output=True, text=True, timeout=60)
            try:
                return {"ok": p.returncode == 0, "result": json.loads(p.stdout.splitlines()[-1])}
            except (IndexError, ValueError):
                return {"ok": False, "error": p.stderr[-500:]}
        pol = os.path.join(d, "policy.toml")
        with open(pol, "w") as f:
            f.write(POLICY)
        os.chmod(pol, 0o644)
        p = subprocess.run([*PREFIX, SPR_RUN, "--allow-degraded", "--json", "--policy", pol, path],
                           capture_output=True, text=True, timeout=120)
        try:
            r = json.loads(p.stdout)
        except ValueError:
            return {"ok": False, "error": f"exit {p.returncode}: {p.stderr[-500:]}"}
        return {"ok": r["ok"], "result": r["result"], "error": r["error"],
                "isolation": r["isolation"], "exit_code": r["exit_code"]}


def both(code):
    return {"plain": run_code(code, False), "spr": run_code(code, True)}


# ---- what the job holds ---------------------------------------------------------

def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)

    def accept():
        while True:
            try:
                c, _ = s.accept()
                c.sendall(SECRET.encode())
                c.close()
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return s


def shm_file():
    path = f"/dev/shm/{MARK}"
    with open(path, "w") as f:
        f.write(SECRET)
    os.chmod(path, 0o644)
    return path


def sysv_segment(key):
    shmid = libc.shmget(key, 4096, 0o1666)  # IPC_CREAT | 0666
    if shmid < 0:
        return -1
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shmid, None, 0)
    ctypes.memmove(addr, SECRET.encode(), len(SECRET))
    libc.shmdt(ctypes.c_void_p(addr))
    return shmid


def main():
    out = {"secret": SECRET, "uid": os.getuid()}
    with open("/etc/passwd") as f:
        out["accounts"] = sorted({int(line.split(":")[2]) for line in f if line.count(":") >= 3})
    out["one_plus_one"] = run_code("result = 1 + 1", True)

    srv = listener()
    port = srv.getsockname()[1]
    out["network"] = both(f"""
import socket
res = {{}}
try:
    c = socket.create_connection(("127.0.0.1", {port}), timeout=5)
    res["tcp"] = c.recv(100).decode()
except Exception as e:
    res["tcp"] = type(e).__name__
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b"x", ("127.0.0.1", {port}))
    res["udp"] = "sent"
except Exception as e:
    res["udp"] = type(e).__name__
result = res
""")
    srv.close()

    path = shm_file()
    key = 0x5e000000 | (os.getpid() & 0xffff)
    shmid = sysv_segment(key)
    out["ipc"] = both(f"""
import ctypes
res = {{}}
try:
    res["dev_shm"] = open({path!r}).read()
except Exception as e:
    res["dev_shm"] = type(e).__name__
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
i = libc.shmget({key}, 0, 0)
if i < 0:
    res["sysv"] = "shmget errno %d" % ctypes.get_errno()
else:
    a = libc.shmat(i, None, 0o10000)  # SHM_RDONLY
    res["sysv"] = ctypes.string_at(a, {len(SECRET)}).decode() if a not in (None, 2**64 - 1) else "shmat errno %d" % ctypes.get_errno()
result = res
""")
    os.unlink(path)
    if shmid >= 0:
        libc.shmctl(shmid, 0, None)  # IPC_RMID

    out["leftover"] = {}
    for how in ("plain", "spr"):
        r = run_code(f"""
import os, subprocess
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv("/bin/sleep", ["{MARK}", "300"])
    os._exit(0)
os.wait()
result = "started"
""", how == "spr")
        time.sleep(1)
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if MARK.encode() in f.read():
                            found.append(int(pid))
                except OSError:
                    pass
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        out["leftover"][how] = {"run": r, "survivors": len(found)}

    # A process of the job's: can the code signal it? (A victim each.)
    out["signal"] = {}
    for how in ("plain", "spr"):
        victim = subprocess.Popen(["sleep", "300"])
        r = run_code(f"""
import os, signal
try:
    os.kill({victim.pid}, signal.SIGKILL)
    result = "sent"
except Exception as e:
    result = type(e).__name__
""", how == "spr")
        time.sleep(0.2)
        out["signal"][how] = {"run": r, "victim_alive": victim.poll() is None}
        victim.kill()
        victim.wait()

    out["run_uid"] = run_code("import os\nresult = [os.getuid(), os.getgid()]", True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
