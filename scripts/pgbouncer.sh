#!/usr/bin/env bash
# PgBouncer in TRANSACTION mode in front of a PostgreSQL, as Neon's pooled URL, Supabase's pooler
# and most Kubernetes set-ups run it, with `max_prepared_statements` unset (Debian's 1.18 has no
# such setting): a named prepared statement is not carried from one transaction to the next.
#
#   scripts/pgbouncer.sh start    # idempotent; prints the pooled URL on stdout (nothing else)
#   scripts/pgbouncer.sh stop     # idempotent
#   scripts/pgbouncer.sh url      # prints the pooled URL
#
# Environment (all optional):
#   PGBOUNCER_PORT      listen port on 127.0.0.1 (default 6432)
#   PGBOUNCER_UPSTREAM  host:port of PostgreSQL (default 127.0.0.1:5432); trust auth assumed
#   PGBOUNCER_DB        database name (default test), user postgres
#   PGBOUNCER_DIR       directory for config, pid and log (default /tmp/pgbouncer-ci)
#   PGBOUNCER_USER      system user to run as when started as root (default pgbouncer-ci;
#                       PgBouncer refuses to run as root; the user is created if missing)
#   PGBOUNCER_POOL_SIZE server connections per database/user (default 40)
set -euo pipefail

port="${PGBOUNCER_PORT:-6432}"
upstream="${PGBOUNCER_UPSTREAM:-127.0.0.1:5432}"
db="${PGBOUNCER_DB:-test}"
dir="${PGBOUNCER_DIR:-/tmp/pgbouncer-ci}"
run_as="${PGBOUNCER_USER:-pgbouncer-ci}"
pool_size="${PGBOUNCER_POOL_SIZE:-40}"
url="postgres://postgres@127.0.0.1:${port}/${db}"

log() { printf 'pgbouncer.sh: %s\n' "$*" >&2; }

pid_alive() {
    [[ -f $dir/pgbouncer.pid ]] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null
}

as_user() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u "$run_as" -- "$@"
    else
        "$@"
    fi
}

start() {
    if pid_alive; then
        log "already running (pid $(cat "$dir/pgbouncer.pid"))"
        echo "$url"
        return 0
    fi
    if ! command -v pgbouncer >/dev/null; then
        log "pgbouncer is missing; installing Debian's package"
        if [[ $(id -u) == 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null ||
                { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }
        fi
        command -v pgbouncer >/dev/null || { log "FAIL: cannot install pgbouncer"; exit 1; }
    fi
    if [[ $(id -u) == 0 ]] && ! id "$run_as" >/dev/null 2>&1; then
        useradd -r -M -s /usr/sbin/nologin "$run_as"
    fi
    mkdir -p "$dir"
    local host="${upstream%:*}" uport="${upstream##*:}"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
${db} = host=${host} port=${uport} dbname=${db}
* = host=${host} port=${uport}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${dir}/userlist.txt
pool_mode = transaction
default_pool_size = ${pool_size}
max_client_conn = 2000
; max_prepared_statements deliberately unset (1.21+ only; 0 = off there too)
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
admin_users = postgres
INI
    printf '"postgres" ""\n' >"$dir/userlist.txt"
    if [[ $(id -u) == 0 ]]; then
        chown -R "$run_as" "$dir"
    fi
    rm -f "$dir/pgbouncer.pid"
    as_user pgbouncer -d "$dir/pgbouncer.ini"
    for _ in $(seq 1 50); do
        if psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
            log "transaction mode on 127.0.0.1:${port} -> ${upstream}/${db} (pid $(cat "$dir/pgbouncer.pid"))"
            echo "$url"
            return 0
        fi
        sleep 0.2
    done
    log "FAIL: pgbouncer did not answer; its log:"
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    exit 1
}

stop() {
    if pid_alive; then
        local pid
        pid="$(cat "$dir/pgbouncer.pid")"
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        log "stopped"
    fi
    rm -f "$dir/pgbouncer.pid"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url) echo "$url" ;;
*)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
