#!/usr/bin/env bash
# Installs what building and testing rl needs and is missing: redis-server (with redis-cli and
# redis-benchmark) and libclang-dev (bindgen, used by the redis-module crate, needs libclang).
# As root it uses apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
dpkg -s libclang-dev >/dev/null 2>&1 || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}"
    bash -c "$cmd"
else
    echo "missing: ${missing[*]}. Run as root:" >&2
    echo "  sudo sh -c '$cmd'" >&2
    exit 1
fi
