"""`python -m spr ...` is the C `spr` program: the same commands, flags,
output and exit codes, because it *is* that program (exec'd in place of
this interpreter). The package installs no `spr` console script, so the C
binary on PATH is never shadowed."""
import sys

from .cli import exec_spr

if __name__ == "__main__":
    exec_spr(sys.argv[1:])
