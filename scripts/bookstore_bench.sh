#!/usr/bin/env bash
# The Pygmy.com bookstore (issue 12) side by side with its peers, on this machine, in one run:
# - lookups (cached, and with the cache off) against a bare actix-web handler (examples/hello.rs);
# - buys from 64 concurrent buyers against the raw limit of the same work on the same PostgreSQL
#   (pgbench, 64 clients, bench/raw/buy.sql: a conditional UPDATE … WHERE quantity > 0 and an
#   order INSERT per transaction).
# Prints a Markdown table (docs/benchmarks.md keeps the results).
#   scripts/bookstore_bench.sh [seconds-per-run]   (default 10; also `scripts/bench.sh bookstore`)
# PostgreSQL as for `cargo run`: DATABASE_URL, or a private cluster in a temp dir; the raw
# baseline runs in the database obelix_raw_bench of that same server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

DURATION=${1:-10}
CONNECTIONS=${CONNECTIONS:-64}
# Not scripts/bench.sh's or scripts/queue_bench.sh's ports.
OBELIX_PORT=${OBELIX_PORT:-18083}
HELLO_PORT=${HELLO_PORT:-18084}
MANAGER_TOKEN=bench-manager-token
WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --quiet --bin obelix --example hello

wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# wrk's requests/s and latency percentiles, as "rps p50 p99"; any non-2xx answer stops the run.
run_wrk() {
  local out; out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk saw errors: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
  echo "$rps $p50 $p99"
}
# The run with the median requests/s of three (these machines vary by ±10 % from run to run).
run_wrk_median() {
  local runs
  runs=$( { run_wrk "$@"; run_wrk "$@"; run_wrk "$@"; } | sort -n -k1,1)
  sed -n 2p <<<"$runs"
}

start_obelix() { # $1 = the front end's cache capacity (0: off)
  OBELIX__SERVER__PORT=$OBELIX_PORT OBELIX__DATABASE__DATA_DIR="$WORK/pgdata" \
  OBELIX__BOOKSTORE__MANAGER_TOKEN=$MANAGER_TOKEN OBELIX__BOOKSTORE__CACHE_CAPACITY=$1 \
  RUST_LOG=warn,obelix::startup=info target/release/obelix >"$WORK/obelix.log" 2>&1 &
  OBELIX_PID=$!; PIDS+=("$OBELIX_PID")
  wait_http "http://127.0.0.1:$OBELIX_PORT/readyz"
  kill -0 "$OBELIX_PID" 2>/dev/null || { echo "Obelix exited:" >&2; cat "$WORK/obelix.log" >&2; exit 1; }
  # A fresh cluster (initdb, migrations) keeps PostgreSQL busy for a moment on these same
  # cores: warm up first, so that the measured runs do not pay for it.
  wrk -t1 -c16 -d3s "http://127.0.0.1:$OBELIX_PORT/bookstore/books/2" >/dev/null
}
stop_obelix() { kill -INT "$OBELIX_PID"; wait "$OBELIX_PID" || true; }

# Obelix's PostgreSQL, from its "inspect its database with: PGPASSFILE=<file> psql -h <dir> -p
# <port> -U <user> -d <db>" start-up line (or DATABASE_URL), with the database obelix_raw_bench.
raw_pg_url() {
  if [[ -n "${DATABASE_URL:-}" ]]; then sed 's|/[^/?]*\(?.*\)\?$|/obelix_raw_bench\1|' <<<"$DATABASE_URL"; return; fi
  local pass_file host port user
  read -r pass_file host port user < <(sed -n 's/.*inspect its database with: PGPASSFILE=\([^ ]*\) psql -h \([^ ]*\) -p \([0-9]*\) -U \([^ ]*\) -d.*/\1 \2 \3 \4/p' "$WORK/obelix.log" | head -1)
  [[ -n "${host:-}" ]] || { echo "no psql line in Obelix's log" >&2; exit 1; }
  echo "postgres://$user@localhost:$port/obelix_raw_bench?host=$host"
}
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
# pgbench's transactions/s and latency percentiles (from its per-transaction log), as "tps p50 p99".
run_pgbench() {
  local url; url=$(raw_pg_url)
  [[ -n "${DATABASE_URL:-}" ]] || export PGPASSFILE=$(sed -n 's/.*inspect its database with: PGPASSFILE=\([^ ]*\) .*/\1/p' "$WORK/obelix.log" | head -1)
  psql "${url/obelix_raw_bench/postgres}" -qc "CREATE DATABASE obelix_raw_bench" 2>/dev/null || true
  psql "$url" -q -f bench/raw/bookstore_setup.sql >/dev/null
  rm -f "$WORK"/pgbench_log*
  local out; out=$(cd "$WORK" && "$PGBENCH" -n -c "$CONNECTIONS" -j 2 -T "$DURATION" -l --log-prefix=pgbench_log -f "$OLDPWD/$1" "$url" 2>&1)
  local tps; tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
  [[ -n "$tps" ]] || { echo "pgbench failed: $out" >&2; exit 1; }
  grep -q "failed: 0 " <<<"$out" || grep -q "number of failed transactions: 0 " <<<"$out" || { echo "pgbench transactions failed: $out" >&2; exit 1; }
  # Column 3 of the log is the transaction's latency in microseconds.
  cat "$WORK"/pgbench_log* | awk '{print $3}' | sort -n | awk -v tps="$tps" '{a[NR]=$1} END {printf "%s %.2fms %.2fms\n", tps, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'
}

