#!/usr/bin/env bash
# Load test of the release todo-server over HTTP, on SQLite and on PostgreSQL, next to what
# PostgreSQL itself does on the same machine (pgbench). One command, rerunnable:
#
#   scripts/load.sh
#
# It builds `cargo build --release -p todo-server`, then for each backend starts the server
# (SQLite: a file in a fresh temporary directory, SQLITE_SYNCHRONOUS=full; PostgreSQL: the
# database $PG_DB, dropped and recreated each run), creates a user with 50 tasks over HTTP, and
# runs wrk against
#   get     GET  /api/<user>/tasks/<id>
#   list    GET  /api/<user>/tasks?limit=50
#   create  POST /api/<user>/tasks            (scripts/wrk_create.lua)
# Then the databases' own limits on the same machine: pgbench on the same database (`pgbench -S`,
# one row by primary key; and a prepared single-row insert into the same `tasks` table the server
# writes), and the sqlite3 command line inserting single rows (one transaction each,
# synchronous = FULL) into the server's database file. It prints one table with requests/s, p99,
# errors, CPU used, the server's peak RSS, and each figure against its target, then CPU per request
# in microseconds for server, client and the rest of the machine (see
# docs/benchmarks.md). Raw outputs are kept in $RESULTS_DIR.
#
# Needs: cargo, curl, jq, wrk (apt-get install wrk), psql, pgbench, a PostgreSQL that $PGUSER
# can create databases on. Knobs (environment): DURATION (10s), CONNECTIONS (64), THREADS (2),
# PORT (18080), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), PG_DB (todo_bench),
# PG_SSLMODE (disable: the server and pgbench both talk plain TCP to the local database; `prefer`
# makes both use TLS when the server offers it), PGBENCH_SCALE (1), RESULTS_DIR
# (target/load/<timestamp>), SKIP_BUILD (unset), SERVER_BIN (a binary to run instead of building
# one, e.g. the previous release for a back-to-back comparison), BACKENDS ("sqlite postgres"; name one to run only
# that server; pgbench runs with postgres), POOLED (unset; 1 puts the PostgreSQL server behind
# PgBouncer in transaction mode, see below), PGBOUNCER_PORT (16432), PGBOUNCER_DIR
# (/tmp/pgbouncer-bench), PGBOUNCER_POOL_SIZE (40).
#
# POOLED=1: scripts/pgbouncer.sh starts a PgBouncer of its own in transaction mode in front of
# $PG_DB (stopped before the database is dropped, started again once it is recreated, stopped at
# the end), and the server is started as a user behind a transaction pooler would start it: the
# pooled URL with pgbouncer=true, and DATABASE_DIRECT_URL (the direct URL) for its migrations.
# pgbench still runs on the direct URL: it measures the database itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
export PGHOST=${PGHOST:-127.0.0.1}
export PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-postgres}
PG_DB=${PG_DB:-todo_bench}
PG_SSLMODE=${PG_SSLMODE:-disable}
export PGSSLMODE=$PG_SSLMODE
PG_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$PG_DB?sslmode=$PG_SSLMODE"
PGBENCH_SCALE=${PGBENCH_SCALE:-1}
SQLITE_INSERTS=${SQLITE_INSERTS:-5000}
BACKENDS=${BACKENDS:-sqlite postgres}
POOLED=${POOLED:-}
export PGBOUNCER_PORT=${PGBOUNCER_PORT:-16432}
export PGBOUNCER_DIR=${PGBOUNCER_DIR:-/tmp/pgbouncer-bench}
export PGBOUNCER_DB=$PG_DB
export PGBOUNCER_UPSTREAM=$PGHOST:$PGPORT
wants() { [[ " $BACKENDS " == *" $1 "* ]]; }
USER_ID=bench-user
BASE="http://127.0.0.1:$PORT"

