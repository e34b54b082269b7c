#!/usr/bin/env bash
# The whole test suite, as root: formatting, lints, unit tests, the
# privileged end-to-end tests (real BPF, real processes), and the static
# release binary. With EGHOSTBUSTER_REQUIRE_BPF=1 a skipped privileged test
# is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || echo "test.sh: not root: the privileged tests will skip" >&2
. scripts/deps.sh

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked

cargo build --release --locked
bin=target/x86_64-unknown-linux-gnu/release/eghostbuster
ldd "$bin" 2>&1 | grep -Eq "not a dynamic executable|statically linked"
echo "release binary: $("$bin" --version), $(stat -c %s "$bin") bytes, static ($(ldd "$bin" 2>&1 | xargs))"

# the benchmark harness, with tiny sizes, so that it does not rot (its
# numbers mean nothing here and fail nothing; a broken step fails)
if [ "$(id -u)" = 0 ]; then
    (cd bench && cargo build --release --locked)
    EGHOSTBUSTER_BIN="$bin" bench/target/x86_64-unknown-linux-gnu/release/eghostbuster-bench all --quick >/dev/null
    echo "bench smoke run: ok"
fi

# the .deb: contents, lintian, install, runit service, purge (root only)
if [ "$(id -u)" = 0 ]; then
    bash scripts/test-package.sh
elif [ "${EGHOSTBUSTER_REQUIRE_BPF:-}" = 1 ]; then
    echo "package tests need root" >&2
    exit 1
fi
