#!/usr/bin/env bash
# Installs what Obelix needs on a fresh Debian machine, and nothing that is already there:
# - a Rust toolchain (cargo) is expected; it cannot be installed from Debian (too old for us);
# - PostgreSQL server binaries (initdb, postgres) unless DATABASE_URL names a server to use.
# Safe to run again and again.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "obelix setup: cargo not found. Install Rust (https://rustup.rs) and run this again." >&2
    exit 1
fi

have_server_binaries() {
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if [[ -z "${DATABASE_URL:-}" ]] && ! have_server_binaries; then
    echo "obelix setup: installing PostgreSQL server binaries (Debian package postgresql)" >&2
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "obelix setup: need root or sudo to apt-get install postgresql" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq postgresql >/dev/null
fi

# As root, initdb and postgres run as the postgres user (the Debian package creates it);
# setpriv (util-linux) does the switch.
if [[ $(id -u) -eq 0 && -z "${DATABASE_URL:-}" ]]; then
    command -v setpriv >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
    id postgres >/dev/null 2>&1 || { echo "obelix setup: no postgres user; install the postgresql package or set DATABASE_URL" >&2; exit 1; }
fi

# The browser tests (tests/browser.rs) drive Debian's Chromium through chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "obelix setup: installing chromium and chromium-driver (Debian) for the browser tests" >&2
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "obelix setup: need root or sudo to apt-get install chromium" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
fi
