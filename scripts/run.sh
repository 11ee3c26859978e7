#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run Obelix. Arguments go to the obelix binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release -- "$@"
