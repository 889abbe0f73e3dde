#!/bin/sh
# One stage of make check: says when it starts and how long it took, so
# that CI's log shows where the time goes. Exits with the stage's status.
#   usage: scripts/stage.sh NAME COMMAND [ARG...]
name=$1; shift
start=$(date +%s)
echo "== stage $name: started $(date -u +%H:%M:%S)"
"$@"
rc=$?
echo "== stage $name: $([ $rc = 0 ] && echo passed || echo "FAILED ($rc)") in $(($(date +%s) - start)) s"
exit $rc
