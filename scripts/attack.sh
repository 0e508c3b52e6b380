#!/usr/bin/env bash
# Resource-exhaustion replay against a RUNNING todo-server; starts nothing.
# Usage: scripts/attack.sh --base http://127.0.0.1:PORT --pid PID --token TOKEN [--scenarios a,b] ...
# (scripts/attack.sh --help lists every flag.)
exec python3 "$(dirname "$0")/attack.py" "$@"