# Targets (from the performance issue).
GET_VS_PGBENCH_S=0.70
LIST_VS_PGBENCH_S=0.40
CREATE_VS_PGBENCH_INSERT=0.50
SQLITE_READ_VS_PG=2
SQLITE_CREATE_MIN=5000
P99_MAX_MS=15
RSS_MAX_MIB=64

die() { echo "load.sh: $*" >&2; exit 1; }
for tool in cargo curl jq wrk psql pgbench sqlite3; do
    command -v "$tool" >/dev/null || die "$tool is required (wrk: apt-get install -y wrk)"
done
pg_isready -q 2>/dev/null || psql -d postgres -Atqc 'select 1' >/dev/null ||
    die "PostgreSQL at $PGHOST:$PGPORT is not reachable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/todo-load.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$ROOT/target/load/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RESULTS_DIR"
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $POOLED ]]; then
        "$ROOT/scripts/pgbouncer.sh" stop 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A 64-hex-character secret shared by the server and the token command.
BETTER_AUTH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export BETTER_AUTH_SECRET

if [[ -n ${SERVER_BIN:-} ]]; then
    BIN=$SERVER_BIN
else
    echo "== build (cargo build --release -p todo-server)"
    if [[ -z ${SKIP_BUILD:-} ]]; then
        cargo build --release -p todo-server
    fi
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    BIN=$TARGET_DIR/release/todo-server
fi
[[ -x $BIN ]] || die "no binary at $BIN"

CLK_TCK=$(getconf CLK_TCK)
# Results, one line each: scenario|backend|rps|p99_ms|errors|server_cpu|client_cpu|busy_pct
RESULTS=$RESULTS_DIR/results.txt
: >"$RESULTS"
declare -A RSS_KIB

