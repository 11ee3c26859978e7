#!/usr/bin/env bash
# Obelix's queue side by side with pgmq (on the same PostgreSQL) and NATS JetStream, on this
# machine, in one run (examples/queue_bench). Prints Markdown tables (docs/benchmarks.md keeps
# the last results).
#   scripts/queue_bench.sh [seconds-per-run] [queue_bench options, e.g. --systems pgmq,jetstream]
#   (default 10 s; `cargo run --features queue-peers --example queue_bench -- --help` lists the options)
# PostgreSQL as for `cargo run`: DATABASE_URL, or a private cluster in a temp dir; pgmq goes into
# the database pgmq_bench on that same server. NATS: a private nats-server with JetStream (file
# storage in the temp dir, port 14222), unless NATS_URL names a running one. Obelix listens on
# port 18082 (OBELIX_PORT, NATS_PORT change them). OBELIX_BIN runs another build of Obelix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ -z "${NATS_URL:-}" ]] && ! command -v nats-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
fi

DURATION=${1:-10}
shift || true
# Not scripts/bench.sh's ports, so that both can run on one machine.
OBELIX_PORT=${OBELIX_PORT:-18082}
NATS_PORT=${NATS_PORT:-14222}
WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet --bin obelix --example queue_bench --features queue-peers

wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || { echo "port $1 is taken; set ${2}_PORT" >&2; exit 1; }; }
wait_tcp() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on port $1" >&2; exit 1; }

if [[ -z "${NATS_URL:-}" ]]; then
    port_free "$NATS_PORT" NATS
    nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" -l "$WORK/nats.log" & NATS_PID=$!; PIDS+=("$NATS_PID")
    wait_tcp "$NATS_PORT"
    kill -0 "$NATS_PID" 2>/dev/null || { echo "nats-server exited:" >&2; cat "$WORK/nats.log" >&2; exit 1; }
    NATS_URL=127.0.0.1:$NATS_PORT
fi

port_free "$OBELIX_PORT" OBELIX
# The startup log line "inspect its database with: psql ..." tells where the private cluster is.
OBELIX__SERVER__PORT=$OBELIX_PORT OBELIX__DATABASE__DATA_DIR="$WORK/pgdata" \
RUST_LOG=warn,obelix::startup=info "${OBELIX_BIN:-target/release/obelix}" >"$WORK/obelix.log" 2>&1 &
OBELIX_PID=$!; PIDS+=("$OBELIX_PID")
wait_http "http://127.0.0.1:$OBELIX_PORT/readyz"
# Ready, and ours: not another server that already held the port.
kill -0 "$OBELIX_PID" 2>/dev/null || { echo "Obelix exited:" >&2; cat "$WORK/obelix.log" >&2; exit 1; }
if [[ -n "${DATABASE_URL:-}" ]]; then
    PG_URL=$DATABASE_URL
else
    # PGPASSFILE=<password file> psql -h <socket dir> -p <port> -U <user> -d <database>
    read -r pg_pass_file pg_host pg_port pg_user pg_db < <(sed -n 's/.*inspect its database with: PGPASSFILE=\([^ ]*\) psql -h \([^ ]*\) -p \([0-9]*\) -U \([^ ]*\) -d \([^ ]*\).*/\1 \2 \3 \4 \5/p' "$WORK/obelix.log" | head -1)
    [[ -n "${pg_host:-}" ]] || { echo "no psql line in Obelix's log:" >&2; cat "$WORK/obelix.log" >&2; exit 1; }
    # The password is the last field of the pgpass line (alphanumeric: nothing to escape).
    pg_password=$(awk -F: '{print $NF}' "$pg_pass_file")
    PG_URL="postgres://$pg_user:$pg_password@localhost:$pg_port/$pg_db?host=$pg_host"
fi
# A fresh cluster (initdb, migrations) keeps PostgreSQL busy for a moment on these same cores.
sleep 3

echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); Obelix release build, ${DATABASE_URL:+PostgreSQL at DATABASE_URL}${DATABASE_URL:-private PostgreSQL cluster}."
target/release/examples/queue_bench --obelix "http://127.0.0.1:$OBELIX_PORT" --pg-url "$PG_URL" \
    --nats "$NATS_URL" --seconds "$DURATION" "$@"

kill -INT "$OBELIX_PID"; wait "$OBELIX_PID" || true
