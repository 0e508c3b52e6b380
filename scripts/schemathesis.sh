#!/usr/bin/env bash
# Fuzzes the live server against its own contract with schemathesis (from PyPI): no 5xx, and
# every response (status, content type, headers, body) must match /openapi.json.
#
#   scripts/schemathesis.sh [max-examples]        (default 25 per operation)
#
# It starts target/debug/todo-server (build it first: cargo build -p todo-server) on a free port
# with a fresh SQLite database, registers a built-in account for a valid token, and points the
# `{user_id}` path parameter at that account. The sign-in rate limits are off, so the fuzzer
# exercises login and registration rather than their 429 (tested in tests/hardening.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${1:-25}"
BIN="${TODO_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/todo-server}"
[ -x "$BIN" ] || { echo "schemathesis.sh: $BIN not found (cargo build -p todo-server)" >&2; exit 1; }
command -v schemathesis >/dev/null || pip install -q 'schemathesis>=4,<5'

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BETTER_AUTH_SECRET="schemathesis-secret-schemathesis-secret" RUST_LOG=warn \
    AUTH_RATE_PER_IP=0 AUTH_RATE_PER_ACCOUNT=0 \
    "$BIN" --port "$PORT" --database-url "sqlite://$WORK/todo.db" --builtin-accounts true \
    >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

up=no
for _ in $(seq 1 200); do
    if curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null; then up=yes; break; fi
    sleep 0.1
done
if [ "$up" != yes ]; then
    echo "schemathesis.sh: the server did not start; its log:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

REG="$(curl -fs -X POST "http://127.0.0.1:$PORT/api/auth/register" \
    -H 'Content-Type: application/json' \
    -d '{"email":"fuzz@example.com","password":"fuzz-password"}')"
TOKEN="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$REG")"
USER_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["id"])' <<<"$REG")"

cat >"$WORK/schemathesis.toml" <<TOML
[parameters]
"path.user_id" = "$USER_ID"
TOML

schemathesis --config-file "$WORK/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
    --url "http://127.0.0.1:$PORT/api" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --seed 1 \
    --workers 2 \
    --no-color