# CPU seconds (user + system) a process has used so far.
proc_cpu() { awk -v t="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "busy total" jiffies of the whole machine.
machine_jiffies() { awk '/^cpu / { idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print total - idle, total }' /proc/stat; }

start_server() { # <database URL> <backend name> [direct URL, for migrations behind a pooler]
    DATABASE_DIRECT_URL=${3:-} RUST_LOG=warn SQLITE_SYNCHRONOUS=full "$BIN" --host 127.0.0.1 \
        --port "$PORT" --database-url "$1" >"$RESULTS_DIR/server-$2.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -5 "$RESULTS_DIR/server-$2.log")"
        sleep 0.05
    done
    die "the server did not answer /healthz"
}

stop_server() { # backend
    RSS_KIB[$1]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

# Creates the user's 50 tasks over HTTP; prints the id of one of them.
seed() {
    local id= i
    for i in $(seq 1 50); do
        local body
        body=$(jq -cn --arg t "Seed task $i" '{title: $t, description: "Seeded by load.sh", priority: "medium"}')
        local created
        created=$(curl -fsS -X POST "$BASE/api/$USER_ID/tasks" -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d "$body" | jq -r .id)
        if [[ $i == 25 ]]; then id=$created; fi
    done
    local count
    count=$(curl -fsS "$BASE/api/$USER_ID/tasks?limit=100" -H "Authorization: Bearer $TOKEN" | jq length)
    [[ $count == 50 ]] || die "expected 50 seeded tasks, the list has $count"
    echo "$id"
}

# Runs a measured command; records CPU of the server (if any), of the client, and of the machine.
# Usage: measure <scenario> <backend> <raw output file> <command...>; leaves the figures in
# M_WALL (seconds), M_SERVER_CPU, M_CLIENT_CPU (cores), M_BUSY (% of the machine).
measure() {
    local scenario=$1 backend=$2 out=$3
    shift 3
    local s0=0 s1=0 m0 m1
    [[ -n $SERVER_PID ]] && s0=$(proc_cpu "$SERVER_PID")
    m0=$(machine_jiffies)
    local t0 t1
    t0=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    { time "$@" >"$out" 2>&1; } 2>"$out.time" || echo "warning: $scenario/$backend exited non-zero (see $out)" >&2
    t1=$(date +%s.%N)
    m1=$(machine_jiffies)
    [[ -n $SERVER_PID ]] && s1=$(proc_cpu "$SERVER_PID")
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    M_WALL=$wall
    M_SERVER_CPU=$(awk -v a="$s0" -v b="$s1" -v w="$wall" 'BEGIN { printf "%.2f", (b - a) / w }')
    M_CLIENT_CPU=$(awk -v w="$wall" '{ printf "%.2f", ($1 + $2) / w }' "$out.time")
    M_BUSY=$(echo "$m0 $m1" | awk '{ printf "%.0f", 100 * ($3 - $1) / ($4 - $2) }')
}

run_wrk() { # scenario backend url [script]
    local scenario=$1 backend=$2 url=$3 script=${4:-$ROOT/scripts/wrk_report.lua}
    local out=$RESULTS_DIR/wrk-$scenario-$backend.txt
    echo "-- wrk $scenario on $backend ($url)"
    measure "$scenario" "$backend" "$out" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
        -H "Authorization: Bearer $TOKEN" -s "$script" "$url"
    local line
    line=$(grep '^RESULT' "$out" || die "no RESULT line in $out")
    local rps p99 errors
    rps=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$line")
    errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
    printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$scenario" "$backend" "$rps" "$p99" "$errors" \
        "$M_SERVER_CPU" "$M_CLIENT_CPU" "$M_BUSY" >>"$RESULTS"
}

run_pgbench() { # scenario pgbench-args...
    local scenario=$1
    shift
    local out=$RESULTS_DIR/pgbench-$scenario.txt
    rm -f "$WORK"/pgb.*
    echo "-- pgbench $scenario: pgbench $* -c$CONNECTIONS -j$THREADS -T${DURATION%s}"
    measure "$scenario" pgbench "$out" pgbench "$@" -c"$CONNECTIONS" -j"$THREADS" -T"${DURATION%s}" \
        --log --sampling-rate=0.1 --log-prefix="$WORK/pgb" "$PG_DB"
    local tps failed p99
    tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out" | head -1)
    failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$out")
    # Per-transaction log, third field = latency in microseconds (10% sample).
    p99=$(cat "$WORK"/pgb.* 2>/dev/null | awk '{ print $3 }' | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) printf "%.3f", a[int(NR * 0.99)] / 1000; else print "nan" }')
    printf '%s|pgbench|%s|%s|%s|-|%s|%s\n' "$scenario" "${tps:-0}" "$p99" "${failed:-?}" \
        "$M_CLIENT_CPU" "$M_BUSY" >>"$RESULTS"
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
TOKEN=$("$BIN" token --user "$USER_ID" --minutes 60)

if wants sqlite; then
echo "== SQLite"
start_server "sqlite://$WORK/todo.db" sqlite
TASK_ID=$(seed)
run_wrk get sqlite "$BASE/api/$USER_ID/tasks/$TASK_ID"
run_wrk list sqlite "$BASE/api/$USER_ID/tasks?limit=50"
run_wrk create sqlite "$BASE/api/$USER_ID/tasks" "$ROOT/scripts/wrk_create.lua"
stop_server sqlite

echo "-- sqlite3 command line: $SQLITE_INSERTS single-row inserts, one transaction each, synchronous = FULL"
{
    echo "pragma synchronous = full;"
    seq 1 "$SQLITE_INSERTS" | awk '{ printf "insert into tasks (user_id, title, title_key, description, description_key, completed, priority, due_date, created_at, updated_at, version) values (\047sqlite3-user\047, \047Load test task\047, \047load test task\047, \047Created by sqlite3\047, \047created by sqlite3\047, 0, 2, null, %d, %d, 1) returning id;\n", 1700000000000000 + $1, 1700000000000000 + $1 }'
} >"$WORK/sqlite-insert.sql"
measure insert sqlite3 "$RESULTS_DIR/sqlite3-insert.txt" sqlite3 "$WORK/todo.db" ".read $WORK/sqlite-insert.sql"
printf 'insert|sqlite3|%s|-|0|-|%s|%s\n' "$(awk -v n="$SQLITE_INSERTS" -v w="$M_WALL" 'BEGIN { printf "%.1f", n / w }')" \
    "$M_CLIENT_CPU" "$M_BUSY" >>"$RESULTS"
fi

if wants postgres; then
if [[ -n $POOLED ]]; then
    echo "== PostgreSQL through PgBouncer in transaction mode (database $PG_DB, dropped and recreated)"
    # PgBouncer holds server connections to the database: it is stopped while the database is
    # dropped and recreated.
    "$ROOT/scripts/pgbouncer.sh" stop
else
    echo "== PostgreSQL (database $PG_DB, dropped and recreated)"
fi
psql -d postgres -qAtc "drop database if exists \"$PG_DB\" with (force)"
psql -d postgres -qAtc "create database \"$PG_DB\""
if [[ -n $POOLED ]]; then
    POOLED_URL=$("$ROOT/scripts/pgbouncer.sh" start)
    echo "$POOLED_URL (pool_mode = transaction, default_pool_size ${PGBOUNCER_POOL_SIZE:-40})" \
        >"$RESULTS_DIR/pgbouncer.txt"
    start_server "$POOLED_URL?pgbouncer=true" postgres "$PG_URL"
else
    start_server "$PG_URL" postgres
fi
TASK_ID=$(seed)
run_wrk get postgres "$BASE/api/$USER_ID/tasks/$TASK_ID"
run_wrk list postgres "$BASE/api/$USER_ID/tasks?limit=50"
run_wrk create postgres "$BASE/api/$USER_ID/tasks" "$ROOT/scripts/wrk_create.lua"
stop_server postgres

echo "== pgbench (the database's own limits, direct, server stopped)"
pgbench -i -q -s "$PGBENCH_SCALE" "$PG_DB" >"$RESULTS_DIR/pgbench-init.txt" 2>&1
cat >"$WORK/insert.sql" <<'SQL'
insert into tasks (user_id, title, title_key, description, description_key, completed, priority, due_date, created_at, updated_at, version)
values ('pgbench-user', 'Load test task', 'load test task', 'Created by pgbench', 'created by pgbench', false, 2, null, now(), now(), 1)
returning id, user_id, title, description, completed, priority, due_date, created_at, updated_at, version;
SQL
cp "$WORK/insert.sql" "$RESULTS_DIR/pgbench-insert.sql"
run_pgbench select-S -S
run_pgbench select-S-prepared -S -M prepared
run_pgbench insert -n -M prepared -f "$WORK/insert.sql"
fi

# ---- report ----
val() { awk -F'|' -v s="$1" -v b="$2" -v f="$3" '$1 == s && $2 == b { print $f }' "$RESULTS"; }
ratio() { echo "$1 $2" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "nan" }'; }
ge() { echo "$1 $2" | awk '{ print ($1 >= $2) ? "yes" : "NO" }'; }
lt() { echo "$1 $2" | awk '{ print ($1 < $2) ? "yes" : "NO" }'; }

S_TPS=$(val select-S pgbench 3)
I_TPS=$(val insert pgbench 3)

echo
echo "Results ($CONNECTIONS connections, $THREADS client threads, $DURATION each). srv/clt = CPU cores used by"
echo "the server / by wrk or pgbench; busy = the whole machine (the database and anything else included)."
if [[ -n $POOLED ]] && wants postgres; then
    echo "postgres = the server behind PgBouncer in transaction mode ($(cat "$RESULTS_DIR/pgbouncer.txt")); pgbench direct."
fi
printf '%-17s %-8s %9s %8s %6s %5s %5s %5s  %-31s %6s %-4s %s\n' \
    scenario backend req/s p99_ms errors srv clt busy "throughput target" ratio met "p99<${P99_MAX_MS}ms"
for b in $BACKENDS; do
    for s in get list create; do
        rps=$(val "$s" "$b" 3)
        p99=$(val "$s" "$b" 4)
        case "$b/$s" in
            postgres/get) tgt=">= $GET_VS_PGBENCH_S x pgbench -S"; r=$(ratio "$rps" "$S_TPS"); ok=$(ge "$r" $GET_VS_PGBENCH_S) ;;
            postgres/list) tgt=">= $LIST_VS_PGBENCH_S x pgbench -S"; r=$(ratio "$rps" "$S_TPS"); ok=$(ge "$r" $LIST_VS_PGBENCH_S) ;;
            postgres/create) tgt=">= $CREATE_VS_PGBENCH_INSERT x pgbench insert"; r=$(ratio "$rps" "$I_TPS"); ok=$(ge "$r" $CREATE_VS_PGBENCH_INSERT) ;;
            sqlite/get | sqlite/list) tgt=">= $SQLITE_READ_VS_PG x PostgreSQL $s"; r=$(ratio "$rps" "$(val "$s" postgres 3)"); ok=$(ge "$r" $SQLITE_READ_VS_PG) ;;
            sqlite/create) tgt=">= $SQLITE_CREATE_MIN req/s"; r=$(ratio "$rps" $SQLITE_CREATE_MIN); ok=$(ge "$rps" $SQLITE_CREATE_MIN) ;;
        esac
        printf '%-17s %-8s %9.0f %8s %6s %5s %5s %4s%%  %-31s %6s %-4s %s\n' "$s" "$b" "$rps" "$p99" \
            "$(val "$s" "$b" 5)" "$(val "$s" "$b" 6)" "$(val "$s" "$b" 7)" "$(val "$s" "$b" 8)" \
            "$tgt" "$r" "$ok" "$(lt "$p99" $P99_MAX_MS)"
    done
