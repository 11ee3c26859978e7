#!/usr/bin/env bash
# A/B of two builds of Obelix (and of one build under other settings) on the hot paths, with
# their wrk runs interleaved round by round, so that load from elsewhere on the machine falls
# on every side alike: cached tablet reads, anonymous cached reads, single-message enqueues
# from 64 connections. Prints the median of each side and its ratio to side A.
#   scripts/ab_bench.sh ROUNDS SECONDS  A_BIN A_CONFIG A_ENV  B_BIN B_CONFIG B_ENV  [C_BIN C_CONFIG C_ENV]
# *_ENV: space-separated VAR=value pairs for that side ("-" for none). Release builds expected.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1 DURATION=$2; shift 2
WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
wait_http() { for _ in $(seq 1 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
rps() { wrk -t1 -c64 -d"${DURATION}s" "$@" | awk '/Requests\/sec/ {print $2}'; }

SIDES=()
n=0
while (( $# >= 3 )); do
  bin=$1 config=$2 extra=$3; shift 3
  port=$((18090 + n))
  env_args=()
  [[ $extra == - ]] || read -r -a env_args <<<"$extra"
  env OBELIX_CONFIG="$config" OBELIX__SERVER__PORT=$port OBELIX__DATABASE__DATA_DIR="$WORK/pg$n" \
      OBELIX__OLYMPICS__REPORTER_TOKEN=bench-reporter RUST_LOG=warn "${env_args[@]}" \
      "$bin" >"$WORK/obelix$n.log" 2>&1 &
  PIDS+=($!)
  SIDES+=("$port")
  n=$((n + 1))
done
for port in "${SIDES[@]}"; do wait_http "http://127.0.0.1:$port/readyz"; done
declare -A TABLET PRODUCER
for port in "${SIDES[@]}"; do
  base=http://127.0.0.1:$port
  TABLET[$port]=$(curl -sf -XPOST "$base/olympics/tablets" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  curl -sf -XPOST "$base/queue/topics" -H "Authorization: Bearer queue-admin-dev-token" \
       -H 'Content-Type: application/json' -d '{"name":"bench","partitions":3}' >/dev/null
  PRODUCER[$port]=$(curl -sf -XPOST "$base/queue/producers" -H "Authorization: Bearer queue-producer-dev-token" \
       -H 'Content-Type: application/json' -d '{"topics":["bench"]}' | sed 's/.*"producer_id":\([0-9]*\).*/\1/')
  wrk -t1 -c16 -d3s "$base/olympics/games/curling/score" >/dev/null   # warm-up
done

for round in $(seq 1 "$ROUNDS"); do
  for port in "${SIDES[@]}"; do
    base=http://127.0.0.1:$port
    echo "$port cached $(rps -H "X-Tablet-Id: ${TABLET[$port]}" "$base/olympics/games/curling/score")" >>"$WORK/results"
    echo "$port anonymous $(rps "$base/olympics/games/curling/score")" >>"$WORK/results"
    echo "$port enqueue $(PRODUCER_ID=${PRODUCER[$port]} PRODUCER_TOKEN=queue-producer-dev-token rps -s bench/enqueue.lua "$base")" >>"$WORK/results"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "| workload | $(for i in "${!SIDES[@]}"; do printf 'side %s req/s | vs A | ' "$(printf "\\x$(printf %x $((65 + i)))")"; done)"
echo "|---|$(for _ in "${SIDES[@]}"; do printf -- '---:|---:|'; done)"
for w in cached anonymous enqueue; do
  a=$(awk -v p="${SIDES[0]}" -v w=$w '$1==p && $2==w {print $3}' "$WORK/results" | median)
  row="| $w |"
  for port in "${SIDES[@]}"; do
    m=$(awk -v p="$port" -v w=$w '$1==p && $2==w {print $3}' "$WORK/results" | median)
    row="$row $m | $(awk -v m="$m" -v a="$a" 'BEGIN {printf "%.3f", m / a}') |"
  done
  echo "$row"
done
echo
echo "Every run (port workload req/s), in order:"
cat "$WORK/results"
