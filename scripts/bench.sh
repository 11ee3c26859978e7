#!/usr/bin/env bash
# Olympic read/write load, side by side with a bare actix-web handler, on this machine.
# Prints a Markdown table (docs/benchmarks.md keeps the last results).
#   scripts/bench.sh [seconds-per-run]   (default 10)
#   scripts/bench.sh writes [seconds-per-run]   only the reporter writes beside raw PostgreSQL
#   scripts/bench.sh queue [seconds-per-run]   the queue against pgmq and JetStream (scripts/queue_bench.sh)
#   scripts/bench.sh bookstore [seconds-per-run]   bookstore lookups and buys (scripts/bookstore_bench.sh)
#   scripts/bench.sh rooms [rounds]   the room servers' failover alone (examples/rooms_failover_bench.rs)
# OBELIX_BIN=<path> runs another build of Obelix (e.g. an older one, with OBELIX_CONFIG naming
# its config.toml), for a before/after.
# Uses the same PostgreSQL rules as `cargo run`: DATABASE_URL, or a private cluster in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == queue ]]; then shift; exec bash scripts/queue_bench.sh "$@"; fi
if [[ ${1:-} == bookstore ]]; then shift; exec bash scripts/bookstore_bench.sh "$@"; fi
ROOMS_ONLY=false
if [[ ${1:-} == rooms ]]; then ROOMS_ONLY=true; ROOMS_FAILOVER_ROUNDS=${2:-${ROOMS_FAILOVER_ROUNDS:-20}}; set -- 1; fi
ONLY_WRITES=
if [[ ${1:-} == writes ]]; then shift; ONLY_WRITES=1; fi
OBELIX_BIN=${OBELIX_BIN:-target/release/obelix}
bash scripts/setup.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

DURATION=${1:-10}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CONNECTIONS=${CONNECTIONS:-64}
OBELIX_PORT=18080
HELLO_PORT=18081
export REPORTER_TOKEN=bench-reporter-token
WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# Every pushed-to tablet is a connection on each side.
ulimit -n 65536 2>/dev/null || ulimit -n 4096 || true
cargo build --release --quiet --bin obelix --example hello --example push_bench --example failover_bench --example rooms_failover_bench

wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# wrk's requests/s and latency percentiles, as "rps p50 p99".
run_wrk() {
  local out; out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk saw errors: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
  echo "$rps $p50 $p99"
}

# The run with the median requests/s of three, for the comparisons with the baseline: these
# machines are noisy (±10 % from run to run).
run_wrk_median() {
  local runs
  runs=$( { run_wrk "$@"; run_wrk "$@"; run_wrk "$@"; } | sort -n -k1,1)
  sed -n 2p <<<"$runs"
}

start_obelix() { # $1 = cache capacity
  OBELIX__SERVER__PORT=$OBELIX_PORT OBELIX__DATABASE__DATA_DIR="$WORK/pgdata" \
  OBELIX__OLYMPICS__REPORTER_TOKEN=$REPORTER_TOKEN OBELIX__OLYMPICS__CACHE_CAPACITY=$1 \
  OBELIX__ADMIN__TOKEN=bench-admin-token \
  RUST_LOG=warn,obelix::startup=info "$OBELIX_BIN" >"$WORK/obelix.log" 2>&1 &
  OBELIX_PID=$!; PIDS+=("$OBELIX_PID")
  wait_http "http://127.0.0.1:$OBELIX_PORT/readyz"
  # A fresh cluster (initdb, migrations) keeps PostgreSQL busy for a moment on these same cores:
  # warm up for a few seconds so that the measured runs don't pay for it.
  wrk -t1 -c16 -d3s "http://127.0.0.1:$OBELIX_PORT/olympics/games/curling/score" >/dev/null
}
stop_obelix() { kill -INT "$OBELIX_PID"; wait "$OBELIX_PID" || true; }

