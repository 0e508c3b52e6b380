#!/usr/bin/env bash
# A TypeScript client generated from the contract the live server serves must compile when it
# calls every operation with only what the server needs (issue 25: the list's optional filters
# were documented as required, and a generated client did not compile).
#
#   scripts/ts-client.sh
#
# It starts target/debug/todo-server (build it first: cargo build -p todo-server) on a free port,
# reads /openapi.json, generates the types with openapi-typescript, writes a program calling every
# operation through openapi-fetch with its path parameters and required bodies only
# (scripts/ts-client/calls.py), adds the hand-written enum checks (scripts/ts-client/checks.ts),
# and type-checks both with tsc --strict. The npm packages are pinned in
# scripts/ts-client/package-lock.json and installed under target/ts-client. Needs node, npm,
# python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN="${TODO_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/debug/todo-server}"
[ -x "$BIN" ] || { echo "ts-client.sh: $BIN not found (cargo build -p todo-server)" >&2; exit 1; }
for tool in node npm python3 curl; do
    command -v "$tool" >/dev/null || { echo "ts-client.sh: $tool is required" >&2; exit 1; }
done

OUT="${CARGO_TARGET_DIR:-target}/ts-client"
mkdir -p "$OUT"
cp scripts/ts-client/package.json scripts/ts-client/package-lock.json scripts/ts-client/checks.ts "$OUT/"

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BETTER_AUTH_SECRET="ts-client-secret-ts-client-secret-0123" RUST_LOG=warn \
    "$BIN" --port "$PORT" --database-url "sqlite://$WORK/todo.db" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/openapi.json" -o "$OUT/openapi.json"

cd "$OUT"
npm ci --no-audit --no-fund --silent
npx openapi-typescript openapi.json -o schema.d.ts --silent
python3 "$ROOT/scripts/ts-client/calls.py" openapi.json >calls.ts
cat >tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "es2022",
    "module": "esnext",
    "moduleResolution": "bundler"
  },
  "files": ["calls.ts", "checks.ts"]
}
JSON
npx tsc -p tsconfig.json
echo "ts-client.sh: the generated client compiles ($(grep -c '^  await' calls.ts) operations, $OUT/calls.ts)"
