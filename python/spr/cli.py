"""The `spr` command line from Python.

spr's admin CLI is the C program `spr` (list/stop/kill/cleanup managed
containers, doctor, version; SPEC §6, §7). `python -m spr` and main() run
that program, found beside libspr (spr._locate.find_spr_program), so both
spellings behave identically and there is one implementation of it.

build_parser() describes the same command line with argparse (the
reference exposed one; useful to validate or introspect arguments);
build_engine() makes the DockerEngine the remote options describe."""
import argparse
import os
import subprocess
import sys
from typing import Sequence

from . import _locate

NOT_FOUND_STATUS = 127


def _program_or_exit():
    try:
        return _locate.find_spr_program()
    except _locate.NotFound as e:
        sys.stderr.write(f"python -m spr: {e}\n")
        sys.exit(NOT_FOUND_STATUS)


def exec_spr(argv: Sequence[str]) -> None:
    """Replaces this process with `spr ARGV...` (same pid, stdio, exit code)."""
    program = _program_or_exit()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, ["spr", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `spr ARGV...` (default: sys.argv[1:]) and returns its exit status."""
    program = _program_or_exit()
    args = list(sys.argv[1:] if argv is None else argv)
    return subprocess.run([program, *args], check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    """The C spr's command line as an argparse parser (prog "python -m spr")."""
    def common(p):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--engine", choices=["docker", "podman"],
                       help="the container CLI (default: docker)")
        p.add_argument("--python", help="interpreter for doctor's trial run")
        p.add_argument("--cgroup-parent", help="cgroup that runs go under")
        p.add_argument("--docker-context", help="a docker context")
        p.add_argument("--docker-host", help="unix://PATH, tcp://HOST:PORT or ssh://...")
        p.add_argument("--ssh-host", help="a daemon over SSH")
        p.add_argument("--ssh-user")
        p.add_argument("--ssh-port", type=int)
        p.add_argument("--ssh-key-path")

    parser = argparse.ArgumentParser(
        prog="python -m spr",
        description="Administer spr: the LocalEngine on this host and the containers the "
                    "DockerEngine started (only those) on a local or remote daemon.")
    common(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="managed containers or images")
    lsub = lst.add_subparsers(dest="resource", required=True)
    lc = lsub.add_parser("containers", help="managed containers")
    lc.add_argument("--all", action="store_true", help="also stopped ones")
    lsub.add_parser("images", help="managed images")
    c = sub.add_parser("container", help="one managed container in detail")
    c.add_argument("container_id")
    stop = sub.add_parser("stop", help="stop managed containers")
    ssub = stop.add_subparsers(dest="resource", required=True)
    sc = ssub.add_parser("container", help="stop one managed container")
    sc.add_argument("container_id")
    sc.add_argument("--timeout-seconds", type=int, default=10)
    sa = ssub.add_parser("all", help="stop every running managed container")
    sa.add_argument("--timeout-seconds", type=int, default=10)
    kill = sub.add_parser("kill", help="kill a managed container")
    ksub = kill.add_subparsers(dest="resource", required=True)
    kc = ksub.add_parser("container", help="kill one managed container")
    kc.add_argument("container_id")
    sub.add_parser("cleanup", help="remove what killed callers left behind")
    sub.add_parser("doctor", help="what the LocalEngine and the container CLIs can use here")
    sub.add_parser("version", help="print the version")
    return parser


def build_engine(args: argparse.Namespace):
    """The DockerEngine for parsed remote options (build_parser's)."""
    from safe_py_runner import DockerEngine
    return DockerEngine(docker_context=args.docker_context, docker_host=args.docker_host,
                        ssh_host=args.ssh_host, ssh_user=args.ssh_user,
                        ssh_port=args.ssh_port, ssh_key_path=args.ssh_key_path,
                        container_cli=getattr(args, "engine", None))


def __getattr__(name):
    # spr.cli.DockerEngine, as in the reference, loaded on first use.
    if name == "DockerEngine":
        from safe_py_runner import DockerEngine
        return DockerEngine
    raise AttributeError(f"module 'spr.cli' has no attribute {name!r}")
