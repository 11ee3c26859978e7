#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. With DATABASE_URL the tests use that server
# (each test gets a fresh database in it); without, they run a private PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo test --locked "$@"
