#!/usr/bin/env bash
# A throwaway PostgreSQL server for clbench's tests, from Debian's `postgresql` package, on
# 127.0.0.1 only (nothing else can reach it), with a database `clbench` and no password.
#
#   eval "$(bash scripts/postgres.sh start)"   # prints: export CLBENCH_TEST_PG_URL=...
#   bash scripts/postgres.sh stop
#
# The cluster lives in $CLBENCH_PG_DIR (default /tmp/clbench-pg) and listens on
# $CLBENCH_PG_PORT (default 55432). Run as root, the server runs as the `postgres` user (it
# refuses root); otherwise as you. Missing package: apt-get install -y postgresql
set -euo pipefail
DIR="${CLBENCH_PG_DIR:-/tmp/clbench-pg}"
PORT="${CLBENCH_PG_PORT:-55432}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "error: PostgreSQL's server programs are not installed (apt-get install -y postgresql)" >&2
    exit 2
fi
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-}" in
start)
    if [ ! -f "$DIR/PG_VERSION" ]; then
        mkdir -p "$DIR"
        [ "$(id -u)" -ne 0 ] || chown postgres "$DIR"
        as_owner "$BIN/initdb" -D "$DIR" -A trust -U postgres -E UTF8 >/dev/null
    fi
    if ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
            -o "-h 127.0.0.1 -p $PORT -k $DIR -c max_connections=200" start >/dev/null
    fi
    as_owner "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'clbench'" | grep -q 1 ||
        as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres clbench
    echo "export CLBENCH_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/clbench"
    ;;
stop)
    as_owner "$BIN/pg_ctl" -D "$DIR" -m fast stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: bash scripts/postgres.sh start|stop" >&2
    exit 2
    ;;
esac
