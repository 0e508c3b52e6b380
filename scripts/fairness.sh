#!/usr/bin/env bash
# Fairness of the release todo-server on a SQLite file: one user's creates, measured with wrk,
# first alone and then while another user renames a tag across $TAGGED tasks in a loop (the
# rename is sent again as soon as it answers). One command, rerunnable:
#
#   scripts/fairness.sh
#
# It builds `cargo build --release -p todo-server` (or runs $SERVER_BIN), starts it on a SQLite
# file in a fresh temporary directory (SQLITE_SYNCHRONOUS=full, as scripts/load.sh), seeds the
# renaming user's tagged tasks with the sqlite3 command line (the schema's triggers fill the tag
# index as for any insert), and prints, for each of the two runs, the other user's creates per
# second and p99, and how many renames finished. Knobs (environment): DURATION (10s),
# CONNECTIONS (16), THREADS (2), PORT (18081), TAGGED (5000), SERVER_BIN, SKIP_BUILD, RESULTS_DIR
# (target/fairness/<timestamp>).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PORT=${PORT:-18081}
TAGGED=${TAGGED:-5000}
BASE="http://127.0.0.1:$PORT"

die() { echo "fairness.sh: $*" >&2; exit 1; }
for tool in cargo curl jq wrk sqlite3; do
    command -v "$tool" >/dev/null || die "$tool is required (wrk: apt-get install -y wrk)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/todo-fairness.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$ROOT/target/fairness/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS_DIR"
SERVER_PID=
LOOP_PID=
cleanup() {
    [[ -n $LOOP_PID ]] && kill "$LOOP_PID" 2>/dev/null || true
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

BETTER_AUTH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BETTER_AUTH_SECRET

if [[ -n ${SERVER_BIN:-} ]]; then
    BIN=$SERVER_BIN
else
    [[ -n ${SKIP_BUILD:-} ]] || cargo build --release -p todo-server
    BIN=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/todo-server
fi
[[ -x $BIN ]] || die "no binary at $BIN"

RENAMER=renamer
OTHER=other
RENAMER_TOKEN=$("$BIN" token --user "$RENAMER" --minutes 60)
OTHER_TOKEN=$("$BIN" token --user "$OTHER" --minutes 60)

RUST_LOG=warn SQLITE_SYNCHRONOUS=full "$BIN" --host 127.0.0.1 --port "$PORT" \
    --database-url "sqlite://$WORK/todo.db" >"$RESULTS_DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
    curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -5 "$RESULTS_DIR/server.log")"
    sleep 0.05
done

echo "== seeding $TAGGED tasks of $RENAMER tagged foo"
seq 1 "$TAGGED" | awk -v u="$RENAMER" '{ printf "insert into tasks (user_id, title, title_key, description, description_key, completed, priority, due_date, created_at, updated_at, version, tags, tag_keys) values (\047%s\047, \047Tagged %d\047, \047tagged %d\047, null, null, 0, 1, null, %d, %d, 1, \047[\"foo\"]\047, \047[\"foo\"]\047);\n", u, $1, $1, 1700000000000000 + $1, 1700000000000000 + $1 }' |
    { echo "begin;"; cat; echo "commit;"; } | sqlite3 "$WORK/todo.db"
count=$(curl -fsS "$BASE/api/tags" -H "Authorization: Bearer $RENAMER_TOKEN" | jq '.[0].count')
[[ $count == "$TAGGED" ]] || die "expected $TAGGED tagged tasks, the tag counts say $count"

# Renames foo -> bar -> foo ... until killed; each completed rename is one line in $1.
rename_loop() {
    local from=foo to=bar
    while true; do
        curl -fsS -X PATCH "$BASE/api/tags/$from" -H "Authorization: Bearer $RENAMER_TOKEN" \
            -H 'Content-Type: application/json' -d "{\"name\": \"$to\"}" >>"$1" || true
        echo >>"$1"
        local t=$from
        from=$to
        to=$t
    done
}

run() { # label
    local out=$RESULTS_DIR/wrk-$1.txt
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $OTHER_TOKEN" \
        -s "$ROOT/scripts/wrk_create.lua" "$BASE/api/$OTHER/tasks" >"$out" 2>&1
    grep '^RESULT' "$out" || die "no RESULT line in $out"
}

echo "== $OTHER's creates alone"
alone=$(run alone)
echo "== $OTHER's creates while $RENAMER renames a tag across $TAGGED tasks in a loop"
: >"$WORK/renames"
rename_loop "$WORK/renames" &
LOOP_PID=$!
sleep 0.5
during=$(run during)
kill "$LOOP_PID" 2>/dev/null || true
wait "$LOOP_PID" 2>/dev/null || true
LOOP_PID=
renames=$(grep -c '"count":' "$WORK/renames" || true)

field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }
echo
printf '%-44s %10s %10s %8s %10s\n' "run ($CONNECTIONS connections, $DURATION)" "creates/s" p99_ms errors renames
printf '%-44s %10s %10s %8s %10s\n' "creates alone" "$(field rps "$alone")" "$(field p99_ms "$alone")" "$(field errors "$alone")" -
printf '%-44s %10s %10s %8s %10s\n' "creates while renames across $TAGGED tasks" "$(field rps "$during")" "$(field p99_ms "$during")" "$(field errors "$during")" "$renames"
echo "raw outputs: $RESULTS_DIR"
