"""Every test whose outcome differs inside spr from outside, and why.

tests/compat/compat.py fails on a difference not listed here and on an
entry that no longer matches any difference. Each entry: the engines it
holds for, fnmatch patterns of test ids, optionally the outcomes outside
and inside (any when absent), and the reason, as docs/SECURITY.md shows it.
Outside runs as an unprivileged user (nobody), so nothing here is about
being root.
"""

BOTH = ("local", "docker", "podman")

DIFFERENCES = [
    {
        "engines": BOTH,
        "tests": ["test.test_shutil.TestWhich.*", "test.test_shutil.TestWhichBytes.*",
                  "test.test_subprocess.POSIXProcessTestCase.test_args_string",
                  "test.test_subprocess.POSIXProcessTestCase.test_call_string",
                  "test.test_mmap.MmapTests.test_access_parameter"],
        "outside": "pass",
        "reason": "Deliberate: /tmp, /dev/shm and the working directory are mounted noexec, "
                  "so nothing the code writes can be executed or mapped executable: "
                  "os.access(X_OK) is false (shutil.which finds nothing there), running a "
                  "script written to /tmp is EACCES and mmap with PROT_EXEC of such a file "
                  "is EPERM. Programs on the read-only /usr run as outside.",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_os.FDInheritanceTests.test_openpty",
                  "test.test_asyncio.test_events.*EventLoopTests.test_*pty*"],
        "outside": "pass", "inside": "error",
        "reason": "Deliberate: no terminal. The sandbox has no /dev/ptmx and no devpts, so "
                  "os.openpty() fails with ENOENT; code that runs without a terminal has "
                  "no use for a pty's ioctls (TIOCSTI, line disciplines), which are "
                  "kernel attack surface.",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_os.ChownFileTests.test_chown_without_permission",
                  "test.test_subprocess.POSIXProcessTestCase.test_user",
                  "test.test_subprocess.POSIXProcessTestCase.test_group"],
        "outside": "pass", "inside": "error",
        "reason": "By the user namespace: it maps only the run's own uid and gid, so a "
                  "chown, setuid or setgid to any other id is EINVAL (the id has no "
                  "meaning there), where outside it is EPERM; the tests expect "
                  "PermissionError (subprocess's user= and group= go through setreuid "
                  "and setregid).",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_os.Pep383Tests.test_listdir"],
        "outside": "pass", "inside": "error",
        "reason": "Deliberate (Landlock): reading is granted beneath the directories the "
                  "layout binds (/usr, /lib*, /etc's few files, /tmp, the working "
                  "directory), not on the root directory itself, which holds only those "
                  "mount points: os.listdir('/') is EACCES.",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_socket.GeneralModuleTests.testInterfaceNameIndex",
                  "test.test_socket.GeneralModuleTests.test_getaddrinfo_ipv6_scopeid_symbolic",
                  "test.test_socket.GeneralModuleTests.test_getnameinfo_ipv6_scopeid_symbolic"],
        "outside": "pass", "inside": "error",
        "reason": "Deliberate (seccomp): sockets are AF_UNIX, AF_INET and AF_INET6 only; "
                  "an AF_NETLINK socket, which socket.if_nameindex() and symbolic IPv6 "
                  "scope ids use to list the interfaces, is EPERM.",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_mmap.LargeMmapTests.*"],
        "outside": "pass", "inside": "skip",
        "reason": "By the limits: a run's files are bounded (RLIMIT_FSIZE and the size of "
                  "its /tmp), so the 4 GiB sparse file these tests need cannot be made; "
                  "the tests skip themselves ('filesystem does not have largefile "
                  "support').",
    },
    {
        "engines": BOTH,
        "tests": ["test.test_subprocess.ProcessTestCase.test_no_leaking",
                  "test.test_subprocess.ProcessTestCaseNoPoll.test_no_leaking"],
        "outside": "skip", "inside": "pass",
        "reason": "By the limits: the run's RLIMIT_NOFILE is lower than the caller's here, "
                  "so the test reaches it (it opens up to 1026 files) and runs; outside it "
                  "cannot reach the limit and skips itself.",
    },
    {
        "engines": ("docker", "podman"),
        "tests": ["test.test_os.MemfdCreateTests.test_memfd_create"],
        "outside": "pass", "inside": "error",
        "reason": "Deliberate (seccomp, where vm.memfd_noexec cannot be set: in a "
                  "container, rootless, degraded, kernels before 6.3): memfd_create "
                  "without MFD_NOEXEC_SEAL is EPERM, so a memory file can never be "
                  "executed. The LocalEngine as root sets the sysctl in the run's pid "
                  "namespace instead, and os.memfd_create works there.",
    },
    {
        "engines": ("docker", "podman"),
        "tests": ["test.test_socket.GeneralModuleTests.testHostnameRes",
                  "test.test_socket.GeneralModuleTests.testSockName"],
        "outside": "skip", "inside": "pass",
        "reason": "The baseline's, not a restriction: the sandbox's hostname resolves "
                  "(spr writes it into the run's /etc/hosts), the plain container's used as "
                  "the DockerEngine's baseline does not, so these tests skip themselves there.",
    },
]
