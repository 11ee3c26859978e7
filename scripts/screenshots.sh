#!/usr/bin/env bash
# Takes the README's screenshots of every page (docs/screenshots/*.png) in headless Chromium,
# through the browser test binary's ignored test (it boots the whole tree on a private database
# and puts some results, orders and reservations in place first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo test --locked --test browser screenshots_of_every_page -- --ignored --exact
