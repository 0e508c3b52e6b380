#!/usr/bin/env bash
# Instructions the server executes per request, counted by valgrind's callgrind: repeatable for the
# same binary and requests within about 1% (the database's answers and the scheduler still vary a
# little), whatever else the machine is doing, so two builds can be compared
# without the machine's noise (which is often ±15% in requests per second here). Counts the
# server process only; the database's own work is not in it.
#
#   scripts/instructions.sh <binary> <create|get|list> [requests (1000)] [database URL]
#
# The database defaults to a fresh PostgreSQL database `todo_instructions` (dropped and
# recreated); pass `sqlite://<file>` to count on SQLite. The server is started under callgrind,
# 100 tasks are created to warm it up, the counters are zeroed, then <requests> requests are
# made one after another on one keep-alive connection, and the total is printed per request.
# Needs valgrind (callgrind_control, callgrind_annotate), python3, curl, psql.
set -euo pipefail

BIN=${1:?usage: instructions.sh <binary> <create|get|list> [requests] [database URL]}
KIND=${2:?usage: instructions.sh <binary> <create|get|list> [requests] [database URL]}
N=${3:-1000}
PORT=${PORT:-18390}
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
URL=${4:-}
if [[ -z $URL ]]; then
    psql -d postgres -qc 'drop database if exists todo_instructions' \
        -c 'create database todo_instructions' >/dev/null
    URL="postgres://$PGUSER@$PGHOST:5432/todo_instructions"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BETTER_AUTH_SECRET=instructions-secret-0123456789-abcdefghijkl
TOKEN=$("$BIN" token --user bench)
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" --host 127.0.0.1 --port "$PORT" --database-url "$URL" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

drive() { # kind count
    python3 - "$PORT" "$TOKEN" "$1" "$2" <<'EOF'
import http.client, sys
port, token, kind, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
body = '{"title":"Load test task","description":"Created by wrk","priority":"high"}'
for _ in range(n):
    if kind == "create":
        conn.request("POST", "/api/bench/tasks", body, headers)
    elif kind == "list":
        conn.request("GET", "/api/bench/tasks?limit=50", headers=headers)
    else:
        conn.request("GET", "/api/bench/tasks/50", headers=headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status >= 300:
        sys.exit(f"{kind}: status {resp.status}")
EOF
}

drive create 100
callgrind_control -z "$PID" >/dev/null
drive "$KIND" "$N"
callgrind_control -d "$PID" >/dev/null
kill "$PID"
wait "$PID" 2>/dev/null || true
TOTAL=$(callgrind_annotate "$WORK/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$(basename "$BIN") $KIND: $((TOTAL / N)) instructions per request ($N requests, $TOTAL in all)"