done
for ref in insert/sqlite3 select-S/pgbench select-S-prepared/pgbench insert/pgbench; do
    s=${ref%/*} b=${ref#*/}
    [[ -n $(val "$s" "$b" 3) ]] || continue
    printf '%-17s %-8s %9.0f %8s %6s %5s %5s %4s%%  %-31s\n' "$s" "$b" "$(val "$s" "$b" 3)" \
        "$(val "$s" "$b" 4)" "$(val "$s" "$b" 5)" - "$(val "$s" "$b" 7)" "$(val "$s" "$b" 8)" \
        "(reference)"
done
echo
echo "CPU per request, in microseconds (cores used / rate): where the machine's time goes. \"rest\" is"
echo "the machine's busy time minus server and client: PostgreSQL, or anything else running."
printf '%-17s %-8s %8s %8s %8s %8s\n' scenario backend server client rest total
NCPU=$(nproc)
while IFS='|' read -r s b rps _p99 _err srv clt busy; do
    awk -v s="$s" -v b="$b" -v r="$rps" -v srv="$srv" -v clt="$clt" -v busy="$busy" -v n="$NCPU" 'BEGIN {
        if (r <= 0) exit
        sv = (srv == "-") ? 0 : srv
        total = busy / 100 * n / r * 1e6
        rest = total - (sv + clt) / r * 1e6
        printf "%-17s %-8s %8s %8.1f %8.1f %8.1f\n", s, b, (srv == "-") ? "-" : sprintf("%.1f", sv / r * 1e6), clt / r * 1e6, rest, total
    }'
done <"$RESULTS"
echo
printf '%-28s %10s  %-30s %s\n' "server peak RSS (VmHWM)" MiB target met
for b in $BACKENDS; do
    mib=$(echo "${RSS_KIB[$b]}" | awk '{ printf "%.1f", $1 / 1024 }')
    printf '%-28s %10s  %-30s %s\n' "$b" "$mib" "< $RSS_MAX_MIB MiB" "$(lt "$mib" $RSS_MAX_MIB)"
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); raw outputs: $RESULTS_DIR"
