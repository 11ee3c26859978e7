#!/usr/bin/env bash
# schemathesis (PyPI) against a running Obelix, over every route of /openapi.json, with all of
# its checks: no 5xx, no status code, content type, header or body the document does not
# describe, 4xx for what the document calls invalid, 405 (with `Allow`) for undocumented
# methods... and no panic in the server's log. Fails on any failure.
#
# 1. schemathesis, pinned with everything it pulls in (scripts/schemathesis-requirements.txt),
#    in a virtualenv under .obelix/venv (git-ignored); python3-venv from Debian when missing.
# 2. obelix (debug build: `cargo test` has just built it) on a free port of 127.0.0.1, with a
#    private PostgreSQL cluster in a temporary directory and test tokens for every scheme
#    (schemathesis reads them through scripts/schemathesis.toml, one per security scheme).
# 3. `schemathesis run` with a fixed seed and a bounded number of examples per operation.
#
# Settings (environment): SCHEMATHESIS_MAX_EXAMPLES (default 25), SCHEMATHESIS_SEED (default
# 14), SCHEMATHESIS_MAX_TIME (seconds, default 300: the fuzzing phases stop there).
# Checks left out, and why: see EXCLUDED_CHECKS below.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
SEED="${SCHEMATHESIS_SEED:-14}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-300}"
VENV=.obelix/venv
REQUIREMENTS=scripts/schemathesis-requirements.txt
# None: every check of `--checks all` runs.
EXCLUDED_CHECKS=""
# Operations left out of the run, and why: the admin API's five writes crash actors, take
# servers down for good, or grow the front-end and room-server groups to their maximum (64
# members heartbeating, which on 2 shared cores and a debug build makes elections, answered 503
# while they run). Fuzzed, they turn the rest of the run into a chaos run (a separate test,
# bounded and checked for what it must keep). They stay in the document, in
# tests/api/openapi.rs and in the admin tests; the admin reads (GET /admin/actors) are fuzzed.
EXCLUDED_OPERATIONS=(
    post_admin_actors_name_crash
    delete_admin_frontends_id
    delete_admin_rooms_servers_id
    post_admin_frontends
    post_admin_rooms_servers
)

say() { echo "schemathesis.sh: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root or sudo to run: $*"
        exit 1
    fi
}

# 1. The virtualenv, and schemathesis in it at the pinned versions.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3 and python3-venv (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq python3 python3-venv >/dev/null
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
pinned=$(grep -i '^schemathesis==' "$REQUIREMENTS" | cut -d= -f3)
if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != *"version $pinned"* ]]; then
    say "installing schemathesis $pinned into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
fi

# 2. Obelix on a free port, its own database, test tokens.
cargo build --locked --quiet --bin obelix
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d "${TMPDIR:-/tmp}/obelix-schemathesis.XXXXXX")
# As root, PostgreSQL runs as the postgres user, who must reach the data directory.
chmod 755 "$work"
log="$work/obelix.log"
export OBELIX__SERVER__HOST=127.0.0.1
export OBELIX__SERVER__PORT="$port"
export OBELIX__DATABASE__DATA_DIR="$work/pgdata"
export OBELIX__OLYMPICS__REPORTER_TOKEN=schemathesis-reporter
export OBELIX__ADMIN__TOKEN=schemathesis-admin
export OBELIX__BOOKSTORE__MANAGER_TOKEN=schemathesis-manager
export OBELIX__QUEUE__ADMIN_TOKEN=schemathesis-queue-admin
export OBELIX__QUEUE__PRODUCER_TOKEN=schemathesis-queue-producer
export OBELIX__QUEUE__CONSUMER_TOKEN=schemathesis-queue-consumer
# A private cluster, unless there are no server binaries and DATABASE_URL names a server.
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
    unset DATABASE_URL
fi

server=""
cleanup() {
    status=$?
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server"
        wait "$server" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$log" ]]; then
        rm -rf "$work/pgdata"
        say "the server's log: $log (last lines below)"
        tail -n 30 "$log" >&2
    else
        rm -rf "$work"
    fi
    exit $status
}
trap cleanup EXIT

target/debug/obelix serve >"$log" 2>&1 &
server=$!
say "obelix (pid $server) on port $port; log in $log"
for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$server" 2>/dev/null || { say "obelix exited during start"; exit 1; }
    sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { say "obelix not ready in 120 s"; exit 1; }

# 3. The run. The tokens reach schemathesis through the environment (schemathesis.toml).
args=(--config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json"
    --checks all
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --max-time "$MAX_TIME"
    --generation-database none
    --request-timeout 20
    --workers 2
    --no-color)
for operation in "${EXCLUDED_OPERATIONS[@]}"; do
    args+=(--exclude-operation-id "$operation")
done
if [[ -n "$EXCLUDED_CHECKS" ]]; then
    args+=(--exclude-checks "$EXCLUDED_CHECKS")
fi
failed=0
"$VENV/bin/schemathesis" "${args[@]}" || failed=1

# No panic, ever: a panic in a handler is caught by the supervision, but it is still a bug.
if grep -n "panicked" "$log" >&2; then
    say "the server's log shows a panic"
    failed=1
fi
if [[ $failed -ne 0 ]]; then
    say "FAILED (seed $SEED, $MAX_EXAMPLES examples)"
    exit 1
fi
say "passed (seed $SEED, $MAX_EXAMPLES examples per operation)"
