#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test: `cargo test`, then schemathesis against the
# running app (scripts/schemathesis.sh; OBELIX_SKIP_SCHEMATHESIS=1 skips it). With DATABASE_URL
# the tests use that server (each test gets a fresh database in it); without, they run a private
# PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --locked "$@"
if [[ "${OBELIX_SKIP_SCHEMATHESIS:-}" != 1 ]]; then
    bash scripts/schemathesis.sh
fi