# Obelix's PostgreSQL, from its "inspect its database with: PGPASSFILE=<file> psql -h <dir> -p
# <port> -U <user> -d <db>" start-up line (or DATABASE_URL): the raw baseline runs in a database of its own there.
raw_pg_url() {
  if [[ -n "${DATABASE_URL:-}" ]]; then sed 's|/[^/?]*\(?.*\)\?$|/obelix_raw_bench\1|' <<<"$DATABASE_URL"; return; fi
  local pass_file host port user
  read -r pass_file host port user < <(sed -n 's/.*inspect its database with: PGPASSFILE=\([^ ]*\) psql -h \([^ ]*\) -p \([0-9]*\) -U \([^ ]*\) -d.*/\1 \2 \3 \4/p' "$WORK/obelix.log" | head -1)
  [[ -n "${host:-}" ]] || { echo "no psql line in Obelix's log" >&2; exit 1; }
  # The private cluster's password file covers every database of it.
  export PGPASSFILE=$pass_file
  echo "postgres://$user@localhost:$port/obelix_raw_bench?host=$host"
}
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
# pgbench's transactions/s and latency percentiles (from its per-transaction log), as "tps p50 p99".
run_pgbench() {
  local url; url=$(raw_pg_url)
  [[ -n "${DATABASE_URL:-}" ]] || export PGPASSFILE=$(sed -n 's/.*inspect its database with: PGPASSFILE=\([^ ]*\) .*/\1/p' "$WORK/obelix.log" | head -1)
  psql "${url/obelix_raw_bench/postgres}" -qc "CREATE DATABASE obelix_raw_bench" 2>/dev/null || true
  psql "$url" -q -f bench/raw/setup.sql >/dev/null
  rm -f "$WORK"/pgbench_log*
  local out; out=$(cd "$WORK" && "$PGBENCH" -n -c "$CONNECTIONS" -j 2 -T "$DURATION" -l --log-prefix=pgbench_log -f "$OLDPWD/$1" "$url" 2>&1)
  local tps; tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
  [[ -n "$tps" ]] || { echo "pgbench failed: $out" >&2; exit 1; }
  # Column 3 of the log is the transaction's latency in microseconds.
  cat "$WORK"/pgbench_log* | awk '{print $3}' | sort -n | awk -v tps="$tps" '{a[NR]=$1} END {printf "%s %.2fms %.2fms\n", tps, a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'
}

# The write rows: Obelix (cache on) and raw PostgreSQL in the same run.
run_writes() {
  read -r put6_rps put6_p50 put6_p99 < <(run_wrk -s bench/put_score_games.lua "http://127.0.0.1:$OBELIX_PORT")
  read -r put_rps put_p50 put_p99 < <(run_wrk -s bench/put_score.lua "http://127.0.0.1:$OBELIX_PORT")
  read -r put1_rps put1_p50 put1_p99 < <(CONNECTIONS=1 run_wrk -s bench/put_score.lua "http://127.0.0.1:$OBELIX_PORT")
  read -r medal_rps medal_p50 medal_p99 < <(run_wrk -s bench/award_medal.lua "http://127.0.0.1:$OBELIX_PORT")
  # The raw PostgreSQL baseline of the same writes, on the same server, in one run (pgbench).
  read -r raw6_tps raw6_p50 raw6_p99 < <(run_pgbench bench/raw/unordered.sql)
  read -r rawseq_tps rawseq_p50 rawseq_p99 < <(run_pgbench bench/raw/sequenced.sql)
  read -r raw1_tps raw1_p50 raw1_p99 < <(run_pgbench bench/raw/one_game.sql)
}
# The room servers' failover under a steady stream of reservations, checks and cancels.
rooms_failover() {
  target/release/examples/rooms_failover_bench "http://127.0.0.1:$OBELIX_PORT" bench-admin-token "${ROOMS_FAILOVER_ROUNDS:-20}" "${ROOMS_CLIENTS:-8}"
}
if $ROOMS_ONLY; then
  start_obelix 10000
  rooms_failover
  stop_obelix
  exit 0
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
writes_table() {
  cat <<TABLE
Reporter writes, 64 writers unless said (one run each), beside raw PostgreSQL doing the same transactions (pgbench -c $CONNECTIONS, same server, same run):

| what | requests/s | p50 | p99 | vs raw, no order |
|---|---:|---:|---:|---:|
| raw PostgreSQL: update a game's row + insert a log row, 6 games, no global order | $raw6_tps | $raw6_p50 | $raw6_p99 | 1.00 |
| raw PostgreSQL: the same plus a global sequence row | $rawseq_tps | $rawseq_p50 | $rawseq_p99 | $(ratio "$rawseq_tps" "$raw6_tps") |
| raw PostgreSQL: one game, no global order | $raw1_tps | $raw1_p50 | $raw1_p99 | 1.00 (one game) |
| PUT score over the 6 games (Obelix, one global order) | $put6_rps | $put6_p50 | $put6_p99 | $(ratio "$put6_rps" "$raw6_tps") |
| PUT score on one game | $put_rps | $put_p50 | $put_p99 | $(ratio "$put_rps" "$raw1_tps") (one game) |
| PUT score, one writer | $put1_rps | $put1_p50 | $put1_p99 | |
| POST medal (one team) | $medal_rps | $medal_p50 | $medal_p99 | |
TABLE
}