target/release/examples/hello 127.0.0.1:$HELLO_PORT 2 & PIDS+=($!)
wait_http "http://127.0.0.1:$HELLO_PORT/"

start_obelix 10000
BOOK_URL="http://127.0.0.1:$OBELIX_PORT/bookstore/books/2"
curl -sf "$BOOK_URL" >/dev/null
# Bare actix-web and the cached lookup take turns, three runs each, so that a burst of load
# from elsewhere on the machine falls on both alike; each is the median of its three.
hello_runs=""; cached_runs=""
for _ in 1 2 3; do
  hello_runs+="$(run_wrk "http://127.0.0.1:$HELLO_PORT/")"$'\n'
  cached_runs+="$(run_wrk "$BOOK_URL")"$'\n'
done
read -r hello_rps hello_p50 hello_p99 < <(sort -n -k1,1 <<<"${hello_runs%$'\n'}" | sed -n 2p)
read -r cached_rps cached_p50 cached_p99 < <(sort -n -k1,1 <<<"${cached_runs%$'\n'}" | sed -n 2p)
# Enough stock for every buy of the run: a million more copies of each book (the most one
# restock takes), through the manager's API.
for book in 1 2 3 4 5 6 7; do
  curl -sf -XPOST "http://127.0.0.1:$OBELIX_PORT/bookstore/books/$book/restock" \
    -H "Authorization: Bearer $MANAGER_TOKEN" -H 'Content-Type: application/json' \
    -d '{"quantity":1000000}' >/dev/null
done
orders_before=$(curl -sf "http://127.0.0.1:$OBELIX_PORT/bookstore/books" | grep -o '"quantity":[0-9]*' | awk -F: '{s+=$2} END {print s}')
read -r buy_rps buy_p50 buy_p99 < <(run_wrk -s bench/buy_books.lua "http://127.0.0.1:$OBELIX_PORT")
# The raw PostgreSQL limit of the same work, on the same server, right after.
read -r raw_tps raw_p50 raw_p99 < <(run_pgbench bench/raw/buy.sql)
orders_after=$(curl -sf "http://127.0.0.1:$OBELIX_PORT/bookstore/books" | grep -o '"quantity":[0-9]*' | awk -F: '{s+=$2} END {print s}')
DIGESTS=$(curl -sf "http://127.0.0.1:$OBELIX_PORT/bookstore/replicas" | grep -o '"digest":"[0-9a-f]*"' | sort -u | wc -l)
stop_obelix

start_obelix 0
read -r uncached_rps uncached_p50 uncached_p99 < <(run_wrk_median "$BOOK_URL")
stop_obelix

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<TABLE
Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), load average before the run's end: $(cut -d' ' -f1-3 /proc/loadavg); wrk -t1 -c$CONNECTIONS -d${DURATION}s on the same cores.
PostgreSQL: ${DATABASE_URL:+the server at DATABASE_URL}${DATABASE_URL:-private cluster (fsync on, synchronous_commit on)}.

Lookups (median of three runs; bare actix-web and cached lookups in turns):

| what | requests/s | p50 | p99 | vs bare actix-web | target |
|---|---:|---:|---:|---:|---|
| bare actix-web "hello" (baseline) | $hello_rps | $hello_p50 | $hello_p99 | 1.00 | |
| GET /bookstore/books/2, cached (X-Cache: hit) | $cached_rps | $cached_p50 | $cached_p99 | $(ratio "$cached_rps" "$hello_rps") | ≥ 0.70 |
| GET /bookstore/books/2, cache off | $uncached_rps | $uncached_p50 | $uncached_p99 | $(ratio "$uncached_rps" "$hello_rps") | |

Buys of the seven books at random, $CONNECTIONS buyers (one run each, one after the other):

| what | per second | p50 | p99 | vs raw | target |
|---|---:|---:|---:|---:|---|
| raw PostgreSQL (pgbench -c $CONNECTIONS): conditional UPDATE + order INSERT per transaction | $raw_tps | $raw_p50 | $raw_p99 | 1.00 | |
| POST /bookstore/books/{id}/buy (write log, 2 replicas acknowledged) | $buy_rps | $buy_p50 | $buy_p99 | $(ratio "$buy_rps" "$raw_tps") | ≥ 0.50 |

Copies sold during the buy run (stock before minus after, all books): $((orders_before - orders_after)); distinct replica digests afterwards: $DIGESTS (1 = equal).
TABLE
