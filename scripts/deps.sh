#!/usr/bin/env bash
# Installs what building and testing eghostbuster needs, only what is
# missing, on Debian or Ubuntu, as root. Sourced by start.sh and test.sh.
set -euo pipefail

[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

need=()
for pkg in clang llvm libelf-dev zlib1g-dev libzstd-dev pkg-config make gcc libc6-dev \
           util-linux iproute2 ca-certificates curl lintian runit man-db socat; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    PATH="$HOME/.cargo/bin:$PATH"
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt 2>/dev/null || true
export PATH