if [[ -n $ONLY_WRITES ]]; then
  start_obelix 10000
  run_writes
  stop_obelix
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t1 -c$CONNECTIONS -d${DURATION}s on the same cores; load average before: $LOAD_BEFORE."
  echo "PostgreSQL: ${DATABASE_URL:+the server at DATABASE_URL}${DATABASE_URL:-private cluster (fsync on, synchronous_commit on)}. Obelix: $OBELIX_BIN."
  echo
  writes_table
  exit 0
fi

target/release/examples/hello 127.0.0.1:$HELLO_PORT 2 & PIDS+=($!)
wait_http "http://127.0.0.1:$HELLO_PORT/"
read -r hello_rps hello_p50 hello_p99 < <(run_wrk_median "http://127.0.0.1:$HELLO_PORT/")

start_obelix 10000
TABLET=$(curl -sf -XPOST "http://127.0.0.1:$OBELIX_PORT/olympics/tablets" | sed 's/.*"id":"\([^"]*\)".*/\1/')
SCORE_URL="http://127.0.0.1:$OBELIX_PORT/olympics/games/curling/score"
read -r cached_rps cached_p50 cached_p99 < <(run_wrk_median -H "X-Tablet-Id: $TABLET" "$SCORE_URL")
read -r anon_rps anon_p50 anon_p99 < <(run_wrk_median "$SCORE_URL")
run_writes
PUSH=$(target/release/examples/push_bench "http://127.0.0.1:$OBELIX_PORT" "$REPORTER_TOKEN" "${PUSH_TABLETS:-1000}" "${PUSH_UPDATES:-50}")
FAILOVER=$(target/release/examples/failover_bench "http://127.0.0.1:$OBELIX_PORT" bench-admin-token "${FAILOVER_ROUNDS:-20}")
ROOMS_FAILOVER=$(rooms_failover)
stop_obelix

start_obelix 0
read -r uncached_rps uncached_p50 uncached_p99 < <(run_wrk -H "X-Tablet-Id: $TABLET" "$SCORE_URL")
stop_obelix

cat <<TABLE
Reads: median of three runs. Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk -t1 -c$CONNECTIONS -d${DURATION}s on the same cores.
PostgreSQL: ${DATABASE_URL:+the server at DATABASE_URL}${DATABASE_URL:-private cluster (fsync on, synchronous_commit on)}.

| what | requests/s | p50 | p99 | vs bare actix-web |
|---|---:|---:|---:|---:|
| bare actix-web "hello" (baseline) | $hello_rps | $hello_p50 | $hello_p99 | 1.00 |
| GET score, tablet, cached (X-Cache: hit) | $cached_rps | $cached_p50 | $cached_p99 | $(ratio "$cached_rps" "$hello_rps") |
| GET score, anonymous, cached | $anon_rps | $anon_p50 | $anon_p99 | $(ratio "$anon_rps" "$hello_rps") |
| GET score, tablet, cache off | $uncached_rps | $uncached_p50 | $uncached_p99 | $(ratio "$uncached_rps" "$hello_rps") |

$(writes_table)

Push (examples/push_bench.rs, latency from sending the PUT to receipt at each tablet): $PUSH

Failover (examples/failover_bench.rs, kill of the leader until every member agrees on the next, 8 tablets reading): $FAILOVER

Room servers' failover (examples/rooms_failover_bench.rs, kill of the leader until every live server agrees on the next, and until the first reply from it): $ROOMS_FAILOVER
TABLE
